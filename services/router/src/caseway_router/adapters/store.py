"""The router's tables: cases, their reports, assignments and history (SQL kept here, by name)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime  # noqa: TC003 - a dataclass field type
from typing import TYPE_CHECKING, Any, NamedTuple
from uuid import UUID  # noqa: TC003 - a dataclass field type

from caseway_router.adapters import spreads
from caseway_router.domain.areas import case_cell, cells_within
from caseway_router.domain.duplicates import CandidateCase, distance_m

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from caseway_router.domain.casework import Verdict
    from caseway_shared.db import DbConnection
    from caseway_shared.events import Priority, ReportReceived


async def already_routed(connection: DbConnection, report_ids: Iterable[UUID]) -> set[UUID]:
    rows = await connection.fetch(
        "SELECT report_id FROM router.reports WHERE report_id = ANY($1::uuid[])", list(report_ids)
    )
    return {row["report_id"] for row in rows}


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
    """Where and when one report looks for candidates: near its point, at its address, and by its exact
    keys (the same property in the family; the same asset or street in its category)."""

    family: str
    lat: float | None
    lon: float | None
    radius_m: float
    since: datetime  # cases whose last report is older are out of the window
    address_key: str | None
    category: str | None = None
    uprn: str | None = None
    usrn: str | None = None
    asset_id: str | None = None


# Each report's search is its own index-bound lookup, whatever the batch size or the table size: the
# LATERAL subqueries carry `OFFSET 0`, which keeps PostgreSQL from flattening them into one join over the
# whole batch (whose plan, generic or not, may then scan every case); inside, only plain comparisons on the
# indexed columns, nothing that has to be evaluated for every row visited. Near: each cell of the report's
# box, one descent of index cases_cell (family, cell, last_report_at) and a range over the cell's cases
# inside the window; the exact distance is the caller's. At the address: index cases_address. By exact key,
# from one row per report that has any: index cases_uprn (family, uprn), cases_asset (family, category,
# asset_id) and cases_usrn (family, category, usrn), each with last_report_at; a report without that key
# asks for NULL, which finds nothing. A case found several ways comes back several times; the caller keeps
# one.
_CANDIDATE_COLUMNS = """
    c.case_id, c.reference, c.category, c.family, c.lat, c.lon, c.reports_count, c.points_count,
    c.last_report_at, c.address, c.detail, c.place_type, c.description, c.closed_at, c.uprn, c.usrn,
    c.asset_id
"""
_OPEN_OR_RECENTLY_CLOSED = "(c.status <> 'closed' OR c.closed_at >= $8)"
_BY_KEY = (
    "unnest($10::int[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::timestamptz[])"
)
_CANDIDATES = f"""
    SELECT q.i, 'near' AS found_by, near.*
    FROM unnest($1::int[], $2::text[], $3::bigint[], $4::timestamptz[])
        AS q (i, family, cell, since)
    CROSS JOIN LATERAL (
        SELECT {_CANDIDATE_COLUMNS} FROM router.cases AS c
        WHERE c.family = q.family AND c.cell = q.cell AND c.last_report_at >= q.since
            AND {_OPEN_OR_RECENTLY_CLOSED}
        OFFSET 0
    ) AS near
    UNION ALL
    SELECT q.i, 'address' AS found_by, same.*
    FROM unnest($5::int[], $6::text[], $7::text[], $9::timestamptz[])
        AS q (i, family, address_key, since)
    CROSS JOIN LATERAL (
        SELECT {_CANDIDATE_COLUMNS} FROM router.cases AS c
        WHERE c.family = q.family AND c.address_key = q.address_key AND c.last_report_at >= q.since
            AND {_OPEN_OR_RECENTLY_CLOSED}
        OFFSET 0
    ) AS same
    UNION ALL
    SELECT q.i, 'uprn' AS found_by, property.*
    FROM {_BY_KEY} AS q (i, family, category, uprn, usrn, asset_id, since)
    CROSS JOIN LATERAL (
        SELECT {_CANDIDATE_COLUMNS} FROM router.cases AS c
        WHERE c.family = q.family AND c.uprn = q.uprn AND c.last_report_at >= q.since
            AND {_OPEN_OR_RECENTLY_CLOSED}
        OFFSET 0
    ) AS property
    UNION ALL
    SELECT q.i, 'asset' AS found_by, asset.*
    FROM {_BY_KEY} AS q (i, family, category, uprn, usrn, asset_id, since)
    CROSS JOIN LATERAL (
        SELECT {_CANDIDATE_COLUMNS} FROM router.cases AS c
        WHERE c.family = q.family AND c.category = q.category AND c.asset_id = q.asset_id
            AND c.last_report_at >= q.since AND {_OPEN_OR_RECENTLY_CLOSED}
        OFFSET 0
    ) AS asset
    UNION ALL
    SELECT q.i, 'usrn' AS found_by, street.*
    FROM {_BY_KEY} AS q (i, family, category, uprn, usrn, asset_id, since)
    CROSS JOIN LATERAL (
        SELECT {_CANDIDATE_COLUMNS} FROM router.cases AS c
        WHERE c.family = q.family AND c.category = q.category AND c.usrn = q.usrn
            AND c.last_report_at >= q.since AND {_OPEN_OR_RECENTLY_CLOSED}
        OFFSET 0
    ) AS street
