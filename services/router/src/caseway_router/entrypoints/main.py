"""`caseway-router`: serve the router service (Kafka consumer, ops endpoints)."""

from __future__ import annotations

import uvicorn

from caseway_router.entrypoints.app import create_app
from caseway_router.settings import RouterSettings


def main() -> None:
    settings = RouterSettings()
    # No X-Forwarded-For rewriting: the staff header is trusted by the peer's own address (see
    # domain.access), which a forwarded header must not be able to change.
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        # uvloop and httptools (shared dependencies): the event loop and HTTP parser in C, not Python.
        loop="uvloop",
        http="httptools",
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()
