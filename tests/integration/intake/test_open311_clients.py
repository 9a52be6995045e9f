"""Compatibility with real Open311 clients, replaying the exact requests they send and reading our answers
the way they read them, against the running intake (real broker and database). Sources, by commit:

- FixMyStreet's Open311 client: mysociety/fixmystreet at 84d7c80c5d9abd0d330325742c6b9eedc30b19fd,
  perllib/Open311.pm (send_service_request, get_service_request_id_from_token, get_service_request_updates,
  post_service_request_update, _get_xml_object), perllib/Open311/GetServiceRequestUpdates.pm and
  UpdatesBase.pm (which updates it takes), perllib/Open311/PopulateServiceList.pm (services it reads),
  and the requests t/open311.t asserts.
- georeport (PyPI): 7673502/georeport at 129cd0ec4e5d6040f1b1e36e030df65d49cbae6f, georeport/georeport.py.
- GeoReporter for Android, a form-posting mobile app: City-of-Bloomington/open311-android at
  607a61eab15ca069b0862909c2fa646c3fd41433, models/Open311.java.

How each client builds its requests and parses answers is transcribed in `clients.py`.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote_plus

import pytest

from caseway_shared.events import CaseClosed, CaseStatusChanged
from factories import case_opened, report_linked

from .clients import (
    FMS_STATES,
    GEOREPORTER_MEDIA_FILENAME,
    GEOREPORTER_MEDIA_PART,
    fms_check_date,
    fms_errors,
    fms_map_state,
    fms_parse,
    fms_service_request_params,
    fms_update_params,
    fms_w3cdtf,
    georeporter_pairs,
    xmltodict_parse,
)
from .conftest import API_KEY, running_intake, settings_for

pytestmark = pytest.mark.infra
ENDPOINT = "/open311/v2/"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\x00" * 64 + b"\xff\xd9"
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010800000000"
    "3a7e9b550000000a49444154789c63600000000200014d0f7b000000000049454e44ae426082"
)


def _fms_post_body(params: dict[str, Any], *, jurisdiction: str = "") -> dict[str, Any]:
    """Open311.pm, _request for a POST: jurisdiction_id only when configured, api_key in the body."""
    body = dict(params)
    if jurisdiction:
        body["jurisdiction_id"] = jurisdiction
    body["api_key"] = API_KEY
    return body


def _problem(**overrides: Any) -> dict[str, Any]:
    problem: dict[str, Any] = {
        "service_code": "fly-tipping",
        "title": "Mattress on the pavement",
        "detail": "Dumped overnight by the back entry.",
        "url": "https://www.fixmystreet.com/report/80",
        "name": "Test User",
        "email": "test@example.com",
        "latitude": 53.40841234567,
        "longitude": -2.99160000,
        "uprn": "38164538",
        # A FixMyStreet question of its own and an unanswered one (sent as '').
        "extra_fields": [("hazardous", "no"), ("fms_extra_report_title", "Mattress"), ("size", None)],
    }
    problem.update(overrides)
    return problem


async def _received(topics, request_id: str) -> dict[str, Any]:
    records = await topics.read("reports.received.v1", want=lambda rs: request_id in topics.received_ids(rs))
    return next(json.loads(r.value) for r in records if json.loads(r.value)["report_id"] == request_id)


async def test_fixmystreet_reads_our_services_as_populate_service_list_does(intake):
    services = fms_parse((await intake.client.get(f"{ENDPOINT}services.xml")).content)
    assert isinstance(services["service"], list)
    fly_tipping = next(s for s in services["service"] if s["service_code"] == "fly-tipping")
    assert fly_tipping["metadata"].lower() == "true"
    assert isinstance(fly_tipping["group"], list)  # 'group' is forced to a list; read as groups
    meta = fms_parse((await intake.client.get(f"{ENDPOINT}services/fly-tipping.xml")).content)
    # PopulateServiceList.pm: `ref $meta_data->{attributes} eq 'ARRAY'`, each with code, order, values.
    assert isinstance(meta["attributes"], list)
    hazardous = meta["attributes"][0]
    assert hazardous["code"] == "hazardous"
    assert isinstance(hazardous["values"], list)
    assert {"key": "yes", "name": "Yes"} in hazardous["values"]


async def test_fixmystreet_posts_a_report_as_t_open311_expects_and_reads_its_id(intake, topics, db):
    params = fms_service_request_params(
        **_problem(image_urls=["https://www.fixmystreet.com/photo/80.0.jpeg"])
    )
    response = await intake.client.post(
        f"{ENDPOINT}requests.xml", data=_fms_post_body(params, jurisdiction="liverpool")
    )
    assert response.status_code == 200, fms_errors(response.content)
    obj = fms_parse(response.content)
    request_id = obj["request"][0]["service_request_id"]
    assert isinstance(request_id, str)  # `return $request_id unless ref $request_id`

    event = await _received(topics, request_id)
    assert event["place"]["uprn"] == "38164538"
    assert event["place"]["point"] == {"lat": 53.408412, "lon": -2.9916}
    assert event["attachments"] == ["https://www.fixmystreet.com/photo/80.0.jpeg"]
    assert event["attributes"] == {"hazardous": "no"}
    assert event["description"].startswith("title: Mattress on the pavement\n\ndetail: Dumped overnight")
    assert "test@example.com" not in json.dumps(event)
    assert "Test" not in json.dumps(event["attributes"])
    contact = await db.fetchrow(
        "SELECT name, email FROM intake.reporter_contacts WHERE report_id = $1::uuid", request_id
    )
    assert (contact["name"], contact["email"]) == ("Test User", "test@example.com")
    extras = json.loads(
        await db.fetchval("SELECT extras FROM intake.reports WHERE report_id = $1::uuid", request_id)
    )
    assert extras == {"attributes": {"report_title": "Mattress"}}


async def test_fixmystreet_multipart_with_photos_and_several_media_urls(intake, topics, db):
    """Private reports (or always_upload_photos): photo parts photoN named "<id>.<n>.full.<ext>"; with
    multi_photos, media_url flattened into repeated fields (Open311.pm, _add_photos_to_upload, _request)."""
    params = fms_service_request_params(
        **_problem(
            image_urls=["https://fms.example/p/1.jpeg", "https://fms.example/p/2.jpeg"], multi_photos=True
        )
    )
    files = [
        ("photo1", ("80.0.full.jpeg", JPEG, "image/jpeg")),
        ("photo2", ("80.1.full.png", PNG, "image/png")),
    ]
    response = await intake.client.post(f"{ENDPOINT}requests.xml", data=_fms_post_body(params), files=files)
    assert response.status_code == 200, fms_errors(response.content)
    request_id = fms_parse(response.content)["request"][0]["service_request_id"]
    rows = await db.fetch(
        "SELECT media_id, part_name, content_type FROM intake.media WHERE report_id = $1::uuid"
        " ORDER BY part_name",
        request_id,
    )
    assert [(r["part_name"], r["content_type"]) for r in rows] == [
        ("photo1", "image/jpeg"),
        ("photo2", "image/png"),
    ]
    event = await _received(topics, request_id)
    assert event["attachments"][:2] == ["https://fms.example/p/1.jpeg", "https://fms.example/p/2.jpeg"]
    assert len(event["attachments"]) == 4
    photo = await intake.client.get(f"{ENDPOINT}media/{rows[0]['media_id']}", params={"api_key": API_KEY})
    assert photo.status_code == 200
    assert photo.content == JPEG
    assert (await intake.client.get(f"{ENDPOINT}media/{rows[0]['media_id']}")).status_code == 403

    # A part that is not an image is refused with a reason FixMyStreet logs (and nothing is stored).
    refused = await intake.client.post(
        f"{ENDPOINT}requests.xml",
        data=_fms_post_body(params),
        files=[("file_a", ("a.pdf", b"%PDF-1.4", "application/pdf"))],
    )
    assert refused.status_code == 400
    assert fms_errors(refused.content) == ["400: file_a: not a JPEG, PNG, GIF or WebP image"]


async def test_fixmystreet_postcode_only_report(intake, topics):
    """No pin and a postcode: address_string is the postcode (Open311.pm,
    _populate_service_request_params)."""
    params = fms_service_request_params(
        **_problem(latitude=None, longitude=None, postcode="l1 4dq", uprn=None)
    )
    response = await intake.client.post(f"{ENDPOINT}requests.xml", data=_fms_post_body(params))
    assert response.status_code == 200, fms_errors(response.content)
    request_id = fms_parse(response.content)["request"][0]["service_request_id"]
    event = await _received(topics, request_id)
    assert event["place"]["postcode"] == "L1 4DQ"
    assert event["place"]["point"] is None


async def test_fixmystreet_reads_errors_as_a_list(intake):
    params = fms_service_request_params(**_problem(service_code="no-such-service"))
    response = await intake.client.post(f"{ENDPOINT}requests.xml", data=_fms_post_body(params))
    assert response.status_code == 400
    assert fms_errors(response.content) == [
        "400: service_code: not a service of this server (see GET services)"
    ]


async def test_fixmystreet_fetches_updates_and_posts_comments(intake, topics, db):
    posted = []
    for name in ("Test User", "Another Resident"):
        params = fms_service_request_params(**_problem(name=name))
        response = await intake.client.post(f"{ENDPOINT}requests.xml", data=_fms_post_body(params))
        assert response.status_code == 200, fms_errors(response.content)
        posted.append(fms_parse(response.content)["request"][0]["service_request_id"])
    first, second = posted
    now = datetime.now(UTC)
    opened = case_opened(at=now, report_id=uuid.UUID(first))
    case_id, reference = opened.case_id, opened.reference
    base: dict[str, Any] = {"case_id": case_id, "reference": reference}
    events = [
        opened,
        report_linked(opened, 2, at=now, report_id=uuid.UUID(second)),
        CaseStatusChanged(
            occurred_at=now + timedelta(seconds=1), **base, status="acknowledged", note="Crew sent"
        ),
    ]
    await topics.produce(
        "cases.v1", [e.model_dump_json().encode() for e in events], key=str(case_id).encode()
    )

    start, end = fms_w3cdtf(now - timedelta(hours=2)), fms_w3cdtf(datetime.now(UTC) + timedelta(minutes=5))
    # get_service_request_updates: GET with api_key, start_date, end_date (and jurisdiction_id if set).
    params = {"api_key": API_KEY, "start_date": start, "end_date": end, "jurisdiction_id": "liverpool"}
    updates = await _until_updates(
        intake, params, lambda us: sum(u["service_request_id"] in posted for u in us) >= 4
    )
    ours = [u for u in updates if u["service_request_id"] in posted]
    for update in ours:
        # GetServiceRequestUpdates.pm, process_requests: needs update_id; UpdatesBase.pm, check_date.
        assert update["update_id"]
        assert fms_check_date(update["updated_datetime"], start, end), update
        assert fms_map_state(update["status"], extended=True) in FMS_STATES
        assert update["description"]
    by_report = {(u["service_request_id"], u["status"]): u for u in ours}
    assert by_report[(first, "OPEN")]["description"].startswith(f"Logged by the council as case {reference}")
    duplicate = by_report[(second, "DUPLICATE")]
    assert reference in duplicate["description"]  # the pointer to the case that carries on
    assert fms_map_state("DUPLICATE", extended=True) == "duplicate"
    assert by_report[(first, "INVESTIGATING")]["description"] == "Crew sent"
    assert by_report[(second, "INVESTIGATING")]["external_status_code"] == "acknowledged"

    # A resident's comment, as post_service_request_update sends it; the answer read as it reads it.
    comment = fms_update_params(
        service_request_id=first,
        comment_id=38362,
        text="Still there this morning.",
        status="OPEN",
        name="Test User",
        email="test@example.com",
        confirmed=datetime.now(UTC).replace(microsecond=0),
    )
    answer = await intake.client.post(f"{ENDPOINT}servicerequestupdates.xml", data=_fms_post_body(comment))
    assert answer.status_code == 200, fms_errors(answer.content)
    update_id = fms_parse(answer.content)["request_update"][0]["update_id"]
    assert isinstance(update_id, str)
    again = await intake.client.post(f"{ENDPOINT}servicerequestupdates.xml", data=_fms_post_body(comment))
    assert fms_parse(again.content)["request_update"][0]["update_id"] == update_id  # a retry: same id
    contact = await db.fetchrow(
        "SELECT name, email FROM intake.update_contacts WHERE update_id = $1", update_id
    )
    assert (contact["name"], contact["email"]) == ("Test User", "test@example.com")

    # The case is closed as fixed; FixMyStreet sees FIXED, then the resident says it is not ("REOPEN").
    closed_at = datetime.now(UTC) + timedelta(seconds=2)
    closing = [
        CaseStatusChanged(occurred_at=closed_at, **base, status="closed", note="Cleared"),
        CaseClosed(occurred_at=closed_at, **base, note="Cleared", resolution="fixed"),
    ]
    await topics.produce(
        "cases.v1", [e.model_dump_json().encode() for e in closing], key=str(case_id).encode()
    )
    updates = await _until_updates(intake, params, lambda us: any(u["status"] == "FIXED" for u in us))
    fixed = [u for u in updates if u["status"] == "FIXED"]
    assert {u["service_request_id"] for u in fixed} == {first, second}
    assert fms_map_state("FIXED", extended=True) == "fixed - council"
    assert all(u["description"] == "Cleared" for u in fixed)
    assert not any(u["status"] == "CLOSED" and u["service_request_id"] in posted for u in updates)

    reopen = {**comment, "update_id": "38363", "status": "REOPEN", "description": "Dumped again."}
    answer = await intake.client.post(f"{ENDPOINT}servicerequestupdates.xml", data=_fms_post_body(reopen))
    assert answer.status_code == 200, fms_errors(answer.content)
    reopen_id = fms_parse(answer.content)["request_update"][0]["update_id"]
    records = await topics.read(
        "reports.updates.v1",
        want=lambda rs: {json.loads(r.value)["update_id"] for r in rs} >= {update_id, reopen_id},
    )
    published = {json.loads(r.value)["update_id"]: json.loads(r.value) for r in records}
    assert published[update_id]["action"] == "note"
    assert published[update_id]["description"] == "Still there this morning."
    assert published[update_id]["case_id"] == str(case_id)
    assert published[reopen_id]["action"] == "reopen"
    assert "test@example.com" not in json.dumps(published[update_id])
    assert "Test User" not in json.dumps(published[update_id])

    unknown = await intake.client.post(
        f"{ENDPOINT}servicerequestupdates.xml", data=_fms_post_body({**comment, "service_request_id": "81"})
    )
    assert unknown.status_code == 404
    no_key = await intake.client.get(
        f"{ENDPOINT}servicerequestupdates.xml", params={**params, "api_key": "wrong"}
    )
    assert no_key.status_code == 403


async def test_fixmystreet_without_the_updates_extension_polls_requests(intake):
    """Open311/GetUpdates.pm (bodies without send_comments): get_service_requests with report_ids joined
    by commas, then each request's status, status_notes (as the text) and updated_datetime."""
    ids = []
    for _ in range(2):
        params = fms_service_request_params(**_problem())
        response = await intake.client.post(f"{ENDPOINT}requests.xml", data=_fms_post_body(params))
        ids.append(fms_parse(response.content)["request"][0]["service_request_id"])
    query = {"service_request_id": ",".join(ids), "jurisdiction_id": "liverpool"}
    requests = fms_parse((await intake.client.get(f"{ENDPOINT}requests.xml", params=query)).content)[
        "request"
    ]
    assert sorted(r["service_request_id"] for r in requests) == sorted(ids)
    for request in requests:
        assert fms_check_date(request["updated_datetime"], "0000", "9999")
        assert fms_map_state(request["status"], extended=False) == "confirmed"