"""


@dataclass(frozen=True, slots=True)
class StoredCandidate:
    """A candidate case as stored: what the detector sees, and how many of its reports had a point."""

    candidate: CandidateCase
    points_count: int


async def find_candidates(
    connection: DbConnection, queries: Sequence[CandidateQuery], *, closed_since: datetime
) -> list[list[StoredCandidate]]:
    """For each query, the open cases (and the cases closed since `closed_since`) of its family near its
    point (within its radius, measured here), at its address or with one of its exact keys, and within its
    window. One round trip."""
    found: list[list[StoredCandidate]] = [[] for _ in queries]
    if not queries:
        return found
    rows = await connection.fetch(
        _CANDIDATES, *candidate_search_arguments(queries, closed_since=closed_since)
    )
    seen: set[tuple[int, UUID]] = set()
    for row in rows:
        i, query = row["i"], queries[row["i"]]
        if (i, row["case_id"]) in seen:
            continue
        if row["found_by"] == "near" and not within_radius(query, row["lat"], row["lon"]):
            continue
        seen.add((i, row["case_id"]))
        found[i].append(
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
                    uprn=row["uprn"],
                    usrn=row["usrn"],
                    asset_id=row["asset_id"],
                ),
                points_count=row["points_count"],
            )
        )
    return found


def candidate_search_arguments(
    queries: Sequence[CandidateQuery], *, closed_since: datetime
) -> tuple[Any, ...]:
    """The search statement's parameters: one row per cell of each report's box, one per address, one per
    report with an exact key."""
    near: list[tuple[int, str, int, datetime]] = [
        (i, q.family, cell, q.since)
        for i, q in enumerate(queries)
        if q.lat is not None and q.lon is not None
        for cell in cells_within(q.lat, q.lon, q.radius_m)
    ]
    at_address = [(i, q.family, q.address_key, q.since) for i, q in enumerate(queries) if q.address_key]
    by_key = [
        (i, q.family, q.category, q.uprn, q.usrn, q.asset_id, q.since)
        for i, q in enumerate(queries)
        if q.uprn or (q.category and (q.usrn or q.asset_id))
    ]
    return (
        *_columns(near, 4),
        *_columns(at_address, 3),
        closed_since,
        [row[3] for row in at_address],
        *_columns(by_key, 7),
    )


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as `width` parallel arrays, for unnest()."""
    return [[row[k] for row in rows] for k in range(width)]


