"""The router's repositories in memory, for unit tests through
`caseway_shared.unit_of_work.InMemoryUnitOfWork`:
`MemoryRoutingStore` gives the same answers as `store.RoutingStore` (its candidate search, growth and
counts) and records the area locks each unit took; `MemoryCaseFiles` is the staff desk's status changes,
reviews of possible duplicates and the labels they make. No database. Not for production: nothing here is
shared between processes."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from uuid import UUID  # noqa: TC003 - a dataclass field type

from caseway_router.adapters.case_files import AssignmentView, CaseRow, NoteView
from caseway_router.adapters.case_files import HistoryEntry as CaseHistoryEntry
from caseway_router.adapters.store import (
    CandidateQuery,
    CaseGrowth,
    HistoryEntry,
    NewCase,
    ReportRow,
    ShadowDecision,
    StoredCandidate,
    within_radius,
)
from caseway_router.domain.duplicates import CandidateCase, scatter_m2
from caseway_shared.events import CaseStatus

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from datetime import datetime

    from caseway_router.domain.casefile import Label
    from caseway_router.domain.casework import Verdict


@dataclass
class MemoryCase:
    row: NewCase
    status: CaseStatus = CaseStatus.OPEN
    closed_at: datetime | None = None


@dataclass
class MemoryRoutingStore:
    cases: dict[UUID, MemoryCase] = field(default_factory=dict)
    reports: dict[UUID, ReportRow] = field(default_factory=dict)
    assignments: dict[tuple[UUID, str], tuple[str, datetime]] = field(default_factory=dict)
    history: list[HistoryEntry] = field(default_factory=list)
    locks: list[tuple[int, ...]] = field(default_factory=list)  # each call's keys, in the order taken
    case_number: int = 0
    shadow_decisions: list[ShadowDecision] = field(default_factory=list)

    async def lock_areas(self, keys: Iterable[int]) -> None:
        self.locks.append(tuple(sorted(set(keys))))

    async def already_routed(self, report_ids: Iterable[UUID]) -> set[UUID]:
        return {report_id for report_id in report_ids if report_id in self.reports}

    async def find_candidates(
        self, queries: Sequence[CandidateQuery], *, closed_since: datetime
    ) -> list[list[StoredCandidate]]:
        return [self._candidates(query, closed_since) for query in queries]

    def _candidates(self, query: CandidateQuery, closed_since: datetime) -> list[StoredCandidate]:
        found = []
        for case in self.cases.values():
            row = case.row
            if row.family != query.family or row.last_report_at < query.since:
                continue
            if case.status == CaseStatus.CLOSED and (case.closed_at is None or case.closed_at < closed_since):
                continue
            if (
                within_radius(query, row.lat, row.lon)
                or (query.address_key is not None and query.address_key == row.address_key)
                or _same_key(query, row)
            ):
                found.append(StoredCandidate(self._candidate(case), row.points_count))
        return found

    @staticmethod
    def _candidate(case: MemoryCase) -> CandidateCase:
        row = case.row
        return CandidateCase(
            case_id=row.case_id,
            reference=row.reference,
            category=row.category,
            family=row.family,
            lat=row.lat,
            lon=row.lon,
            reports_count=row.reports_count,
            last_report_at=row.last_report_at,
            address=row.address,
            detail=row.detail,
            place_type=row.place_type,
            text=row.description,
            closed_at=case.closed_at,
            uprn=row.uprn,
            usrn=row.usrn,
            asset_id=row.asset_id,
        )

    async def case_spreads(self, case_ids: Iterable[UUID]) -> dict[UUID, float]:
        wanted = set(case_ids)
        points: dict[UUID, list[tuple[float, float]]] = {}
        for report in self.reports.values():
            point = report.report.place.point
            if report.case_id in wanted and point is not None:
                points.setdefault(report.case_id, []).append((point.lat, point.lon))
        return {case_id: scatter_m2(found) for case_id, found in points.items() if len(found) > 1}

    async def next_case_numbers(self, count: int) -> list[int]:
        self.case_number += count
        return list(range(self.case_number - count + 1, self.case_number + 1))

    async def grow_cases(self, growths: Sequence[CaseGrowth]) -> dict[UUID, int]:
        counts = {}
        for growth in growths:
            case = self.cases.get(growth.case_id)
            if case is None:
                continue
            row, points = case.row, case.row.points_count + growth.added_points
            lat, lon = row.lat, row.lon
            if growth.added_points:
                lat = ((row.lat or 0.0) * row.points_count + growth.lat_sum) / points
                lon = ((row.lon or 0.0) * row.points_count + growth.lon_sum) / points
            case.row = replace(
                row,
                reports_count=row.reports_count + growth.added_reports,
                points_count=points,
                lat=lat,
                lon=lon,
                last_report_at=max(row.last_report_at, growth.last_report_at),
                address=row.address or growth.address,
                address_key=row.address_key or growth.address_key,
                uprn=row.uprn or growth.uprn,
                usrn=row.usrn or growth.usrn,
                asset_id=row.asset_id or growth.asset_id,
            )
            counts[growth.case_id] = case.row.reports_count
        return counts

    async def insert_cases(self, cases: Sequence[NewCase]) -> None:
        for row in cases:
            self.cases.setdefault(row.case_id, MemoryCase(row))

    async def insert_reports(self, rows: Sequence[ReportRow]) -> None:
        for row in rows:
            self.reports.setdefault(row.report.report_id, row)

    async def insert_assignments(self, rows: Iterable[tuple[UUID, str, str, datetime]]) -> None:
        for case_id, department, role, at in rows:
            self.assignments.setdefault((case_id, department), (role, at))

    async def record_history(self, entries: Iterable[HistoryEntry]) -> None:
        self.history.extend(entries)

    async def record_shadow_decisions(self, rows: Sequence[ShadowDecision]) -> None:
        recorded = {(row.shadow, row.report_id) for row in self.shadow_decisions}
        self.shadow_decisions.extend(row for row in rows if (row.shadow, row.report_id) not in recorded)

    def close(self, case_id: UUID, at: datetime) -> None:
        """What a staff close does to routing's view of the case (tests of the closed-case window)."""
        self.cases[case_id].status, self.cases[case_id].closed_at = CaseStatus.CLOSED, at


