"""Builds the router service: `create_app(settings)` returns its ASGI app; nothing connects until started."""

from __future__ import annotations

from starlette.applications import Starlette

from caseway_router.adapters.case_files import CaseFiles
from caseway_router.adapters.council_files import load_postcode_hints
from caseway_router.adapters.staff_directory import load_staff_directory
from caseway_router.adapters.store import RoutingStore
from caseway_router.domain.places import PlaceFinder
from caseway_router.entrypoints.consumers import subscribe_consumers
from caseway_router.entrypoints.resident_updates import ResidentUpdates
from caseway_router.entrypoints.staff_http import StaffHttp
from caseway_router.service import SERVICE, RouterService
from caseway_router.settings import RouterSettings
from caseway_router.staff import StaffDesk
from caseway_shared.council import load_council
from caseway_shared.runtime import ServiceRuntime


def create_app(settings: RouterSettings | None = None) -> Starlette:
    settings = settings or RouterSettings()
    council = load_council(settings.council_dir)
    runtime = ServiceRuntime(settings=settings, service=SERVICE, schema="router")
    places = PlaceFinder(
        council, load_postcode_hints(settings.council_dir, code_column=council.ward_code_property)
    )
    service = RouterService(
        unit_of_work=runtime.unit_of_work(RoutingStore),
        council=council,
        places=places,
        topic=runtime.topic,
        metrics=runtime.metrics,
        most_locks=settings.most_locks_per_transaction,
        shadow=settings.duplicate_shadow.shadow() if settings.duplicate_shadow else None,
    )
    desk = StaffDesk(
        unit_of_work=runtime.unit_of_work(CaseFiles),
        council=council,
        topic=runtime.topic,
        metrics=runtime.metrics,
    )
    subscribe_consumers(runtime, routing=service, resident_updates=ResidentUpdates(desk=desk))
    staff = StaffHttp(
        desk=desk,
        directory=load_staff_directory(settings.council_dir, neighbourhoods=set(council.neighbourhoods)),
        settings=settings,
    )
    app = Starlette(routes=[*runtime.ops_routes(), *staff.routes()], lifespan=runtime.lifespan)
    app.state.runtime = runtime
    app.state.router = service  # routing (`RouterService.handle_reports_batch`), for tests that drive it
    app.state.staff = desk  # the case pages, boards and staff actions (`caseway_router.staff`)
    return app
