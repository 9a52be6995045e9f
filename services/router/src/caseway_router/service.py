"""The router's work for a batch of ReportReceived events: place, route, open or join a case, and queue
the case events, all in one unit of work (one transaction) per run of the batch.

Concurrency across replicas: before it reads anything, a unit of work takes PostgreSQL advisory transaction
locks on the map cells (per family) around each of its reports, on their addresses and on their exact keys
(property, asset, street), in ascending order (see `areas`). A replica routing a report of the same problem
at the same moment waits for the commit and then finds the case. Idempotency: the report id is the reports
table's key, checked after the locks are held.

The service takes its repositories through a unit of work (`RoutingRepositories`: `store.RoutingStore` on
PostgreSQL, `memory.MemoryRoutingStore` in unit tests) and a clock; deciding is the domain's
(`casework.plan_batch`), and this only reads what the decision needs and writes down what it decided.

Shadow mode: with a `shadow` (another detector configuration, `duplicates.Shadow`), each report is also
decided by the shadow's rules over the same candidates (no second search), and what the shadow would have
decided is written to router.shadow_decisions in the same unit of work. Nothing else depends on it.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

import structlog
from prometheus_client import CollectorRegistry, Histogram
from pydantic import ValidationError

from caseway_router.adapters import store
from caseway_router.domain.areas import address_lock_key, area_lock_keys, exact_key_lock_key, lock_chunks
from caseway_router.domain.casework import Joined, LiveCase, Opened, Prepared, plan_batch, report_facts
from caseway_router.domain.duplicates import DuplicateRules, Shadow, exact_keys, normalise_address
from caseway_router.domain.routing import Route, decide_route
from caseway_shared import headers as h
from caseway_shared.consuming import MalformedMessage
from caseway_shared.events import (
    CaseFlag,
    CaseOpened,
    ReportLinked,
    ReportReceived,
)
from caseway_shared.outbox import OutboxMessage
from caseway_shared.topics import Topic

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from pydantic import BaseModel

    from caseway_router.domain.places import PlaceFinder, Placement
    from caseway_shared.council import Council
    from caseway_shared.kafka import Record
    from caseway_shared.unit_of_work import UnitOfWork, Work

log = structlog.get_logger(__name__)
SERVICE = "router"
ACTOR = "caseway-router"


def parse_report(record: Record) -> ReportReceived:
    try:
        return ReportReceived.model_validate_json(record.value)
    except ValidationError as error:
        raise MalformedMessage.from_validation_error(error) from error


class RoutingRepositories(Protocol):
    """What routing reads and writes within one unit of work (see `store.RoutingStore`)."""

    async def lock_areas(self, keys: Iterable[int]) -> None: ...

    async def already_routed(self, report_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]: ...

    async def find_candidates(
        self, queries: Sequence[store.CandidateQuery], *, closed_since: datetime
    ) -> list[list[store.StoredCandidate]]: ...

    async def case_spreads(self, case_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, float]: ...

    async def next_case_numbers(self, count: int) -> list[int]: ...

    async def grow_cases(self, growths: Sequence[store.CaseGrowth]) -> dict[uuid.UUID, int]: ...

    async def insert_cases(self, cases: Sequence[store.NewCase]) -> None: ...

    async def insert_reports(self, rows: Sequence[store.ReportRow]) -> None: ...

    async def insert_assignments(self, rows: Iterable[tuple[uuid.UUID, str, str, datetime]]) -> None: ...

    async def record_history(self, entries: Iterable[store.HistoryEntry]) -> None: ...

    async def record_shadow_decisions(self, rows: Sequence[store.ShadowDecision]) -> None: ...


class RouterService:
    """Routes batches of reports (see the module docstring) and changes cases' status for staff."""

    def __init__(
        self,
        *,
        unit_of_work: UnitOfWork[RoutingRepositories],
        council: Council,
        places: PlaceFinder,
        topic: Callable[[Topic], str],
        metrics: CollectorRegistry | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        most_locks: int = 1000,
        shadow: Shadow | None = None,
    ) -> None:
        self._unit_of_work = unit_of_work
        self._shadow = shadow
        self._council = council
        self._places = places
        self._topic = topic
        self._clock = clock
        self._search_seconds = Histogram(
            "caseway_router_candidate_search_seconds",
            "Time of one batch's duplicate-candidate search (one round trip for the whole batch).",
            registry=metrics if metrics is not None else CollectorRegistry(),
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        # Cells at least as large as the largest duplicate radius (see `areas`).
        self._cell_m = max([category.duplicate_radius_m for category in council.categories.values()] + [1.0])
        self._most_locks = most_locks

    async def handle_reports_batch(self, records: Sequence[Record]) -> None:
        """The handler of reports.received.v1: every report ends in a case, once, whatever redelivers."""
        now = self._clock()
        unique: dict[uuid.UUID, Prepared] = {}
        for record in records:
            report = parse_report(record)
            if report.report_id not in unique:
                correlation_id = record.headers.get(h.CORRELATION_ID) or str(report.report_id)
                unique[report.report_id] = self._prepare(report, correlation_id)
        items = list(unique.values())
        keys = [self._lock_keys(item) for item in items]
        # One unit of work per run of reports whose locks fit the budget (a large batch of scattered
        # reports would otherwise take thousands); a later run sees what the earlier ones committed.
        for chunk in lock_chunks(keys, most_locks=self._most_locks):
            async with self._unit_of_work() as work:
                # Locks first: a replica routing a report of the same problem waits here until this commits.
                await work.repositories.lock_areas(key for i in chunk for key in keys[i])
                part = [items[i] for i in chunk]
                done = await work.repositories.already_routed([item.report.report_id for item in part])
                for report_id in done:
                    log.info("report_already_routed", report_id=str(report_id))
                await self._route(work, [item for item in part if item.report.report_id not in done], now=now)

    def _prepare(self, report: ReportReceived, correlation_id: str) -> Prepared:
        placement = self._places.locate(report.place)
        route = decide_route(report, placement, self._council)
        category = self._council.categories[route.category]
        rules = DuplicateRules(
            radius_m=category.duplicate_radius_m,
            window_hours=category.duplicate_window_hours,
            link_threshold=self._council.duplicate_link_threshold,
            review_threshold=self._council.duplicate_review_threshold,
            location_sigma_m=self._council.duplicate_location_sigma_m,
            closed_window_hours=self._council.duplicate_closed_window_hours,
        )
        return Prepared(
            report=report,
            correlation_id=correlation_id,
            placement=placement,
            route=route,
            facts=report_facts(report, category=route.category, family=route.family),
            rules=rules,
            address_key=normalise_address(report.place.address),
            shadow_rules=self._shadow.changes.applied_to(rules) if self._shadow else None,
        )

    def _lock_keys(self, item: Prepared) -> list[int]:
        facts = item.facts
        keys = []
        if facts.lat is not None and facts.lon is not None:
            keys.extend(area_lock_keys(facts.family, facts.lat, facts.lon, cell_m=self._cell_m))
        if item.address_key:
            keys.append(address_lock_key(facts.family, item.address_key))
        keys.extend(exact_key_lock_key(facts.family, key) for key in exact_keys(facts))
        return keys

    async def _route(
        self, work: Work[RoutingRepositories], items: Sequence[Prepared], *, now: datetime
    ) -> None:
        """Decide and write a run's cases, and record the case events to publish."""
        if not items:
            return
        repositories = work.repositories
        searchable = [item.rules.window_hours > 0 for item in items]
        queries = [
            store.CandidateQuery(
                family=item.facts.family,
                lat=item.facts.lat,
                lon=item.facts.lon,
                radius_m=item.rules.radius_m,
                since=item.report.received_at - timedelta(hours=item.rules.window_hours),
                address_key=item.address_key,
                category=item.facts.category,
                uprn=item.facts.uprn,
                usrn=item.facts.usrn,
                asset_id=item.facts.asset_id,
            )
            for item, search in zip(items, searchable, strict=True)
            if search
        ]
        closed_since = now - timedelta(hours=self._council.duplicate_closed_window_hours)
        with self._search_seconds.time():
            found = iter(await repositories.find_candidates(queries, closed_since=closed_since))
        found_lists = [next(found) if search else [] for search in searchable]
        # Duplicate detection learns the GPS error from how far each case's reports lie from its mean.
        scatter = await repositories.case_spreads(c.candidate.case_id for f in found_lists for c in f)
        stored = [
            [
                (replace(c.candidate, spread_m2=scatter.get(c.candidate.case_id, 0.0)), c.points_count)
                for c in f
            ]
            for f in found_lists
        ]
        plan = plan_batch(
            items, stored, new_case_id=[uuid.uuid4() for _ in items], cell_m=self._cell_m, now=now
        )
        numbers = await repositories.next_case_numbers(len(plan.new_cases))
        references = {
            case.candidate.case_id: f"{self._council.reference_prefix}-{now.year}-{number:06d}"
            for case, number in zip(plan.new_cases, numbers, strict=True)
        }
        counts = await repositories.grow_cases([_growth(case) for case in plan.grown])
        # Another replica may have joined a report to one of these cases since it was read (by address while
        # this batch joined by point): the stored count is the truth, and the events say it.
        count_offsets = {
            case.candidate.case_id: counts[case.candidate.case_id] - case.candidate.reports_count
            for case in plan.grown
            if case.candidate.case_id in counts
        }
        writes = _Writes(references=references, now=now, service=self, count_offsets=count_offsets)
        for outcome in plan.outcomes:
            writes.add(outcome)
        await repositories.insert_cases(writes.cases)
        await repositories.insert_reports(writes.reports)
        await repositories.insert_assignments(writes.assignments)
        await repositories.record_history(writes.history)
        if self._shadow is not None:
            await repositories.record_shadow_decisions(
                [
                    store.ShadowDecision(
                        report_id=outcome.item.report.report_id,
                        shadow=self._shadow.name,
                        routed_at=now,
                        category=outcome.item.route.category,
                        verdict=outcome.shadow,
                    )
                    for outcome in plan.outcomes
                    if outcome.shadow is not None
                ]
            )
        work.publish(*writes.messages)

    def category_name(self, code: str) -> str:
        return self._council.categories[code].name

    def message(self, case_id: uuid.UUID, event: BaseModel, correlation_id: str) -> OutboxMessage:
        return OutboxMessage.for_event(
            topic=self._topic(Topic.CASES),
            key=str(case_id),
            event=event,
            correlation_id=correlation_id,
            producer=SERVICE,
        )


def _growth(case: LiveCase) -> store.CaseGrowth:
    c = case.candidate
    return store.CaseGrowth(
        case_id=c.case_id,
        added_reports=case.added_reports,
        added_points=case.added_points,
        lat_sum=case.lat_sum,
        lon_sum=case.lon_sum,
        last_report_at=c.last_report_at,
        address=c.address,
        address_key=normalise_address(c.address),
        uprn=c.uprn,
        usrn=c.usrn,
        asset_id=c.asset_id,
    )


class _Writes:
    """The rows and events a batch plan turns into (deciding is done: this only writes it down)."""

    def __init__(
        self,
        *,
        references: dict[uuid.UUID, str],
        now: datetime,
        service: RouterService,
        count_offsets: dict[uuid.UUID, int],
    ) -> None:
        self._references = references
        self._count_offsets = count_offsets
        self._now = now
        self._service = service
        self.cases: list[store.NewCase] = []
        self.reports: list[store.ReportRow] = []
        self.assignments: list[tuple[uuid.UUID, str, str, datetime]] = []
        self.history: list[store.HistoryEntry] = []
        self.messages: list[OutboxMessage] = []

    def reference(self, case: LiveCase) -> str:
        return self._references.get(case.candidate.case_id, case.candidate.reference)

    def add(self, outcome: Opened | Joined) -> None:
        if isinstance(outcome, Joined):
            self._joined(outcome)
        else:
            self._opened(outcome)

    def _joined(self, outcome: Joined) -> None:
        item, now, case_id = outcome.item, self._now, outcome.case.candidate.case_id
        reference, report = self.reference(outcome.case), item.report
        reports_count = outcome.reports_count + self._count_offsets.get(case_id, 0)
        self.reports.append(
            store.ReportRow(report, case_id, outcome.score, item.correlation_id, decision=outcome.verdict)
        )
        detail: dict[str, str | float] = {
            "report_id": str(report.report_id),
            "score": round(outcome.score, 4),
        }
        if outcome.key:
            detail["key"] = outcome.key  # linked with certainty by this exact key (`duplicates.key_match`)
        self.history.append(
            store.HistoryEntry(
                case_id, now, ACTOR, "report-linked", {**detail, "reports_count": reports_count}
            )
        )
        event = ReportLinked(
            occurred_at=now,
            case_id=case_id,
            reference=reference,
            report_id=report.report_id,
            reports_count=reports_count,
            score=outcome.score,
        )
        self.messages.append(self._service.message(case_id, event, item.correlation_id))
        log.info(
            "report_linked",
            case_id=str(case_id),
            reference=reference,
            correlation_id=item.correlation_id,
            reports_count=reports_count,
            **detail,
        )

    def _opened(self, outcome: Opened) -> None:
        item, now, case_id = outcome.item, self._now, outcome.case.candidate.case_id
        reference, report, route = self.reference(outcome.case), item.report, item.route
        flags = list(route.flags)
        if outcome.possible is not None:
            other, score = outcome.possible
            flags.append(
                (
                    "possible-duplicate",
                    f"may be the same problem as {self.reference(other)} (score {score:.3f})",
                )
            )
        summary = _summary(self._service.category_name(route.category), item.placement, report)
        self.cases.append(self._new_case(outcome, reference, summary, tuple(flag for flag, _ in flags)))
        self.reports.append(
            store.ReportRow(report, case_id, None, item.correlation_id, decision=outcome.verdict)
        )
        self.assignments.extend(
            (case_id, department, "lead" if department == route.lead_department else "contributor", now)
            for department in route.departments
        )
        self.history.extend(
            [
                store.HistoryEntry(
                    case_id,
                    now,
                    ACTOR,
                    "opened",
                    {"report_id": str(report.report_id), "category": route.category},
                ),
                *(
                    store.HistoryEntry(case_id, now, ACTOR, "assigned", {"department": d})
                    for d in route.departments
                ),
                *(
                    store.HistoryEntry(case_id, now, ACTOR, "flagged", {"flag": f, "reason": r})
                    for f, r in flags
                ),
            ]
        )
        event = _case_opened(
            case_id=case_id,
            reference=reference,
            report=report,
            route=replace(route, flags=tuple(flags)),
            placement=item.placement,
            now=now,
            summary=summary,
        )
        self.messages.append(self._service.message(case_id, event, item.correlation_id))
        log.info(
            "case_opened",
            case_id=str(case_id),
            reference=reference,
            report_id=str(report.report_id),
            correlation_id=item.correlation_id,
            category=route.category,
            neighbourhood=item.placement.neighbourhood,
            departments=list(route.departments),
            possible_duplicate=outcome.possible is not None,
        )

    def _new_case(
        self, outcome: Opened, reference: str, summary: str, flags: tuple[str, ...]
    ) -> store.NewCase:
        """The case row as the whole batch left it: later reports of the batch may have joined it."""
        item, grown = outcome.item, outcome.case.candidate
        report, route, placement = item.report, item.route, item.placement
        return store.NewCase(
            case_id=grown.case_id,
            reference=reference,
            category=route.category,
            family=route.family,
            priority=route.priority,
            neighbourhood=placement.neighbourhood,
            ward_code=placement.ward_code,
            lat=grown.lat,
            lon=grown.lon,
            address=grown.address,
            address_key=normalise_address(grown.address),
            detail=report.category_text,
            place_type=report.place.land_type,
            summary=summary,
            description=report.description,
            lead_department=route.lead_department,
            opened_at=self._now,
            due_at=route.due_at,
            flags=flags,
            reports_count=grown.reports_count,
            points_count=outcome.case.points_count,
            last_report_at=grown.last_report_at,
            uprn=grown.uprn,
            usrn=grown.usrn,
            asset_id=grown.asset_id,
        )


def _summary(category_name: str, placement: Placement, report: ReportReceived) -> str:
    where = placement.ward_name or report.place.postcode or "location to be confirmed"
    return f"{category_name} - {where}"[:200]


def _case_opened(
    *,
    case_id: uuid.UUID,
    reference: str,
    report: ReportReceived,
    route: Route,
    placement: Placement,
    now: datetime,
    summary: str,
) -> CaseOpened:
    """The one event of an opening: departments and flags in it (no CaseAssigned or CaseFlagged each)."""
    return CaseOpened(
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
        flags=tuple(CaseFlag(flag=flag, reason=reason) for flag, reason in route.flags),
    )
