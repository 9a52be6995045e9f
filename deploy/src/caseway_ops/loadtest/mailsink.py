"""A counting SMTP sink, run as its own process so that receiving thousands of emails a second does not
slow the harness: every message's notification key, recipients and arrival time are appended to a file,
one per line, with what a digest says (see `caseway_ops.loadtest.receipts`).

    python -m caseway_ops.loadtest.mailsink PORT OUTFILE
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from email import policy
from email.parser import BytesHeaderParser, BytesParser
from pathlib import Path
from typing import IO, TYPE_CHECKING

from aiosmtpd.controller import Controller

from caseway_ops.loadtest.receipts import Delivery, digest_detail, is_digest, line_of

if TYPE_CHECKING:
    from aiosmtpd.smtp import Envelope

KEY_HEADER = "X-Caseway-Notification-Key"


class CountingHandler:
    """Writes one line per message received (`caseway_ops.loadtest.receipts.line_of`)."""

    def __init__(self, out: IO[str]) -> None:
        self._out = out
        self._headers = BytesHeaderParser()
        self._whole = BytesParser(policy=policy.default)

    async def handle_DATA(self, server: object, session: object, envelope: Envelope) -> str:  # noqa: N802, ARG002
        content = envelope.content
        raw = content.encode() if isinstance(content, str) else (content or b"")
        key = self._headers.parsebytes(raw).get(KEY_HEADER) or ""
        detail = ""
        if is_digest(key):  # only digests are read whole: thousands of alerts a second are not
            message = self._whole.parsebytes(raw)
            part = message.get_body(preferencelist=("plain",))
            body = part.get_content() if part is not None else ""
            detail = digest_detail(key, str(message.get("Subject", "")), str(body))
        self._out.write(line_of(Delivery(key, ",".join(envelope.rcpt_tos), time.time(), detail)))
        return "250 OK"


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
