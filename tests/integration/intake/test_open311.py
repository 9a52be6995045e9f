"""The Open311 GeoReport v2 API as a client written against the spec uses it, over the real database and
broker: services, definitions, POST (form and JSON) to ReportReceived, every reason at once, statuses from
cases.v1, and the spec's error formats.
"""

# ruff: noqa: S314 - the XML parsed is our own answer

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime
from xml.etree import ElementTree as ET

import pytest

from caseway_shared.events import CaseClosed, CaseOpened, CaseStatusChanged, ReportLinked

from .conftest import API_KEY

pytestmark = pytest.mark.infra
V2 = "/open311/v2"


def _form(**overrides):
    form = {
        "api_key": API_KEY,
        "service_code": "fly-tipping",
        "lat": "53.4084",
        "long": "-2.9916",
        "description": "Mattress dumped by the back entry.",
        "attribute[hazardous]": "no",
    }
    form.update(overrides)
    return {name: value for name, value in form.items() if value is not None}


async def test_services_list_and_definition_in_json_and_xml(intake):
    response = await intake.client.get(f"{V2}/services.json")
    assert response.status_code == 200
    services = {entry["service_code"]: entry for entry in response.json()}
    assert services["fly-tipping"]["metadata"] is True
    assert services["litter"]["metadata"] is False
    assert services["fly-tipping"]["type"] == "realtime"
    assert set(services["pothole"]) == {
        "service_code",
        "service_name",
        "description",
        "metadata",
        "type",
        "keywords",
        "group",
    }

    xml = ET.fromstring((await intake.client.get(f"{V2}/services.xml")).content)
    assert xml.tag == "services"
    assert {s.findtext("service_code") for s in xml.findall("service")} == set(services)
    assert xml.find("service/metadata").text in {"true", "false"}

    definition = (await intake.client.get(f"{V2}/services/fly-tipping.json")).json()
    assert definition["service_code"] == "fly-tipping"
    hazardous = definition["attributes"][0]
    assert hazardous["variable"] is True
    assert hazardous["datatype"] == "singlevaluelist"
    assert hazardous["order"] == 1
    assert {"key": "yes", "name": "Yes"} in hazardous["values"]
    xml = ET.fromstring((await intake.client.get(f"{V2}/services/pothole.xml")).content)
    assert xml.tag == "service_definition"
    assert [a.findtext("code") for a in xml.findall("attributes/attribute")] == ["depth-cm", "where"]

    missing = await intake.client.get(f"{V2}/services/no-such-thing.json")
    assert missing.status_code == 404
    assert missing.json()[0]["code"] == 404


async def test_post_needs_a_valid_api_key(intake):
    response = await intake.client.post(f"{V2}/requests.json", data=_form(api_key=None))
    assert response.status_code == 403
    assert response.json() == [{"code": 403, "description": "api_key: missing or not valid"}]
    response = await intake.client.post(f"{V2}/requests.xml", data=_form(api_key="wrong"))
    assert response.status_code == 403
    error = ET.fromstring(response.content)
    assert error.tag == "errors"
    assert error.findtext("error/code") == "403"


async def test_an_invalid_request_gets_400_with_every_reason_at_once(intake):
    response = await intake.client.post(
        f"{V2}/requests.json",
        data=_form(
            lat="95",
            description="x" * 4001,
            email="not-an-email",
            **{"attribute[hazardous]": "maybe", "attribute[colour]": "red"},
        ),
    )
    assert response.status_code == 400
    errors = response.json()
    assert all(error["code"] == 400 for error in errors)
    fields = {error["description"].split(":")[0] for error in errors}
    assert {"lat", "description", "email", "attribute[hazardous]"} <= fields
    # An attribute the service does not declare is kept with the report, not refused (issue 14).
    assert "attribute[colour]" not in fields

    response = await intake.client.post(f"{V2}/requests.xml", data=_form(service_code="unknown", lat=None))
    assert response.status_code == 400
    descriptions = [e.findtext("description") for e in ET.fromstring(response.content).findall("error")]
    assert any(d.startswith("service_code") for d in descriptions)
    assert any(d.startswith("lat, long") for d in descriptions)


