"""`caseway-router`: serve the router service (Kafka consumer, ops endpoints)."""

from __future__ import annotations

import uvicorn

from caseway_router.entrypoints.app import create_app
from caseway_router.settings import RouterSettings


def main() -> None:
    settings = RouterSettings()
    uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port, log_config=None)


if __name__ == "__main__":
    main()
