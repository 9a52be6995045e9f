"""Residents' updates (reports.updates.v1, issue 14) against the real broker and database: intake sends on a
resident's comment or reopening from an Open311 front end as ResidentUpdateReceived; the router makes the
comment a public note on the report's case (masked, by the resident's channel) and reopens a closed case,
once per update id however often the update is delivered."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from datetime import UTC, datetime

import pytest

from caseway_shared import headers as h
from caseway_shared.events import ResidentUpdateReceived
from factories import BOLD_STREET, METRE, report_received
from tests.integration.router.test_router_pipeline import producer, publish, wait_routed
from tests.integration.router.test_staff_actions import client, open_case, published, router

pytestmark = pytest.mark.infra
PROXY = "10.0.0.1"
_PLACES = itertools.count(1)


def somewhere_new() -> dict[str, float]:
    """A point 400 m east of the last one: each test's report opens a case of its own."""
    return {"lat": BOLD_STREET[0] - 900 * METRE, "lon": BOLD_STREET[1] + next(_PLACES) * 400 * METRE / 0.6}


async def new_case(infra, db) -> tuple[str, uuid.UUID]:
    return await open_case(infra, db, **somewhere_new())


@pytest.fixture(scope="module")
async def app(infra):
    async with router(infra, trusted_proxies=(PROXY,)) as running:
        yield running


def update(report_id: uuid.UUID, action: str, text: str, *, case_id: uuid.UUID | None = None):
    return ResidentUpdateReceived(
        occurred_at=datetime.now(UTC),
        update_id=f"upd-{uuid.uuid4().hex[:12]}",
        report_id=report_id,
        case_id=case_id,
        action=action,
        client_status="REOPEN" if action == "reopen" else "OPEN",
        description=text,
    )


async def send(infra, *updates: ResidentUpdateReceived) -> None:
    async with producer(infra) as kafka:
        for each in updates:
            await (
                await kafka.send(
                    f"{infra.topic_prefix}reports.updates.v1",
                    each.model_dump_json().encode(),
                    key=str(each.report_id).encode(),
                    headers=h.encode_headers(
                        {h.CORRELATION_ID: str(each.report_id), h.EVENT_TYPE: "ResidentUpdateReceived"}
                    ),
                )
            )


async def settled(db, update_id: str, *, timeout: float = 45.0) -> str:
    """The outcome the router recorded for `update_id`, once it has handled it."""
    deadline = time.monotonic() + timeout
    while True:
        outcome = await db.fetchval(
            "SELECT outcome FROM router.resident_updates WHERE update_id = $1", update_id
        )
        if outcome is not None:
            return str(outcome)
        assert time.monotonic() < deadline, f"update {update_id} was never handled"
        await asyncio.sleep(0.1)


async def case_state(db, reference: str) -> dict:
    row = await db.fetchrow(
        "SELECT case_id, status, resolution, closed_at FROM router.cases WHERE reference = $1", reference
    )
    notes = await db.fetch(
        "SELECT actor, visibility, body FROM router.case_notes WHERE case_id = $1 ORDER BY id", row["case_id"]
    )
    history = await db.fetch(
        "SELECT actor, action, detail->>'update_id' AS update_id FROM router.case_history"
        " WHERE case_id = $1 AND actor <> 'caseway-router' ORDER BY id",
        row["case_id"],
    )
    return {
        "status": row["status"],
        "resolution": row["resolution"],
        "notes": [tuple(n) for n in notes],
        "history": [tuple(e) for e in history],
    }


async def test_a_residents_comment_becomes_a_masked_public_note_once(infra, db, app):
    reference, report_id = await new_case(infra, db)
    comment = update(report_id, "note", "Still there this morning. Call me on 07700 900123")
    await send(infra, comment)
    assert await settled(db, comment.update_id) == "noted"
    state = await case_state(db, reference)
    assert state["status"] == "open"
    assert state["notes"] == [
        ("resident:test", "public", "Still there this morning. Call me on [phone hidden]")
    ]
    assert state["history"] == [("resident:test", "note-added", comment.update_id)]

    # Delivered again (a redelivery, a replay): nothing changes. A later update on the same report (same
    # key, same partition, so handled after it) tells when the repeat has been through.
    later = update(report_id, "note", "And a fridge now")
    await send(infra, comment, later)
    assert await settled(db, later.update_id) == "noted"
    again = await case_state(db, reference)
    assert again["notes"] == [*state["notes"], ("resident:test", "public", "And a fridge now")]
    assert [e[2] for e in again["history"]] == [comment.update_id, later.update_id]

    events = await published(infra, reference, want=1 + 2)
    notes = [e for e in events if e["event_type"] == "CaseNoteAdded"]
    assert [(n["visibility"], n["text"], n["actor"]) for n in notes] == [
        ("public", "Still there this morning. Call me on [phone hidden]", "resident:test"),
        ("public", "And a fridge now", "resident:test"),
    ]
    async with client(app, staff="dev") as http:  # the staff page shows it as a public note
        shown = (await http.get(f"/api/cases/{reference}")).json()
    assert [(n["by"], n["visibility"]) for n in shown["notes"]] == [("resident:test", "public")] * 2


