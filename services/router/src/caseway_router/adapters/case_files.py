"""Staff's reads and writes on cases (SQL kept here, by name): a case with its reports, departments,
notes and history; a neighbourhood's board and figures; and the changes staff make. Routing's own SQL
(candidate search, growth) is in `store`; nothing here takes routing's area locks — a staff change locks
the case rows it changes (`FOR UPDATE`), which routing's growth of the same case waits for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime  # noqa: TC003 - a dataclass field type
from typing import TYPE_CHECKING, Any
from uuid import UUID  # noqa: TC003 - a dataclass field type

from caseway_router.domain.areas import case_cell
from caseway_router.domain.casework import Verdict
from caseway_shared.events import CaseStatus, Priority

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    import asyncpg

    from caseway_router.domain.casefile import Label
    from caseway_shared.db import DbConnection


@dataclass(frozen=True, slots=True)
class CaseRow:
    case_id: UUID
    reference: str
    category: str
    family: str
    status: CaseStatus
    priority: Priority
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
    closed_at: datetime | None
    reports_count: int
    flags: tuple[str, ...]
    resolution: str | None
    duplicate_of: str | None  # the other case's reference


@dataclass(frozen=True, slots=True)
class ReportView:
    report_id: UUID
    source_system: str
    received_at: datetime
    category: str
    lat: float | None
    lon: float | None
    address: str | None
    description: str  # as the resident wrote it: mask before showing
    link_score: float | None


@dataclass(frozen=True, slots=True)
class AssignmentView:
    department: str
    role: str
    state: str
    assigned_at: datetime
    state_at: datetime | None
    state_by: str | None


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    at: datetime
    actor: str
    action: str
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class NoteView:
    id: int
    at: datetime
    actor: str
    visibility: str
    body: str


@dataclass(frozen=True, slots=True)
class BoardCase:
    reference: str
    category: str
    status: CaseStatus
    priority: Priority
    ward_code: str | None
    lat: float | None
    lon: float | None
    summary: str
    lead_department: str
    opened_at: datetime
    due_at: datetime | None
    reports_count: int
    flags: tuple[str, ...]
    departments: tuple[tuple[str, str, str], ...]  # (department, role, state)


_CASE = """
    SELECT c.case_id, c.reference, c.category, c.family, c.status, c.priority, c.neighbourhood, c.ward_code,
        c.lat, c.lon, c.address, c.summary, c.description, c.lead_department, c.opened_at, c.due_at,
        c.closed_at, c.reports_count, c.flags, c.resolution, d.reference AS duplicate_of
    FROM router.cases AS c LEFT JOIN router.cases AS d ON d.case_id = c.duplicate_of
