"""The events and records tests build, in one place: each factory gives a valid event with plain defaults,
and a test names only what it is about.

    report_received(category="graffiti", lat=None, lon=None, address="1 Bold Street")
    case_opened(departments=("waste", "parks"), priority=Priority.URGENT)
    as_record(event, topic="reports.received.v1")
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from caseway_router.adapters.case_files import CaseRow
from caseway_shared import headers as h
from caseway_shared.events import (
    CaseOpened,
    CaseStatus,
    Channel,
    GeoPoint,
    Place,
    Priority,
    ReportLinked,
    ReportReceived,
)
from caseway_shared.kafka import Record

if TYPE_CHECKING:
    from pydantic import BaseModel

BOLD_STREET = (53.4021, -2.9800)  # Liverpool city centre (neighbourhood N01)
METRE = 1 / 111_195  # degrees of latitude in one metre
HOOD = "N01"


def report_received(
    *,
    category: str = "fly-tipping",
    lat: float | None = BOLD_STREET[0],
    lon: float | None = BOLD_STREET[1],
    description: str = "Mattress and black bags dumped by the back entry",
    received_at: datetime | None = None,
    source_system: str = "test",
    report_id: uuid.UUID | None = None,
    **place: Any,
) -> ReportReceived:
    """A resident's report as intake publishes it; `place` adds address, postcode, uprn, land_type, ..."""
    now = datetime.now(UTC)
    return ReportReceived(
        occurred_at=received_at or now,
        report_id=report_id or uuid.uuid4(),
        source_system=source_system,
        source_id=uuid.uuid4().hex,
        channel=Channel.APP,
        received_at=received_at or now,
        category=category,
        place=Place(
            point=GeoPoint(lat=lat, lon=lon) if lat is not None and lon is not None else None, **place
        ),
        description=description,
    )


def case_opened(
    *,
    departments: tuple[str, ...] = ("streetscene",),
    priority: Priority = Priority.NORMAL,
    at: datetime | None = None,
    due_at: datetime | None = None,
    summary: str = "Fly-tipping - City Centre North",
    category: str = "fly-tipping",
    reference: str | None = None,
    neighbourhood: str | None = HOOD,
    ward_code: str | None = "E05015288",
    report_id: uuid.UUID | None = None,
) -> CaseOpened:
    """A case the router opened, lead department first; `report_id` is its first report's (a new id if
    not given)."""
    return CaseOpened(
        occurred_at=at or datetime.now(UTC),
        case_id=uuid.uuid4(),
        reference=reference or f"LV-2026-{uuid.uuid4().int % 1_000_000:06d}",
        report_id=report_id or uuid.uuid4(),
        category=category,
        priority=priority,
        neighbourhood=neighbourhood,
        ward_code=ward_code,
        lead_department=departments[0],
        departments=departments,
        due_at=due_at,
        point=None,
        summary=summary,
    )


def case_row(reference: str = "LV-2026-000001", *, at: datetime | None = None) -> CaseRow:
    """A fly-tipping case in the router's tables, open, opened two hours before `at` and due a day after."""
    at = at or datetime.now(UTC)
    return CaseRow(
        case_id=uuid.uuid4(),
        reference=reference,
        category="fly-tipping",
        family="waste-on-street",
        status=CaseStatus.OPEN,
        priority=Priority.NORMAL,
        neighbourhood=HOOD,
        ward_code="E05015288",
        lat=BOLD_STREET[0],
        lon=BOLD_STREET[1],
        address=None,
        summary="Fly-tipping - Central",
        description="Mattress dumped",
        lead_department="streetscene",
        opened_at=at - timedelta(hours=2),
        due_at=at + timedelta(days=1),
        closed_at=None,
        reports_count=1,
        flags=(),
        resolution=None,
        duplicate_of=None,
    )


def report_linked(
    case: CaseOpened, reports_count: int, *, at: datetime | None = None, report_id: uuid.UUID | None = None
) -> ReportLinked:
    """Another report (`report_id`, a new id if not given) joined `case`, which now holds `reports_count`."""
    return ReportLinked(
        occurred_at=at or datetime.now(UTC),
        case_id=case.case_id,
        reference=case.reference,
        report_id=report_id or uuid.uuid4(),
        reports_count=reports_count,
        score=0.9,
    )


def as_record(
    event: BaseModel | bytes,
    *,
    topic: str = "reports.received.v1",
    partition: int = 0,
    offset: int = 0,
    key: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Record:
    """`event` as the batch consumer hands it to a handler (bytes as they are: a malformed record)."""
    value = event if isinstance(event, bytes) else event.model_dump_json().encode()
    event_type = json.loads(value).get("event_type", "") if not isinstance(event, bytes) else ""
    return Record(
        topic=topic,
        partition=partition,
        offset=offset,
        key=key,
        value=value,
        headers={h.EVENT_TYPE: event_type, **(headers or {})},
        timestamp_ms=0,
    )
