"""Public notes reach residents through Open311 (issue 12 item 3, issue 14 item 3): staff's public note on a
case (CaseNoteAdded, text masked by the router) is an update in servicerequestupdates for every report of the
case, with the status unchanged, and the requests' status_notes; internal notes and a resident's own words
coming back from the router are not listed. Over the real broker and database."""

# ruff: noqa: S314 - the XML parsed is our own answer

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree as ET

import pytest

from caseway_shared.events import CaseNoteAdded, CaseStatusChanged
from factories import case_opened, report_linked

from .conftest import API_KEY

pytestmark = pytest.mark.infra
V2 = "/open311/v2"


async def _post(intake) -> str:
    response = await intake.client.post(
        f"{V2}/requests.json",
        data={
            "api_key": API_KEY,
            "service_code": "fly-tipping",
            "lat": "53.4084",
            "long": "-2.9916",
            "description": "Mattress dumped by the back entry.",
        },
    )
    assert response.status_code == 200, response.text
    return str(response.json()[0]["service_request_id"])


async def _updates(intake, request_id: str, *, want: int, timeout: float = 30.0) -> list[dict]:
    now = datetime.now(UTC)
    params = {
        "api_key": API_KEY,
        "start_date": (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "end_date": (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    deadline = time.monotonic() + timeout
    while True:
        feed = (await intake.client.get(f"{V2}/servicerequestupdates.json", params=params)).json()
        mine = [u for u in feed if u["service_request_id"] == request_id]
        if len(mine) >= want or time.monotonic() > deadline:
            return mine
        await asyncio.sleep(0.2)


async def test_a_public_note_is_an_update_with_the_status_unchanged_and_the_requests_status_notes(
    intake, topics
):
    first, second = await _post(intake), await _post(intake)
    start = datetime.now(UTC).replace(microsecond=0)
    opened = case_opened(
        at=start, reference=f"LV-2026-9{uuid.uuid4().int % 10**5:05d}", report_id=uuid.UUID(first)
    )
    case_id = opened.case_id
    common = {"case_id": case_id, "reference": opened.reference}
    events = [
        opened,
        report_linked(opened, 2, at=start, report_id=uuid.UUID(second)),
        CaseStatusChanged(
            **common, occurred_at=start + timedelta(seconds=1), status="acknowledged", actor="streetscene-n01"
        ),
        CaseNoteAdded(
            **common,
            occurred_at=start + timedelta(seconds=2),
            note_id=1,
            visibility="internal",
            actor="streetscene-n01",
        ),
        CaseNoteAdded(
            **common,
            occurred_at=start + timedelta(seconds=3),
            note_id=2,
            visibility="public",
            text="Crew booked for Thursday; ring [phone hidden] with questions",
            actor="streetscene-n01",
        ),
        CaseNoteAdded(
            **common,
            occurred_at=start + timedelta(seconds=4),
            note_id=3,
            visibility="public",
            text="It is still there",
            actor="resident:open311",
        ),
    ]
    payloads = [e.model_dump_json().encode() for e in events]
    await topics.produce("cases.v1", payloads, key=str(case_id).encode())

    for request_id, before in ((first, "INVESTIGATING"), (second, "INVESTIGATING")):
        updates = await _updates(intake, request_id, want=3)
        shown = [(u["status"], u["external_status_code"], u["description"]) for u in updates]
        assert shown[-1] == (
            "INVESTIGATING",
            "note",
            "Crew booked for Thursday; ring [phone hidden] with questions",
        )
        assert shown[-2][0] == before
        assert "It is still there" not in {u["description"] for u in updates}  # the resident's own words
        assert len([u for u in updates if u["external_status_code"] == "note"]) == 1  # internal: not listed
        [request] = (await intake.client.get(f"{V2}/requests/{request_id}.json")).json()
        assert request["status"] == "open"
        assert request["status_notes"] == "Crew booked for Thursday; ring [phone hidden] with questions"
        xml = ET.fromstring((await intake.client.get(f"{V2}/requests/{request_id}.xml")).content)
        assert xml.findtext("request/status_notes") == request["status_notes"]

    # A replay of the case's events lists nothing twice.
    await topics.produce("cases.v1", payloads, key=str(case_id).encode())
    await asyncio.sleep(2)
    assert len(await _updates(intake, first, want=0)) == 3