def within_radius(query: CandidateQuery, lat: float | None, lon: float | None) -> bool:
    """Whether a case's point lies within the query's radius of its point (the exact test of the search)."""
    if query.lat is None or query.lon is None or lat is None or lon is None:
        return False
    return distance_m(query.lat, query.lon, lat, lon) <= query.radius_m


@dataclass(frozen=True, slots=True)
class NewCase:
    """A case row as it is first written."""

    case_id: UUID
    reference: str
    category: str
    family: str
    priority: Priority
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
    # After the whole batch: reports of the same batch that joined the case are counted in.
    reports_count: int
    points_count: int
    last_report_at: datetime
    # The exact keys its reports gave (the first of each).
    uprn: str | None = None
    usrn: str | None = None
    asset_id: str | None = None


async def insert_cases(connection: DbConnection, cases: Sequence[NewCase]) -> None:
    """One statement for the batch's new cases (set-based: no round trip or plan per row)."""
    if not cases:
        return
    rows = [
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
            json.dumps(list(case.flags)),  # a JSON array per case: a text[][] would be one flat array
            case.address_key,
            case.detail,
            case.place_type,
            case_cell(case.lat, case.lon) if case.lat is not None and case.lon is not None else None,
            case.reports_count,
            case.points_count,
            case.last_report_at,
            case.uprn,
            case.usrn,
            case.asset_id,
        )
        for case in cases
    ]
    await connection.execute(
        """
        INSERT INTO router.cases (case_id, reference, category, family, priority, neighbourhood, ward_code,
            lat, lon, address, summary, description, lead_department, opened_at, due_at, last_report_at,
            flags, address_key, detail, place_type, points_count, cell, reports_count, uprn, usrn, asset_id)
        SELECT case_id, reference, category, family, priority, neighbourhood, ward_code, lat, lon, address,
            summary, description, lead_department, opened_at, due_at, last_report_at,
            ARRAY(SELECT jsonb_array_elements_text(flags::jsonb)), address_key, detail, place_type,
            points_count, cell, reports_count, uprn, usrn, asset_id
        FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
            $8::float8[], $9::float8[], $10::text[], $11::text[], $12::text[], $13::text[],
            $14::timestamptz[], $15::timestamptz[], $16::text[], $17::text[], $18::text[], $19::text[],
            $20::bigint[], $21::int[], $22::int[], $23::timestamptz[], $24::text[], $25::text[], $26::text[])
            AS c (case_id, reference, category, family, priority, neighbourhood, ward_code, lat, lon, address,
                summary, description, lead_department, opened_at, due_at, flags, address_key, detail,
                place_type, cell, reports_count, points_count, last_report_at, uprn, usrn, asset_id)
        """,
        *_columns(rows, 26),
    )


@dataclass(frozen=True, slots=True)
class CaseGrowth:
    """What the reports of one batch add to a case: how many reports, how many of them with a point and
    the sum of those points' coordinates (so the mean point follows), the latest report time."""

    case_id: UUID
    added_reports: int
    added_points: int
    lat_sum: float
    lon_sum: float
    last_report_at: datetime
    address: str | None
    address_key: str | None
    # Exact keys: a case without one takes the report's (a case keeps the first of each it is given).
    uprn: str | None = None
    usrn: str | None = None
    asset_id: str | None = None


