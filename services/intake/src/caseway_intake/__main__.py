"""`caseway-intake`: serve the intake service (Kafka consumer, Open311 API, ops endpoints)."""

from __future__ import annotations

import uvicorn

from caseway_intake.app import create_app
from caseway_intake.settings import IntakeSettings


def main() -> None:
    settings = IntakeSettings()
    uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port, log_config=None)


if __name__ == "__main__":
    main()
