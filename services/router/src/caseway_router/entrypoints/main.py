"""`caseway-router`: serve the router service (Kafka consumer, ops endpoints)."""

from __future__ import annotations

from caseway_router.entrypoints.app import create_app
from caseway_router.settings import RouterSettings
from caseway_shared.serving import serve


def main() -> None:
    settings = RouterSettings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