async def grow_cases(connection: DbConnection, growths: Sequence[CaseGrowth]) -> dict[UUID, int]:
    """Add the batch's reports to their cases, atomically (increments, not values computed from an earlier
    read: a replica joining a report to the same case at the same moment, by address while this one joins
    by point, loses nothing); the mean point and its cell key move with the new points. One statement;
    returns each case's report count after it."""
    if not growths:
        return {}
    ordered = sorted(growths, key=lambda g: g.case_id)
    rows = await connection.fetch(
        """
        WITH grown AS (
            UPDATE router.cases AS c SET
                reports_count = c.reports_count + g.added_reports,
                points_count = c.points_count + g.added_points,
                lat = CASE WHEN g.added_points = 0 THEN c.lat
                    ELSE (coalesce(c.lat, 0) * c.points_count + g.lat_sum) / (c.points_count + g.added_points)
                    END,
                lon = CASE WHEN g.added_points = 0 THEN c.lon
                    ELSE (coalesce(c.lon, 0) * c.points_count + g.lon_sum) / (c.points_count + g.added_points)
                    END,
                last_report_at = greatest(c.last_report_at, g.last_report_at),
                address = coalesce(c.address, g.address),
                address_key = coalesce(c.address_key, g.address_key),
                uprn = coalesce(c.uprn, g.uprn),
                usrn = coalesce(c.usrn, g.usrn),
                asset_id = coalesce(c.asset_id, g.asset_id)
            FROM unnest($1::uuid[], $2::int[], $3::int[], $4::float8[], $5::float8[], $6::timestamptz[],
                    $7::text[], $8::text[], $9::text[], $10::text[], $11::text[])
                AS g (case_id, added_reports, added_points, lat_sum, lon_sum, last_report_at, address,
                    address_key, uprn, usrn, asset_id)
            WHERE c.case_id = g.case_id
            RETURNING c.case_id, c.reports_count, c.lat, c.lon
        )
        SELECT case_id, reports_count, lat, lon FROM grown
        """,
        *_columns(
            [
                (
                    g.case_id,
                    g.added_reports,
                    g.added_points,
                    g.lat_sum,
                    g.lon_sum,
                    g.last_report_at,
                    g.address,
                    g.address_key,
                    g.uprn,
                    g.usrn,
                    g.asset_id,
                )
                for g in ordered
            ],
            11,
        ),
    )
    # The mean point moved: so does its cell (computed here, by the domain's one definition of a cell).
    moved = [
        (row["case_id"], case_cell(row["lat"], row["lon"]))
        for row in rows
        if row["lat"] is not None and row["lon"] is not None
    ]
    if moved:
        await connection.execute(
            "UPDATE router.cases AS c SET cell = m.cell"
            " FROM unnest($1::uuid[], $2::bigint[]) AS m (case_id, cell)"
            " WHERE c.case_id = m.case_id AND c.cell IS DISTINCT FROM m.cell",
            [case_id for case_id, _ in moved],
            [cell for _, cell in moved],
        )
    return {row["case_id"]: row["reports_count"] for row in rows}


@dataclass(frozen=True, slots=True)
class ReportRow:
    report: ReportReceived
    case_id: UUID
    link_score: float | None
    correlation_id: str
    # What the detector decided (kept as it was, whatever staff do to the report later).
    decision: Verdict | None = None


async def insert_reports(connection: DbConnection, rows: Sequence[ReportRow]) -> None:
    """One statement for the batch's reports."""
    if not rows:
        return
    values = [
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
            row.decision.outcome if row.decision else None,
            row.decision.case_id if row.decision else None,
            row.decision.score if row.decision else None,
            row.decision.key if row.decision else None,
        )
        for row in rows
    ]
    await connection.execute(
        """
        INSERT INTO router.reports (report_id, case_id, source_system, source_id, received_at, category,
            lat, lon, address, description, link_score, correlation_id, decision, decision_case_id,
            decision_score, decision_key)
        SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::timestamptz[], $6::text[],
            $7::float8[], $8::float8[], $9::text[], $10::text[], $11::float8[], $12::text[], $13::text[],
            $14::uuid[], $15::float8[], $16::text[])
        """,
        *_columns(values, 16),
    )


async def insert_assignments(
    connection: DbConnection, rows: Iterable[tuple[UUID, str, str, datetime]]
) -> None:
    """(case id, department, role, assigned at) rows, in one statement; an existing assignment is left as
    it is."""
    values = list(rows)
    if not values:
        return
    await connection.execute(
        """
        INSERT INTO router.assignments (case_id, department, role, assigned_at)
        SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[])
        ON CONFLICT DO NOTHING
        """,
        *_columns(values, 4),
    )


