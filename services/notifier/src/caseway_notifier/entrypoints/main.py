"""`caseway-notifier`: serve the notifier service (Kafka consumer, sender, ops endpoints)."""

from __future__ import annotations

from caseway_notifier.entrypoints.app import create_app
from caseway_notifier.settings import NotifierSettings
from caseway_shared.serving import serve


def main() -> None:
    settings = NotifierSettings()
    serve(create_app(settings), settings)
