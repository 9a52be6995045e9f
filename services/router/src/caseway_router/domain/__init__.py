"""What the router decides, as pure functions over plain data: where a report is, which departments own
it, when it is due, which cases it may repeat and which advisory locks guard that. No I/O here."""
