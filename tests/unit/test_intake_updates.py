"""The service-request-updates extension's pure side: which update each case event makes, in the extended
statuses FixMyStreet reads (mysociety/fixmystreet at 84d7c80c, perllib/Open311.pm map_state), what a
resident's posted update asks for, and photos judged by their bytes.
"""

import uuid
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from caseway_intake.domain.media import image_type, read_photo
from caseway_intake.domain.open311 import PostedUpdate, parse_update
from caseway_intake.domain.updates import STATUSES, case_update, in_rounds, resident_action, update_id
from caseway_intake.domain.validation import Invalid
from caseway_shared.events import (
    CaseAssigned,
    CaseClosed,
    CaseFlagged,
    CaseNoteAdded,
    CaseOpened,
    CaseStatusChanged,
    ReportLinked,
)
from factories import case_opened, report_linked

AT = datetime(2026, 11, 23, 9, tzinfo=UTC)
CASE = {"case_id": uuid.uuid4(), "reference": "LV-2026-000042", "occurred_at": AT}


def _opened() -> CaseOpened:
    return case_opened(departments=("highways",), reference=CASE["reference"], at=AT)


def test_an_opened_case_tells_its_first_report_the_reference():
    event = _opened()
    update = case_update(event, agency="Highways")
    assert update is not None
    assert (update.status, update.report_id) == ("OPEN", event.report_id)
    assert "LV-2026-000042" in update.description
    assert "Highways" in update.description


def test_a_linked_report_is_a_duplicate_pointing_at_the_case_that_carries_on():
    linked = report_linked(_opened(), 3, at=AT)
    update = case_update(linked)
    assert update is not None
    assert (update.status, update.report_id) == ("DUPLICATE", linked.report_id)
    assert "LV-2026-000042" in update.description
    assert "3 reports" in update.description


@pytest.mark.parametrize(("status", "expected"), [("open", "OPEN"), ("acknowledged", "INVESTIGATING")])
def test_status_changes_map_to_the_extended_vocabulary_for_every_report_of_the_case(status, expected):
    update = case_update(CaseStatusChanged(**CASE, status=status, note=None))
    assert update is not None
    assert update.status == expected
    assert update.report_id is None  # every report of the case
    assert update.external_status_code == status
    assert update.description


@pytest.mark.parametrize("status", ["in-progress", "odd", "resolved"])
def test_a_status_outside_the_contract_is_refused_where_it_is_read(status):
    """The case statuses are an enum of the shared contract: a status no Caseway service sends is a
    malformed event (dead-lettered with its reasons), not guessed at."""
    with pytest.raises(ValidationError, match="status"):
        CaseStatusChanged(**CASE, status=status, note=None)


@pytest.mark.parametrize(
    ("resolution", "expected"),
    [
        (None, "CLOSED"),
        ("fixed", "FIXED"),
        ("not-councils-responsibility", "NOT_COUNCILS_RESPONSIBILITY"),
        ("no-further-action", "NO_FURTHER_ACTION"),
        ("internal-referral", "INTERNAL_REFERRAL"),
        ("duplicate", "DUPLICATE"),
    ],
)
def test_a_close_says_why_and_the_status_change_to_closed_adds_nothing(resolution, expected):
    update = case_update(CaseClosed(**CASE, note="Done", resolution=resolution))
    assert update is not None
    assert (update.status, update.description) == (expected, "Done")
    assert expected in STATUSES
    assert case_update(CaseStatusChanged(**CASE, status="closed")) is None


def test_flags_and_assignments_are_not_shown_to_residents():
    assert case_update(CaseFlagged(**CASE, flag="near-boundary", reason="x")) is None
    assert case_update(CaseAssigned(**CASE, department="highways", role="lead", neighbourhood=None)) is None


def test_update_ids_are_stable_per_report_and_cause():
    report = uuid.uuid4()
    assert update_id(report, "k") == update_id(report, "k")
    assert update_id(report, "k") != update_id(uuid.uuid4(), "k")


