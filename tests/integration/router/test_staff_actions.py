"""The staff side of the router against the real broker and database: reports routed into cases through
reports.received.v1, then the case page, the board, the actions (forms and JSON) and who may do what,
over HTTP in-process; the case events read back from cases.v1 and handed to the notifier's own service
layer to show what it does with them (acknowledged: no escalation; closed: held alerts not sent;
reassigned: the new team alerted)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from caseway_notifier.adapters.channels import InMemoryChannel
from caseway_notifier.adapters.memory import InMemoryNotifierStore
from caseway_notifier.domain.directory import load_directory
from caseway_notifier.service.case_events import CaseEvents
from caseway_notifier.service.escalation import Escalations
from caseway_notifier.service.messages import Messages
from caseway_notifier.service.sending import Sender
from caseway_notifier.settings import NotifierSettings
from caseway_router.entrypoints.app import create_app
from caseway_shared.council import LIVERPOOL_DIR
from caseway_shared.events import CASE_EVENT
from caseway_shared.unit_of_work import InMemoryUnitOfWork
from factories import BOLD_STREET, METRE, report_received
from tests.integration.router.test_router_pipeline import producer, publish, settings, wait_routed

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

pytestmark = pytest.mark.infra
HOOD = "N01 City Centre & Waterfront South"
PROXY = "10.0.0.1"


@contextlib.asynccontextmanager
async def router(infra, **overrides) -> AsyncIterator[object]:
    app = create_app(settings(infra, f"router-staff-{uuid.uuid4().hex[:6]}").model_copy(update=overrides))
    async with app.state.runtime.lifespan():
        deadline = time.monotonic() + 180  # a loaded 2-core machine starts slowly
        while not app.state.runtime.consuming():
            assert time.monotonic() < deadline, "the router never got partitions"
            await asyncio.sleep(0.2)
        yield app


@pytest.fixture(scope="module")
async def staff_app(infra) -> AsyncIterator[object]:
    """One router (routing and staff HTTP) behind a configured sign-on proxy, for the module."""
    async with router(infra, trusted_proxies=(PROXY,)) as app:
        yield app


def client(app, *, address: str = PROXY, staff: str | None = None) -> httpx.AsyncClient:
    headers = {"X-Caseway-Staff": staff} if staff else {}
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://router", headers=headers)


async def open_case(infra, db, _app: object = None, **fields) -> tuple[str, uuid.UUID]:
    event = report_received(**fields)
    async with producer(infra) as kafka:
        await (await publish(infra, kafka, event))
    await wait_routed(db, [event.report_id])
    row = await db.fetchrow(
        "SELECT c.reference, r.report_id FROM router.cases c JOIN router.reports r USING (case_id)"
        " WHERE r.report_id = $1",
        event.report_id,
    )
    return row["reference"], row["report_id"]


async def published(infra, reference: str, *, want: int, timeout: float = 30.0) -> list[dict]:
    """The case events published for `reference`, once at least `want` arrived."""
    consumer = AIOKafkaConsumer(
        f"{infra.topic_prefix}cases.v1",
        bootstrap_servers=infra.bootstrap_servers,
        group_id=f"test-staff-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    found: list[dict] = []
    try:
        deadline = time.monotonic() + timeout
        while len(found) < want and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                for record in records:
                    body = json.loads(record.value)
                    if body.get("reference") == reference:
                        found.append(body)
        return found
    finally:
        await consumer.stop()


def csrf(page: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert match, "the page has no form token"
    return match.group(1)


PROXIED = {"trusted_proxies": (PROXY,)}


async def test_the_case_page_shows_the_case_with_residents_contact_details_masked(infra, db, staff_app):
    reference, _ = await open_case(
        infra, db, description="Mattress dumped again. Ring me on 07700 900123 or jo.bloggs@example.com"
    )
    async with client(staff_app, staff="manager-n01") as http:
        page = await http.get(f"/cases/{reference}")
        assert page.status_code == 200
        html = page.text
        assert "07700" not in html
        assert "jo.bloggs" not in html
        assert "[phone hidden]" in html
        assert "[email hidden]" in html
        assert "Fly-tipping" in html
        assert HOOD.replace("&", "&amp;") in html
        assert "<svg" in html
        assert 'role="img"' in html
        assert "Streetscene" in html
        assert "Environmental Crime Enforcement" in html
        assert "<h1>" in html
        assert html.index("<h1>") < html.index("<h2")
        api = (await http.get(f"/api/cases/{reference}")).json()
        assert "07700" not in json.dumps(api)
        assert api["ward_name"]
        assert api["neighbourhood"] == HOOD
        assert {d["department"]: d["state"] for d in api["departments"]}["streetscene"] == "assigned"
        spec = (await http.get("/openapi.json")).json()
        assert "/api/cases/{reference}/acknowledge" in spec["paths"]


async def test_one_team_can_neither_read_nor_change_another_teams_case(infra, db, staff_app):
    reference, _ = await open_case(infra, db, staff_app)  # Bold Street: N01, Streetscene leads
    app = staff_app
    async with client(app, staff="streetscene-n02") as other_team:
        assert (await other_team.get(f"/cases/{reference}")).status_code == 403
        assert (await other_team.get(f"/api/cases/{reference}")).status_code == 403
        refused = await other_team.post(f"/api/cases/{reference}/acknowledge", json={})
        assert refused.status_code == 403
        closed = await other_team.post(f"/api/cases/{reference}/close", json={"resolution": "fixed"})
        assert closed.status_code == 403
        board = await other_team.get(f"/api/neighbourhoods/{HOOD}/board")
        assert board.status_code == 403
    async with client(app, staff="manager-n02") as other_manager:
        assert (await other_manager.get(f"/cases/{reference}")).status_code == 403
    async with client(app, staff="highways-officer") as other_department:
        assert (await other_department.get(f"/cases/{reference}")).status_code == 403
    async with client(app, staff="streetscene-n01") as own_team:
        page = await own_team.get(f"/cases/{reference}")
        assert page.status_code == 200
    history = await db.fetch(
        "SELECT h.actor FROM router.case_history h JOIN router.cases c USING (case_id)"
        " WHERE c.reference = $1",
        reference,
    )
    assert {row["actor"] for row in history} == {"caseway-router"}  # nobody changed anything
    status = await db.fetchval("SELECT status FROM router.cases WHERE reference = $1", reference)
    assert status == "open"


async def test_a_staff_header_from_anywhere_but_the_proxy_is_refused(infra, db, staff_app):
    reference, _ = await open_case(infra, db, staff_app)
    app = staff_app
    async with client(app, address="10.9.9.9", staff="dev") as forged:
        assert (await forged.get(f"/cases/{reference}")).status_code == 403
        assert (await forged.post(f"/api/cases/{reference}/acknowledge", json={})).status_code == 403
    async with client(app, address="127.0.0.1", staff="manager-n01") as local_forgery:
        assert (await local_forgery.get(f"/cases/{reference}")).status_code == 403
    async with client(app, address="127.0.0.1") as nobody:  # a proxy is configured: no development user
        assert (await nobody.get(f"/cases/{reference}")).status_code == 401
    async with client(app, address=PROXY, staff="nobody-we-know") as stranger:
        assert (await stranger.get(f"/cases/{reference}")).status_code == 403
    async with router(infra) as app, client(app, address="127.0.0.1") as developer:
        assert (await developer.get(f"/cases/{reference}")).status_code == 200  # no proxy: the dev user
    assert await db.fetchval("SELECT status FROM router.cases WHERE reference = $1", reference) == "open"


async def test_forms_need_the_persons_token_and_json_must_be_json(infra, db, staff_app):
    reference, _ = await open_case(infra, db, staff_app)
    async with client(staff_app, staff="manager-n01") as http:
        forged = await http.post(f"/cases/{reference}/acknowledge", data={"csrf": "0" * 40})
        assert forged.status_code == 403
        as_form = await http.post(f"/api/cases/{reference}/acknowledge", data={"department": "streetscene"})
        assert as_form.status_code == 400
    assert await db.fetchval("SELECT status FROM router.cases WHERE reference = $1", reference) == "open"


def _harness():
    """The notifier's service layer over an in-memory store, with Liverpool's teams."""
    store = InMemoryNotifierStore()
    uow = InMemoryUnitOfWork(store)
    directory = load_directory(LIVERPOOL_DIR)
    notifier_settings = NotifierSettings(ignore_hours=True)
    messages = Messages(topic=lambda topic: f"t.{topic.value}")
    return store, uow, directory, notifier_settings, messages


async def test_acknowledge_reassign_note_close_write_history_and_events_the_notifier_acts_on(
    infra, db, staff_app
):
    """Through the forms, as a browser without JavaScript would. The events published are handed to the
    notifier's service layer: before the acknowledgement the case would be escalated; after it, not; the
    reassignment alerts the new team; closing leaves the held alerts unsent."""
    reference, _ = await open_case(infra, db, description="Bags dumped, call 0151 233 3000")
    async with client(staff_app, staff="streetscene-n01") as http:
        page = await http.get(f"/cases/{reference}")
        token = csrf(page.text)
        done = await http.post(
            f"/cases/{reference}/acknowledge", data={"csrf": token, "department": "streetscene"}
        )
        assert done.status_code == 303
        assert done.headers["location"].endswith("?done=acknowledge")
        reassigned = await http.post(
            f"/cases/{reference}/reassign",
            data={"csrf": token, "from_department": "city-watch", "to_department": "housing", "role": ""},
        )
        assert reassigned.status_code == 303
        await http.post(
            f"/cases/{reference}/note",
            data={"csrf": token, "text": "Resident says ring 07700 900123", "visibility": "public"},
        )
        shown = (await http.get(f"/api/cases/{reference}")).json()
        assert shown["status"] == "acknowledged"
        states = {d["department"]: (d["role"], d["state"], d["state_by"]) for d in shown["departments"]}
        assert states["streetscene"] == ("lead", "acknowledged", "streetscene-n01")
        assert "city-watch" not in states
        assert states["housing"][0] == "contributor"
        assert shown["notes"][0]["text"] == "Resident says ring [phone hidden]"
        closed = await http.post(
            f"/api/cases/{reference}/close", json={"resolution": "fixed", "note": "Cleared today"}
        )
        assert closed.status_code == 200
        assert closed.json()["resolution"] == "fixed"
        again = await http.post(f"/api/cases/{reference}/close", json={"resolution": "fixed"})
        assert again.status_code == 409
    actions = await db.fetch(
        "SELECT actor, action FROM router.case_history h JOIN router.cases c USING (case_id)"
        " WHERE c.reference = $1 AND actor <> 'caseway-router' ORDER BY h.id",
        reference,
    )
    assert [(a["actor"], a["action"]) for a in actions] == [
        ("streetscene-n01", "acknowledged"),
        ("streetscene-n01", "reassigned"),
        ("streetscene-n01", "note-added"),
        ("streetscene-n01", "closed"),
    ]
    events = await published(infra, reference, want=1 + 1 + 3 + 2 + 2)
    types = [e["event_type"] for e in events]
    assert types[-7:] == [
        "CaseStatusChanged",
        "CaseUnassigned",
        "CaseAssigned",
        "CaseNoteAdded",
        "CaseStatusChanged",
        "CaseClosed",
    ][-7:] or types[-6:] == [
        "CaseStatusChanged",
        "CaseUnassigned",
        "CaseAssigned",
        "CaseNoteAdded",
        "CaseStatusChanged",
        "CaseClosed",
    ]
    assert "07700" not in json.dumps(events)
    assert "0151 233" not in json.dumps(events)
    staff_events = [e for e in events if e.get("actor")]
    assert {e["actor"] for e in staff_events} == {"streetscene-n01"}
    assert next(e for e in events if e["event_type"] == "CaseClosed")["resolution"] == "fixed"

    parsed = [CASE_EVENT.validate_python(e) for e in events]
    opened_at = parsed[0].occurred_at
    due_at = parsed[0].due_at
    assert due_at is not None
    late = due_at - timedelta(minutes=1)  # past the escalation time (80% of the way to due)

    # Before the acknowledgement (the opening events only), the manager would be told.
    store, uow, directory, notifier_settings, messages = _harness()
    opening = [(e, "c") for e in parsed if e.event_type == "CaseOpened"]
    await CaseEvents(
        unit_of_work=uow, directory=directory, messages=messages, clock=lambda: opened_at
    ).handle(opening[:1])
    escalations = Escalations(
        unit_of_work=uow, directory=directory, settings=notifier_settings, clock=lambda: late
    )
    assert await escalations.escalate_due(now=late) == 1

    # With the acknowledgement: no escalation.
    store, uow, directory, notifier_settings, messages = _harness()
    upto_ack = parsed[: [e.event_type for e in parsed].index("CaseStatusChanged") + 1]
    handler = CaseEvents(
        unit_of_work=uow, directory=directory, messages=messages, clock=lambda: opened_at, ignore_hours=True
    )
    await handler.handle([(e, "c") for e in upto_ack])
    escalations = Escalations(
        unit_of_work=uow, directory=directory, settings=notifier_settings, clock=lambda: late
    )
    assert await escalations.escalate_due(now=late) == 0

    # The reassignment alerts the new team (Housing); the close leaves everything still held unsent.
    await handler.handle([(e, "c") for e in parsed[len(upto_ack) :]])
    housing = [k for k in store.notifications if "|housing-city|" in k and k.endswith("|new-case")]
    assert housing, "the new team was not alerted"
    email = InMemoryChannel()
    sender = Sender(
        unit_of_work=uow,
        channels={"email": email, "webhook": InMemoryChannel()},
        messages=messages,
        settings=notifier_settings,
        clock=lambda: late,
    )
    await sender.deliver_due()
    assert email.sent == []  # every alert was still held when the case closed: none goes
    assert {n.status for n in store.notifications.values()} == {"suppressed"}


async def test_a_possible_duplicate_is_confirmed_into_the_other_case_and_reports_link_and_unlink(
    infra, db, staff_app
):
    first, _ = await open_case(infra, db, lat=BOLD_STREET[0] - 250 * METRE)
    second, second_report = await open_case(infra, db, lat=BOLD_STREET[0] - 400 * METRE)
    # Routing flags a new case that may repeat another like this (service._Writes); stand in for it.
    await db.execute(
        "INSERT INTO router.case_history (case_id, at, actor, action, detail)"
        " SELECT case_id, now(), 'caseway-router', 'flagged', $2::jsonb FROM router.cases"
        " WHERE reference = $1",
        second,
        json.dumps(
            {"flag": "possible-duplicate", "reason": f"may be the same problem as {first} (score 0.012)"}
        ),
    )
    async with client(staff_app, staff="manager-n01") as http:
        page = (await http.get(f"/cases/{second}")).text
        assert "Possible duplicates awaiting review" in page
        assert first in page
        wrong = await http.post(
            f"/api/cases/{second}/duplicate", json={"other": "LV-1999-000001", "same_problem": True}
        )
        assert wrong.status_code in (404, 409)
        merged = await http.post(
            f"/cases/{second}/duplicate", data={"csrf": csrf(page), "other": first, "decision": "same"}
        )
        assert merged.status_code == 303
        gone = (await http.get(f"/api/cases/{second}")).json()
        assert (gone["status"], gone["resolution"], gone["duplicate_of"]) == ("closed", "duplicate", first)
        assert gone["possible_duplicates"] == []
        assert gone["reports"] == []
        kept = (await http.get(f"/api/cases/{first}")).json()
        assert len(kept["reports"]) == 2
        # The merged report was not the same problem after all: it gets a case of its own.
        unlinked = await http.post(f"/api/cases/{first}/reports/{second_report}/unlink", json={})
        assert unlinked.status_code == 200
        new = unlinked.json()["new_case"]
        assert len((await http.get(f"/api/cases/{first}")).json()["reports"]) == 1
        fresh = (await http.get(f"/api/cases/{new}")).json()
        assert [r["report_id"] for r in fresh["reports"]] == [str(second_report)]
        assert {d["department"] for d in fresh["departments"]} == {"streetscene", "env-crime", "city-watch"}
        # ...and then linked back by hand.
        linked = await http.post(f"/api/cases/{first}/link", json={"report_id": str(second_report)})
        assert linked.status_code == 200
        assert len(linked.json()["reports"]) == 2
        emptied = (await http.get(f"/api/cases/{new}")).json()
        assert emptied["status"] == "closed"
        assert emptied["duplicate_of"] == first
    counts = await db.fetchrow("SELECT reports_count FROM router.cases WHERE reference = $1", first)
    assert counts["reports_count"] == 2
    events = [e["event_type"] for e in await published(infra, second, want=5)]
    assert "DuplicateReviewed" in events
    assert "ReportUnlinked" in events
    assert "CaseClosed" in events


async def test_the_board_lists_open_cases_overdue_first_with_figures_and_a_map(infra, db, staff_app):
    late_ref, _ = await open_case(infra, db, lat=BOLD_STREET[0] - 700 * METRE)
    await db.execute(
        "UPDATE router.cases SET due_at = now() - interval '2 days' WHERE reference = $1", late_ref
    )
    app = staff_app
    async with client(app, staff="manager-n01") as manager:
        board = await manager.get(f"/neighbourhoods/{HOOD}")
        assert board.status_code == 200
        html = board.text
        assert "OVERDUE" in html
        assert late_ref in html
        assert "<svg" in html
        data = (await manager.get(f"/api/neighbourhoods/{HOOD}/board")).json()
        # Overdue first (other tests of the session may have overdue cases in this neighbourhood too).
        overdue = [c["overdue"] for c in data["cases"]]
        assert overdue == sorted(overdue, reverse=True)
        assert next(c for c in data["cases"] if c["reference"] == late_ref)["overdue"]
        assert data["figures"]["overdue"] >= 1
        assert data["figures"]["open"] >= 1
        filtered = (await manager.get(f"/api/neighbourhoods/{HOOD}/board?category=pothole")).json()
        assert all(c["category"] == "pothole" for c in filtered["cases"])
    async with client(app, staff="highways-officer") as highways:
        data = (await highways.get(f"/api/neighbourhoods/{HOOD}/board")).json()
        assert late_ref not in {c["reference"] for c in data["cases"]}
