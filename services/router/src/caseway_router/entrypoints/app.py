"""Builds the router service: `create_app(settings)` returns its ASGI app; nothing connects until started."""

from __future__ import annotations

from starlette.applications import Starlette

from caseway_router.adapters.council_files import load_postcode_hints
from caseway_router.domain.places import PlaceFinder
from caseway_router.service import SERVICE, RouterService
from caseway_router.settings import RouterSettings
from caseway_shared.council import load_council
from caseway_shared.runtime import ServiceRuntime
from caseway_shared.topics import Topic


def create_app(settings: RouterSettings | None = None) -> Starlette:
    settings = settings or RouterSettings()
    council = load_council(settings.council_dir)
    runtime = ServiceRuntime(settings=settings, service=SERVICE, schema="router")
    places = PlaceFinder(council, load_postcode_hints(settings.council_dir))
    service = RouterService(
        runtime=runtime, council=council, places=places, most_locks=settings.most_locks_per_transaction
    )
    runtime.subscribe(
        Topic.REPORTS_RECEIVED,
        service.handle_reports_batch,
        title="route_reports",
        description="Places each report, assigns its departments and opens or joins a case.",
    )
    app = Starlette(routes=list(runtime.ops_routes()), lifespan=runtime.lifespan)
    app.state.runtime = runtime
    app.state.router = service  # staff tools change case status through it (`RouterService.change_status`)
    return app
