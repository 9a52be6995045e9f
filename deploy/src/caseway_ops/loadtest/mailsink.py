"""A counting SMTP sink, run as its own process so that receiving thousands of emails a second does not
slow the harness: every message's notification key, recipients and arrival time are appended to a file,
one per line.

    python -m caseway_ops.loadtest.mailsink PORT OUTFILE
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import IO, TYPE_CHECKING

from aiosmtpd.controller import Controller

if TYPE_CHECKING:
    from aiosmtpd.smtp import Envelope

KEY_HEADER = "X-Caseway-Notification-Key"


class CountingHandler:
    """Writes ``<notification key>\\t<recipients>\\t<time>`` for each message received."""

    def __init__(self, out: IO[str]) -> None:
        self._out = out
        self._parser = BytesHeaderParser()

    async def handle_DATA(self, server: object, session: object, envelope: Envelope) -> str:  # noqa: N802, ARG002
        content = envelope.content
        raw = content.encode() if isinstance(content, str) else (content or b"")
        headers = self._parser.parsebytes(raw)
        key = (headers.get(KEY_HEADER) or "").replace("\t", " ").replace("\n", " ")
        self._out.write(f"{key}\t{','.join(envelope.rcpt_tos)}\t{time.time():.3f}\n")
        return "250 OK"


def read_deliveries(path: Path) -> list[tuple[str, str]]:
    """The (notification key, recipients) pairs the sink wrote to `path`."""
    return [(key, rcpt) for key, rcpt, _ in read_timed_deliveries(path)]


def read_timed_deliveries(path: Path) -> list[tuple[str, str, float]]:
    """(notification key, recipients or team, arrival time) as this sink or the webhook sink wrote them."""
    if not path.exists():
        return []
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        key, _, rest = line.partition("\t")
        who, _, at = rest.partition("\t")
        if key:
            try:
                when = float(at)
            except ValueError:
                when = 0.0
            found.append((key, who, when))
    return found


async def _serve(port: int, out_path: Path) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    with out_path.open("a", encoding="utf-8", buffering=1) as out:
        controller = Controller(CountingHandler(out), hostname="127.0.0.1", port=port)
        controller.start()
        try:
            await stop.wait()
        finally:
            controller.stop()


def main(argv: list[str]) -> None:
    asyncio.run(_serve(int(argv[1]), Path(argv[2])))


if __name__ == "__main__":
    main(sys.argv)