async def test_a_reopening_found_by_report_id_reopens_the_closed_case_once(infra, db, app):
    reference, report_id = await new_case(infra, db)
    async with client(app, staff="dev") as http:
        closed = await http.post(f"/api/cases/{reference}/close", json={"resolution": "fixed"})
        assert closed.status_code == 200
    reopen = update(report_id, "reopen", "It has not been cleared")  # no case id: intake had not heard
    await send(infra, reopen)
    assert await settled(db, reopen.update_id) == "reopened"
    state = await case_state(db, reference)
    assert (state["status"], state["resolution"]) == ("open", None)
    assert state["history"][-2:] == [
        ("resident:test", "reopened", reopen.update_id),
        ("resident:test", "note-added", reopen.update_id),
    ]

    # Staff close it again; the same reopening redelivered must not reopen it a second time.
    async with client(app, staff="dev") as http:
        closed = await http.post(f"/api/cases/{reference}/close", json={"resolution": "no-further-action"})
        assert closed.status_code == 200
    sentinel = update(report_id, "note", "Thanks")
    await send(infra, reopen, sentinel)
    assert await settled(db, sentinel.update_id) == "noted"
    after = await case_state(db, reference)
    assert (after["status"], after["resolution"]) == ("closed", "no-further-action")
    assert [e for e in after["history"] if e[1] == "reopened"] == [
        ("resident:test", "reopened", reopen.update_id)
    ]

    events = await published(infra, reference, want=1 + 2 + 2 + 2 + 1)
    changes = [(e["event_type"], e.get("status"), e.get("actor")) for e in events if e.get("actor")]
    assert changes == [
        ("CaseStatusChanged", "closed", "dev"),
        ("CaseClosed", None, "dev"),
        ("CaseStatusChanged", "open", "resident:test"),
        ("CaseNoteAdded", None, "resident:test"),
        ("CaseStatusChanged", "closed", "dev"),
        ("CaseClosed", None, "dev"),
        ("CaseNoteAdded", None, "resident:test"),
    ]


async def test_a_reopening_of_an_open_case_only_adds_the_note(infra, db, app):
    reference, report_id = await new_case(infra, db)
    case_id = await db.fetchval("SELECT case_id FROM router.cases WHERE reference = $1", reference)
    reopen = update(report_id, "reopen", "Please look again", case_id=case_id)
    await send(infra, reopen)
    assert await settled(db, reopen.update_id) == "already-open"
    state = await case_state(db, reference)
    assert state["status"] == "open"
    assert state["history"] == [("resident:test", "note-added", reopen.update_id)]


async def test_an_update_that_arrives_before_its_report_is_applied_once_the_report_is_routed(infra, db, app):
    event = report_received(**somewhere_new())
    early = update(event.report_id, "note", "Also blocking the pavement")
    await send(infra, early)
    await asyncio.sleep(0.5)  # the router has tried it and found no case: it will try again
    async with producer(infra) as kafka:
        await (await publish(infra, kafka, event))
    await wait_routed(db, [event.report_id])
    assert await settled(db, early.update_id) == "noted"
    reference = await db.fetchval(
        "SELECT c.reference FROM router.cases c JOIN router.reports r USING (case_id) WHERE r.report_id = $1",
        event.report_id,
    )
    assert (await case_state(db, reference))["notes"] == [
        ("resident:test", "public", "Also blocking the pavement")
    ]


async def test_a_malformed_update_is_dead_lettered_and_the_next_one_still_applied(infra, db, app):
    reference, report_id = await new_case(infra, db)
    async with producer(infra) as kafka:
        await (
            await kafka.send(
                f"{infra.topic_prefix}reports.updates.v1", b'{"update_id": 7}', key=str(report_id).encode()
            )
        )
    good = update(report_id, "note", "Bins overflowing too")
    await send(infra, good)
    assert await settled(db, good.update_id) == "noted"
    assert len((await case_state(db, reference))["notes"]) == 1
