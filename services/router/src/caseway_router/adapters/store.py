"""The router's tables: cases, their reports, assignments and history (SQL kept here, by name)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime  # noqa: TC003 - a dataclass field type
from typing import TYPE_CHECKING, Any
from uuid import UUID  # noqa: TC003 - a dataclass field type

from caseway_router.duplicates import CandidateCase

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

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


async def next_case_numbers(connection: DbConnection, count: int) -> list[int]:
    """`count` case numbers in one round trip (in increasing order)."""
    if count == 0:
        return []
    rows = await connection.fetch(
        "SELECT nextval('router.case_number') AS n FROM generate_series(1, $1) ORDER BY 1", count
    )
    return [row["n"] for row in rows]


async def lock_areas(connection: DbConnection, keys: Iterable[int]) -> None:
    """Take the transaction's advisory locks on `keys`, in ascending order (so two transactions that want
    overlapping sets never wait on each other in a cycle). Held until the transaction ends."""
    ordered = sorted(set(keys))
    if ordered:
        await connection.execute(
            "SELECT count(pg_advisory_xact_lock(k)) "
            "FROM (SELECT unnest($1::bigint[]) AS k ORDER BY 1) AS keys",
            ordered,
        )


@dataclass(frozen=True, slots=True)
class CandidateQuery:
    """Where and when one report looks for candidates."""

    family: str
    lat: float | None
    lon: float | None
    radius_m: float
    since: datetime  # cases whose last report is older are out of the window
    address_key: str | None


_CANDIDATES = """
    SELECT q.i, c.case_id, c.reference, c.category, c.family, c.lat, c.lon, c.reports_count, c.points_count,
        c.last_report_at, c.address, c.detail, c.place_type, c.description, c.closed_at
    FROM unnest($1::text[], $2::float8[], $3::float8[], $4::float8[], $5::timestamptz[], $6::text[])
        WITH ORDINALITY AS q (family, lat, lon, radius, since, address_key, i)
    JOIN router.cases AS c ON c.family = q.family AND c.last_report_at >= q.since
        AND (c.status <> 'closed' OR c.closed_at >= $7)
        AND (
            (q.lat IS NOT NULL AND c.lat IS NOT NULL
                AND earth_box(router.earth_point(q.lat, q.lon), q.radius) @> router.earth_point(c.lat, c.lon)
                AND earth_distance(router.earth_point(q.lat, q.lon), router.earth_point(c.lat, c.lon))
                    <= q.radius)
            OR (q.address_key IS NOT NULL AND c.address_key = q.address_key)
        )
"""


@dataclass(frozen=True, slots=True)
class StoredCandidate:
    """A candidate case as stored: what the detector sees, and how many of its reports had a point."""

    candidate: CandidateCase
    points_count: int


async def find_candidates(
    connection: DbConnection, queries: Sequence[CandidateQuery], *, closed_since: datetime
) -> list[list[StoredCandidate]]:
    """For each query, the open cases (and the cases closed since `closed_since`) of its family within its
    radius (GiST index on router.earth_point) or at its address, and within its window. One round trip."""
    found: list[list[StoredCandidate]] = [[] for _ in queries]
    if not queries:
        return found
    rows = await connection.fetch(
        _CANDIDATES,
        [q.family for q in queries],
        [q.lat for q in queries],
        [q.lon for q in queries],
        [q.radius_m for q in queries],
        [q.since for q in queries],
        [q.address_key for q in queries],
        closed_since,
    )
    for row in rows:
        found[row["i"] - 1].append(
            StoredCandidate(
                candidate=CandidateCase(
                    case_id=row["case_id"],
                    reference=row["reference"],
                    category=row["category"],
                    family=row["family"],
                    lat=row["lat"],
                    lon=row["lon"],
                    reports_count=row["reports_count"],
                    last_report_at=row["last_report_at"],
                    address=row["address"],
                    detail=row["detail"],
                    place_type=row["place_type"],
                    text=row["description"],
                    closed_at=row["closed_at"],
                ),
                points_count=row["points_count"],
            )
        )
    return found


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
    address_key: str | None
    detail: str | None
    place_type: str | None
    summary: str
    description: str
    lead_department: str
    opened_at: datetime
    due_at: datetime | None
    flags: tuple[str, ...]


async def insert_cases(connection: DbConnection, cases: Sequence[NewCase]) -> None:
    await connection.executemany(
        """
        INSERT INTO router.cases (case_id, reference, category, family, priority, neighbourhood, ward_code,
            lat, lon, address, summary, description, lead_department, opened_at, due_at, last_report_at,
            flags, address_key, detail, place_type, points_count)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $14, $16, $17, $18, $19,
            CASE WHEN $8::float8 IS NULL THEN 0 ELSE 1 END)
        """,
        [
            (
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
                case.address_key,
                case.detail,
                case.place_type,
            )
            for case in cases
        ],
    )


@dataclass(frozen=True, slots=True)
class CaseGrowth:
    """A case's state after reports joined it in this batch."""

    case_id: UUID
    reports_count: int
    points_count: int
    lat: float | None
    lon: float | None
    last_report_at: datetime
    address: str | None
    address_key: str | None


