"""Builds the notifier service: `create_app(settings, channels=...)` returns its ASGI app; nothing
connects until started. Tests pass in-memory channels; by default the real adapters are used."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
from starlette.applications import Starlette

from caseway_notifier.channels import NotificationChannel, SmtpChannel, WebhookChannel
from caseway_notifier.directory import load_directory
from caseway_notifier.service import SERVICE, NotifierService
from caseway_notifier.settings import NotifierSettings
from caseway_shared.runtime import ServiceRuntime
from caseway_shared.topics import Topic

if TYPE_CHECKING:
    from collections.abc import Mapping


def default_channels(settings: NotifierSettings) -> dict[str, NotificationChannel]:
    return {
        "email": SmtpChannel(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.mail_from,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            starttls=settings.smtp_starttls,
            timeout=settings.send_timeout_seconds,
        ),
        "webhook": WebhookChannel(client=httpx.AsyncClient(timeout=settings.send_timeout_seconds)),
    }


def create_app(
    settings: NotifierSettings | None = None, *, channels: Mapping[str, NotificationChannel] | None = None
) -> Starlette:
    settings = settings or NotifierSettings()
    runtime = ServiceRuntime(settings=settings, service=SERVICE, schema="notifier")
    service = NotifierService(
        runtime=runtime,
        directory=load_directory(settings.council_dir),
        channels=channels if channels is not None else default_channels(settings),
        settings=settings,
    )
    runtime.subscribe(
        Topic.CASES,
        service.handle_case_events_batch,
        title="notify_teams",
        description="Plans and records the alerts each case event calls for; a sender delivers them once.",
    )
    runtime.run_in_background(service.run_sender)
    app = Starlette(routes=list(runtime.ops_routes()), lifespan=runtime.lifespan)
    app.state.runtime = runtime
    app.state.service = service
    return app