async def test_georeport_client_reads_services_and_requests(intake):
    """georeport.py: get_service_list, get_service_definition, get_service_requests, get_service_request,
    in JSON (`response.json()`, `[0]` for one request) and XML (xmltodict, no lists forced)."""
    response = await intake.client.post(
        f"{ENDPOINT}requests.json",
        data={"api_key": API_KEY, "service_code": "pothole", "lat": "53.4", "long": "-2.98"},
    )
    request_id = response.json()[0]["service_request_id"]
    params = {"jurisdiction_id": "liverpool"}  # sent whenever the client has a jurisdiction
    services_json = (await intake.client.get(f"{ENDPOINT}services.json", params=params)).json()
    services_xml = xmltodict_parse(
        (await intake.client.get(f"{ENDPOINT}services.xml", params=params)).content
    )
    assert [s["service_code"] for s in services_xml["services"]["service"]] == [
        s["service_code"] for s in services_json
    ]
    definition = xmltodict_parse(
        (await intake.client.get(f"{ENDPOINT}services/pothole.xml", params=params)).content
    )
    assert definition["service_definition"]["service_code"] == "pothole"
    query = {"service_request_id": request_id, **params}
    listing = (await intake.client.get(f"{ENDPOINT}requests.json", params=query)).json()
    assert [r["service_request_id"] for r in listing] == [request_id]
    one_xml = xmltodict_parse((await intake.client.get(f"{ENDPOINT}requests.xml", params=query)).content)
    assert one_xml["service_requests"]["request"]["service_request_id"] == request_id  # a dict when single
    single = (await intake.client.get(f"{ENDPOINT}requests/{request_id}.json", params=params)).json()[0]
    assert single["status"] == "open"
    single_xml = xmltodict_parse(
        (await intake.client.get(f"{ENDPOINT}requests/{request_id}.xml", params=params)).content
    )
    assert single_xml["service_requests"]["request"]["service_code"] == "pothole"
    start = fms_w3cdtf(datetime.now(UTC) - timedelta(days=1))
    end = fms_w3cdtf(datetime.now(UTC) + timedelta(minutes=1))
    dated = (
        await intake.client.get(
            f"{ENDPOINT}requests.json",
            params={"start_date": start, "end_date": end, "status": "open", **params},
        )
    ).json()
    assert request_id in {r["service_request_id"] for r in dated}


