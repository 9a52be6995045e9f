"""Builds the intake service: `create_app(settings)` returns its ASGI app; nothing connects until started."""

from __future__ import annotations

from starlette.applications import Starlette

from caseway_intake.service import SERVICE, IntakeService
from caseway_intake.settings import IntakeSettings
from caseway_shared.council import load_council
from caseway_shared.runtime import ServiceRuntime
from caseway_shared.topics import Topic


def create_app(settings: IntakeSettings | None = None) -> Starlette:
    settings = settings or IntakeSettings()
    runtime = ServiceRuntime(settings=settings, service=SERVICE, schema="intake")
    service = IntakeService(runtime=runtime, council=load_council(settings.council_dir))
    runtime.subscribe(
        Topic.CONTACT_CENTRE_REPORTS,
        service.handle_contact_centre_batch,
        title="accept_contact_centre_reports",
        description="Validates contact-centre reports; publishes ReportReceived or a rejection with reasons.",
    )
    app = Starlette(routes=list(runtime.ops_routes()), lifespan=runtime.lifespan)
    app.state.runtime = runtime
    app.state.service = service
    return app
