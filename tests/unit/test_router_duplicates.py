"""The duplicate detector is a pure function: a report and candidate cases in, a decision out."""

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from caseway_router.domain.duplicates import (
    CandidateCase,
    DuplicateRules,
    Link,
    NewCase,
    PossibleDuplicate,
    ReportFacts,
    Scatter,
    decide,
    normalise_address,
    place_agreement,
    scatter_m2,
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
    # 35 m from a case whose four points lie close together, with a differing detail: not sure enough to
    # link, too close to ignore.
    case = _case(metres_north=35, detail="bags", reports=4, spread_m2=150.0)
    decision = decide(_report(detail="hazardous"), [case], RULES, now=NOW)
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


def test_the_gps_error_is_learned_from_the_case_own_scatter_not_configured():
    # Five reports scattered over tens of metres (phones with large errors) and five within a few metres:
    # a report 50 m away joins the first, not the second. Nobody told the detector either error.
    loose = _case(metres_north=50, reports=5, spread_m2=5 * 2 * 35.0**2)
    tight = _case(metres_north=50, reports=5, spread_m2=5 * 2 * 4.0**2)
    assert isinstance(decide(_report(), [loose], RULES, now=NOW), Link)
    assert not isinstance(decide(_report(), [tight], RULES, now=NOW), Link)


def test_a_lone_report_has_a_heavy_tail_not_a_fixed_error():
    lone = _case(reports=1)
    near, middle, far = (place_agreement(d, lone, RULES) for d in (5, 30, 60))
    assert near > middle > far > 0
    # A Gaussian with the prior's 12 m would call 60 m impossible (e^-6.25 / 2 ~ 0.002): unknown errors
    # keep it plausible.
    assert far > 0.02


def test_tight_cases_nearby_sharpen_a_lone_case():
    lone = _case(reports=1)
    alone = place_agreement(30, lone, RULES)
    among_tight = place_agreement(30, lone, RULES, nearby=Scatter(joins=12, spread_m2=12 * 2 * 3.0**2))
    among_loose = place_agreement(30, lone, RULES, nearby=Scatter(joins=12, spread_m2=12 * 2 * 30.0**2))
    assert among_tight < alone < among_loose


def test_scatter_is_the_sum_of_squared_distances_from_the_mean():
    assert scatter_m2([(LAT, LON)]) == 0
    two = scatter_m2([(LAT, LON), (LAT + 10 * METRE, LON)])
    assert abs(two - 50.0) < 0.1  # each 5 m from the mean


def test_a_stated_accuracy_sets_how_far_a_report_may_lie_from_the_case():
    case = _case(metres_north=40, reports=1)
    precise = score(_report(accuracy_m=5.0), case, RULES, now=NOW)
    unknown = score(_report(), case, RULES, now=NOW)
    rough = score(_report(accuracy_m=60.0), case, RULES, now=NOW)
    assert precise < unknown < rough
    assert not isinstance(
        decide(_report(accuracy_m=5.0), [_case(metres_north=40, reports=3)], RULES, now=NOW), Link
    )
    assert isinstance(decide(_report(accuracy_m=60.0), [case], RULES, now=NOW), Link)
    assert isinstance(decide(_report(accuracy_m=5.0), [_case(metres_north=4)], RULES, now=NOW), Link)


# --- exact keys first, and time (issue 17 item 3) -----------------------------------------------------------


def test_the_same_property_links_with_certainty_however_far_apart_the_points_are():
    # 300 m apart (beyond the radius) or without any point: the UPRN says it is one property.
    for case in (_case(metres_north=300, uprn="38164538"), _case(lat=None, lon=None, uprn="38164538")):
        decision = decide(_report(uprn="38164538", text=None), [case], RULES, now=NOW)
        assert isinstance(decision, Link)
        assert decision.key == "uprn"
        assert decision.score > 0.95  # certain, but for an hour's decay


def test_two_properties_are_two_problems_even_across_the_street():
    # 15 m apart would link on the points alone; different UPRNs rule it out.
    assert isinstance(decide(_report(), [_case(metres_north=15)], RULES, now=NOW), Link)
    assert score(_report(uprn="38164538"), _case(metres_north=15, uprn="38164540"), RULES, now=NOW) == 0
    assert decide(_report(uprn="38164538"), [_case(metres_north=15, uprn="38164540")], RULES, now=NOW) == (
        NewCase()
    )


def test_one_asset_of_a_category_links_with_certainty_and_another_asset_is_ruled_out():
    lights = {"category": "street-lighting", "family": "lighting", "text": None}
    same = decide(
        _report(asset_id="SL-00417", **lights),
        [_case(metres_north=150, asset_id="SL-00417", **lights)],
        RULES,
        now=NOW,
    )
    assert isinstance(same, Link)
    assert same.key == "asset"
    other = _case(metres_north=10, asset_id="SL-00418", **lights)
    assert decide(_report(asset_id="SL-00417", **lights), [other], RULES, now=NOW) == NewCase()
    # An asset id of another category (another register) neither links nor rules out: the points decide.
    bracket = _case(metres_north=10, asset_id="SL-00418", **{**lights, "category": "lighting-bracket"})
    assert isinstance(decide(_report(asset_id="SL-00417", **lights), [bracket], RULES, now=NOW), Link)


def test_the_same_street_and_category_links_a_report_the_street_is_all_we_know_of():
    street = {"category": "pothole", "family": "road", "text": None}
    no_point = _report(lat=None, lon=None, usrn="11400123", **street)
    decision = decide(no_point, [_case(usrn="11400123", **street)], RULES, now=NOW)
    assert isinstance(decision, Link)
    assert decision.key == "usrn"
    # Another category on that street is not certain; two points say more than the street they share.
    assert decide(no_point, [_case(usrn="11400123", **{**street, "category": "gully"})], RULES, now=NOW) == (
        NewCase()
    )
    located = _report(usrn="11400123", **street)
    assert decide(located, [_case(metres_north=300, usrn="11400123", **street)], RULES, now=NOW) == NewCase()


def test_an_exact_key_wins_over_a_likelier_looking_case():
    by_key = _case("LV-2026-000002", metres_north=40, uprn="38164538")
    crowded = _case("LV-2026-000001", metres_north=3, reports=12)
    decision = decide(_report(uprn="38164538"), [crowded, by_key], RULES, now=NOW)
    assert isinstance(decision, Link)
    assert decision.case is by_key


def test_an_exact_key_links_within_the_window_but_not_a_case_closed_three_weeks_ago():
    bins = {"category": "litter", "uprn": "38164538"}
    open_case = _case(hours_ago=RULES.window_hours - 1, metres_north=200, **bins)
    assert isinstance(decide(_report(**bins), [open_case], RULES, now=NOW), Link)
    closed = _case(hours_ago=24 * 28, closed_at=NOW - timedelta(weeks=3), **bins)
    assert score(_report(**bins), closed, RULES, now=NOW) == 0


def test_the_score_halves_with_each_half_life_since_the_case_s_last_report():
    half_life = RULES.window_hours * RULES.half_life_share
    fresh = score(_report(), _case(metres_north=20, hours_ago=0), RULES, now=NOW)
    for lives in (0.5, 1, 1.5):
        aged = score(_report(), _case(metres_north=20, hours_ago=half_life * lives), RULES, now=NOW)
        assert aged == pytest.approx(fresh * 0.5**lives)


def test_an_old_open_case_needs_more_agreement_than_a_fresh_one():
    # A lone case 50 m away, of another category of the family: linked while its last report is an hour old,
    # not once it is 2.5 days old (the window is 3 days): 0.077 then, 0.025 now (it was 0.052 before the
    # decay, which kept the first half of the window flat and faded only to 0.5 at its end).
    report = _report(category="litter", text=None)
    assert isinstance(decide(report, [_case(metres_north=50, hours_ago=1)], RULES, now=NOW), Link)
    assert not isinstance(decide(report, [_case(metres_north=50, hours_ago=60)], RULES, now=NOW), Link)