async def test_georeporter_android_posts_a_form_and_a_multipart_photo(intake, topics, db):
    """Open311.java: a form without media (jurisdiction_id only when set), or multipart with the photo as
    part "media" (media.png, image/png) and jurisdiction_id sent even when empty; a multi-value list as
    repeated "attribute[code][]"; lat/long as Double.toString; the JSON answer read as an array."""
    post_data = {
        "lat": 53.4084,
        "long": -2.9916,
        "address_string": "Bold Street, Liverpool",
        "description": "Deep pothole by the bus stop",
        "first_name": "Ann",
        "last_name": "Droid",
        "email": "ann@example.net",
        "attribute[depth-cm]": "12",
        "attribute[where]": ["road"],
    }
    pairs = georeporter_pairs(
        service_code="pothole", jurisdiction="", api_key=API_KEY, post_data=post_data, multipart=False
    )
    assert ("jurisdiction_id", "") not in pairs
    response = await intake.client.post(
        f"{ENDPOINT}requests.json",
        content="&".join(f"{k}={v}" for k, v in _urlencoded(pairs)),
        headers={"content-type": "application/x-www-form-urlencoded; charset=UTF-8"},
    )
    assert response.status_code == 200, response.text
    assert isinstance(response.json(), list)
    form_id = response.json()[0]["service_request_id"]
    event = await _received(topics, form_id)
    assert event["attributes"] == {"depth-cm": "12", "where": ["road"]}

    pairs = georeporter_pairs(
        service_code="pothole",
        jurisdiction="",
        api_key=API_KEY,
        post_data={**post_data, GEOREPORTER_MEDIA_PART: "content://media/external/images/1"},
        multipart=True,
    )
    assert ("jurisdiction_id", "") in pairs
    response = await intake.client.post(
        f"{ENDPOINT}requests.json",
        data=_grouped(pairs),
        files=[(GEOREPORTER_MEDIA_PART, (GEOREPORTER_MEDIA_FILENAME, PNG, "image/png"))],
    )
    assert response.status_code == 200, response.text
    photo_id = response.json()[0]["service_request_id"]
    stored = await db.fetchrow(
        "SELECT part_name, filename FROM intake.media WHERE report_id = $1::uuid", photo_id
    )
    assert (stored["part_name"], stored["filename"]) == ("media", "media.png")


