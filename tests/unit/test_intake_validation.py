"""Intake's pure validation and normalisation: every reason at once, categories mapped, ids stable."""

import json
from datetime import UTC, datetime

from caseway_intake.domain.categories import map_category
from caseway_intake.domain.normalise import normalise
from caseway_intake.domain.validation import Invalid, parse_contact_centre_event
from caseway_shared.contact_centre import ContactCentreReport
from caseway_shared.council import load_council
from caseway_shared.events import report_id_for

COUNCIL = load_council()


def _event(**overrides):
    body = {
        "source_system": "liverpool-direct",
        "source_id": "LD-1",
        "channel": "phone",
        "received_at": "2026-11-23T09:00:00+00:00",
        "category": "pothole",
        "location": {"lat": 53.4, "lon": -2.98},
        "description": "A deep pothole outside the school.",
    }
    body.update(overrides)
    return json.dumps(body).encode()


def test_a_valid_event_parses():
    assert isinstance(parse_contact_centre_event(_event()), ContactCentreReport)


def test_every_reason_is_given_at_once():
    result = parse_contact_centre_event(
        _event(channel="pigeon", location={"lat": 123, "lon": -2.9}, description="", received_at="yesterday")
    )
    assert isinstance(result, Invalid)
    fields = {reason.split(":")[0] for reason in result.reasons}
    assert {"channel", "location.lat", "description", "received_at"} <= fields
    assert result.source_id == "LD-1"


def test_not_json_and_not_an_object_are_rejected_with_a_reason():
    assert isinstance(parse_contact_centre_event(b"\xff\xfe not json"), Invalid)
    assert parse_contact_centre_event(b"[1, 2]") == Invalid(
        ("body: must be a JSON object",), kind="unreadable"
    )


def test_a_rejection_says_whether_the_body_was_unreadable_or_its_fields_invalid():
    unreadable = [b"\xff not json", b"[1, 2]", b" " * 70_000]
    assert [parse_contact_centre_event(value).kind for value in unreadable] == ["unreadable"] * 3
    assert parse_contact_centre_event(_event(channel="pigeon")).kind == "invalid"
    assert parse_contact_centre_event(_event(description="a\u0000b")).kind == "invalid"


def test_a_location_needs_something_to_go_on():
    result = parse_contact_centre_event(_event(location={}))
    assert isinstance(result, Invalid)
    assert any("location" in reason for reason in result.reasons)


def test_free_text_maps_to_a_category_and_unknown_text_to_triage():
    assert map_category(COUNCIL, code=None, text="Someone has FLY-TIPPED a sofa") == "fly-tipping"
    assert map_category(COUNCIL, code="Missed Bin", text=None) == "missed-bin"
    assert map_category(COUNCIL, code=None, text="the rats are back in the alley") == "pests"
    assert map_category(COUNCIL, code=None, text="something strange happened") == "triage"


def test_the_same_source_report_always_gets_the_same_id():
    assert report_id_for("a", "1") == report_id_for("a", "1")
    assert report_id_for("a", "1") != report_id_for("a", "2")
    assert report_id_for("a", "1") != report_id_for("b", "1")


def test_normalise_keeps_contact_details_out_of_the_event():
    parsed = parse_contact_centre_event(_event(reporter={"name": "Jo", "email": "jo@example.net"}))
    assert isinstance(parsed, ContactCentreReport)
    accepted = normalise(parsed, COUNCIL, now=datetime(2026, 11, 23, tzinfo=UTC))
    assert accepted.contact is not None
    assert accepted.contact.email == "jo@example.net"
    assert "jo@example.net" not in accepted.event.model_dump_json()
    assert accepted.event.category == "pothole"