def _same_key(query: CandidateQuery, row: NewCase) -> bool:
    """The search's exact-key lookups: the same property in the family (checked by the caller), the same
    asset or street in the category."""
    if query.uprn is not None and query.uprn == row.uprn:
        return True
    if query.category is None or query.category != row.category:
        return False
    return (query.asset_id is not None and query.asset_id == row.asset_id) or (
        query.usrn is not None and query.usrn == row.usrn
    )


@dataclass
class MemoryCaseFiles:
    """The staff desk's case files in memory, for unit tests of status changes through
    `InMemoryUnitOfWork`: the reads and writes `StaffDesk.acknowledge`, `close` and `add_note` make, with
    the same rules as `case_files.CaseFiles` (a close stamps closed_at and the resolution; reopening clears
    them), and the labels staff decisions make (`add_report` says which case a report is in and what
    routing decided for it). Merging, moving reports and boards are tested against PostgreSQL only."""

    cases: dict[str, CaseRow] = field(default_factory=dict)
    parts: dict[UUID, list[AssignmentView]] = field(default_factory=dict)
    entries: dict[UUID, list[CaseHistoryEntry]] = field(default_factory=dict)
    written_notes: dict[UUID, list[NoteView]] = field(default_factory=dict)
    report_cases: dict[UUID, UUID] = field(default_factory=dict)  # report id -> the case it is in
    report_decisions: dict[UUID, Verdict] = field(default_factory=dict)
    labels: list[tuple[datetime, str, Label]] = field(default_factory=list)  # (at, actor, label)

    def add_report(self, case_id: UUID, report_id: UUID, *, decision: Verdict | None) -> None:
        self.report_cases[report_id] = case_id
        if decision is not None:
            self.report_decisions[report_id] = decision

    def add(self, case: CaseRow, *, departments: Sequence[str]) -> None:
        self.cases[case.reference] = case
        self.parts[case.case_id] = [
            AssignmentView(
                d,
                "lead" if d == case.lead_department else "contributor",
                "assigned",
                case.opened_at,
                None,
                None,
            )
            for d in departments
        ]

    def _by_id(self, case_id: UUID) -> CaseRow:
        return next(case for case in self.cases.values() if case.case_id == case_id)

    async def case(self, reference: str, *, lock: bool = False) -> CaseRow | None:  # noqa: ARG002 - one process
        return self.cases.get(reference)

    async def case_by_id(self, case_id: UUID, *, lock: bool = False) -> CaseRow | None:  # noqa: ARG002
        return next((case for case in self.cases.values() if case.case_id == case_id), None)

    async def assignments(self, case_id: UUID) -> list[AssignmentView]:
        return list(self.parts.get(case_id, []))

    async def history(self, case_id: UUID) -> list[CaseHistoryEntry]:
        return list(self.entries.get(case_id, []))

    async def notes(self, case_id: UUID) -> list[NoteView]:
        return list(self.written_notes.get(case_id, []))

    async def set_department_state(
        self, case_id: UUID, department: str, state: str, *, at: datetime, actor: str
    ) -> None:
        self.parts[case_id] = [
            replace(a, state=state, state_at=at, state_by=actor) if a.department == department else a
            for a in self.parts[case_id]
        ]

    async def set_status(
        self,
        case_id: UUID,
        status: CaseStatus,
        *,
        at: datetime,
        resolution: str | None = None,
        duplicate_of: UUID | None = None,
    ) -> None:
        case = self._by_id(case_id)
        closed = status == CaseStatus.CLOSED
        other = (await self.case_by_id(duplicate_of)) if closed and duplicate_of else None
        self.cases[case.reference] = replace(
            case,
            status=status,
            closed_at=at if closed else None,
            resolution=resolution if closed else None,
            duplicate_of=other.reference if other else None,
        )

    async def record_history(
        self, case_id: UUID, *, at: datetime, actor: str, action: str, detail: dict[str, Any]
    ) -> None:
        self.entries.setdefault(case_id, []).append(CaseHistoryEntry(at, actor, action, detail))

    async def set_flags(self, case_id: UUID, flags: Sequence[str]) -> None:
        case = self._by_id(case_id)
        self.cases[case.reference] = replace(case, flags=tuple(dict.fromkeys(flags)))

    async def report_case(self, report_id: UUID) -> UUID | None:
        return self.report_cases.get(report_id)

    async def decisions(self, report_ids: Iterable[UUID]) -> dict[UUID, Verdict]:
        return {r: self.report_decisions[r] for r in report_ids if r in self.report_decisions}

    async def automatic_links(self, case_id: UUID) -> dict[UUID, Verdict]:
        judged = {(label.report_id, label.case_id) for _, _, label in self.labels}
        return {
            report_id: decision
            for report_id, decision in self.report_decisions.items()
            if self.report_cases.get(report_id) == case_id
            and decision.outcome == "link"
            and decision.case_id == case_id
            and (report_id, case_id) not in judged
        }

    async def record_labels(self, labels: Sequence[Label], *, at: datetime, actor: str) -> None:
        self.labels.extend((at, actor, label) for label in labels)

    async def add_note(self, case_id: UUID, *, at: datetime, actor: str, visibility: str, body: str) -> int:
        notes = self.written_notes.setdefault(case_id, [])
        note_id = sum(len(n) for n in self.written_notes.values())
        notes.append(NoteView(note_id, at, actor, visibility, body))
        return note_id
