"""The duplicate detector is a pure function: a report and candidate cases in, a decision out."""

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from caseway_router.domain.duplicates import (
    CandidateCase,
    DuplicateRules,
    Link,
    NewCase,
    PossibleDuplicate,
    ReportFacts,
    decide,
    normalise_address,
    score,
)

NOW = datetime(2026, 11, 23, 10, tzinfo=UTC)
RULES = DuplicateRules(radius_m=60, window_hours=72, link_threshold=0.03, review_threshold=0.005)
LAT, LON = 53.4084, -2.9916
METRE = 1 / 111_195  # degrees of latitude


def _report(**changes):
    facts = {
        "category": "fly-tipping",
        "family": "waste-on-street",
        "received_at": NOW,
        "lat": LAT,
        "lon": LON,
        "text": "mattress and bags dumped by the gate",
    }
    return ReportFacts(**{**facts, **changes})


def _case(reference="LV-2026-000001", *, metres_north=0.0, reports=1, hours_ago=1.0, **changes):
    fields = {
        "case_id": uuid4(),
        "reference": reference,
        "category": "fly-tipping",
        "family": "waste-on-street",
        "lat": LAT + metres_north * METRE,
        "lon": LON,
        "reports_count": reports,
        "last_report_at": NOW - timedelta(hours=hours_ago),
        "text": "dumped mattress by the gate",
    }
    return CandidateCase(**{**fields, **changes})


def test_the_same_problem_a_few_metres_away_is_linked():
    decision = decide(_report(), [_case(metres_north=8)], RULES, now=NOW)
    assert isinstance(decision, Link)
    assert decision.score > 0.5


def test_nothing_nearby_opens_a_new_case():
    assert decide(_report(), [], RULES, now=NOW) == NewCase()
    assert isinstance(decide(_report(), [_case(metres_north=200)], RULES, now=NOW), NewCase)


def test_a_candidate_beyond_the_radius_or_the_window_scores_zero():
    assert score(_report(), _case(metres_north=61), RULES, now=NOW) == 0
    assert score(_report(), _case(hours_ago=73), RULES, now=NOW) == 0


def test_another_family_never_matches():
    assert score(_report(family="road"), _case(), RULES, now=NOW) == 0


def test_the_score_falls_with_distance_time_category_and_text():
    base = score(_report(), _case(metres_north=5), RULES, now=NOW)
    assert score(_report(), _case(metres_north=30), RULES, now=NOW) < base
    assert score(_report(), _case(metres_north=5, hours_ago=60), RULES, now=NOW) < base
    assert score(_report(category="litter"), _case(metres_north=5), RULES, now=NOW) < base
    assert score(_report(text="broken glass everywhere"), _case(metres_north=5), RULES, now=NOW) < base


def test_a_case_with_more_reports_knows_its_place_better():
    one = score(_report(), _case(metres_north=30, reports=1), RULES, now=NOW)
    many = score(_report(), _case(metres_north=30, reports=10), RULES, now=NOW)
    assert many < one  # its mean point is sharper, so 30 m away is less likely the same spot


def test_the_same_address_links_even_without_points_and_different_addresses_do_not():
    same = decide(
        _report(lat=None, lon=None, address="12 Bold St"),
        [_case(address="12 BOLD STREET", lat=None, lon=None)],
        RULES,
        now=NOW,
    )
    assert isinstance(same, Link)
    different = decide(_report(address="14 Bold St"), [_case(address="12 Bold Street")], RULES, now=NOW)
    assert not isinstance(different, Link)


def test_a_middle_score_is_a_possible_duplicate_for_review():
    # About 55 m away with a differing detail: not sure enough to link, too close to ignore.
    decision = decide(_report(detail="hazardous"), [_case(metres_north=55, detail="bags")], RULES, now=NOW)
    assert isinstance(decision, PossibleDuplicate)
    assert RULES.review_threshold <= decision.score < RULES.link_threshold


def test_the_case_many_residents_reported_wins_over_a_slightly_closer_single_report():
    small = _case("LV-2026-000002", metres_north=10, reports=1)
    big = _case("LV-2026-000001", metres_north=-12, reports=8)
    decision = decide(_report(), [small, big], RULES, now=NOW)
    assert isinstance(decision, Link)
    assert decision.case is big


def test_ties_go_to_the_older_reference_whatever_the_order():
    older, newer = _case("LV-2026-000001"), _case("LV-2026-000002")
    for order in ([older, newer], [newer, older]):
        decision = decide(_report(), order, RULES, now=NOW)
        assert isinstance(decision, Link)
        assert decision.case is older


def test_a_recently_closed_case_still_takes_reports_but_an_old_closed_one_does_not():
    recent = _case(closed_at=NOW - timedelta(hours=10))
    assert isinstance(decide(_report(), [recent], RULES, now=NOW), Link)
    old = _case(closed_at=NOW - timedelta(hours=RULES.closed_window_hours + 1))
    assert score(_report(), old, RULES, now=NOW) == 0


def test_addresses_are_compared_after_normalising_spelling():
    assert normalise_address("19 Bedford St.") == normalise_address("19 BEDFORD STREET")
    assert normalise_address("  ") is None
