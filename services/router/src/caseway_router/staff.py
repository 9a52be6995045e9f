"""The staff side of the router's service layer: what a person may read (a case, a neighbourhood's board)
and the changes they make (acknowledge, reassign, note, close, review a possible duplicate, link and unlink
reports). Each change is one unit of work: the case rows locked, the change, its history entry (with who
did it) and its case events through the router's outbox, committed together.

Who may do what is decided in `domain.access`; every read and every change checks it against the case as
it is inside the transaction. Residents' text is masked (`domain.masking`) before it leaves: on pages, in
the JSON API and in the public notes that go out as events.

Staff decisions about duplicates are the detector's labels (`domain.casefile.Label`, router.duplicate_labels),
written in the same unit of work as the change: a possible duplicate confirmed or rejected, a case closed
as a duplicate of another, a report linked or unlinked by hand, and a case closed with reports the router
had linked to it (each such link kept). Once committed, they are counted as the live judgement of the
detector: `caseway_router_links_judged_total{verdict="kept"|"undone"}` for the router's automatic links and
`caseway_router_flags_judged_total{verdict="same"|"different"}` for its possible duplicates.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import CollectorRegistry, Counter

from caseway_router.adapters import store
from caseway_router.domain.casefile import (
    CASE_CLOSED,
    CLOSED_AS_DUPLICATE,
    DUPLICATE_CONFIRMED,
    DUPLICATE_REJECTED,
    FLAGGED,
    LINKED,
    NOTE_VISIBILITY,
    REPORT_LINKED,
    REPORT_UNLINKED,
    RESOLUTIONS,
    Label,
    PossibleDuplicate,
    is_overdue,
    label,
    opening_report,
    possible_duplicates,
    week_start,
)
from caseway_router.domain.duplicates import normalise_address
from caseway_router.domain.masking import mask_contact_details
from caseway_shared.events import (
    CaseAssigned,
    CaseClosed,
    CaseNoteAdded,
    CaseOpened,
    CaseStatus,
    CaseStatusChanged,
    CaseUnassigned,
    DuplicateReviewed,
    GeoPoint,
    ReportLinked,
    ReportUnlinked,
    ResidentUpdateReceived,
)
from caseway_shared.outbox import OutboxMessage
from caseway_shared.topics import Topic

if TYPE_CHECKING:
    from collections.abc import Callable

    from pydantic import BaseModel

    from caseway_router.adapters.case_files import (
        AssignmentView,
        BoardCase,
        CaseFiles,
        CaseRow,
        HistoryEntry,
        NoteView,
        ReportView,
    )
    from caseway_router.domain.access import StaffMember
    from caseway_shared.council import Council
    from caseway_shared.unit_of_work import UnitOfWork, Work

log = structlog.get_logger(__name__)
PRODUCER = "router"
NOTE_LIMIT = 4000


class StaffError(Exception):
    status = 400


class NotFound(StaffError):
    status = 404


class Forbidden(StaffError):
    status = 403


class Conflict(StaffError):
    status = 409


class NotYetRouted(Exception):
    """A resident's update arrived before its report's case exists here: tried again later."""


@dataclass(frozen=True, slots=True)
class CaseView:
    """A case as one person may read it (residents' text masked)."""

    case: CaseRow
    reports: list[ReportView]
    assignments: list[AssignmentView]
    history: list[HistoryEntry]
    notes: list[NoteView]
    duplicates: list[tuple[PossibleDuplicate, tuple[str, str, str | None] | None]]
    overdue: bool
    ward_name: str | None
    may_act_for: list[str]  # the departments whose part this person may acknowledge


@dataclass(frozen=True, slots=True)
class BoardView:
    neighbourhood: str
    cases: list[BoardCase]
    figures: dict[str, Any]
    departments: frozenset[str] | None  # None: every department (the manager's board)
    overdue: set[str] = field(default_factory=set)


def _masked(text: str | None) -> str | None:
    return mask_contact_details(text) if text else text


class StaffDesk:
    def __init__(
        self,
        *,
        unit_of_work: UnitOfWork[CaseFiles],
        council: Council,
        topic: Callable[[Topic], str],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        metrics: CollectorRegistry | None = None,
    ) -> None:
        self._unit_of_work = unit_of_work
        self._council = council
        self._topic = topic
        self._clock = clock
        registry = metrics if metrics is not None else CollectorRegistry()
        self._links_judged = Counter(
            "caseway_router_links_judged",
            "Reports the router linked to a case automatically, as staff judged them: kept (the case was "
            "closed with the report in it) or undone (staff moved the report out).",
            ["verdict"],
            registry=registry,
        )
        self._flags_judged = Counter(
            "caseway_router_flags_judged",
            "Possible duplicates the router flagged, as staff judged them: the same problem or different.",
            ["verdict"],
            registry=registry,
        )
        for verdict in ("kept", "undone"):
            self._links_judged.labels(verdict)  # exported at 0 from the start, so a ratio is defined
        for verdict in ("same", "different"):
            self._flags_judged.labels(verdict)
        self._ward_names = {
            council.ward_code_of(feature): council.ward_name_of(feature)
            for feature in council.wards_geojson["features"]
        }

    @property
    def council(self) -> Council:
        return self._council

    def ward_name(self, code: str | None) -> str | None:
        return self._ward_names.get(code) if code else None

    def department_name(self, code: str) -> str:
        return self._council.departments.get(code, code)

    def category_name(self, code: str) -> str:
        category = self._council.categories.get(code)
        return category.name if category else code

    # --- reading -----------------------------------------------------------------------------------

    async def case_view(self, member: StaffMember, reference: str) -> CaseView:
        now = self._clock()
        async with self._unit_of_work() as work:
            files = work.repositories
            case = await files.case(reference)
            if case is None:
                raise NotFound(f"no case {reference}")
            assignments = await files.assignments(case.case_id)
            self._check(member, case, [a.department for a in assignments])
            history = await files.history(case.case_id)
            pending = possible_duplicates((h.at, h.action, h.detail) for h in history)
            others = await files.summaries([p.reference for p in pending])
            reports = await files.reports(case.case_id)
            notes = await files.notes(case.case_id)
        return CaseView(
            case=_mask_case(case),
            reports=[_mask_report(r) for r in reports],
            assignments=assignments,
            history=[_mask_history(h) for h in history],
            notes=[_mask_note(n) for n in notes],
            duplicates=[(p, _mask_summary(others.get(p.reference))) for p in pending],
            overdue=is_overdue(case.due_at, case.status, now),
            ward_name=self.ward_name(case.ward_code),
            may_act_for=[
                a.department for a in assignments if _acts_for(member, case.neighbourhood, a.department)
            ],
        )

    async def board(
        self,
        member: StaffMember,
        neighbourhood: str,
        *,
        category: str | None = None,
        department: str | None = None,
        state: str | None = None,
    ) -> BoardView:
        if neighbourhood not in self._council.neighbourhoods:
            raise NotFound(f"no neighbourhood {neighbourhood}")
        if neighbourhood not in member.neighbourhoods(self._council.neighbourhoods):
            raise Forbidden(f"{member.id} has no cases in {neighbourhood}")
        departments = member.board_departments(neighbourhood)
        now = self._clock()
        async with self._unit_of_work() as work:
            cases = await work.repositories.board(
                neighbourhood,
                departments=sorted(departments) if departments is not None else None,
                category=category or None,
                department=department or None,
                state=state or None,
            )
            figures = await work.repositories.figures(
                neighbourhood,
                departments=sorted(departments) if departments is not None else None,
                since=week_start(now, self._council.timezone),
            )
        return BoardView(
            neighbourhood=neighbourhood,
            cases=[_mask_board_case(c) for c in cases],
            figures=figures,
            departments=departments,
            overdue={c.reference for c in cases if is_overdue(c.due_at, c.status, now)},
        )

    # --- changing ----------------------------------------------------------------------------------

    async def acknowledge(
        self, member: StaffMember, reference: str, *, department: str | None = None
    ) -> None:
        """The person acknowledges their department's part (or `department`'s): the department's state
        and, the first time, the case's status become acknowledged (the notifier stops escalating)."""
        async with self._unit_of_work() as work:
            case, assignments = await self._locked(work, member, reference)
            parts = {a.department: a for a in assignments}
            if department is None:
                mine = [d for d in parts if _acts_for(member, case.neighbourhood, d)]
                department = case.lead_department if case.lead_department in mine else next(iter(mine), "")
            if department not in parts:
                raise StaffError(f"{department} has no part in {reference}")
            if not _acts_for(member, case.neighbourhood, department):
                raise Forbidden(f"{member.id} may not acknowledge for {department}")
            if case.status == CaseStatus.CLOSED:
                raise Conflict(f"{reference} is closed")
            now = self._clock()
            files = work.repositories
            if parts[department].state != "acknowledged":
                await files.set_department_state(
                    case.case_id, department, "acknowledged", at=now, actor=member.id
                )
            status = CaseStatus.ACKNOWLEDGED if case.status == CaseStatus.OPEN else case.status
            if status != case.status:
                await files.set_status(case.case_id, status, at=now)
            await files.record_history(
                case.case_id,
                at=now,
                actor=member.id,
                action="acknowledged",
                detail={"department": department, "from": case.status, "to": status},
            )
            self._publish(
                work,
                case,
                CaseStatusChanged(
                    occurred_at=now,
                    case_id=case.case_id,
                    reference=case.reference,
                    status=status,
                    department=department,
                    actor=member.id,
                ),
            )
        log.info("case_acknowledged", reference=reference, department=department, actor=member.id)

    async def reassign(
        self,
        member: StaffMember,
        reference: str,
        *,
        to_department: str,
        from_department: str | None = None,
        role: str = "contributor",
    ) -> None:
        """`to_department` takes over `from_department`'s part (or joins as `role` when none is given)."""
        if to_department not in self._council.departments:
            raise StaffError(f"unknown department {to_department}")
        if role not in ("lead", "contributor"):
            raise StaffError("role is lead or contributor")
        async with self._unit_of_work() as work:
            case, assignments = await self._locked(work, member, reference)
            if case.status == CaseStatus.CLOSED:
                raise Conflict(f"{reference} is closed")
            parts = {a.department: a for a in assignments}
            if from_department:
                if from_department not in parts:
                    raise StaffError(f"{from_department} has no part in {reference}")
                if from_department == to_department:
                    raise StaffError("a department cannot take over its own part")
                role = parts[from_department].role
            elif to_department in parts and parts[to_department].role == role:
                raise StaffError(f"{to_department} is already the {role} on {reference}")
            now = self._clock()
            await work.repositories.reassign(
                case.case_id,
                from_department=from_department or None,
                to_department=to_department,
                role=role,
                at=now,
            )
            await work.repositories.record_history(
                case.case_id,
                at=now,
                actor=member.id,
                action="reassigned",
                detail={"from": from_department, "to": to_department, "role": role},
            )
            events: list[BaseModel] = []
            if from_department:
                events.append(
                    CaseUnassigned(
                        occurred_at=now,
                        case_id=case.case_id,
                        reference=case.reference,
                        department=from_department,
                        neighbourhood=case.neighbourhood,
                        replaced_by=to_department,
                        actor=member.id,
                    )
                )
            events.append(
                CaseAssigned(
                    occurred_at=now,
                    case_id=case.case_id,
                    reference=case.reference,
                    department=to_department,
                    role="lead" if role == "lead" else "contributor",
                    neighbourhood=case.neighbourhood,
                    replaces=from_department or None,
                    actor=member.id,
                )
            )
            self._publish(work, case, *events)
        log.info("case_reassigned", reference=reference, to=to_department, actor=member.id)

    async def add_note(self, member: StaffMember, reference: str, *, text: str, visibility: str) -> None:
        text = text.strip()
        if not text:
            raise StaffError("a note needs some text")
        if len(text) > NOTE_LIMIT:
            raise StaffError("a note is at most 4000 characters")
        if visibility not in NOTE_VISIBILITY:
            raise StaffError("a note is internal or public")
        async with self._unit_of_work() as work:
            case, _ = await self._locked(work, member, reference)
            await self._write_note(work, case, actor=member.id, visibility=visibility, text=text)

    async def resident_update(self, update: ResidentUpdateReceived) -> str:
        """A resident's comment or reopening from an Open311 front end (reports.updates.v1, via intake).

        The case is the report's case now (found by report id, so a report merged into another case since
        intake heard of it reaches the case that carries on; `case_id` when the report is not known here).
        A comment becomes a public note, written and masked as staff notes are, by the resident's channel
        (`resident:<source system>`); a reopening reopens a closed case (CaseStatusChanged to open) and its
        words, if any, become a public note too. Once per update id, in one unit of work with the changes:
        a redelivery or a replay changes nothing. Returns what was done.
        """
        text = update.description.strip()[:NOTE_LIMIT]
        async with self._unit_of_work() as work:
            files, now = work.repositories, self._clock()
            if not await files.claim_update(
                update.update_id, report_id=update.report_id, action=update.action, at=now
            ):
                log.info("resident_update_repeated", update_id=update.update_id)
                return "repeat"
            home = await files.report_home(update.report_id)
            case_id = home[0] if home else update.case_id
            case = await files.case_by_id(case_id, lock=True) if case_id else None
            if case is None:
                raise NotYetRouted(f"report {update.report_id} has no case here yet")
            actor = f"resident:{home[1] if home else 'open311'}"
            outcome = "noted" if text else "nothing-to-note"
            if update.action == "reopen":
                outcome = "reopened" if case.status == CaseStatus.CLOSED else "already-open"
                if case.status == CaseStatus.CLOSED:
                    await self._reopen(work, case, actor=actor, update_id=update.update_id, now=now)
            if text:
                await self._write_note(
                    work,
                    case,
                    actor=actor,
                    visibility="public",
                    text=text,
                    detail={"update_id": update.update_id},
                    now=now,
                )
            await files.settle_update(update.update_id, case_id=case.case_id, outcome=outcome)
        log.info(
            "resident_update_applied",
            update_id=update.update_id,
            reference=case.reference,
            action=update.action,
            outcome=outcome,
        )
        return outcome

    async def close(
        self,
        member: StaffMember,
        reference: str,
        *,
        resolution: str,
        note: str | None = None,
        duplicate_of: str | None = None,
    ) -> None:
        """Close with a resolution; a duplicate's reports move to the case it repeats (so every resident
        follows the case that will be fixed)."""
        if resolution not in RESOLUTIONS:
            raise StaffError(f"resolution is one of {', '.join(RESOLUTIONS)}")
        if resolution == "duplicate":
            if not duplicate_of:
                raise StaffError("say which case this one duplicates")
            await self._merge(member, reference, duplicate_of.strip(), note=note, review=False)
            return
        note = mask_contact_details(note.strip()) if note and note.strip() else None
        async with self._unit_of_work() as work:
            case, _ = await self._locked(work, member, reference)
            if case.status == CaseStatus.CLOSED:
                raise Conflict(f"{reference} is already closed")
            now = self._clock()
            labels = await self._kept_links(work.repositories, case)
            await work.repositories.record_labels(labels, at=now, actor=member.id)
            await self._close(
                work, member, case, resolution=resolution, note=note, duplicate_of=None, now=now
            )
        self._count(labels)

    async def review_duplicate(self, member: StaffMember, reference: str, *, other: str, same: bool) -> None:
        """Confirm (the case repeats `other`: merged into it and closed) or reject a possible duplicate."""
        if same:
            await self._merge(member, reference, other, note=None, review=True)
            return
        async with self._unit_of_work() as work:
            case, _ = await self._locked(work, member, reference)
            history = await work.repositories.history(case.case_id)
            pending = possible_duplicates((h.at, h.action, h.detail) for h in history)
            if other not in {p.reference for p in pending}:
                raise Conflict(f"{other} is not awaiting review on {reference}")
            now = self._clock()
            await work.repositories.record_history(
                case.case_id, at=now, actor=member.id, action="duplicate-rejected", detail={"other": other}
            )
            labels = await self._pair_label(
                work.repositories, case, history, other, same=False, decision=DUPLICATE_REJECTED
            )
            await work.repositories.record_labels(labels, at=now, actor=member.id)
            if len(pending) == 1:
                await work.repositories.set_flags(
                    case.case_id, [f for f in case.flags if f != "possible-duplicate"]
                )
            self._publish(
                work,
                case,
                DuplicateReviewed(
                    occurred_at=now,
                    case_id=case.case_id,
                    reference=case.reference,
                    other_reference=other,
                    same_problem=False,
                    actor=member.id,
                ),
            )
        self._count(labels)

    async def link_report(self, member: StaffMember, reference: str, *, report_id: uuid.UUID) -> None:
        """Move a report from the case it is in into this one."""
        async with self._unit_of_work() as work:
            files = work.repositories
            source_id = await files.report_case(report_id)
            if source_id is None:
                raise NotFound(f"no report {report_id}")
            source = await files.case_by_id(source_id)
            target = await files.case(reference)
            if source is None or target is None:
                raise NotFound(f"no case {reference}")
            if source.case_id == target.case_id:
                raise Conflict(f"the report is already in {reference}")
            locked = await files.lock_cases([source.reference, target.reference])
            source, target = locked[source.reference], locked[target.reference]
            for case in (source, target):
                self._check(member, case, await self._departments(files, case))
            if target.status == CaseStatus.CLOSED:
                raise Conflict(f"{reference} is closed")
            now = self._clock()
            verdict = (await files.decisions([report_id])).get(report_id)
            # The report is the target's problem, and so not the problem of the case it leaves.
            labels = [
                label(
                    report_id,
                    target.case_id,
                    same=True,
                    decision=REPORT_LINKED,
                    verdict=verdict,
                    report_case_id=source.case_id,
                ),
                label(
                    report_id,
                    source.case_id,
                    same=False,
                    decision=REPORT_LINKED,
                    verdict=verdict,
                    report_case_id=source.case_id,
                ),
            ]
            await self._move(work, member, report_id, source, target, now=now)
            if source.reports_count <= 1 and source.status != CaseStatus.CLOSED:
                labels += await self._kept_links(files, source)
                await self._close(
                    work, member, source, resolution="duplicate", note=None, duplicate_of=target, now=now
                )
            await files.record_labels(labels, at=now, actor=member.id)
        self._count(labels)

    async def unlink_report(self, member: StaffMember, reference: str, *, report_id: uuid.UUID) -> str:
        """Take a report out of this case into a case of its own (same category, place of the report,
        the same departments); returns the new case's reference."""
        async with self._unit_of_work() as work:
            files = work.repositories
            case, assignments = await self._locked(work, member, reference)
            reports = {r.report_id: r for r in await files.reports(case.case_id)}
            if report_id not in reports:
                raise NotFound(f"no report {report_id} in {reference}")
            if len(reports) == 1:
                raise Conflict(f"{reference} has only that report")
            report, now = reports[report_id], self._clock()
            labels = [
                label(
                    report_id,
                    case.case_id,
                    same=False,
                    decision=REPORT_UNLINKED,
                    verdict=(await files.decisions([report_id])).get(report_id),
                    report_case_id=case.case_id,
                )
            ]
            await files.record_labels(labels, at=now, actor=member.id)
            [number] = await store.next_case_numbers(files.connection, 1)
            new_reference = f"{self._council.reference_prefix}-{now.year}-{number:06d}"
            new_id = uuid.uuid4()
            await store.insert_cases(
                files.connection,
                [
                    store.NewCase(
                        case_id=new_id,
                        reference=new_reference,
                        category=case.category,
                        family=case.family,
                        priority=case.priority,
                        neighbourhood=case.neighbourhood,
                        ward_code=case.ward_code,
                        lat=report.lat,
                        lon=report.lon,
                        address=report.address,
                        address_key=normalise_address(report.address),
                        detail=None,
                        place_type=None,
                        summary=case.summary,
                        description=report.description,
                        lead_department=case.lead_department,
                        opened_at=now,
                        due_at=case.due_at,
                        flags=(),
                        reports_count=1,
                        points_count=int(report.lat is not None),
                        last_report_at=now,
                    )
                ],
            )
            await store.insert_assignments(
                files.connection, [(new_id, a.department, a.role, now) for a in assignments]
            )
            new_case = await files.case_by_id(new_id, lock=True)
            if new_case is None:  # written just above, in this transaction
                raise NotFound(new_reference)
            opened = CaseOpened(
                occurred_at=now,
                case_id=new_id,
                reference=new_reference,
                report_id=report_id,
                category=case.category,
                priority=case.priority,
                neighbourhood=case.neighbourhood,
                ward_code=case.ward_code,
                lead_department=case.lead_department,
                departments=tuple(a.department for a in assignments),
                due_at=case.due_at,
                point=GeoPoint(lat=report.lat, lon=report.lon)
                if report.lat is not None and report.lon is not None
                else None,
                summary=case.summary,
            )
            await files.record_history(
                new_id,
                at=now,
                actor=member.id,
                action="opened",
                detail={"report_id": str(report_id), "category": case.category, "split_from": reference},
            )
            self._publish(
                work,
                new_case,
                opened,
                *(
                    CaseAssigned(
                        occurred_at=now,
                        case_id=new_id,
                        reference=new_reference,
                        department=a.department,
                        role="lead" if a.role == "lead" else "contributor",
                        neighbourhood=case.neighbourhood,
                        actor=member.id,
                    )
                    for a in assignments
                ),
            )
            await files.move_report(report_id, new_id, staff_linked=False)
            await files.recount(new_id)
            remaining = await files.recount(case.case_id)
            await files.record_history(
                case.case_id,
                at=now,
                actor=member.id,
                action="report-unlinked",
                detail={"report_id": str(report_id), "to": new_reference, "reports_count": remaining},
            )
            self._publish(
                work,
                case,
                ReportUnlinked(
                    occurred_at=now,
                    case_id=case.case_id,
                    reference=case.reference,
                    report_id=report_id,
                    reports_count=remaining,
                    moved_to_case_id=new_id,
                    moved_to_reference=new_reference,
                    actor=member.id,
                ),
            )
        self._count(labels)
        return new_reference

    # --- the parts -----------------------------------------------------------------------------------

    async def _merge(
        self, member: StaffMember, reference: str, other: str, *, note: str | None, review: bool
    ) -> None:
        """`reference` repeats `other`: its reports move to `other` and it closes as a duplicate."""
        if other == reference:
            raise StaffError("a case cannot duplicate itself")
        async with self._unit_of_work() as work:
            files = work.repositories
            locked = await files.lock_cases([reference, other])
            if reference not in locked or other not in locked:
                raise NotFound(f"no case {other if reference in locked else reference}")
            case, target = locked[reference], locked[other]
            for each in (case, target):
                self._check(member, each, await self._departments(files, each))
            if case.status == CaseStatus.CLOSED:
                raise Conflict(f"{reference} is already closed")
            if target.status == CaseStatus.CLOSED:
                raise Conflict(f"{other} is closed: reopen it or choose another")
            now = self._clock()
            history = await files.history(case.case_id)
            if review and other not in {
                p.reference for p in possible_duplicates((h.at, h.action, h.detail) for h in history)
            }:
                raise Conflict(f"{other} is not awaiting review on {reference}")
            # The case repeats the other: so does the report it was opened with; and the reports the router
            # linked to it go with it, kept together.
            labels = await self._pair_label(
                files,
                case,
                history,
                other,
                same=True,
                decision=DUPLICATE_CONFIRMED if review else CLOSED_AS_DUPLICATE,
            )
            labels += await self._kept_links(files, case)
            await files.record_labels(labels, at=now, actor=member.id)
            if review:
                await files.record_history(
                    case.case_id,
                    at=now,
                    actor=member.id,
                    action="duplicate-confirmed",
                    detail={"other": other},
                )
                self._publish(
                    work,
                    case,
                    DuplicateReviewed(
                        occurred_at=now,
                        case_id=case.case_id,
                        reference=case.reference,
                        other_reference=other,
                        same_problem=True,
                        actor=member.id,
                    ),
                )
            for report in await files.reports(case.case_id):
                await self._move(work, member, report.report_id, case, target, now=now)
            await files.set_flags(case.case_id, [f for f in case.flags if f != "possible-duplicate"])
            note = mask_contact_details(note.strip()) if note and note.strip() else None
            await self._close(
                work, member, case, resolution="duplicate", note=note, duplicate_of=target, now=now
            )
        self._count(labels)

    @staticmethod
    async def _pair_label(
        files: CaseFiles,
        case: CaseRow,
        history: list[HistoryEntry],
        other: str,
        *,
        same: bool,
        decision: str,
    ) -> list[Label]:
        """The label of `case` judged (not) to repeat case `other`: the report `case` was opened with,
        whose routing found (or missed) the other case. None when that report has left the case or the
        other case does not exist."""
        opening = opening_report((h.action, h.detail) for h in history)
        target = await files.case(other)
        if opening is None or target is None or await files.report_case(opening) != case.case_id:
            return []
        verdict = (await files.decisions([opening])).get(opening)
        return [
            label(
                opening,
                target.case_id,
                same=same,
                decision=decision,
                verdict=verdict,
                report_case_id=case.case_id,
            )
        ]

    @staticmethod
    async def _kept_links(files: CaseFiles, case: CaseRow) -> list[Label]:
        """The case is closed with these reports the router linked to it: each link kept."""
        return [
            label(
                report_id,
                case.case_id,
                same=True,
                decision=CASE_CLOSED,
                verdict=verdict,
                report_case_id=case.case_id,
            )
            for report_id, verdict in (await files.automatic_links(case.case_id)).items()
        ]

    def _count(self, labels: list[Label]) -> None:
        """Committed labels, as the live judgement of the detector's links and flags."""
        for each in labels:
            if each.detector == LINKED:
                self._links_judged.labels("kept" if each.same_problem else "undone").inc()
            elif each.detector == FLAGGED:
                self._flags_judged.labels("same" if each.same_problem else "different").inc()

    async def _move(
        self,
        work: Work[CaseFiles],
        member: StaffMember,
        report_id: uuid.UUID,
        source: CaseRow,
        target: CaseRow,
        *,
        now: datetime,
    ) -> None:
        files = work.repositories
        await files.move_report(report_id, target.case_id, staff_linked=True)
        count = await files.recount(target.case_id)
        left = await files.recount(source.case_id)
        await files.record_history(
            target.case_id,
            at=now,
            actor=member.id,
            action="report-linked",
            detail={"report_id": str(report_id), "from": source.reference, "reports_count": count},
        )
        await files.record_history(
            source.case_id,
            at=now,
            actor=member.id,
            action="report-unlinked",
            detail={"report_id": str(report_id), "to": target.reference, "reports_count": left},
        )
        self._publish(
            work,
            source,
            ReportUnlinked(
                occurred_at=now,
                case_id=source.case_id,
                reference=source.reference,
                report_id=report_id,
                reports_count=left,
                moved_to_case_id=target.case_id,
                moved_to_reference=target.reference,
                actor=member.id,
            ),
        )
        self._publish(
            work,
            target,
            ReportLinked(
                occurred_at=now,
                case_id=target.case_id,
                reference=target.reference,
                report_id=report_id,
                reports_count=max(2, count),
                score=1.0,
                from_case_id=source.case_id,
                actor=member.id,
            ),
        )

    async def _close(
        self,
        work: Work[CaseFiles],
        member: StaffMember,
        case: CaseRow,
        *,
        resolution: str,
        note: str | None,
        duplicate_of: CaseRow | None,
        now: datetime | None = None,
    ) -> None:
        now = now or self._clock()
        await work.repositories.set_status(
            case.case_id,
            CaseStatus.CLOSED,
            at=now,
            resolution=resolution,
            duplicate_of=duplicate_of.case_id if duplicate_of else None,
        )
        await work.repositories.record_history(
            case.case_id,
            at=now,
            actor=member.id,
            action="closed",
            detail={
                "from": case.status,
                "resolution": resolution,
                "note": note,
                "duplicate_of": duplicate_of.reference if duplicate_of else None,
            },
        )
        self._publish(
            work,
            case,
            CaseStatusChanged(
                occurred_at=now,
                case_id=case.case_id,
                reference=case.reference,
                status=CaseStatus.CLOSED,
                note=note,
                actor=member.id,
            ),
            CaseClosed(
                occurred_at=now,
                case_id=case.case_id,
                reference=case.reference,
                note=note,
                resolution=resolution,
                duplicate_of=duplicate_of.reference if duplicate_of else None,
                actor=member.id,
            ),
        )
        log.info("case_closed", reference=case.reference, resolution=resolution, actor=member.id)

    async def _write_note(
        self,
        work: Work[CaseFiles],
        case: CaseRow,
        *,
        actor: str,
        visibility: str,
        text: str,
        detail: dict[str, Any] | None = None,
        now: datetime | None = None,
    ) -> None:
        now = now or self._clock()
        body = mask_contact_details(text)  # nobody's contact details are kept in a note
        note_id = await work.repositories.add_note(
            case.case_id, at=now, actor=actor, visibility=visibility, body=body
        )
        await work.repositories.record_history(
            case.case_id,
            at=now,
            actor=actor,
            action="note-added",
            detail={"note_id": note_id, "visibility": visibility, **(detail or {})},
        )
        self._publish(
            work,
            case,
            CaseNoteAdded(
                occurred_at=now,
                case_id=case.case_id,
                reference=case.reference,
                note_id=note_id,
                visibility="public" if visibility == "public" else "internal",
                text=body if visibility == "public" else None,
                actor=actor,
            ),
        )

    async def _reopen(
        self, work: Work[CaseFiles], case: CaseRow, *, actor: str, update_id: str, now: datetime
    ) -> None:
        """A closed case open again (its resolution cleared; the departments keep their parts)."""
        await work.repositories.set_status(case.case_id, CaseStatus.OPEN, at=now)
        await work.repositories.record_history(
            case.case_id,
            at=now,
            actor=actor,
            action="reopened",
            detail={"from": case.status, "resolution": case.resolution, "update_id": update_id},
        )
        self._publish(
            work,
            case,
            CaseStatusChanged(
                occurred_at=now,
                case_id=case.case_id,
                reference=case.reference,
                status=CaseStatus.OPEN,
                note="Reopened by the resident",
                actor=actor,
            ),
        )
        log.info("case_reopened", reference=case.reference, actor=actor)

    async def _locked(
        self, work: Work[CaseFiles], member: StaffMember, reference: str
    ) -> tuple[CaseRow, list[AssignmentView]]:
        case = await work.repositories.case(reference, lock=True)
        if case is None:
            raise NotFound(f"no case {reference}")
        assignments = await work.repositories.assignments(case.case_id)
        self._check(member, case, [a.department for a in assignments])
        return case, assignments

    @staticmethod
    async def _departments(files: CaseFiles, case: CaseRow) -> list[str]:
        return [a.department for a in await files.assignments(case.case_id)]

    @staticmethod
    def _check(member: StaffMember, case: CaseRow, departments: list[str]) -> None:
        if not member.may_see(case.neighbourhood, departments):
            # The same answer whether or not the case exists would hide references; staff links carry
            # them anyway, so the refusal says plainly that it is a matter of access.
            raise Forbidden(f"{member.id} may not see {case.reference}")

    def _publish(self, work: Work[CaseFiles], case: CaseRow, *events: BaseModel) -> None:
        work.publish(
            *(
                OutboxMessage.for_event(
                    topic=self._topic(Topic.CASES),
                    key=str(case.case_id),
                    event=event,
                    correlation_id=str(case.case_id),
                    producer=PRODUCER,
                )
                for event in events
            )
        )


def _acts_for(member: StaffMember, neighbourhood: str | None, department: str) -> bool:
    """May `member` act for `department`'s part of a case in `neighbourhood` (acknowledge it)?"""
    if member.admin or (neighbourhood is not None and neighbourhood in member.manages):
        return True
    return any(team.department == department and team.covers(neighbourhood) for team in member.teams)


def _mask_case(case: CaseRow) -> CaseRow:
    return replace(
        case, description=mask_contact_details(case.description), summary=mask_contact_details(case.summary)
    )


def _mask_report(report: ReportView) -> ReportView:
    return replace(report, description=mask_contact_details(report.description))


def _mask_note(note: NoteView) -> NoteView:
    return replace(note, body=mask_contact_details(note.body))


def _mask_history(entry: HistoryEntry) -> HistoryEntry:
    detail = {k: mask_contact_details(v) if isinstance(v, str) else v for k, v in entry.detail.items()}
    return replace(entry, detail=detail)


def _mask_summary(summary: tuple[str, str, str | None] | None) -> tuple[str, str, str | None] | None:
    if summary is None:
        return None
    return (summary[0], mask_contact_details(summary[1]), summary[2])


def _mask_board_case(case: BoardCase) -> BoardCase:
    return replace(case, summary=mask_contact_details(case.summary))
