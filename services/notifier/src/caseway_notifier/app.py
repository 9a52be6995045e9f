"""Builds the notifier service: `create_app(settings, channels=..., limits=...)` returns its ASGI app;
nothing connects until started. Tests pass in-memory channels; by default the real adapters are used."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import httpx
from starlette.applications import Starlette

from caseway_notifier.channels import NotificationChannel, NotifyChannel, SmtpChannel, WebhookChannel
from caseway_notifier.directory import load_directory
from caseway_notifier.ratelimit import TokenBucket
from caseway_notifier.service import SERVICE, NotifierService
from caseway_notifier.settings import NotifierSettings
from caseway_shared.runtime import ServiceRuntime
from caseway_shared.topics import Topic

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping


def default_channels(settings: NotifierSettings, client: httpx.AsyncClient) -> dict[str, NotificationChannel]:
    """The real adapters: email over SMTP or through Notify, SMS through Notify (when a key is set),
    webhooks over HTTP."""
    channels: dict[str, NotificationChannel] = {
        "email": SmtpChannel(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.mail_from,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            starttls=settings.smtp_starttls,
            timeout=settings.send_timeout_seconds,
            connections=settings.smtp_connections,
        ),
        "webhook": WebhookChannel(client=client),
    }
    if settings.notify_api_key is not None:
        key = settings.notify_api_key.get_secret_value()
        channels["sms"] = NotifyChannel(
            client=client,
            kind="sms",
            api_key=key,
            template_id=settings.notify_sms_template_id,
            base_url=settings.notify_base_url,
        )
        if settings.email_via == "notify":
            channels["email"] = NotifyChannel(
                client=client,
                kind="email",
                api_key=key,
                template_id=settings.notify_email_template_id,
                base_url=settings.notify_base_url,
            )
    return channels


def default_limits(settings: NotifierSettings) -> dict[str, TokenBucket]:
    """A token bucket per channel that has a limit; channels that go through Notify share one, because
    Notify's limit is per API key."""
    limits: dict[str, TokenBucket] = {}
    notify = TokenBucket.per_minute(settings.notify_rate_per_minute)
    if settings.notify_api_key is not None:
        limits["sms"] = notify
    if settings.email_via == "notify":
        limits["email"] = notify
    elif settings.smtp_rate_per_minute:
        limits["email"] = TokenBucket.per_minute(settings.smtp_rate_per_minute)
    if settings.webhook_rate_per_minute:
        limits["webhook"] = TokenBucket.per_minute(settings.webhook_rate_per_minute)
    return limits


def create_app(
    settings: NotifierSettings | None = None,
    *,
    channels: Mapping[str, NotificationChannel] | None = None,
    limits: Mapping[str, TokenBucket] | None = None,
) -> Starlette:
    settings = settings or NotifierSettings()
    runtime = ServiceRuntime(settings=settings, service=SERVICE, schema="notifier")
    client = httpx.AsyncClient(
        timeout=settings.send_timeout_seconds,
        limits=httpx.Limits(
            max_connections=settings.webhook_connections + settings.send_concurrency,
            max_keepalive_connections=settings.webhook_connections + settings.send_concurrency,
        ),
    )
    channels = channels if channels is not None else default_channels(settings, client)
    service = NotifierService(
        runtime=runtime,
        directory=load_directory(settings.council_dir),
        channels=channels,
        settings=settings,
        limits=limits if limits is not None else default_limits(settings),
        concurrency={"webhook": settings.webhook_connections}
        | ({"email": settings.smtp_connections} if settings.email_via == "smtp" else {}),
    )
    runtime.subscribe(
        Topic.CASES,
        service.handle_case_events_batch,
        title="notify_teams",
        description="Keeps each case's state and plans the alerts and digest entries its events call for; "
        "a sender delivers them once.",
    )
    runtime.run_in_background(service.run_sender)
    runtime.run_in_background(service.run_escalations)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with runtime.lifespan(app):
            yield
        for channel in channels.values():
            if isinstance(channel, SmtpChannel):
                await channel.close()
        await client.aclose()

    app = Starlette(routes=list(runtime.ops_routes()), lifespan=lifespan)
    app.state.runtime = runtime
    app.state.service = service
    return app
