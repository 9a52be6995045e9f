"""The router's routing of a batch, through a unit of work on routing's in-memory repository: the same
service code as production (`RouterService.handle_reports_batch`), no broker or database, milliseconds.
The real-infrastructure tests (tests/integration/router) prove the same against PostgreSQL and Kafka."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from caseway_router.adapters.memory import MemoryRoutingStore
from caseway_router.domain.areas import exact_key_lock_key, lock_chunks
from caseway_router.domain.places import PlaceFinder
from caseway_router.service import RouterService
from caseway_shared.consuming import MalformedMessage
from caseway_shared.council import load_council
from caseway_shared.events import CASE_EVENT, CaseOpened, ReportLinked
from caseway_shared.unit_of_work import InMemoryUnitOfWork
from factories import BOLD_STREET, METRE, as_record, report_received

COUNCIL = load_council()
PLACES = PlaceFinder(COUNCIL)
NOW = datetime(2026, 11, 23, 10, tzinfo=UTC)


class Router:
    def __init__(self, *, most_locks: int = 1000) -> None:
        self.store = MemoryRoutingStore()
        self.uow = InMemoryUnitOfWork(self.store)
        self.now = NOW
        self.service = RouterService(
            unit_of_work=self.uow,
            council=COUNCIL,
            places=PLACES,
            topic=lambda topic: topic.value,
            clock=lambda: self.now,
            most_locks=most_locks,
        )

    async def route(self, *reports):
        await self.service.handle_reports_batch([as_record(r, offset=i) for i, r in enumerate(reports)])

    def events(self):
        return [CASE_EVENT.validate_json(message.payload) for message in self.uow.published]

    def types(self):
        return [type(event).__name__ for event in self.events()]


def _report(metres_north: float = 0.0, **changes):
    lat = BOLD_STREET[0] + metres_north * METRE
    return report_received(**{"received_at": NOW, "lat": lat, "lon": BOLD_STREET[1], **changes})


async def test_two_reports_of_one_problem_in_one_batch_make_one_case_and_its_events_once():
    router = Router()
    await router.route(_report(), _report(5))
    assert len(router.store.cases) == 1
    (case,) = router.store.cases.values()
    assert case.row.reports_count == 2
    opened = next(e for e in router.events() if isinstance(e, CaseOpened))
    # One event says the whole opening (departments and flags), then one the joining report.
    assert router.types() == ["CaseOpened", "ReportLinked"]
    assert opened.departments[0] == opened.lead_department
    assert tuple(flag.flag for flag in opened.flags) == case.row.flags
    linked = next(e for e in router.events() if isinstance(e, ReportLinked))
    assert (linked.case_id, linked.reports_count) == (opened.case_id, 2)
    assert router.uow.committed == 1
    assert [entry.action for entry in router.store.history][:1] == ["opened"]


async def test_a_redelivered_batch_changes_nothing_and_publishes_nothing():
    router = Router()
    first, second = _report(), _report(800)
    await router.route(first, second)
    published, cases, history = len(router.uow.published), dict(router.store.cases), len(router.store.history)
    await router.route(first, second)
    assert len(router.uow.published) == published
    assert router.store.cases == cases
    assert len(router.store.history) == history


async def test_a_later_report_joins_the_open_case_with_the_stored_count():
    router = Router()
    await router.route(_report())
    await router.route(_report(10))
    await router.route(_report(-8))
    counts = [e.reports_count for e in router.events() if isinstance(e, ReportLinked)]
    assert counts == [2, 3]
    assert len(router.store.cases) == 1


async def test_a_report_of_another_kind_of_problem_at_the_same_place_opens_its_own_case():
    router = Router()
    await router.route(_report(), _report(2, category="graffiti", description="Tags on the wall"))
    assert len(router.store.cases) == 2
    assert "ReportLinked" not in router.types()


async def test_a_case_closed_longer_ago_than_the_closed_window_is_not_joined():
    router = Router()
    await router.route(_report())
    (case_id,) = router.store.cases
    router.store.close(case_id, NOW - timedelta(hours=COUNCIL.duplicate_closed_window_hours + 1))
    router.now = NOW + timedelta(minutes=5)
    await router.route(_report(3))
    assert len(router.store.cases) == 2


async def test_reports_with_only_an_address_join_by_the_address():
    router = Router()
    at_the_address = {"lat": None, "lon": None, "address": "12 Bold Street, Liverpool", "postcode": "L1 4DS"}
    await router.route(report_received(received_at=NOW, **at_the_address))
    await router.route(
        report_received(received_at=NOW, **{**at_the_address, "address": "12, BOLD ST Liverpool"})
    )
    assert len(router.store.cases) == 1
    assert [e.reports_count for e in router.events() if isinstance(e, ReportLinked)] == [2]


async def test_every_unit_takes_its_area_locks_in_ascending_order_within_the_budget():
    # Reports 2 km apart need locks of their own: with a budget of one report's locks, each report is
    # routed in a unit of work of its own.
    one_report = len(_keys(Router(), _report()))
    router = Router(most_locks=one_report)
    reports = [_report(2000 * i) for i in range(4)]
    await router.route(*reports)
    assert router.uow.committed == len(reports)
    assert len(router.store.locks) == len(reports)
    assert all(list(locks) == sorted(locks) and 0 < len(locks) <= one_report for locks in router.store.locks)
    assert len(router.store.cases) == len(reports)


def _keys(router: Router, report) -> list[int]:
    prepared = router.service._prepare(report, str(report.report_id))
    keys = router.service._lock_keys(prepared)
    assert [list(chunk) for chunk in lock_chunks([keys], most_locks=len(keys))] == [[0]]
    return keys


async def test_a_malformed_record_fails_its_batch_as_malformed_and_nothing_is_committed():
    router = Router()
    with pytest.raises(MalformedMessage, match=r"event_type|report_id"):
        await router.service.handle_reports_batch([as_record(_report()), as_record(b'{"event_type": "x"}')])
    assert router.uow.committed == 0
    assert router.store.cases == {}


async def test_reports_naming_one_property_make_one_case_wherever_their_points_are():
    router = Router()
    family = COUNCIL.categories["fly-tipping"].family
    await router.route(_report(uprn="38164538"))
    # 300 m off (a pin dropped at the wrong end of the street): the same property, so the same case.
    await router.route(_report(300, uprn="38164538"))
    assert len(router.store.cases) == 1
    linked = router.store.history[-1]
    assert (linked.action, linked.detail["key"], linked.detail["reports_count"]) == (
        "report-linked",
        "uprn",
        2,
    )
    assert exact_key_lock_key(family, "uprn:38164538") in router.store.locks[-1]
    # The house across the street, 8 m away: another property, another problem.
    await router.route(_report(8, uprn="38164540"))
    assert len(router.store.cases) == 2


async def test_reports_of_one_street_light_make_one_case_until_it_has_been_closed_three_weeks():
    router = Router()
    light = {"category": "street-lighting", "lat": None, "lon": None, "postcode": "L1 4DS"}
    # Two residents in one batch, neither with a point: the asset is the place.
    await router.route(
        report_received(received_at=NOW, asset_id="SL-00417", **light),
        report_received(received_at=NOW, asset_id="SL-00417", **light),
    )
    # A third a day later, with a point 250 m from anything (the search finds the case by its asset).
    router.now = NOW + timedelta(days=1)
    await router.route(_report(250, category="street-lighting", asset_id="SL-00417", received_at=router.now))
    assert [case.row.reports_count for case in router.store.cases.values()] == [3]
    # Its neighbour is another light.
    await router.route(report_received(received_at=router.now, asset_id="SL-00418", **light))
    assert len(router.store.cases) == 2
    # Fixed and closed; reported again three weeks later: a new fault, a new case.
    (first, _) = router.store.cases
    router.store.close(first, router.now)
    router.now += timedelta(weeks=3)
    await router.route(report_received(received_at=router.now, asset_id="SL-00417", **light))
    assert len(router.store.cases) == 3
