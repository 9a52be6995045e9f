"""The router's work for a batch of ReportReceived events: place, route, open or join a case, and queue
the case events, all in one transaction per batch."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import structlog
from pydantic import ValidationError

from caseway_router import store
from caseway_router.routing import Route, decide_route
from caseway_shared import headers as h
from caseway_shared.consuming import MalformedMessage
from caseway_shared.events import CaseAssigned, CaseFlagged, CaseOpened, ReportReceived
from caseway_shared.outbox import OutboxMessage, enqueue
from caseway_shared.topics import Topic

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pydantic import BaseModel

    from caseway_router.places import PlaceFinder, Placement
    from caseway_shared.council import Council
    from caseway_shared.db import DbConnection
    from caseway_shared.kafka import Record
    from caseway_shared.runtime import ServiceRuntime

log = structlog.get_logger(__name__)
SERVICE = "router"
ACTOR = "caseway-router"


def parse_report(record: Record) -> ReportReceived:
    try:
        return ReportReceived.model_validate_json(record.value)
    except ValidationError as error:
        raise MalformedMessage(
            [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()]
        ) from error


class RouterService:
    def __init__(self, *, runtime: ServiceRuntime, council: Council, places: PlaceFinder) -> None:
        self._runtime = runtime
        self._council = council
        self._places = places

    async def handle_reports_batch(self, records: Sequence[Record]) -> None:
        """The handler of reports.received.v1."""
        reports = [(parse_report(record), record.headers.get(h.CORRELATION_ID)) for record in records]
        queued = 0
        async with self._runtime.pool.acquire() as connection, connection.transaction():
            done = await store.already_routed(connection, (report.report_id for report, _ in reports))
            for report, correlation_id in reports:
                if report.report_id in done:
                    log.info("report_already_routed", report_id=str(report.report_id))
                    continue
                done.add(report.report_id)
                queued += await self._open_case(connection, report, correlation_id or str(report.report_id))
        if queued:
            self._runtime.relay.wake()

    async def _open_case(self, connection: DbConnection, report: ReportReceived, correlation_id: str) -> int:
        now = datetime.now(UTC)
        placement = self._places.locate(report.place)
        route = decide_route(report, placement, self._council)
        case_id = uuid.uuid4()
        reference = await store.next_reference(
            connection, prefix=self._council.reference_prefix, year=report.received_at.year
        )
        point = report.place.point
        summary = _summary(self._council.categories[route.category].name, placement, report)
        await store.insert_case(
            connection,
            store.NewCase(
                case_id=case_id,
                reference=reference,
                category=route.category,
                family=route.family,
                priority=route.priority,
                neighbourhood=placement.neighbourhood,
                ward_code=placement.ward_code,
                lat=point.lat if point else None,
                lon=point.lon if point else None,
                address=report.place.address,
                summary=summary,
                description=report.description,
                lead_department=route.lead_department,
                opened_at=now,
                due_at=route.due_at,
                flags=tuple(flag for flag, _ in route.flags),
            ),
        )
        await store.insert_report(
            connection, report, case_id=case_id, link_score=None, correlation_id=correlation_id
        )
        await store.insert_assignments(
            connection, case_id=case_id, lead=route.lead_department, departments=route.departments, at=now
        )
        await store.record_history(
            connection,
            case_id=case_id,
            at=now,
            actor=ACTOR,
            entries=[
                ("opened", {"report_id": str(report.report_id), "category": route.category}),
                *(("assigned", {"department": d}) for d in route.departments),
                *(("flagged", {"flag": flag, "reason": reason}) for flag, reason in route.flags),
            ],
        )
        events = _case_opened_events(
            case_id=case_id,
            reference=reference,
            report=report,
            route=route,
            placement=placement,
            now=now,
            summary=summary,
        )
        await enqueue(
            connection, "router", [self._message(case_id, event, correlation_id) for event in events]
        )
        log.info(
            "case_opened",
            case_id=str(case_id),
            reference=reference,
            report_id=str(report.report_id),
            correlation_id=correlation_id,
            category=route.category,
            neighbourhood=placement.neighbourhood,
            departments=list(route.departments),
        )
        return len(events)

    def _message(self, case_id: uuid.UUID, event: BaseModel, correlation_id: str) -> OutboxMessage:
        return OutboxMessage.for_event(
            topic=self._runtime.topic(Topic.CASES),
            key=str(case_id),
            event=event,
            correlation_id=correlation_id,
            producer=SERVICE,
        )


def _summary(category_name: str, placement: Placement, report: ReportReceived) -> str:
    where = placement.ward_name or report.place.postcode or "location to be confirmed"
    return f"{category_name} - {where}"[:200]


def _case_opened_events(
    *,
    case_id: uuid.UUID,
    reference: str,
    report: ReportReceived,
    route: Route,
    placement: Placement,
    now: datetime,
    summary: str,
) -> list[BaseModel]:
    events: list[BaseModel] = [
        CaseOpened(
            occurred_at=now,
            case_id=case_id,
            reference=reference,
            report_id=report.report_id,
            category=route.category,
            priority=route.priority,
            neighbourhood=placement.neighbourhood,
            ward_code=placement.ward_code,
            lead_department=route.lead_department,
            departments=route.departments,
            due_at=route.due_at,
            point=report.place.point,
            summary=summary,
        )
    ]
    events.extend(
        CaseAssigned(
            occurred_at=now,
            case_id=case_id,
            reference=reference,
            department=department,
            role="lead" if department == route.lead_department else "contributor",
            neighbourhood=placement.neighbourhood,
        )
        for department in route.departments
    )
    events.extend(
        CaseFlagged(occurred_at=now, case_id=case_id, reference=reference, flag=flag, reason=reason)
        for flag, reason in route.flags
    )
    return events
