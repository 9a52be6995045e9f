"""The street asset a report is about (a street light, gully or bin) reaches the router on ReportReceived's
place as `asset_id`, from the contact-centre schema's optional location.asset_id and from the Open311
attributes FixMyStreet sends for a selected asset (issue 17 item 3; docs/fixmystreet.md)."""

import json
from datetime import UTC, datetime

import pytest

from caseway_intake.domain.normalise import normalise
from caseway_intake.domain.open311 import ServiceRequest, accept_service_request, parse_service_request
from caseway_intake.domain.validation import Invalid, parse_contact_centre_event
from caseway_shared.contact_centre import ContactCentreReport
from caseway_shared.council import load_council

COUNCIL = load_council()
NOW = datetime(2026, 11, 23, tzinfo=UTC)


def _contact_centre(location):
    return json.dumps(
        {
            "source_system": "liverpool-direct",
            "source_id": "LD-7",
            "channel": "phone",
            "received_at": "2026-11-23T09:00:00+00:00",
            "category": "street-lighting",
            "location": location,
            "description": "The street light outside number 12 is out.",
        }
    ).encode()


def test_the_contact_centre_asset_id_is_carried_to_the_router():
    parsed = parse_contact_centre_event(_contact_centre({"lat": 53.4, "lon": -2.98, "asset_id": "SL-00417"}))
    assert isinstance(parsed, ContactCentreReport)
    event = normalise(parsed, COUNCIL, now=NOW).event
    assert event.place.asset_id == "SL-00417"


def test_an_asset_id_alone_is_no_location_and_a_malformed_one_is_rejected():
    assert isinstance(parse_contact_centre_event(_contact_centre({"asset_id": "SL-00417"})), Invalid)
    bad = parse_contact_centre_event(_contact_centre({"lat": 53.4, "lon": -2.98, "asset_id": "lamp 4 <b>"}))
    assert isinstance(bad, Invalid)
    assert any(reason.startswith("location.asset_id") for reason in bad.reasons)


def _open311(**attributes):
    fields = {"service_code": ["street-lighting"], "lat": ["53.4"], "long": ["-2.98"], "description": ["Out"]}
    fields.update({f"attribute[{name}]": [value] for name, value in attributes.items()})
    parsed = parse_service_request(fields, COUNCIL)
    assert isinstance(parsed, ServiceRequest)
    return parsed, accept_service_request(
        parsed,
        key_name="fms",
        request_key="r1",
        client_key=None,
        token="t",  # noqa: S106 - test data, not a secret
        now=NOW,
    ).event


# The attribute names FixMyStreet's cobrands give a selected asset (mysociety/fixmystreet): central_asset_id
# (Confirm back ends: data/test-asset-layers.yml, perllib/FixMyStreet/Cobrand/Gloucestershire.pm),
# feature_id (Oxfordshire: Cobrand/Oxfordshire.pm) and asset_id (Bristol's Open311 server:
# Cobrand/Bristol.pm).
@pytest.mark.parametrize("name", ["central_asset_id", "feature_id", "asset_id"])
def test_fixmystreet_s_asset_attributes_become_the_report_s_asset(name):
    parsed, event = _open311(**{name: "12041"})
    assert event.place.asset_id == "12041"
    assert name not in parsed.extras.get("attributes", {})


def test_the_first_asset_attribute_wins_and_a_road_id_is_not_an_asset():
    parsed, event = _open311(feature_id="F-9", central_asset_id="C-1")
    assert event.place.asset_id == "C-1"
    assert parsed.extras["attributes"] == {"feature_id": "F-9"}
    # asset_resource_id is, for some cobrands, the nearest road (Cobrand/Buckinghamshire.pm, Dumfries.pm):
    # two potholes on one road would share it, so it is kept as sent, not taken for the asset.
    parsed, event = _open311(asset_resource_id="5d8ce1a3e4b0c4f")
    assert event.place.asset_id is None
    assert parsed.extras["attributes"] == {"asset_resource_id": "5d8ce1a3e4b0c4f"}


def test_an_asset_attribute_that_is_no_id_is_kept_as_sent_not_used():
    parsed, event = _open311(central_asset_id="see photo, the one by the bus stop")
    assert event.place.asset_id is None
    assert parsed.extras["attributes"] == {"central_asset_id": "see photo, the one by the bus stop"}
