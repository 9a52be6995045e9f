"""What a batch of routed reports does to cases (pure): which open a case, which join one, in arrival order.

The reports of a batch are decided one after another, so a later report sees the cases the earlier ones
opened or grew (two residents' reports of one problem in one batch become one case). The stored candidates
come from one search for the whole batch; the caller holds the area locks (see `areas`), so they are
current.

Each outcome says what the detector decided as a `Verdict` (link, review or new, and the case concerned),
which routing records with the report. An item may carry a shadow's rules (`Prepared.shadow_rules`: another
detector configuration on trial): the shadow then decides over exactly the candidates the live rules saw
(no search of its own), its verdict is kept beside the live one (`shadow`), and nothing it decides changes
a case.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from caseway_router.domain.areas import area_lock_keys
from caseway_router.domain.duplicates import (
    CandidateCase,
    Decision,
    DuplicateRules,
    Link,
    NewCase,
    PossibleDuplicate,
    ReportFacts,
    decide,
    distance_m,
    exact_keys,
)

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime
    from uuid import UUID

    from caseway_router.domain.places import Placement
    from caseway_router.domain.routing import Route
    from caseway_shared.events import ReportReceived


@dataclass(frozen=True, slots=True)
class Prepared:
    """A report with everything decided about it that needs no database."""

    report: ReportReceived
    correlation_id: str
    placement: Placement
    route: Route
    facts: ReportFacts
    rules: DuplicateRules
    address_key: str | None
    # Another configuration deciding beside the live one, recording only (see the module docstring).
    shadow_rules: DuplicateRules | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a detector decided for one report: `link` (join `case_id`), `review` (open a new case flagged as
    possibly `case_id`'s problem) or `new` (open a new case; `case_id` None). `score` is the link's or the
    flag's (for `new`, the best seen); `key` the exact key that made a link certain."""

    outcome: str
    case_id: UUID | None
    score: float
    key: str | None = None


LINK, REVIEW, NEW = "link", "review", "new"


def verdict_of(decision: Decision) -> Verdict:
    """A detector's decision as a verdict (the case it names by id)."""
    if isinstance(decision, Link):
        return Verdict(LINK, decision.case.case_id, decision.score, decision.key)
    if isinstance(decision, PossibleDuplicate):
        return Verdict(REVIEW, decision.case.case_id, decision.score)
    return Verdict(NEW, None, decision.best)


@dataclass(slots=True)
class LiveCase:
    """A case as the batch sees it: stored or opened in this batch (`new_index`), and grown by it."""

    candidate: CandidateCase
    points_count: int
    new_index: int | None = None
    grown: bool = False
    # What this batch's reports added (the store applies it as increments, not as the values above).
    added_reports: int = 0
    added_points: int = 0
    lat_sum: float = 0.0
    lon_sum: float = 0.0


@dataclass(frozen=True, slots=True)
class Opened:
    """The report opens case `new_index` of the batch; `possible` is a case it may repeat, with the score."""

    item: Prepared
    case: LiveCase
    possible: tuple[LiveCase, float] | None
    best: float = 0.0  # the best score seen, when no candidate was close enough to flag
    shadow: Verdict | None = None  # what the shadow's rules would have decided (`Prepared.shadow_rules`)

    @property
    def verdict(self) -> Verdict:
        if self.possible is not None:
            other, score = self.possible
            return Verdict(REVIEW, other.candidate.case_id, score)
        return Verdict(NEW, None, self.best)


@dataclass(frozen=True, slots=True)
class Joined:
    """The report joins `case`, which then holds `reports_count` reports (`key`: the exact key that made
    it certain, if one did)."""

    item: Prepared
    case: LiveCase
    score: float
    reports_count: int
    key: str | None = None
    shadow: Verdict | None = None  # what the shadow's rules would have decided (`Prepared.shadow_rules`)

    @property
    def verdict(self) -> Verdict:
        return Verdict(LINK, self.case.candidate.case_id, self.score, self.key)


@dataclass
class BatchPlan:
    outcomes: list[Opened | Joined] = field(default_factory=list)
    new_cases: list[LiveCase] = field(default_factory=list)

    @property
    def grown(self) -> list[LiveCase]:
        """Stored cases that reports of this batch joined."""
        seen: dict[UUID, LiveCase] = {}
        for outcome in self.outcomes:
            if isinstance(outcome, Joined) and outcome.case.new_index is None:
                seen[outcome.case.candidate.case_id] = outcome.case
        return list(seen.values())


def report_facts(report: ReportReceived, *, category: str, family: str) -> ReportFacts:
    """What the detector knows about a routed report (its routed category and family; the rest from the
    event). The router and the evaluation both build facts here, so the evaluation measures this too."""
    point = report.place.point
    return ReportFacts(
        category=category,
        family=family,
        received_at=report.received_at,
        lat=point.lat if point else None,
        lon=point.lon if point else None,
        address=report.place.address,
        detail=report.category_text,
        place_type=report.place.land_type,
        text=report.description,
        accuracy_m=report.place.accuracy_m,
        uprn=report.place.uprn,
        usrn=report.place.usrn,
        asset_id=report.place.asset_id,
    )


def placeholder_reference(index: int) -> str:
    # Sorts after every real reference of the same prefix, so ties prefer stored (older) cases.
    return f"~{index:09d}"


