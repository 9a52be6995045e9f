"""`caseway-notifier`: serve the notifier service (Kafka consumer, sender, ops endpoints)."""

from __future__ import annotations

import uvicorn

from caseway_notifier.entrypoints.app import create_app
from caseway_notifier.settings import NotifierSettings


def main() -> None:
    settings = NotifierSettings()
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        loop="uvloop",
        http="httptools",
    )