async def test_a_posted_request_is_published_and_shows_its_case_status(intake, topics, db):
    response = await intake.client.post(f"{V2}/requests.json", data=_form())
    assert response.status_code == 200
    [answer] = response.json()
    request_id = answer["service_request_id"]
    assert set(answer) == {"service_request_id", "service_notice", "account_id"}

    received = await topics.read("reports.received.v1", want=lambda rs: request_id in topics.received_ids(rs))
    event = next(json.loads(r.value) for r in received if json.loads(r.value)["report_id"] == request_id)
    assert event["channel"] == "open311"
    assert event["category"] == "fly-tipping"
    assert event["attributes"] == {"hazardous": "no"}

    [shown] = (await intake.client.get(f"{V2}/requests/{request_id}.json")).json()
    assert shown["status"] == "open"
    assert shown["service_code"] == "fly-tipping"
    assert shown["lat"] == 53.4084
    assert shown["long"] == -2.9916

    # A second report of the same problem, posted as JSON, is linked to the same case.
    second = await intake.client.post(
        f"{V2}/requests.json",
        json={"api_key": API_KEY, "service_code": "fly-tipping", "address_string": "Bold Street"},
    )
    assert second.status_code == 200
    second_id = second.json()[0]["service_request_id"]

    case_id = uuid.uuid4()
    now = datetime.now(UTC)
    events = [
        CaseOpened(
            occurred_at=now,
            case_id=case_id,
            reference="LV-2026-000042",
            report_id=uuid.UUID(request_id),
            category="fly-tipping",
            priority="normal",
            neighbourhood=None,
            ward_code=None,
            lead_department="streetscene",
            departments=("streetscene",),
            due_at=datetime(2026, 12, 1, 17, tzinfo=UTC),
            point=None,
            summary="Fly-tipping",
        ),
        ReportLinked(
            occurred_at=now,
            case_id=case_id,
            reference="LV-2026-000042",
            report_id=uuid.UUID(second_id),
            reports_count=2,
            score=0.9,
        ),
        CaseStatusChanged(
            occurred_at=now,
            case_id=case_id,
            reference="LV-2026-000042",
            status="acknowledged",
            note="Crew sent",
        ),
    ]
    await topics.produce(
        "cases.v1", [e.model_dump_json().encode() for e in events], key=str(case_id).encode()
    )
    shown = await _until(intake, request_id, lambda s: s["status_notes"] == "Crew sent")
    assert shown["status"] == "open"
    assert shown["agency_responsible"] == "Streetscene"
    assert shown["service_notice"] == "Case LV-2026-000042"
    assert shown["expected_datetime"].startswith("2026-12-01T17:00:00")

    closed = CaseClosed(
        occurred_at=datetime.now(UTC), case_id=case_id, reference="LV-2026-000042", note="Cleared"
    )
    await topics.produce("cases.v1", [closed.model_dump_json().encode()], key=str(case_id).encode())
    for rid in (request_id, second_id):
        shown = await _until(intake, rid, lambda s: s["status"] == "closed")
        assert shown["status_notes"] == "Cleared"

    listing = await intake.client.get(
        f"{V2}/requests.json", params={"service_request_id": f"{request_id},{second_id},nonsense"}
    )
    assert {r["service_request_id"] for r in listing.json()} == {request_id, second_id}
    closed_ones = await intake.client.get(
        f"{V2}/requests.xml", params={"service_code": "fly-tipping", "status": "closed"}
    )
    ids = {r.findtext("service_request_id") for r in ET.fromstring(closed_ones.content).findall("request")}
    assert {request_id, second_id} <= ids
    open_ones = await intake.client.get(f"{V2}/requests.json", params={"status": "open"})
    assert request_id not in {r["service_request_id"] for r in open_ones.json()}

    token = await db.fetchval("SELECT token FROM intake.tokens WHERE report_id = $1", uuid.UUID(request_id))
    by_token = (await intake.client.get(f"{V2}/tokens/{token}.json")).json()
    assert by_token == [{"service_request_id": request_id, "token": token}]
    assert (await intake.client.get(f"{V2}/tokens/nope.json")).status_code == 404
    assert (await intake.client.get(f"{V2}/requests/{uuid.uuid4()}.json")).status_code == 404
    bad_dates = await intake.client.get(f"{V2}/requests.json", params={"start_date": "last week"})
    assert bad_dates.status_code == 400


async def test_the_same_idempotency_key_gives_the_same_request_and_one_event(intake, topics):
    key = uuid.uuid4().hex
    answers = [
        (
            await intake.client.post(f"{V2}/requests.json", data=_form(), headers={"Idempotency-Key": key})
        ).json()
        for _ in range(3)
    ]
    ids = {answer[0]["service_request_id"] for answer in answers}
    assert len(ids) == 1
    [request_id] = ids
    records = await topics.read("reports.received.v1", want=lambda rs: request_id in topics.received_ids(rs))
    await asyncio.sleep(1)  # let any wrongly queued duplicate reach the topic before counting
    records = await topics.read("reports.received.v1", want=lambda _records: False, timeout=2)
    assert topics.received_ids(records).count(request_id) == 1


async def test_openapi_is_served(intake):
    document = (await intake.client.get("/openapi.json")).json()
    assert f"{V2}/requests.{{fmt}}" in document["paths"]
    assert "post" in document["paths"][f"{V2}/requests.{{fmt}}"]


async def _until(intake, request_id, condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        [shown] = (await intake.client.get(f"{V2}/requests/{request_id}.json")).json()
        if condition(shown) or time.monotonic() > deadline:
            return shown
        await asyncio.sleep(0.2)