def plan_batch(
    items: Sequence[Prepared],
    stored: Sequence[Sequence[tuple[CandidateCase, int]]],
    *,
    new_case_id: Sequence[UUID],
    cell_m: float,
    now: datetime,
) -> BatchPlan:
    """Decide each item in order. `stored[i]` are item i's stored candidates with their points counts;
    `new_case_id[i]` is the id item i's case gets if it opens one."""
    plan = BatchPlan()
    live: dict[UUID, LiveCase] = {}
    nearby_new: dict[int, list[LiveCase]] = {}  # area lock key -> cases opened in this batch
    by_address: dict[tuple[str, str], list[LiveCase]] = {}
    # (family, exact key) -> the cases that carry it after this batch's earlier reports.
    by_key: dict[tuple[str, str], dict[UUID, LiveCase]] = {}
    for index, item in enumerate(items):
        facts = item.facts
        candidates: dict[UUID, LiveCase] = {}
        for candidate, points in stored[index]:
            case = live.setdefault(
                candidate.case_id, LiveCase(replace(candidate, points_count=points), points)
            )
            candidates[candidate.case_id] = case
        keys = (
            area_lock_keys(facts.family, facts.lat, facts.lon, cell_m=cell_m)
            if facts.lat is not None and facts.lon is not None
            else []
        )
        # The cases this batch opened (or gave a key) that the stored search could not see.
        for case in (
            *(case for key in keys for case in nearby_new.get(key, ())),
            *(by_address.get((facts.family, item.address_key), ()) if item.address_key else ()),
            *(case for key in exact_keys(facts) for case in by_key.get((facts.family, key), {}).values()),
        ):
            candidates[case.candidate.case_id] = case
        seen = [case.candidate for case in candidates.values()]
        decision = decide(facts, seen, item.rules, now=now)
        # The shadow sees what the live rules saw, before this report changes anything.
        shadow = (
            verdict_of(decide(facts, seen, item.shadow_rules, now=now))
            if item.shadow_rules is not None
            else None
        )
        if isinstance(decision, Link):
            case = candidates[decision.case.case_id]
            _grow(case, item)
            _file_by_key(by_key, case)
            plan.outcomes.append(
                Joined(
                    item, case, decision.score, case.candidate.reports_count, key=decision.key, shadow=shadow
                )
            )
            continue
        possible = (
            (candidates[decision.case.case_id], decision.score)
            if isinstance(decision, PossibleDuplicate)
            else None
        )
        case = LiveCase(
            CandidateCase(
                case_id=new_case_id[index],
                reference=placeholder_reference(len(plan.new_cases)),
                category=facts.category,
                family=facts.family,
                lat=facts.lat,
                lon=facts.lon,
                reports_count=1,
                last_report_at=facts.received_at,
                points_count=int(facts.lat is not None and facts.lon is not None),
                address=facts.address,
                detail=facts.detail,
                place_type=facts.place_type,
                text=facts.text,
                uprn=facts.uprn,
                usrn=facts.usrn,
                asset_id=facts.asset_id,
            ),
            points_count=int(facts.lat is not None),
            new_index=len(plan.new_cases),
        )
        plan.new_cases.append(case)
        best = decision.best if isinstance(decision, NewCase) else 0.0
        plan.outcomes.append(Opened(item, case, possible, best=best, shadow=shadow))
        _file_by_key(by_key, case)
        # A case's cell is only its own cell; reports look in their 3x3 block of keys to find it.
        if keys:
            nearby_new.setdefault(keys[4], []).append(case)
        if item.address_key:
            by_address.setdefault((facts.family, item.address_key), []).append(case)
    return plan


def _file_by_key(by_key: dict[tuple[str, str], dict[UUID, LiveCase]], case: LiveCase) -> None:
    """A later report of the batch with one of the case's exact keys finds it (a stored case that a report
    of this batch gave a key too)."""
    for key in exact_keys(case.candidate):
        by_key.setdefault((case.candidate.family, key), {})[case.candidate.case_id] = case


def _grow(case: LiveCase, item: Prepared) -> None:
    """The report joins: one more report; its point moves the case's mean point."""
    old, facts = case.candidate, item.facts
    lat, lon, points = old.lat, old.lon, case.points_count
    spread = old.spread_m2
    case.added_reports += 1
    if facts.lat is not None and facts.lon is not None:
        case.added_points += 1
        case.lat_sum += facts.lat
        case.lon_sum += facts.lon
        if lat is None or lon is None or points == 0:
            lat, lon, points, spread = facts.lat, facts.lon, 1, 0.0
        else:
            # Welford: the scatter grows by d^2 n / (n + 1), d the new point's distance from the old mean.
            d = distance_m(lat, lon, facts.lat, facts.lon)
            spread += d * d * points / (points + 1)
            lat = lat + (facts.lat - lat) / (points + 1)
            lon = lon + (facts.lon - lon) / (points + 1)
            points += 1
    case.points_count = points
    case.grown = True
    case.candidate = replace(
        old,
        lat=lat,
        lon=lon,
        reports_count=old.reports_count + 1,
        last_report_at=max(old.last_report_at, facts.received_at),
        address=old.address or facts.address,
        points_count=points,
        spread_m2=spread,
        uprn=old.uprn or facts.uprn,
        usrn=old.usrn or facts.usrn,
        asset_id=old.asset_id or facts.asset_id,
    )
