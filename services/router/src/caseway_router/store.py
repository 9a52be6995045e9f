"""The router's tables: cases, their reports, assignments and history (SQL kept here, by name)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime  # noqa: TC003 - a dataclass field type
from typing import TYPE_CHECKING, Any
from uuid import UUID  # noqa: TC003 - a dataclass field type

if TYPE_CHECKING:
    from collections.abc import Iterable

    from caseway_shared.db import DbConnection
    from caseway_shared.events import ReportReceived


async def already_routed(connection: DbConnection, report_ids: Iterable[UUID]) -> set[UUID]:
    rows = await connection.fetch(
        "SELECT report_id FROM router.reports WHERE report_id = ANY($1::uuid[])", list(report_ids)
    )
    return {row["report_id"] for row in rows}


async def next_reference(connection: DbConnection, *, prefix: str, year: int) -> str:
    number = await connection.fetchval("SELECT nextval('router.case_number')")
    return f"{prefix}-{year}-{number:06d}"


@dataclass(frozen=True, slots=True)
class NewCase:
    """A case row as it is first written."""

    case_id: UUID
    reference: str
    category: str
    family: str
    priority: str
    neighbourhood: str | None
    ward_code: str | None
    lat: float | None
    lon: float | None
    address: str | None
    summary: str
    description: str
    lead_department: str
    opened_at: datetime
    due_at: datetime | None
    flags: tuple[str, ...]


async def insert_case(connection: DbConnection, case: NewCase) -> None:
    await connection.execute(
        """
        INSERT INTO router.cases (case_id, reference, category, family, priority, neighbourhood, ward_code,
            lat, lon, address, summary, description, lead_department, opened_at, due_at, last_report_at,
            flags)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $14, $16)
        """,
        case.case_id,
        case.reference,
        case.category,
        case.family,
        case.priority,
        case.neighbourhood,
        case.ward_code,
        case.lat,
        case.lon,
        case.address,
        case.summary,
        case.description,
        case.lead_department,
        case.opened_at,
        case.due_at,
        list(case.flags),
    )


async def insert_report(
    connection: DbConnection,
    report: ReportReceived,
    *,
    case_id: UUID,
    link_score: float | None,
    correlation_id: str,
) -> None:
    point = report.place.point
    await connection.execute(
        """
        INSERT INTO router.reports (report_id, case_id, source_system, source_id, received_at, category,
            lat, lon, address, description, link_score, correlation_id)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
        """,
        report.report_id,
        case_id,
        report.source_system,
        report.source_id,
        report.received_at,
        report.category,
        point.lat if point else None,
        point.lon if point else None,
        report.place.address,
        report.description,
        link_score,
        correlation_id,
    )


async def insert_assignments(
    connection: DbConnection, *, case_id: UUID, lead: str, departments: Iterable[str], at: datetime
) -> None:
    await connection.executemany(
        """
        INSERT INTO router.assignments (case_id, department, role, assigned_at) VALUES ($1, $2, $3, $4)
        ON CONFLICT DO NOTHING
        """,
        [
            (case_id, department, "lead" if department == lead else "contributor", at)
            for department in departments
        ],
    )


async def record_history(
    connection: DbConnection,
    *,
    case_id: UUID,
    at: datetime,
    actor: str,
    entries: Iterable[tuple[str, dict[str, Any]]],
) -> None:
    """Append to the case's history: who (actor), what (action, detail), when (at)."""
    await connection.executemany(
        "INSERT INTO router.case_history (case_id, at, actor, action, detail) VALUES ($1, $2, $3, $4, $5)",
        [(case_id, at, actor, action, detail) for action, detail in entries],
    )