"""


def _case(row: asyncpg.Record) -> CaseRow:
    return CaseRow(
        **{
            **dict(row),
            "flags": tuple(row["flags"]),
            "status": CaseStatus(row["status"]),
            "priority": Priority(row["priority"]),
        }
    )


def _verdict(row: asyncpg.Record) -> Verdict:
    return Verdict(
        row["decision"], row["decision_case_id"], row["decision_score"] or 0.0, row["decision_key"]
    )


def _detail(value: object) -> dict[str, Any]:
    if isinstance(value, str):
        value = json.loads(value)
    return {str(k): v for k, v in value.items()} if isinstance(value, dict) else {"value": value}


class CaseFiles:
    """Staff's repository over one connection (one transaction, when used through a unit of work)."""

    def __init__(self, connection: DbConnection) -> None:
        self.connection = connection

    # --- reads -------------------------------------------------------------------------------------

    async def case(self, reference: str, *, lock: bool = False) -> CaseRow | None:
        suffix = " WHERE c.reference = $1" + (" FOR UPDATE OF c" if lock else "")
        row = await self.connection.fetchrow(_CASE + suffix, reference)
        return _case(row) if row else None

    async def case_by_id(self, case_id: UUID, *, lock: bool = False) -> CaseRow | None:
        suffix = " WHERE c.case_id = $1" + (" FOR UPDATE OF c" if lock else "")
        row = await self.connection.fetchrow(_CASE + suffix, case_id)
        return _case(row) if row else None

    async def lock_cases(self, references: Sequence[str]) -> dict[str, CaseRow]:
        """The cases named, their rows locked in reference order (so two staff merging the same pair in
        opposite directions never deadlock)."""
        rows = await self.connection.fetch(
            _CASE + " WHERE c.reference = ANY($1::text[]) ORDER BY c.reference FOR UPDATE OF c",
            sorted(set(references)),
        )
        return {row["reference"]: _case(row) for row in rows}

    async def reports(self, case_id: UUID) -> list[ReportView]:
        rows = await self.connection.fetch(
            "SELECT report_id, source_system, received_at, category, lat, lon, address, description,"
            " link_score FROM router.reports WHERE case_id = $1 ORDER BY received_at, report_id",
            case_id,
        )
        return [ReportView(**dict(row)) for row in rows]

    async def report_case(self, report_id: UUID) -> UUID | None:
        value: UUID | None = await self.connection.fetchval(
            "SELECT case_id FROM router.reports WHERE report_id = $1", report_id
        )
        return value

    async def assignments(self, case_id: UUID) -> list[AssignmentView]:
        rows = await self.connection.fetch(
            "SELECT department, role, state, assigned_at, state_at, state_by FROM router.assignments"
            " WHERE case_id = $1 ORDER BY role = 'lead' DESC, assigned_at, department",
            case_id,
        )
        return [AssignmentView(**dict(row)) for row in rows]

    async def history(self, case_id: UUID) -> list[HistoryEntry]:
        rows = await self.connection.fetch(
            "SELECT at, actor, action, detail FROM router.case_history WHERE case_id = $1 ORDER BY id",
            case_id,
        )
        return [HistoryEntry(row["at"], row["actor"], row["action"], _detail(row["detail"])) for row in rows]

    async def notes(self, case_id: UUID) -> list[NoteView]:
        rows = await self.connection.fetch(
            "SELECT id, at, actor, visibility, body FROM router.case_notes WHERE case_id = $1 ORDER BY id",
            case_id,
        )
        return [NoteView(**dict(row)) for row in rows]

    async def summaries(self, references: Sequence[str]) -> dict[str, tuple[str, str, str | None]]:
        """reference -> (status, summary, neighbourhood) for the cases named that exist."""
        rows = await self.connection.fetch(
            "SELECT reference, status, summary, neighbourhood FROM router.cases"
            " WHERE reference = ANY($1::text[])",
            list(references),
        )
        return {row["reference"]: (row["status"], row["summary"], row["neighbourhood"]) for row in rows}

    async def departments_of(self, case_ids: Sequence[UUID]) -> dict[UUID, list[str]]:
        rows = await self.connection.fetch(
            "SELECT case_id, department FROM router.assignments WHERE case_id = ANY($1::uuid[])",
            list(case_ids),
        )
        found: dict[UUID, list[str]] = {}
        for row in rows:
            found.setdefault(row["case_id"], []).append(row["department"])
        return found

    async def board(
        self,
        neighbourhood: str,
        *,
        departments: Sequence[str] | None,
        category: str | None,
        department: str | None,
        state: str | None,
    ) -> list[BoardCase]:
        """The neighbourhood's open cases (of `departments` when given), overdue first then by due time;
        `category`, `department` (any role) and `state` (case status) filter further."""
        rows = await self.connection.fetch(
            """
            SELECT c.reference, c.category, c.status, c.priority, c.ward_code, c.lat, c.lon, c.summary,
                c.lead_department, c.opened_at, c.due_at, c.reports_count, c.flags,
                array_agg(a.department || '|' || a.role || '|' || a.state
                    ORDER BY a.role = 'lead' DESC, a.department) AS departments
            FROM router.cases AS c JOIN router.assignments AS a ON a.case_id = c.case_id
            WHERE c.neighbourhood = $1 AND c.status <> 'closed'
                AND ($3::text IS NULL OR c.category = $3)
                AND ($5::text IS NULL OR c.status = $5)
            GROUP BY c.case_id
            HAVING ($2::text[] IS NULL OR bool_or(a.department = ANY($2::text[])))
                AND ($4::text IS NULL OR bool_or(a.department = $4))
            ORDER BY (c.due_at < now()) DESC NULLS LAST, c.due_at NULLS LAST, c.opened_at
            LIMIT 500
            """,
            neighbourhood,
            list(departments) if departments is not None else None,
            category,
            department,
            state,
        )
        return [
            BoardCase(
                **{
                    **{key: value for key, value in row.items() if key not in ("departments", "flags")},
                    "flags": tuple(row["flags"]),
                    "status": CaseStatus(row["status"]),
                    "priority": Priority(row["priority"]),
                    "departments": tuple(tuple(d.split("|", 2)) for d in row["departments"]),
                }
            )
            for row in rows
        ]

    async def figures(
        self, neighbourhood: str, *, departments: Sequence[str] | None, since: datetime
    ) -> dict[str, Any]:
        """Open, overdue, opened and closed since `since`, and — by department — reports that joined an
        existing case since `since` (work not duplicated)."""
        scope = "($2::text[] IS NULL OR EXISTS (SELECT 1 FROM router.assignments AS a"
        scope += " WHERE a.case_id = c.case_id AND a.department = ANY($2::text[])))"
        wanted = list(departments) if departments is not None else None
        row = await self.connection.fetchrow(
            f"""
            SELECT
                count(*) FILTER (WHERE c.status <> 'closed') AS open,
                count(*) FILTER (WHERE c.status <> 'closed' AND c.due_at < now()) AS overdue,
                count(*) FILTER (WHERE c.opened_at >= $3) AS opened,
                count(*) FILTER (WHERE c.status = 'closed' AND c.closed_at >= $3) AS closed
            FROM router.cases AS c WHERE c.neighbourhood = $1 AND {scope}
            """,
            neighbourhood,
            wanted,
            since,
        )
        merged = await self.connection.fetch(
            """
            SELECT a.department, count(*) AS reports
            FROM router.reports AS r
            JOIN router.cases AS c ON c.case_id = r.case_id
            JOIN router.assignments AS a ON a.case_id = c.case_id
            WHERE c.neighbourhood = $1 AND r.link_score IS NOT NULL AND r.routed_at >= $3
                AND ($2::text[] IS NULL OR a.department = ANY($2::text[]))
            GROUP BY a.department ORDER BY count(*) DESC, a.department
            """,
            neighbourhood,
            wanted,
            since,
        )
        counts = dict(row) if row is not None else {}
        return {**counts, "merged": [(m["department"], m["reports"]) for m in merged]}

    # --- writes ------------------------------------------------------------------------------------

    async def set_department_state(
        self, case_id: UUID, department: str, state: str, *, at: datetime, actor: str
    ) -> None:
        await self.connection.execute(
            "UPDATE router.assignments SET state = $3, state_at = $4, state_by = $5"
            " WHERE case_id = $1 AND department = $2",
            case_id,
            department,
            state,
            at,
            actor,
        )

    async def set_status(
        self,
        case_id: UUID,
        status: CaseStatus,
        *,
        at: datetime,
        resolution: str | None = None,
        duplicate_of: UUID | None = None,
    ) -> None:
        await self.connection.execute(
            """
            UPDATE router.cases SET status = $2::text,
                closed_at = CASE WHEN $2 = 'closed' THEN $3::timestamptz ELSE NULL END,
                resolution = CASE WHEN $2 = 'closed' THEN $4 ELSE NULL END,
                duplicate_of = CASE WHEN $2 = 'closed' THEN $5::uuid ELSE NULL END
            WHERE case_id = $1
            """,
            case_id,
            status,
            at,
            resolution,
            duplicate_of,
        )

    async def reassign(
        self, case_id: UUID, *, from_department: str | None, to_department: str, role: str, at: datetime
    ) -> None:
        """`to_department` takes `role` on the case (the part of `from_department`, which is removed). A
        new lead makes the old lead a contributor unless it is the one replaced."""
        if from_department is not None:
            await self.connection.execute(
                "DELETE FROM router.assignments WHERE case_id = $1 AND department = $2",
                case_id,
                from_department,
            )
        if role == "lead":
            await self.connection.execute(
                "UPDATE router.assignments SET role = 'contributor' WHERE case_id = $1 AND role = 'lead'",
                case_id,
            )
            await self.connection.execute(
                "UPDATE router.cases SET lead_department = $2 WHERE case_id = $1", case_id, to_department
            )
        await self.connection.execute(
            """
            INSERT INTO router.assignments (case_id, department, role, assigned_at) VALUES ($1, $2, $3, $4)
            ON CONFLICT (case_id, department) DO UPDATE SET role = excluded.role
            """,
            case_id,
            to_department,
            role,
            at,
        )

    async def add_note(self, case_id: UUID, *, at: datetime, actor: str, visibility: str, body: str) -> int:
        note_id: int = await self.connection.fetchval(
            "INSERT INTO router.case_notes (case_id, at, actor, visibility, body) VALUES ($1, $2, $3, $4, $5)"
            " RETURNING id",
            case_id,
            at,
            actor,
            visibility,
            body,
        )
        return note_id

    async def move_report(self, report_id: UUID, to_case_id: UUID, *, staff_linked: bool) -> None:
        await self.connection.execute(
            "UPDATE router.reports SET case_id = $2,"
            " link_score = CASE WHEN $3 THEN coalesce(link_score, 1.0) ELSE NULL END WHERE report_id = $1",
            report_id,
            to_case_id,
            staff_linked,
        )

    async def recount(self, case_id: UUID) -> int:
        """Set the case's report count, points count, mean point and cell from the reports it holds now;
        returns the count."""
        row = await self.connection.fetchrow(
            """
            UPDATE router.cases AS c SET reports_count = r.n, points_count = r.points,
                lat = coalesce(r.lat, c.lat), lon = coalesce(r.lon, c.lon),
                last_report_at = greatest(c.opened_at, coalesce(r.last_at, c.opened_at))
            FROM (SELECT count(*) AS n, count(lat) AS points, avg(lat) AS lat, avg(lon) AS lon,
                    max(received_at) AS last_at
                  FROM router.reports WHERE case_id = $1) AS r
            WHERE c.case_id = $1
            RETURNING c.reports_count, c.lat, c.lon
            """,
            case_id,
        )
        if row is None:
            return 0
        if row["lat"] is not None and row["lon"] is not None:
            await self.connection.execute(
                "UPDATE router.cases SET cell = $2 WHERE case_id = $1 AND cell IS DISTINCT FROM $2",
                case_id,
                case_cell(row["lat"], row["lon"]),
            )
        count: int = row["reports_count"]
        return count

    async def set_flags(self, case_id: UUID, flags: Sequence[str]) -> None:
        await self.connection.execute(
            "UPDATE router.cases SET flags = $2 WHERE case_id = $1", case_id, list(dict.fromkeys(flags))
        )

    async def record_history(
        self, case_id: UUID, *, at: datetime, actor: str, action: str, detail: dict[str, Any]
    ) -> None:
        await self.connection.execute(
            "INSERT INTO router.case_history (case_id, at, actor, action, detail)"
            " VALUES ($1, $2, $3, $4, $5)",
            case_id,
            at,
            actor,
            action,
            detail,
        )

    # --- labels: staff decisions about duplicates, for measuring the detector -------------------------

    async def decisions(self, report_ids: Iterable[UUID]) -> dict[UUID, Verdict]:
        """What routing's detector decided for each of these reports (those routed since migration 0015)."""
        rows = await self.connection.fetch(
            "SELECT report_id, decision, decision_case_id, decision_score, decision_key FROM router.reports"
            " WHERE report_id = ANY($1::uuid[]) AND decision IS NOT NULL",
            list(report_ids),
        )
        return {row["report_id"]: _verdict(row) for row in rows}

    async def automatic_links(self, case_id: UUID) -> dict[UUID, Verdict]:
        """The reports in the case that routing linked to it and that no label has judged with it yet."""
        rows = await self.connection.fetch(
            """
            SELECT r.report_id, r.decision, r.decision_case_id, r.decision_score, r.decision_key
            FROM router.reports AS r
            WHERE r.case_id = $1 AND r.decision = 'link' AND r.decision_case_id = $1
                AND NOT EXISTS (SELECT 1 FROM router.duplicate_labels AS l
                    WHERE l.report_id = r.report_id AND l.case_id = r.case_id)
            ORDER BY r.received_at, r.report_id
            """,
            case_id,
        )
        return {row["report_id"]: _verdict(row) for row in rows}

    async def record_labels(self, labels: Sequence[Label], *, at: datetime, actor: str) -> None:
        """Append labels, in one statement."""
        if not labels:
            return
        await self.connection.execute(
            """
            INSERT INTO router.duplicate_labels (at, actor, report_id, case_id, report_case_id, same_problem,
                decision, detector, score, key)
            SELECT $1, $2, * FROM unnest($3::uuid[], $4::uuid[], $5::uuid[], $6::bool[], $7::text[],
                $8::text[], $9::float8[], $10::text[])
            """,
            at,
            actor,
            [label.report_id for label in labels],
            [label.case_id for label in labels],
            [label.report_case_id for label in labels],
            [label.same_problem for label in labels],
            [label.decision for label in labels],
            [label.detector for label in labels],
            [label.score for label in labels],
            [label.key for label in labels],
        )

    # --- residents' updates (reports.updates.v1) -----------------------------------------------------

    async def claim_update(self, update_id: str, *, report_id: UUID, action: str, at: datetime) -> bool:
        """Take update `update_id` in hand in this transaction; False when it was handled before (a
        redelivery or a replay), so it must change nothing."""
        claimed = await self.connection.fetchval(
            "INSERT INTO router.resident_updates (update_id, report_id, action, outcome, handled_at)"
            " VALUES ($1, $2, $3, 'pending', $4) ON CONFLICT (update_id) DO NOTHING RETURNING true",
            update_id,
            report_id,
            action,
            at,
        )
        return bool(claimed)

    async def settle_update(self, update_id: str, *, case_id: UUID, outcome: str) -> None:
        await self.connection.execute(
            "UPDATE router.resident_updates SET case_id = $2, outcome = $3 WHERE update_id = $1",
            update_id,
            case_id,
            outcome,
        )

    async def report_home(self, report_id: UUID) -> tuple[UUID, str] | None:
        """(the case the report is in now, the system it came from), or None before it is routed."""
        row = await self.connection.fetchrow(
            "SELECT case_id, source_system FROM router.reports WHERE report_id = $1", report_id
        )
        return (row["case_id"], row["source_system"]) if row else None
