"""Builds the intake service: `create_app(settings)` returns its ASGI app; nothing connects until started."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

import structlog
from fastapi import FastAPI

from caseway_intake.adapters.api_keys import ApiKeys, seed_api_key
from caseway_intake.adapters.http import install_error_handlers, open311_router
from caseway_intake.adapters.store import IntakeStore
from caseway_intake.domain.privacy import PublicIds, Sealer
from caseway_intake.entrypoints.consumers import subscribe_consumers
from caseway_intake.service import SERVICE, IntakeService
from caseway_intake.settings import IntakeSettings
from caseway_shared.consuming import is_infrastructure_error
from caseway_shared.council import load_council
from caseway_shared.runtime import ServiceRuntime

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable

log = structlog.get_logger(__name__)
SEED_KEY_NAME = "seed"


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    settings = settings or IntakeSettings()
    runtime = ServiceRuntime(settings=settings, service=SERVICE, schema="intake")
    sealer = Sealer(settings.contact_key_list)

    async def send_rejection(
        body: bytes, topic: str, key: bytes | None, headers: dict[str, str]
    ) -> Awaitable[Any]:
        return await runtime.broker.publish(body, topic, key=key, headers=headers, no_confirm=True)

    service = IntakeService(
        unit_of_work=runtime.unit_of_work(IntakeStore),
        council=load_council(settings.council_dir),
        topic=runtime.topic,
        send_rejection=send_rejection,
        api_keys=ApiKeys(pool=lambda: runtime.pool),
        figures=runtime.figures,
        sealer=sealer,
        public_ids=PublicIds(settings.public_id_key.get_secret_value()),
    )
    # Dead letters leave intake with the resident's contact details sealed; a replay is unsealed by intake.
    runtime.dead_letters.value_of = lambda record: sealer.seal(record.value)
    subscribe_consumers(runtime, service)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with runtime.lifespan(app):
            if settings.open311_seed_api_key is not None:
                # Idempotent, and a changed seed key replaces the one registered before.
                await seed_api_key(
                    runtime.pool, name=SEED_KEY_NAME, key=settings.open311_seed_api_key.get_secret_value()
                )
            purging = asyncio.create_task(_purge_periodically(service, settings))
            try:
                yield
            finally:
                purging.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await purging

    app = FastAPI(
        title="Caseway intake: Open311 GeoReport v2",
        version="2",
        description="Report a problem to the council. See https://wiki.open311.org/GeoReport_v2/.",
        lifespan=lifespan,
        routes=list(runtime.ops_routes()),
    )
    app.include_router(open311_router(service=service, settings=settings))
    install_error_handlers(app)
    app.state.runtime = runtime
    app.state.service = service
    return app


async def _purge_periodically(service: IntakeService, settings: IntakeSettings) -> None:
    """The retention job: purge residents' personal data past `retention_days`, every interval."""
    while True:
        try:
            await service.purge(retention_days=settings.retention_days)
        except Exception as error:  # the next round tries again; a purge must never stop the service
            log.warning(
                "personal_data_purge_failed",
                error_type=type(error).__name__,
                outage=is_infrastructure_error(error),
            )
        await asyncio.sleep(settings.purge_interval_seconds)