async def grow_cases(connection: DbConnection, growths: Sequence[CaseGrowth]) -> None:
    """Write the new counts, mean point and last report time of cases that reports joined (the caller holds
    the area locks, so the state it computed from is current)."""
    await connection.executemany(
        """
        UPDATE router.cases SET reports_count = $2, points_count = $3, lat = $4, lon = $5,
            last_report_at = greatest(last_report_at, $6), address = coalesce(address, $7),
            address_key = coalesce(address_key, $8)
        WHERE case_id = $1
        """,
        [
            (
                g.case_id,
                g.reports_count,
                g.points_count,
                g.lat,
                g.lon,
                g.last_report_at,
                g.address,
                g.address_key,
            )
            for g in growths
        ],
    )


@dataclass(frozen=True, slots=True)
class ReportRow:
    report: ReportReceived
    case_id: UUID
    link_score: float | None
    correlation_id: str


async def insert_reports(connection: DbConnection, rows: Sequence[ReportRow]) -> None:
    await connection.executemany(
        """
        INSERT INTO router.reports (report_id, case_id, source_system, source_id, received_at, category,
            lat, lon, address, description, link_score, correlation_id)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
        """,
        [
            (
                row.report.report_id,
                row.case_id,
                row.report.source_system,
                row.report.source_id,
                row.report.received_at,
                row.report.category,
                row.report.place.point.lat if row.report.place.point else None,
                row.report.place.point.lon if row.report.place.point else None,
                row.report.place.address,
                row.report.description,
                row.link_score,
                row.correlation_id,
            )
            for row in rows
        ],
    )


async def insert_assignments(
    connection: DbConnection, rows: Iterable[tuple[UUID, str, str, datetime]]
) -> None:
    """(case id, department, role, assigned at) rows; an existing assignment is left as it is."""
    await connection.executemany(
        """
        INSERT INTO router.assignments (case_id, department, role, assigned_at) VALUES ($1, $2, $3, $4)
        ON CONFLICT DO NOTHING
        """,
        list(rows),
    )


async def record_history(
    connection: DbConnection, entries: Iterable[tuple[UUID, datetime, str, str, dict[str, Any]]]
) -> None:
    """Append (case id, at, actor, action, detail) entries to cases' history: who, what, when."""
    await connection.executemany(
        "INSERT INTO router.case_history (case_id, at, actor, action, detail) VALUES ($1, $2, $3, $4, $5)",
        list(entries),
    )


@dataclass(frozen=True, slots=True)
class CaseStatus:
    case_id: UUID
    reference: str
    status: str


async def set_status(
    connection: DbConnection, *, case_id: UUID, status: str, at: datetime
) -> tuple[CaseStatus, str] | None:
    """Set a case's status (closing stamps `closed_at`, reopening clears it); returns the case and its
    previous status, or None when there is no such case. Locks the case row until the transaction ends."""
    previous = await connection.fetchrow(
        "SELECT reference, status FROM router.cases WHERE case_id = $1 FOR UPDATE", case_id
    )
    if previous is None:
        return None
    await connection.execute(
        """
        UPDATE router.cases SET status = $2::text,
            closed_at = CASE WHEN $2 = 'closed' THEN $3::timestamptz ELSE NULL END
        WHERE case_id = $1
        """,
        case_id,
        status,
        at,
    )
    return CaseStatus(case_id, previous["reference"], status), previous["status"]
