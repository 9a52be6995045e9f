"""How the router is started: the app factory (consumers and HTTP routes) and the command."""
