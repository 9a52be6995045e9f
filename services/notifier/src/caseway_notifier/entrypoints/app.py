"""Builds the notifier service: `create_app(settings, channels=..., limits=...)` returns its ASGI app;
nothing connects until started. It wires the layers: the adapters (PostgreSQL store, channels, rate
limits) into the service layer (case events, sender, escalations) through a unit of work and a clock.
Tests pass in-memory channels; by default the real adapters are used."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import httpx
from starlette.applications import Starlette

from caseway_notifier.adapters.channels import NotifyChannel, SmtpChannel, WebhookChannel
from caseway_notifier.adapters.rate_limit import SharedRateLimit, TokenBucket
from caseway_notifier.adapters.store import NotifierStore
from caseway_notifier.domain.directory import load_directory
from caseway_notifier.entrypoints import consumer
from caseway_notifier.service.case_events import CaseEvents
from caseway_notifier.service.escalation import Escalations
from caseway_notifier.service.messages import SERVICE, Messages
from caseway_notifier.service.sending import Sender
from caseway_notifier.settings import NotifierSettings
from caseway_shared.runtime import ServiceRuntime

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping

    import asyncpg

    from caseway_notifier.service.ports import NotificationChannel, RateLimit


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


def default_limits(
    settings: NotifierSettings, *, pool: Callable[[], asyncpg.Pool] | None = None
) -> dict[str, RateLimit]:
    """A rate limit per channel that has one. Channels that go through Notify share one, kept in
    PostgreSQL when a pool is given, because Notify's limit is per API key: every replica draws on it."""
    limits: dict[str, RateLimit] = {}
    notify: RateLimit = (
        SharedRateLimit.per_minute(settings.notify_rate_per_minute, pool=pool, name="notify")
        if pool is not None
        else TokenBucket.per_minute(settings.notify_rate_per_minute)
    )
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
    limits: Mapping[str, RateLimit] | None = None,
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
    directory = load_directory(settings.council_dir)
    if settings.staff_base_url:  # the router's staff pages, where the alerts' links go
        base = settings.staff_base_url.rstrip("/")
        directory = directory.model_copy(update={"staff_case_url": base + "/cases/{reference}"})
    unit_of_work = runtime.unit_of_work(NotifierStore)
    messages = Messages(topic=runtime.topic)

    def clock() -> datetime:
        return datetime.now(UTC)

    sender = Sender(
        unit_of_work=unit_of_work,
        channels=channels,
        messages=messages,
        settings=settings,
        clock=clock,
        limits=limits if limits is not None else default_limits(settings, pool=lambda: runtime.pool),
        concurrency={"webhook": settings.webhook_connections}
        | ({"email": settings.smtp_connections} if settings.email_via == "smtp" else {}),
        directory=directory,
    )
    case_events = CaseEvents(
        unit_of_work=unit_of_work,
        directory=directory,
        messages=messages,
        clock=clock,
        ignore_hours=settings.ignore_hours,
        dispatch=sender,
    )
    escalations = Escalations(
        unit_of_work=unit_of_work, directory=directory, settings=settings, clock=clock, dispatch=sender
    )
    consumer.subscribe(runtime, case_events)
    runtime.run_in_background(sender.run)
    runtime.run_in_background(escalations.run)

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
    app.state.sender = sender
    app.state.case_events = case_events
    app.state.escalations = escalations
    return app
