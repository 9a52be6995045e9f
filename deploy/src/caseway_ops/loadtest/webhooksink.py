"""A counting webhook receiver, run as its own process like the mail sink: every POST to /hook/<team>
appends its Idempotency-Key, the team and the time to a file, one per line, with what a digest says (see
`caseway_ops.loadtest.receipts`). While the file named
FAILFILE exists it answers 500 instead (a chat tool having a bad few minutes) and records nothing.
Any other path answers 200 and is not counted (tracing's OTLP exports land here when tracing is on).

    python -m caseway_ops.loadtest.webhooksink PORT OUTFILE FAILFILE
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import uvicorn

from caseway_ops.loadtest.receipts import Delivery, digest_detail, is_digest, line_of

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, MutableMapping

KEY_HEADER = b"idempotency-key"


class CountingApp:
    def __init__(self, out: IO[str], fail_file: Path) -> None:
        self._out = out
        self._fail_file = fail_file

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            return
        more, body = True, b""
        while more:  # read the body through, whatever it is
            message = await receive()
            body += message.get("body", b"")
            more = bool(message.get("more_body"))
        path: str = scope["path"]
        status = 200
        if path.startswith("/hook"):
            if self._fail_file.exists():
                status = 500
            else:
                headers = dict(scope["headers"])
                key = headers.get(KEY_HEADER, b"").decode("latin-1")
                team = path.rsplit("/", 1)[-1]
                self._out.write(line_of(Delivery(key, team, time.time(), _detail(key, body))))
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})


def _detail(key: str, body: bytes) -> str:
    """What a digest's JSON body (``{"text": "<subject>\\n<body>"}``) says; empty for anything else."""
    if not is_digest(key):
        return ""
    try:
        text = str(json.loads(body).get("text", ""))
    except (ValueError, AttributeError):
        return ""
    subject, _, rest = text.partition("\n")
    return digest_detail(key, subject, rest)


def main(argv: list[str]) -> None:
    port, out_path, fail_file = int(argv[1]), Path(argv[2]), Path(argv[3])
    with out_path.open("a", encoding="utf-8", buffering=1) as out:
        app = CountingApp(out, fail_file)
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")


if __name__ == "__main__":
    main(sys.argv)