def test_what_a_resident_update_asks_for():
    assert resident_action("REOPEN", "open") == "reopen"
    assert resident_action("OPEN", "closed") == "reopen"  # FixMyStreet without extended statuses
    assert resident_action("OPEN", "open") == "note"
    assert resident_action("FIXED", "open") == "note"
    assert resident_action(None, "closed") == "note"


def test_a_posted_update_is_read_with_every_reason():
    parsed = parse_update(
        {
            "service_request_id": ["81"],
            "status": ["open"],
            "description": ["Still there\x0b"],
            "last_name": ["-"],
            "first_name": ["Test"],
            "media_url": ["https://fms.example/c/1.jpeg", "https://fms.example/c/2.jpeg"],
            "email_alerts_requested": ["FALSE"],
        }
    )
    assert isinstance(parsed, PostedUpdate)
    assert parsed.status == "OPEN"
    assert parsed.form.description == "Still there\n"
    assert parsed.form.contact is not None
    assert parsed.form.contact.name == "Test"
    assert len(parsed.media_urls) == 2
    bad = parse_update({"status": ["LOST"], "media_url": ["file:///etc/passwd"]})
    assert isinstance(bad, Invalid)
    assert {reason.split(":")[0] for reason in bad.reasons} == {"service_request_id", "status", "media_url"}


def test_photos_are_judged_by_their_bytes():
    assert image_type(b"\xff\xd8\xff\xe0rest") == "image/jpeg"
    assert image_type(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert image_type(b"<svg/>") is None
    assert (
        read_photo("photo1", "x.jpeg", b"%PDF", max_bytes=100) == "photo1: not a JPEG, PNG, GIF or WebP image"
    )
    assert read_photo("photo1", None, b"\xff\xd8\xff" * 50, max_bytes=100) == "photo1: larger than 100 bytes"
    assert read_photo("photo1", None, b"", max_bytes=100) == "photo1: an empty file"


def test_a_public_note_is_an_update_that_keeps_the_status_and_internal_or_residents_own_notes_are_not():
    public = CaseNoteAdded(
        **CASE,
        note_id=7,
        visibility="public",
        text="Crew booked; call [phone hidden]",
        actor="streetscene-n01",
    )
    update = case_update(public)
    assert update is not None
    assert update.status is None  # unchanged: each report keeps the status its last update showed
    assert update.description == "Crew booked; call [phone hidden]"
    assert update.external_status_code == "note"
    assert update.report_id is None  # every report of the case
    assert update_id(uuid.UUID(int=1), update.key) == update_id(uuid.UUID(int=1), update.key)
    assert case_update(CaseNoteAdded(**CASE, note_id=8, visibility="internal", actor="x")) is None
    assert case_update(CaseNoteAdded(**CASE, note_id=9, visibility="public", text="  ", actor="x")) is None
    # A resident's own comment comes back from the router: it is in the feed already, under its own id.
    resident = CaseNoteAdded(
        **CASE, note_id=10, visibility="public", text="Still there", actor="resident:open311"
    )
    assert case_update(resident) is None


def test_rounds_keep_each_case_and_report_in_order_and_never_twice_in_a_round() -> None:
    first = case_opened()
    second = case_opened()
    joined = report_linked(first, 2)
    ack = CaseStatusChanged(**CASE | {"case_id": first.case_id}, status="acknowledged")
    moved = ReportLinked(
        occurred_at=AT,
        case_id=second.case_id,
        reference=second.reference,
        report_id=joined.report_id,
        reports_count=2,
        score=1.0,
        from_case_id=first.case_id,
    )
    closed_first = CaseClosed(**CASE | {"case_id": first.case_id})
    events = [first, second, joined, ack, moved, closed_first]

    rounds = in_rounds(events)

    assert rounds == [[first, second], [joined], [ack], [moved], [closed_first]]
    # the mover waits for the case it leaves (ack) and its own report's earlier link; the close of the case
    # it left waits for the move, as it came after it
    assert sorted(map(id, (event for group in rounds for event in group))) == sorted(map(id, events))