class HistoryEntry(NamedTuple):
    """One line of a case's history: who did what, when, with what detail."""

    case_id: UUID
    at: datetime
    actor: str
    action: str
    detail: dict[str, Any]


async def record_history(
    connection: DbConnection, entries: Iterable[tuple[UUID, datetime, str, str, dict[str, Any]]]
) -> None:
    """Append (case id, at, actor, action, detail) entries to cases' history, in one statement and in the
    order given: who, what, when."""
    values = list(entries)
    if not values:
        return
    await connection.execute(
        """
        INSERT INTO router.case_history (case_id, at, actor, action, detail)
        SELECT case_id, at, actor, action, detail::jsonb
        FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::text[])
            WITH ORDINALITY AS h (case_id, at, actor, action, detail, n)
        ORDER BY n
        """,
        *_columns([(*entry[:4], json.dumps(entry[4])) for entry in values], 5),
    )


@dataclass(frozen=True, slots=True)
class ShadowDecision:
    """What shadow configuration `shadow` would have decided for a report (the live decision is the
    report's own, router.reports.decision)."""

    report_id: UUID
    shadow: str
    routed_at: datetime
    category: str
    verdict: Verdict


async def record_shadow_decisions(connection: DbConnection, rows: Sequence[ShadowDecision]) -> None:
    """One statement for the batch's shadow decisions. Reports already routed never get here; should one,
    its first record for that shadow stays."""
    if not rows:
        return
    values = [
        (
            row.report_id,
            row.shadow,
            row.routed_at,
            row.category,
            row.verdict.outcome,
            row.verdict.case_id,
            row.verdict.score,
            row.verdict.key,
        )
        for row in rows
    ]
    await connection.execute(
        """
        INSERT INTO router.shadow_decisions (report_id, shadow, routed_at, category, decision, case_id,
            score, key)
        SELECT * FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::text[], $5::text[], $6::uuid[],
            $7::float8[], $8::text[])
        ON CONFLICT (shadow, report_id) DO NOTHING
        """,
        *_columns(values, 8),
    )


class RoutingStore:
    """Routing's repository on one transaction's connection (what `RouterService` takes through its unit
    of work): the functions above, bound to that connection."""

    def __init__(self, connection: DbConnection) -> None:
        self.connection = connection

    async def lock_areas(self, keys: Iterable[int]) -> None:
        await lock_areas(self.connection, keys)

    async def already_routed(self, report_ids: Iterable[UUID]) -> set[UUID]:
        return await already_routed(self.connection, report_ids)

    async def find_candidates(
        self, queries: Sequence[CandidateQuery], *, closed_since: datetime
    ) -> list[list[StoredCandidate]]:
        return await find_candidates(self.connection, queries, closed_since=closed_since)

    async def case_spreads(self, case_ids: Iterable[UUID]) -> dict[UUID, float]:
        return await spreads.case_spreads(self.connection, case_ids)

    async def next_case_numbers(self, count: int) -> list[int]:
        return await next_case_numbers(self.connection, count)

    async def grow_cases(self, growths: Sequence[CaseGrowth]) -> dict[UUID, int]:
        return await grow_cases(self.connection, growths)

    async def insert_cases(self, cases: Sequence[NewCase]) -> None:
        await insert_cases(self.connection, cases)

    async def insert_reports(self, rows: Sequence[ReportRow]) -> None:
        await insert_reports(self.connection, rows)

    async def insert_assignments(self, rows: Iterable[tuple[UUID, str, str, datetime]]) -> None:
        await insert_assignments(self.connection, rows)

    async def record_history(self, entries: Iterable[HistoryEntry]) -> None:
        await record_history(self.connection, entries)

    async def record_shadow_decisions(self, rows: Sequence[ShadowDecision]) -> None:
        await record_shadow_decisions(self.connection, rows)
