"""The contact-centre schema's optional location.accuracy_m reaches the router on ReportReceived's place
(issue 17 item 2), and the router's duplicate detection reads it."""

import json
from datetime import UTC, datetime

from caseway_intake.domain.normalise import normalise
from caseway_intake.domain.validation import Invalid, parse_contact_centre_event
from caseway_router.domain.casework import report_facts
from caseway_shared.contact_centre import ContactCentreReport
from caseway_shared.council import load_council

COUNCIL = load_council()
NOW = datetime(2026, 11, 23, tzinfo=UTC)


def _event(location):
    return json.dumps(
        {
            "source_system": "liverpool-direct",
            "source_id": "LD-1",
            "channel": "app",
            "received_at": "2026-11-23T09:00:00+00:00",
            "category": "pothole",
            "location": location,
            "description": "A deep pothole outside the school.",
        }
    ).encode()


def test_the_accuracy_of_a_point_is_carried_to_the_router():
    parsed = parse_contact_centre_event(_event({"lat": 53.4, "lon": -2.98, "accuracy_m": 12.5}))
    assert isinstance(parsed, ContactCentreReport)
    event = normalise(parsed, COUNCIL, now=NOW).event
    assert event.place.accuracy_m == 12.5
    assert report_facts(event, category="pothole", family="road").accuracy_m == 12.5


def test_without_an_accuracy_nothing_changes_and_a_nonsense_one_is_rejected():
    parsed = parse_contact_centre_event(_event({"lat": 53.4, "lon": -2.98}))
    assert isinstance(parsed, ContactCentreReport)
    assert normalise(parsed, COUNCIL, now=NOW).event.place.accuracy_m is None
    assert isinstance(
        parse_contact_centre_event(_event({"lat": 53.4, "lon": -2.98, "accuracy_m": -3})), Invalid
    )


def test_an_accuracy_without_a_point_is_dropped():
    parsed = parse_contact_centre_event(_event({"address": "12 Bold Street", "accuracy_m": 30}))
    assert isinstance(parsed, ContactCentreReport)
    assert normalise(parsed, COUNCIL, now=NOW).event.place.accuracy_m is None
