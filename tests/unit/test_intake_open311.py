"""Open311's pure side: a POST's fields read into a report with every reason at once, and the spec's
shapes for services, definitions, requests and errors in JSON and XML.
"""

# ruff: noqa: S314, S106 - the XML parsed is our own answer; "token" values are test data, not secrets

import uuid
from datetime import UTC, datetime
from xml.etree import ElementTree as ET

from caseway_intake.domain.formats import render
from caseway_intake.domain.open311 import (
    RequestView,
    ServiceRequest,
    accept_service_request,
    errors,
    parse_service_request,
    request_entry,
    service_definition,
    service_list,
)
from caseway_intake.domain.validation import Invalid
from caseway_shared.council import load_council

COUNCIL = load_council()
NOW = datetime(2026, 11, 23, 9, tzinfo=UTC)


def _fields(**overrides):
    fields = {"service_code": ["pothole"], "lat": ["53.4"], "long": ["-2.98"], "description": ["Deep hole"]}
    fields.update(overrides)
    return {name: values for name, values in fields.items() if values is not None}


def test_a_valid_request_becomes_a_report_without_contact_details():
    parsed = parse_service_request(
        _fields(
            email=["jo@example.net"],
            first_name=["Jo"],
            last_name=["Bloggs"],
            **{"attribute[depth-cm]": ["12"], "attribute[where][]": ["road", "pavement"]},
        ),
        COUNCIL,
    )
    assert isinstance(parsed, ServiceRequest)
    assert parsed.contact is not None
    assert parsed.contact.name == "Jo Bloggs"
    accepted = accept_service_request(
        parsed, key_name="app", request_key="r1", client_key=None, token="t1", now=NOW
    )
    assert accepted.event.category == "pothole"
    assert accepted.event.attributes == {"depth-cm": "12", "where": ("road", "pavement")}
    assert "jo@example.net" not in accepted.event.model_dump_json()
    assert "Bloggs" not in accepted.event.model_dump_json()
    assert accepted.client_key is None


def test_the_same_client_key_gives_the_same_report_id_and_another_key_holder_does_not():
    parsed = parse_service_request(_fields(), COUNCIL)
    assert isinstance(parsed, ServiceRequest)

    def report(key_name, request_key, client_key):
        return accept_service_request(
            parsed, key_name=key_name, request_key=request_key, client_key=client_key, token="t", now=NOW
        ).event.report_id

    assert report("app", "r1", "k") == report("app", "r2", "k")
    assert report("app", "r1", "k") != report("other", "r1", "k")
    assert report("app", "r1", None) != report("app", "r2", None)


def test_every_reason_at_once():
    result = parse_service_request(
        _fields(
            service_code=["pothole"],
            lat=["91"],
            long=None,
            email=["nope"],
            phone=["call me"],
            media_url=["ftp:/x"],
            address_id=["A" * 129],
            description=["x" * 4001],
            **{"attribute[depth-cm]": ["deep"], "attribute[where]": ["sky"], "attribute[size]": ["big"]},
        ),
        COUNCIL,
    )
    assert isinstance(result, Invalid)
    fields = {reason.split(":")[0] for reason in result.reasons}
    assert {
        "lat",
        "email",
        "phone",
        "media_url",
        "address_id",
        "description",
        "attribute[depth-cm]",
        "attribute[where]",
        "lat, long",
    } <= fields
    # An attribute the service does not declare is kept, not refused (FixMyStreet sends its own).
    assert "attribute[size]" not in fields
    assert not any("x" * 20 in reason or "nope" in reason for reason in result.reasons)


def test_a_location_and_a_known_service_are_needed():
    result = parse_service_request(_fields(service_code=["teleport"], lat=None, long=None), COUNCIL)
    assert isinstance(result, Invalid)
    assert "location: give lat and long, address_string or address_id" in result.reasons
    assert any(reason.startswith("service_code:") for reason in result.reasons)
    assert isinstance(
        parse_service_request(_fields(lat=None, long=None, address_id=["100"]), COUNCIL), ServiceRequest
    )


def test_repeated_fields_nul_and_unknown_fields():
    result = parse_service_request(_fields(lat=["1", "2"], description=["a\x00b"]), COUNCIL)
    assert isinstance(result, Invalid)
    assert "lat: given more than once" in result.reasons
    assert "description: contains a NUL character" in result.reasons
    # Fields other servers understand are ignored, so their clients still work here.
    assert isinstance(
        parse_service_request(_fields(media=["x"], jurisdiction_id=["x"]), COUNCIL), ServiceRequest
    )


def test_services_and_definitions_have_the_spec_shape():
    entries = {entry["service_code"]: entry for entry in service_list(COUNCIL)}
    assert entries["fly-tipping"]["metadata"] is True
    definition = service_definition(COUNCIL.categories["pothole"])
    depth, where = definition["attributes"]
    assert (depth["order"], where["order"]) == (1, 2)
    assert "values" not in depth
    assert where["datatype"] == "multivaluelist"
    xml = ET.fromstring(render("xml", "service_definition", definition))
    assert xml.findtext("attributes/attribute/variable") == "true"
    assert [v.findtext("key") for v in xml.findall("attributes/attribute/values/value")] == [
        "road",
        "pavement",
        "cycle-lane",
    ]


def test_a_request_entry_and_errors_in_xml():
    report_id = uuid.uuid4()
    view = RequestView(
        report_id=report_id,
        event={
            "category": "pothole",
            "received_at": "2026-11-23T09:00:00+00:00",
            "description": "Deep",
            "place": {"point": {"lat": 53.4, "lon": -2.9}, "address": "Bold St", "uprn": "100"},
            "attachments": ["https://example.org/a.jpg"],
        },
        accepted_at=NOW,
        status="closed",
        status_notes="Filled",
        reference="LV-1",
    )
    entry = request_entry(view, COUNCIL)
    assert entry["service_request_id"] == str(report_id)
    assert entry["status"] == "closed"
    assert entry["long"] == -2.9
    # A property's UPRN: private property, so no address and no property id (issue 13 item 6).
    assert entry["address_id"] is None
    assert entry["address"] is None
    assert entry["requested_datetime"] == "2026-11-23T09:00:00+00:00"
    xml = ET.fromstring(render("xml", "service_requests", [entry]))
    assert xml.findtext("request/status_notes") == "Filled"
    assert xml.find("request/expected_datetime").text is None
    xml = ET.fromstring(render("xml", "errors", errors(400, ["a: bad", "b: worse"])))
    assert [e.findtext("description") for e in xml.findall("error")] == ["a: bad", "b: worse"]
    assert render("json", "errors", errors(404, ["x"])) == b'[{"code":404,"description":"x"}]'
