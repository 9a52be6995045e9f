"""Builds the intake service: `create_app(settings)` returns its ASGI app; nothing connects until started."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import structlog
from fastapi import FastAPI

from caseway_intake.adapters.api_keys import register_api_key
from caseway_intake.adapters.http import install_error_handlers, open311_router
from caseway_intake.entrypoints.consumers import subscribe_consumers
from caseway_intake.service import SERVICE, IntakeService
from caseway_intake.settings import IntakeSettings
from caseway_shared.council import load_council
from caseway_shared.runtime import ServiceRuntime

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

log = structlog.get_logger(__name__)
SEED_KEY_NAME = "seed"


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    settings = settings or IntakeSettings()
    runtime = ServiceRuntime(settings=settings, service=SERVICE, schema="intake")
    service = IntakeService(runtime=runtime, council=load_council(settings.council_dir))
    subscribe_consumers(runtime, service)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with runtime.lifespan(app):
            if settings.open311_seed_api_key is not None:
                # Idempotent: a restart finds the key already registered.
                await register_api_key(
                    runtime.pool, name=SEED_KEY_NAME, key=settings.open311_seed_api_key.get_secret_value()
                )
            yield

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
