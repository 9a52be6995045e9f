"""The router's pure domain: places, routes, due times."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from caseway_router.adapters.council_files import load_postcode_hints
from caseway_router.domain.due import due_at
from caseway_router.domain.places import PlaceFinder, Placement, postcode_district
from caseway_router.domain.routing import decide_route
from caseway_shared.council import LIVERPOOL_DIR, Target, load_council
from caseway_shared.events import Place
from factories import report_received

COUNCIL = load_council()
PLACES = PlaceFinder(COUNCIL)
LONDON = ZoneInfo("Europe/London")


def _report(category="litter", *, description="Litter everywhere", **options):
    """A report received on Monday 23 November 2026 at 10:00 UTC (its due time counts from then)."""
    return report_received(
        category=category,
        description=description,
        received_at=datetime(2026, 11, 23, 10, tzinfo=UTC),
        **options,
    )


def test_every_ward_centroid_is_placed_in_its_own_ward_and_neighbourhood():
    for feature in COUNCIL.wards_geojson["features"]:
        props = feature["properties"]
        placed = PLACES.locate_point(props["centroid_lat"], props["centroid_lon"])
        if placed.ward_code is None:  # a centroid can fall outside a concave ward; skip those
            continue
        assert placed.ward_code == props["WD23CD"]
        assert placed.neighbourhood == COUNCIL.neighbourhood_of_ward[props["WD23NM"]]


def test_a_point_outside_the_city_goes_to_triage_with_a_reason():
    placed = PLACES.locate_point(51.5, -0.12)
    assert placed.neighbourhood is None
    assert placed.triage_reason


def test_a_report_without_coordinates_is_placed_by_its_ward_or_triaged():
    assert PLACES.locate(Place(ward_code="E05015277")).ward_name == "Aigburth"
    assert PLACES.locate(Place(address="1 Some Street")).triage_reason
    assert PLACES.locate(Place(ward_code="E05999999")).triage_reason


def test_points_near_a_neighbourhood_boundary_are_flagged():
    # Walk across the city west to east: somewhere the walk crosses neighbourhoods, and points within
    # 25 m of that crossing must be flagged, while points far from it are not.
    flagged = [PLACES.locate_point(53.41, -2.99 + i * 0.00005) for i in range(1200)]
    hoods = [p.neighbourhood for p in flagged]
    crossings = [i for i in range(1, len(hoods)) if hoods[i] != hoods[i - 1] and hoods[i] and hoods[i - 1]]
    assert crossings
    first = crossings[0]
    assert flagged[first].near_boundary
    assert flagged[first - 1].near_boundary
    assert not flagged[first + 40].near_boundary or (first + 40) in crossings


def test_litter_on_housing_land_also_involves_housing():
    placement = Placement("E05015288", "City Centre North", "N01")
    assert decide_route(_report(land_type="housing"), placement, COUNCIL).departments == (
        "streetscene",
        "housing",
    )
    assert decide_route(_report(), placement, COUNCIL).departments == ("streetscene",)


def test_fly_tipping_involves_three_departments_with_streetscene_leading():
    route = decide_route(_report("fly-tipping"), Placement("x", "y", "N01"), COUNCIL)
    assert route.lead_department == "streetscene"
    assert route.departments == ("streetscene", "env-crime", "city-watch")


def test_a_dangerous_pothole_is_urgent_and_due_within_24_hours():
    route = decide_route(
        _report("pothole", description="Deep and dangerous pothole"), Placement("x", "y", "N01"), COUNCIL
    )
    assert route.priority == "urgent"
    assert route.due_at == datetime(2026, 11, 24, 10, tzinfo=UTC)


def test_unplaced_reports_are_flagged_for_triage():
    route = decide_route(
        _report(lat=None, lon=None, address="somewhere"),
        Placement(None, None, None, triage_reason="why"),
        COUNCIL,
    )
    assert ("needs-triage", "why") in route.flags


@pytest.mark.parametrize(
    ("received", "days", "due"),
    [
        # Monday 10:00 + 2 working days = Wednesday 10:00.
        (datetime(2026, 11, 23, 10, tzinfo=LONDON), 2, datetime(2026, 11, 25, 10, tzinfo=LONDON)),
        # Friday 10:00 + 1 = Monday.
        (datetime(2026, 11, 27, 10, tzinfo=LONDON), 1, datetime(2026, 11, 30, 10, tzinfo=LONDON)),
        # Christmas Eve 2026 (Thursday) + 1: Christmas Day and Boxing Day (substitute Mon 28th) are holidays.
        (datetime(2026, 12, 24, 10, tzinfo=LONDON), 1, datetime(2026, 12, 29, 10, tzinfo=LONDON)),
        # Across the clock change (29 March 2026): the local time stays 10:00.
        (datetime(2026, 3, 27, 10, tzinfo=LONDON), 1, datetime(2026, 3, 30, 10, tzinfo=LONDON)),
    ],
)
def test_working_days_skip_weekends_and_bank_holidays(received, days, due):
    result = due_at(
        received, Target(working_days=days), timezone="Europe/London", country="GB", subdivision="ENG"
    )
    assert result == due
    assert result.utcoffset() == due.utcoffset()


def test_a_postcode_district_in_one_ward_places_the_report_approximately_and_others_go_to_triage():
    places = PlaceFinder(COUNCIL, load_postcode_hints(LIVERPOOL_DIR))
    assert postcode_district("l26 1ab") == "L26"
    assert postcode_district("L178XY") == "L17"
    placed = places.locate(Place(postcode="L26 1AB"))
    assert placed.ward_code is not None
    assert placed.approximate
    assert "spans" in (places.locate(Place(postcode="L17 8XY")).triage_reason or "")
    assert "not in this council" in (places.locate(Place(postcode="M1 1AA")).triage_reason or "")
    assert places.locate(Place(postcode="nonsense")).triage_reason
