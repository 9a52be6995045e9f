"""The router's Kafka consumers: residents' reports to route, and residents' updates to apply."""

from __future__ import annotations

from typing import TYPE_CHECKING

from caseway_shared.topics import Topic

if TYPE_CHECKING:
    from caseway_router.entrypoints.resident_updates import ResidentUpdates
    from caseway_router.service import RouterService
    from caseway_shared.runtime import ServiceRuntime


def subscribe_consumers(
    runtime: ServiceRuntime, *, routing: RouterService, resident_updates: ResidentUpdates
) -> None:
    runtime.subscribe(
        Topic.REPORTS_RECEIVED,
        routing.handle_reports_batch,
        title="route_reports",
        description="Places each report, assigns its departments and opens or joins a case.",
    )
    runtime.subscribe(
        Topic.REPORT_UPDATES,
        resident_updates.handle_batch,
        title="apply_resident_updates",
        description="A resident's comment becomes a public note on the report's case; a reopening reopens "
        "it (once per update id).",
    )