async def test_paging_and_out_of_range_values(intake):
    for _ in range(3):
        await intake.client.post(
            f"{ENDPOINT}requests.json",
            data={"api_key": API_KEY, "service_code": "graffiti", "address_string": "Hope Street"},
        )
    first = (await intake.client.get(f"{ENDPOINT}requests.json", params={"page_size": "2"})).json()
    second = (
        await intake.client.get(f"{ENDPOINT}requests.json", params={"page_size": "2", "page": "2"})
    ).json()
    assert len(first) == 2
    assert not {r["service_request_id"] for r in first} & {r["service_request_id"] for r in second}
    for bad in ({"page": "0"}, {"page_size": "0"}, {"page_size": "100000"}, {"page": "x"}):
        response = await intake.client.get(f"{ENDPOINT}requests.json", params=bad)
        assert response.status_code == 400, bad
        assert response.json()[0]["description"].split(":")[0] in {"page", "page_size"}
    backwards = await intake.client.get(
        f"{ENDPOINT}requests.json",
        params={"start_date": "2026-11-02T00:00:00Z", "end_date": "2026-11-01T00:00:00Z"},
    )
    assert backwards.status_code == 400
    assert backwards.json()[0]["description"].startswith("start_date, end_date")


async def test_fixmystreet_token_flow(infra):
    """A server that answers POST requests with a token: send_service_request reads request/token, then
    polls tokens/<token>.xml (GET, jurisdiction_id only) until request/service_request_id is there."""
    async with running_intake(settings_for(infra, open311_answer_with="token")) as tokened:
        params = fms_service_request_params(**_problem())
        response = await tokened.client.post(
            f"{ENDPOINT}requests.xml", data=_fms_post_body(params, jurisdiction="liverpool")
        )
        assert response.status_code == 200, fms_errors(response.content)
        request = fms_parse(response.content)["request"][0]
        assert request.get("service_request_id") is None
        token = request["token"]
        polled = await tokened.client.get(
            f"{ENDPOINT}tokens/{token}.xml", params={"jurisdiction_id": "liverpool"}
        )
        assert polled.status_code == 200
        assert fms_parse(polled.content)["request"][0]["service_request_id"]


def _urlencoded(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(quote_plus(k), quote_plus(v)) for k, v in pairs]


def _grouped(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for key, value in pairs:
        grouped.setdefault(key, []).append(value)
    return grouped


async def _until_updates(intake, params, condition, timeout: float = 20.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        response = await intake.client.get(f"{ENDPOINT}servicerequestupdates.xml", params=params)
        assert response.status_code == 200, response.text
        # An empty feed parses to undef, which FixMyStreet's `for (@$requests)` takes as no updates.
        updates = (fms_parse(response.content) or {}).get("request_update", [])
        if condition(updates) or time.monotonic() > deadline:
            return updates
        await asyncio.sleep(0.3)
