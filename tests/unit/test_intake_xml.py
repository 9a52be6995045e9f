"""Every XML answer parses, whatever text was stored (issue 14, item 2): any Unicode a client or another
channel sends, control characters and lone surrogates included, comes out as well-formed XML 1.0, with
every character XML can carry kept as it was.
"""

# ruff: noqa: S314 - the XML parsed is our own answer

import uuid
from datetime import UTC, datetime
from xml.etree import ElementTree as ET

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from caseway_intake.domain.formats import clean_text, render, xml_safe
from caseway_intake.domain.open311 import (
    RequestView,
    ServiceRequest,
    UpdateView,
    errors,
    parse_service_request,
    request_entry,
    update_entry,
)
from caseway_shared.council import load_council

COUNCIL = load_council()
NOW = datetime(2026, 11, 23, 9, tzinfo=UTC)
RELAXED = settings(suppress_health_check=[HealthCheck.too_slow], deadline=None, max_examples=300)
any_text = st.text(alphabet=st.characters(), max_size=200)


def _parsed_text(document: bytes, path: str) -> str:
    return ET.fromstring(document).findtext(path) or ""


def _as_xml_keeps(text: str) -> str:
    # What a conforming parser gives back: characters XML cannot carry as U+FFFD, line ends normalised.
    return xml_safe(text).replace("\r\n", "\n").replace("\r", "\n")


@RELAXED
@given(description=any_text, address=any_text, notes=any_text)
def test_a_request_with_any_text_renders_as_xml_that_parses(description, address, notes):
    view = RequestView(
        report_id=uuid.uuid4(),
        event={
            "category": "pothole",
            "received_at": NOW.isoformat(),
            "description": description,
            "place": {"address": address},
        },
        accepted_at=NOW,
        status_notes=notes,
    )
    document = render("xml", "service_requests", [request_entry(view, COUNCIL)])
    root = ET.fromstring(document)
    assert (root.findtext("request/description") or "") == _as_xml_keeps(description)
    assert (root.findtext("request/address") or "") == _as_xml_keeps(address)


@RELAXED
@given(description=any_text)
def test_an_update_with_any_text_renders_as_xml_that_parses(description):
    view = UpdateView(
        update_id="u1",
        report_id=uuid.uuid4(),
        status="OPEN",
        description=description,
        external_status_code=None,
        media_url=None,
        updated_at=NOW,
    )
    document = render("xml", "service_request_updates", [update_entry(view)])
    assert _parsed_text(document, "request_update/description") == _as_xml_keeps(description)


@RELAXED
@given(name=any_text, value=any_text)
def test_errors_naming_any_field_render_as_xml_that_parses(name, value):
    result = parse_service_request({name: [value, value], "service_code": ["nope"]}, COUNCIL)
    reasons = getattr(result, "reasons", ())
    ET.fromstring(render("xml", "errors", errors(400, list(reasons))))


@RELAXED
@given(description=any_text)
def test_what_is_accepted_is_text_xml_can_carry(description):
    result = parse_service_request(
        {"service_code": ["pothole"], "address_string": ["Bold St"], "description": [description]}, COUNCIL
    )
    if isinstance(result, ServiceRequest):
        stored = result.form.description or ""
        assert stored == clean_text(stored)
        assert xml_safe(stored) == stored


def test_a_vertical_tab_becomes_a_line_break_and_other_controls_a_replacement():
    assert clean_text("one\x0btwo\x0cthree\x1bfour") == "one\ntwo\nthree\ufffdfour"
    assert clean_text("tab\tline\nreturn\r") == "tab\tline\nreturn\r"
    assert xml_safe("\ud800 \ufffe \U0001f600") == "\ufffd \ufffd \U0001f600"
