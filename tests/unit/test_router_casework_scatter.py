"""plan_batch keeps each case's scatter (how far its reports' points lie from their mean) as reports join,
so the detector can learn the GPS error at that place instead of being told it (issue 17 item 1)."""

from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from caseway_router.domain.casework import Joined, Opened, plan_batch
from caseway_router.domain.duplicates import scatter_m2
from caseway_router.research.evaluate import NYC_RULES, Request, prepared

NOW = datetime(2026, 11, 23, 10, tzinfo=UTC)
LAT, LON = 53.4084, -2.9916
METRE = 1 / 111_195


def _request(index: int, metres_north: float) -> Request:
    return Request(
        index=index,
        created=NOW + timedelta(minutes=index),
        complaint="HEATING",
        descriptor="HEAT",
        location_type=None,
        address=None,
        lat=LAT + metres_north * METRE,
        lon=LON,
    )


def test_a_case_keeps_the_scatter_of_its_points_as_reports_join():
    requests = [_request(i, north) for i, north in enumerate((0.0, 6.0, -3.0, 9.0))]
    items = [prepared(r, NYC_RULES) for r in requests]
    plan = plan_batch(
        items, [[] for _ in items], new_case_id=[UUID(int=i + 1) for i in range(4)], cell_m=120, now=NOW
    )
    assert isinstance(plan.outcomes[0], Opened)
    assert all(isinstance(o, Joined) for o in plan.outcomes[1:])
    case = plan.new_cases[0].candidate
    assert case.points_count == 4
    expected = scatter_m2((r.lat, r.lon) for r in requests if r.lat is not None and r.lon is not None)
    assert case.spread_m2 == pytest.approx(expected, rel=1e-3)


def test_a_stored_case_gets_its_points_count_from_the_store():
    first = prepared(_request(0, 0.0), NYC_RULES)
    opened = plan_batch([first], [[]], new_case_id=[UUID(int=1)], cell_m=120, now=NOW)
    stored = opened.new_cases[0].candidate
    later = prepared(_request(1, 5.0), NYC_RULES)
    plan = plan_batch([later], [[(stored, 1)]], new_case_id=[UUID(int=2)], cell_m=120, now=NOW)
    joined = plan.outcomes[0]
    assert isinstance(joined, Joined)
    assert joined.case.candidate.points_count == 2
    assert joined.case.candidate.spread_m2 == pytest.approx(12.5, rel=1e-3)  # each 2.5 m from the mean
