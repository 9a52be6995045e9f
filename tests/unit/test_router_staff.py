"""The router's staff domain, pure: masking residents' contact details, who may see which case, who is
asking (the sign-on proxy's header only from the proxy), possible duplicates from history, and the map."""

from datetime import UTC, datetime

import pytest

from caseway_router.domain.access import (
    Identified,
    IdentityRules,
    Refused,
    StaffMember,
    TeamScope,
    identify,
)
from caseway_router.domain.casefile import is_overdue, possible_duplicates
from caseway_router.domain.maps import Area, Mark, draw_map
from caseway_router.domain.masking import EMAIL_MASK, PHONE_MASK, mask_contact_details


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("call me on 07700 900123 please", f"call me on {PHONE_MASK} please"),
        ("ring 0151 233 3000.", f"ring {PHONE_MASK}."),
        ("+44 (0)151 233-3000", PHONE_MASK),
        ("07700900123 or 0044 7700 900 123", f"{PHONE_MASK} or {PHONE_MASK}"),
        ("email j.smith@example.com now", f"email {EMAIL_MASK} now"),
        ("j dot smith at example dot com", EMAIL_MASK),
        ("jsmith(at)example(dot)co(dot)uk", EMAIL_MASK),
    ],
)
def test_contact_details_are_masked(text, expected):
    assert mask_contact_details(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "the bins at the back dot the pavement",
        "outside 12 Bold Street L1 4DS on 12/03/2026 14:30",
        "see case LV-2026-000123",
        "12.03.2026 14:30, 3 bags",
    ],
)
def test_what_is_not_contact_details_is_left_as_written(text):
    assert mask_contact_details(text) == text


N01, N02 = "N01 City Centre", "N02 North Docks"
STREETSCENE_N01 = TeamScope("streetscene-n01", "S", "streetscene", frozenset({N01}))
HIGHWAYS_CITY = TeamScope("highways-city", "H", "highways")


def test_a_team_sees_its_departments_cases_in_its_neighbourhoods_and_a_manager_all_of_theirs():
    officer = StaffMember("o", "O", teams=(STREETSCENE_N01,))
    assert officer.may_see(N01, ["streetscene", "env-crime"])
    assert not officer.may_see(N02, ["streetscene"])
    assert not officer.may_see(N01, ["highways"])
    assert not officer.may_see(None, ["streetscene"])
    highways = StaffMember("h", "H", teams=(HIGHWAYS_CITY,))
    assert highways.may_see(N02, ["highways"])
    manager = StaffMember("m", "M", manages=frozenset({N01}))
    assert manager.may_see(N01, ["anything"])
    assert not manager.may_see(N02, ["streetscene"])
    assert manager.board_departments(N01) is None
    assert officer.board_departments(N01) == {"streetscene"}


RULES = IdentityRules(header="X-Caseway-Staff", trusted_proxies=("10.0.0.0/29",), development_user="dev")


def test_the_staff_header_is_believed_only_from_the_proxy():
    assert identify(RULES, client="10.0.0.3", header_value="m") == Identified("m", "proxy")
    forged = identify(RULES, client="192.0.2.7", header_value="m")
    assert isinstance(forged, Refused)
    assert forged.status == 403
    assert identify(RULES, client="127.0.0.1", header_value="m") == forged
    assert isinstance(identify(RULES, client="127.0.0.1", header_value=None), Refused)  # proxy configured
    local = IdentityRules(header="X-Caseway-Staff", trusted_proxies=(), development_user="dev")
    assert identify(local, client="127.0.0.1", header_value=None) == Identified("dev", "development")
    refused = identify(local, client="192.0.2.7", header_value=None)
    assert isinstance(refused, Refused)
    assert refused.status == 401
    assert identify(local, client="127.0.0.1", header_value="dev").status == 403  # type: ignore[union-attr]


def test_possible_duplicates_are_those_flagged_and_not_yet_reviewed():
    at = datetime(2026, 11, 2, tzinfo=UTC)
    history = [
        (
            at,
            "flagged",
            {"flag": "possible-duplicate", "reason": "may be the same problem as LV-1 (score 0.010)"},
        ),
        (
            at,
            "flagged",
            {"flag": "possible-duplicate", "reason": "may be the same problem as LV-2 (score 0.020)"},
        ),
        (at, "duplicate-rejected", {"other": "LV-1"}),
    ]
    [pending] = possible_duplicates(history)
    assert (pending.reference, pending.score) == ("LV-2", 0.02)
    assert is_overdue(datetime(2026, 11, 1, tzinfo=UTC), "open", at)
    assert not is_overdue(datetime(2026, 11, 1, tzinfo=UTC), "closed", at)


def test_the_map_is_self_contained_svg_with_overdue_marks_as_squares():
    ward = Area("Ward <A>", ([(-2.99, 53.40), (-2.97, 53.40), (-2.97, 53.41), (-2.99, 53.40)],))
    svg = draw_map([ward], [Mark(53.405, -2.98, "LV-1", href="/cases/LV-1", overdue=True)], title="t")
    assert svg.startswith("<svg")
    assert 'role="img"' in svg
    assert "<rect x=" in svg  # the overdue square
    assert "Ward &lt;A&gt;" in svg
    assert "http" not in svg.replace("http://www.w3.org/2000/svg", "")  # nothing from outside
