"""Residents' data (issue 13 item 6), against the real broker and database: rejected records carry the
reporter sealed and a replay of them is unsealed by intake; the public GET requests hides the categories
the council keeps private, coarsens locations on private property and shows ids nobody can work out from
public facts; an Idempotency-Key reused with another body is refused; the retention job purges.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.fernet import Fernet

from caseway_intake.domain.privacy import DEVELOPMENT_CONTACT_KEY
from caseway_shared.events import report_id_for

from .conftest import API_KEY, running_intake, settings_for

pytestmark = pytest.mark.infra
V2 = "/open311/v2"


def _form(**overrides: str) -> dict[str, str]:
    return {
        "api_key": API_KEY,
        "service_code": "graffiti",
        "lat": "53.40123",
        "long": "-2.97456",
        "address_string": "12 Lark Lane",
        "description": "Tags on the wall.",
        "email": "resident@example.net",
        "first_name": "Ann",
        "last_name": "Resident",
        **overrides,
    }


async def test_a_rejected_record_carries_the_reporter_sealed_and_its_replay_is_accepted(intake, topics, db):
    run = uuid.uuid4().hex[:8]
    email = f"sealed-{run}@example.net"
    reporter = {"name": f"Sealname{run}", "email": email, "phone": "0151 123 4567"}
    bad = topics.report_event(f"seal-{run}", location={"lat": 999, "lon": -2.98}, reporter=reporter)
    await topics.produce("contact-centre.reports.v1", [topics.as_bytes(bad)])
    records = await topics.read(
        "reports.rejected.v1", want=lambda rs: any(r.key == f"seal-{run}".encode() for r in rs)
    )
    rejected = next(r for r in records if r.key == f"seal-{run}".encode())
    assert f"Sealname{run}".encode() not in rejected.value
    assert email.encode() not in rejected.value
    original = json.loads(json.loads(rejected.value)["original"]["data"])
    assert original["source_id"] == f"seal-{run}"  # the rest stays readable for the sender's owners
    token = original["reporter"]["sealed"]
    assert json.loads(Fernet(DEVELOPMENT_CONTACT_KEY.encode()).decrypt(token.encode())) == reporter

    # Replayed (fixed, as an operator would after correcting the location): intake unseals the reporter.
    original["location"] = {"lat": 53.4, "lon": -2.98}
    await topics.produce("contact-centre.reports.v1", [json.dumps(original).encode()])
    report_id = report_id_for("liverpool-direct", f"seal-{run}")
    await topics.read("reports.received.v1", want=lambda rs: str(report_id) in topics.received_ids(rs))
    stored = await db.fetchrow(
        "SELECT name, email FROM intake.reporter_contacts WHERE report_id = $1", report_id
    )
    assert (stored["name"], stored["email"]) == (f"Sealname{run}", email)


async def test_get_requests_hides_private_categories_and_coarsens_private_property(intake):
    run = uuid.uuid4().hex[:8]
    asb = await intake.client.post(
        f"{V2}/requests.json", data=_form(service_code="asb", description=f"Youths {run}")
    )
    street = await intake.client.post(f"{V2}/requests.json", data=_form(description=f"Street {run}"))
    home = await intake.client.post(
        f"{V2}/requests.json", data=_form(description=f"Home {run}", **{"attribute[uprn]": "38012345"})
    )
    assert {asb.status_code, street.status_code, home.status_code} == {200}
    asb_id, street_id, home_id = (r.json()[0]["service_request_id"] for r in (asb, street, home))

    listing = (await intake.client.get(f"{V2}/requests.json", params={"page_size": "1000"})).json()
    shown = {entry["service_request_id"]: entry for entry in listing}
    assert asb_id not in shown
    assert not any(entry["service_code"] == "asb" for entry in listing)
    asked = await intake.client.get(f"{V2}/requests.json", params={"service_request_id": asb_id})
    assert asked.json() == []
    assert (await intake.client.get(f"{V2}/requests/{asb_id}.json")).status_code == 404
    assert (await intake.client.get(f"{V2}/requests.json", params={"service_code": "asb"})).json() == []

    assert (shown[street_id]["lat"], shown[street_id]["long"]) == (53.40123, -2.97456)
    assert shown[street_id]["address"] == "12 Lark Lane"
    private = shown[home_id]
    assert (private["lat"], private["long"]) == (53.401, -2.975)
    assert private["address"] is None
    assert private["address_id"] is None
    text = json.dumps(listing)
    assert "resident@example.net" not in text
    assert "Resident" not in text


async def test_public_ids_cannot_be_worked_out_from_the_source_id(intake, topics):
    run = uuid.uuid4().hex[:8]
    await topics.produce("contact-centre.reports.v1", [topics.as_bytes(topics.report_event(f"pub-{run}"))])
    guessable = report_id_for("liverpool-direct", f"pub-{run}")
    await topics.read("reports.received.v1", want=lambda rs: str(guessable) in topics.received_ids(rs))

    assert (await intake.client.get(f"{V2}/requests/{guessable}.json")).status_code == 404
    by_guess = await intake.client.get(f"{V2}/requests.json", params={"service_request_id": str(guessable)})
    assert by_guess.json() == []
    listing = (await intake.client.get(f"{V2}/requests.json", params={"page_size": "1000"})).json()
    ours = [e for e in listing if e["description"] == "A deep pothole outside the school."]
    assert ours
    assert str(guessable) not in {e["service_request_id"] for e in listing}
    public_ids = {e["service_request_id"] for e in ours}
    found = [
        (await intake.client.get(f"{V2}/requests/{public_id}.json")).json()[0]["service_request_id"]
        for public_id in public_ids
    ]
    assert found == list(public_ids)


async def test_an_idempotency_key_reused_with_another_body_is_refused(intake):
    key = f"reuse-{uuid.uuid4().hex[:8]}"
    first = await intake.client.post(f"{V2}/requests.json", data=_form(), headers={"Idempotency-Key": key})
    again = await intake.client.post(f"{V2}/requests.json", data=_form(), headers={"Idempotency-Key": key})
    other = await intake.client.post(
        f"{V2}/requests.json",
        data=_form(email="someone.else@example.net", description="Another problem entirely."),
        headers={"Idempotency-Key": key},
    )
    assert first.status_code == again.status_code == 200
    assert again.json()[0]["service_request_id"] == first.json()[0]["service_request_id"]
    assert other.status_code == 409
    errors = other.json()
    assert errors[0]["code"] == 409
    assert "Idempotency-Key" in errors[0]["description"]
    assert first.json()[0]["service_request_id"] not in other.text
    other_xml = await intake.client.post(
        f"{V2}/requests.xml", data=_form(description="Yet another."), headers={"Idempotency-Key": key}
    )
    assert other_xml.status_code == 409
    assert b"<errors>" in other_xml.content


async def test_the_retention_job_purges_contact_details_texts_and_photos(intake, db):
    run = uuid.uuid4().hex[:8]
    old = await intake.client.post(f"{V2}/requests.json", data=_form(description=f"Old words {run}"))
    new = await intake.client.post(f"{V2}/requests.json", data=_form(description=f"New words {run}"))
    old_id, new_id = (uuid.UUID(r.json()[0]["service_request_id"]) for r in (old, new))
    await intake.client.post(
        f"{V2}/servicerequestupdates.json",
        data={
            "api_key": API_KEY,
            "service_request_id": str(old_id),
            "description": f"Still there {run}",
            "email": "resident@example.net",
            "updated_datetime": (datetime.now(UTC) - timedelta(days=400)).isoformat(),
        },
    )
    # The first report was accepted 400 days ago: past the default retention of 365 days.
    await db.execute(
        "UPDATE intake.reports SET accepted_at = now() - interval '400 days' WHERE report_id = $1", old_id
    )
    service = intake.app.state.service
    purged = await service.purge(retention_days=365)
    assert purged["reports"] == 1
    assert purged["contacts"] == 1
    assert purged["update_contacts"] >= 1  # other tests may post updates dated long ago
    assert purged["updates"] >= 1
    assert (
        await db.fetchval(
            "SELECT count(*) FROM intake.update_contacts c JOIN intake.request_updates u USING (update_id)"
            " WHERE u.report_id = $1",
            old_id,
        )
        == 0
    )

    assert (
        await db.fetchval("SELECT count(*) FROM intake.reporter_contacts WHERE report_id = $1", old_id) == 0
    )
    assert (
        await db.fetchval("SELECT count(*) FROM intake.reporter_contacts WHERE report_id = $1", new_id) == 1
    )
    row = await db.fetchrow("SELECT event, purged_at FROM intake.reports WHERE report_id = $1", old_id)
    assert json.loads(row["event"])["description"] == ""
    assert row["purged_at"] is not None
    kept = await db.fetchval("SELECT event FROM intake.reports WHERE report_id = $1", new_id)
    assert json.loads(kept)["description"] == f"New words {run}"
    assert (
        await db.fetchval(
            "SELECT count(*) FROM intake.request_updates WHERE report_id = $1 AND description LIKE $2",
            old_id,
            f"%{run}%",
        )
        == 0
    )
    shown = (await intake.client.get(f"{V2}/requests/{old_id}.json")).json()[0]
    assert shown["description"] is None
    assert f"Old words {run}" not in json.dumps(shown)
    # Run again: nothing left to purge.
    assert (await service.purge(retention_days=365))["reports"] == 0


async def test_the_running_service_purges_on_its_own_schedule(infra, db):
    """The scheduled job, not a call: an intake with a one-day retention, purging every 0.2 s, purges a
    report once it is two days old (this session's database holds nothing older: its own)."""
    run = uuid.uuid4().hex[:8]
    settings = settings_for(infra, retention_days=1, purge_interval_seconds=0.2)
    async with running_intake(settings) as running:
        posted = await running.client.post(f"{V2}/requests.json", data=_form(description=f"Aged {run}"))
        report_id = uuid.UUID(posted.json()[0]["service_request_id"])
        assert (
            await db.fetchval("SELECT purged_at FROM intake.reports WHERE report_id = $1", report_id) is None
        )
        await db.execute(
            "UPDATE intake.reports SET accepted_at = now() - interval '2 days' WHERE report_id = $1",
            report_id,
        )
        deadline = time.monotonic() + 30
        while (
            await db.fetchval("SELECT purged_at FROM intake.reports WHERE report_id = $1", report_id) is None
        ):
            assert time.monotonic() < deadline, "the scheduled purge did not run"
            await asyncio.sleep(0.2)
    assert (
        await db.fetchval("SELECT count(*) FROM intake.reporter_contacts WHERE report_id = $1", report_id)
        == 0
    )
