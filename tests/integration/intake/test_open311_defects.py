"""The four defects of issue 14, as a new user met them against main (each failed there):

1. a multipart POST (how clients send a photo) always answered 400;
2. `attribute[uprn]`, which FixMyStreet always sends when it knows the property, was refused as "not an
   attribute of service fly-tipping";
3. a description holding a control character (a vertical tab) was accepted, and from then on
   `requests.xml` was not well-formed XML for every client;
4. `servicerequestupdates.xml` answered 404.
"""

# ruff: noqa: S314 - the XML parsed is our own answer

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree as ET

import pytest

from .conftest import API_KEY

pytestmark = pytest.mark.infra
V2 = "/open311/v2"
# The smallest valid PNG (1x1, one grey pixel): a real image, so that a check of the type by its bytes passes.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010800000000"
    "3a7e9b550000000a49444154789c63600000000200014d0f7b000000000049454e44ae426082"
)


def _form(**overrides: str) -> dict[str, str]:
    form = {
        "api_key": API_KEY,
        "service_code": "fly-tipping",
        "lat": "53.4084",
        "long": "-2.9916",
        "description": "Mattress dumped by the back entry.",
        "attribute[hazardous]": "no",
    }
    form.update(overrides)
    return form


async def test_a_multipart_post_with_a_photo_is_accepted_and_the_photo_kept(intake, db):
    response = await intake.client.post(
        f"{V2}/requests.xml",
        data=_form(),
        files={"photo1": ("1.0.full.png", PNG, "image/png")},
    )
    assert response.status_code == 200, response.text
    request_id = ET.fromstring(response.content).findtext("request/service_request_id")
    assert request_id
    stored = await db.fetchrow(
        "SELECT content_type, size FROM intake.media WHERE report_id = $1::uuid", request_id
    )
    assert stored is not None
    assert (stored["content_type"], stored["size"]) == ("image/png", len(PNG))


async def test_a_multipart_post_without_files_is_accepted(intake):
    # httpx sends a form as multipart only when there are files: built by hand.
    boundary = "caseway-test-boundary"
    body = (
        "".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
            for name, value in _form().items()
        )
        + f"--{boundary}--\r\n"
    )
    response = await intake.client.post(
        f"{V2}/requests.json",
        content=body.encode(),
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 200, response.text
    assert response.json()[0]["service_request_id"]


async def test_attribute_uprn_is_accepted_and_used_as_the_place(intake, topics):
    response = await intake.client.post(f"{V2}/requests.json", data=_form(**{"attribute[uprn]": "38164538"}))
    assert response.status_code == 200, response.text
    request_id = response.json()[0]["service_request_id"]
    records = await topics.read("reports.received.v1", want=lambda rs: request_id in topics.received_ids(rs))
    event = next(json.loads(r.value) for r in records if json.loads(r.value)["report_id"] == request_id)
    assert event["place"]["uprn"] == "38164538"


async def test_a_control_character_never_breaks_the_xml_feed(intake):
    response = await intake.client.post(
        f"{V2}/requests.json", data=_form(description="Line one\x0bline two \x1b and a form feed\x0c")
    )
    # Accepted (the character replaced) or refused with a reason: either way the feed stays XML.
    assert response.status_code in {200, 400}
    if response.status_code == 400:
        assert any("description" in error["description"] for error in response.json())
        return
    request_id = response.json()[0]["service_request_id"]
    feed = await intake.client.get(f"{V2}/requests.xml", params={"service_request_id": request_id})
    assert feed.status_code == 200
    document = ET.fromstring(feed.content)  # raises on XML that is not well-formed
    description = document.findtext("request/description")
    assert description is not None
    assert description.startswith("Line one")
    listing = await intake.client.get(f"{V2}/requests.xml")
    ET.fromstring(listing.content)


async def test_service_request_updates_are_served(intake):
    now = datetime.now(UTC)
    params = {
        "api_key": API_KEY,
        "start_date": (now - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "end_date": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    response = await intake.client.get(f"{V2}/servicerequestupdates.xml", params=params)
    assert response.status_code == 200, response.text
    assert ET.fromstring(response.content).tag == "service_request_updates"
    response = await intake.client.get(f"{V2}/servicerequestupdates.json", params=params)
    assert response.status_code == 200
    assert isinstance(response.json(), list)
