"""Staff decisions about duplicates as the detector's labels, against the real PostgreSQL (issue 17 item
5): reports routed by the router's own service, then confirmed, unlinked, linked back and closed by the
staff desk, both on a database of their own as the router's role (migration 0011's rights reach the new
table); router.duplicate_labels read back, the metrics counted, and the evaluation's `--labels-from`
printing the detector's precision on them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from caseway_ops.database import create_database, drop_database
from caseway_router.adapters.case_files import CaseFiles
from caseway_router.adapters.store import RoutingStore
from caseway_router.domain.access import StaffMember
from caseway_router.domain.places import PlaceFinder
from caseway_router.research import evaluate
from caseway_router.service import RouterService
from caseway_router.staff import StaffDesk
from caseway_shared.council import load_council
from caseway_shared.db import create_pool
from caseway_shared.settings import DEFAULT_DATABASE_URL, ServiceSettings
from caseway_shared.unit_of_work import PostgresUnitOfWork
from factories import BOLD_STREET, METRE, as_record, report_received

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from caseway_router.domain.duplicates import Shadow
    from caseway_shared.events import ReportReceived

pytestmark = pytest.mark.infra
COUNCIL = load_council()
MANAGER = StaffMember("manager-n01", "Nia", manages=frozenset({"N01 City Centre & Waterfront South"}))
T0 = datetime.now(UTC) - timedelta(hours=36)


@dataclass
class Router:
    """The router's routing and staff desk on one database, as its role, with their metrics."""

    url: str
    routing: RouterService
    desk: StaffDesk
    metrics: CollectorRegistry

    async def route(self, *reports: ReportReceived) -> None:
        await self.routing.handle_reports_batch([as_record(r, offset=i) for i, r in enumerate(reports)])

    def judged(self, family: str, verdict: str) -> float | None:
        return self.metrics.get_sample_value(f"caseway_router_{family}_judged_total", {"verdict": verdict})


@contextlib.asynccontextmanager
async def router_database(
    prefix: str, *, shadow: Shadow | None = None
) -> AsyncIterator[tuple[Router, asyncpg.Connection]]:
    """A freshly migrated database of its own, the router's service (with `shadow`, if any) and desk on it
    as caseway_router, and a connection as the migrating role to read it with."""
    base_url = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    url = await create_database(base_url, name)
    pool = await create_pool(
        ServiceSettings(database_url=url, database_role="caseway_router"),
        application_name=prefix,
        schema="router",
    )
    connection = await asyncpg.connect(url)
    metrics = CollectorRegistry()
    try:

        def unit_of_work(repositories):
            return PostgresUnitOfWork(
                pool=lambda: pool, schema="router", repositories=repositories, wake=lambda: None
            )

        def topic(t):
            return t.value

        routing = RouterService(
            unit_of_work=unit_of_work(RoutingStore),
            council=COUNCIL,
            places=PlaceFinder(COUNCIL),
            topic=topic,
            metrics=metrics,
            shadow=shadow,
        )
        desk = StaffDesk(unit_of_work=unit_of_work(CaseFiles), council=COUNCIL, topic=topic, metrics=metrics)
        yield Router(url, routing, desk, metrics), connection
    finally:
        await connection.close()
        await pool.close()
        await drop_database(base_url, name)


def _report(metres_north: float, *, at: datetime = T0, **fields) -> ReportReceived:
    return report_received(received_at=at, lat=BOLD_STREET[0] + metres_north * METRE, **fields)


@dataclass(frozen=True)
class Story:
    router: Router
    db: asyncpg.Connection
    first: str  # the case of reports a, b and d (b and d linked to it by the router)
    a: uuid.UUID
    b: uuid.UUID
    d: uuid.UUID
    x: uuid.UUID  # a litter report 36 h later, its case flagged as possibly the first's
    split: str  # the case b was unlinked into


async def _reference(db: asyncpg.Connection, report_id: uuid.UUID) -> str:
    return await db.fetchval(
        "SELECT c.reference FROM router.cases c JOIN router.reports r USING (case_id) WHERE r.report_id = $1",
        report_id,
    )


@pytest.fixture(scope="module")
async def story(infra) -> AsyncIterator[Story]:
    """Reports a, b (5 m) and d (3 m) of one fly-tip make one case; x, litter 35 m away 36 h later, opens a
    case flagged as possibly the same. Staff unlink b, link it back, confirm x's flag and close the case."""
    del infra  # the stack must be up; the database is this module's own
    async with router_database("caseway_labels") as (router, db):
        a, b, d = _report(0), _report(5), _report(-3)
        x = _report(35, at=T0 + timedelta(hours=36), category="litter", description="Broken glass all over")
        for report in (a, b, d, x):
            await router.route(report)
        first = await _reference(db, a.report_id)
        flagged = await _reference(db, x.report_id)
        assert await _reference(db, b.report_id) == first
        assert flagged != first
        split = await router.desk.unlink_report(MANAGER, first, report_id=b.report_id)
        await router.desk.link_report(MANAGER, first, report_id=b.report_id)
        await router.desk.review_duplicate(MANAGER, flagged, other=first, same=True)
        await router.desk.close(MANAGER, first, resolution="fixed")
        yield Story(router, db, first, a.report_id, b.report_id, d.report_id, x.report_id, split)


async def test_routing_keeps_what_the_detector_decided_for_each_report(story):
    rows = {
        row["report_id"]: row
        for row in await story.db.fetch(
            "SELECT report_id, decision, decision_case_id, decision_score FROM router.reports"
        )
    }
    first_id = await story.db.fetchval("SELECT case_id FROM router.cases WHERE reference = $1", story.first)
    assert (rows[story.a]["decision"], rows[story.a]["decision_case_id"]) == ("new", None)
    assert (rows[story.b]["decision"], rows[story.b]["decision_case_id"]) == ("link", first_id)
    assert (rows[story.x]["decision"], rows[story.x]["decision_case_id"]) == ("review", first_id)
    assert 0.005 <= rows[story.x]["decision_score"] < 0.03


async def test_each_staff_decision_is_a_label_with_who_when_and_what_the_detector_had_scored(story):
    ids = {
        row["reference"]: row["case_id"]
        for row in await story.db.fetch("SELECT reference, case_id FROM router.cases")
    }
    first, split = ids[story.first], ids[story.split]
    scores = {
        row["report_id"]: row["decision_score"]
        for row in await story.db.fetch("SELECT report_id, decision_score FROM router.reports")
    }
    labels = [
        (
            r["actor"],
            r["decision"],
            r["report_id"],
            r["case_id"],
            r["same_problem"],
            r["detector"],
            r["score"],
        )
        for r in await story.db.fetch("SELECT * FROM router.duplicate_labels ORDER BY id")
    ]
    assert labels == [
        ("manager-n01", "report-unlinked", story.b, first, False, "linked", scores[story.b]),
        ("manager-n01", "report-linked", story.b, first, True, "linked", scores[story.b]),
        ("manager-n01", "report-linked", story.b, split, False, "apart", None),
        ("manager-n01", "duplicate-confirmed", story.x, first, True, "flagged", scores[story.x]),
        ("manager-n01", "case-closed", story.d, first, True, "linked", scores[story.d]),
    ]
    # b's link was undone, then made again by hand (kept); d's kept when the case closed; x's flag right.
    assert (story.router.judged("links", "undone"), story.router.judged("links", "kept")) == (1.0, 2.0)
    assert (story.router.judged("flags", "same"), story.router.judged("flags", "different")) == (1.0, 0.0)


async def test_the_evaluation_reads_the_labels_and_gives_the_detectors_precision_on_them(story, capsys):
    # The command as an operator runs it (its own event loop, so in a thread of its own here).
    await asyncio.to_thread(evaluate.main, ["--labels-from", story.router.url])
    out = capsys.readouterr().out
    assert "staff labels: 5 judgements of 4 pairs" in out
    lines = {line.split("|")[0].strip(): line for line in out.splitlines() if "|" in line}
    # b (its latest judgement: linked back) and d kept: automatic links 2 of 2 right; x's flag right.
    assert lines["linked"].split("|")[1].split() == ["2", "0"]
    assert lines["linked"].split("|")[2].split()[0] == "1.000"
    assert lines["flagged"].split("|")[1].split() == ["1", "0"]
    assert lines["apart"].split("|")[1].split() == ["0", "1"]
    # At the live threshold (0.03) the flagged pair stays apart; at 0.005 it links, and rightly.
    assert lines["0.03"].split("|")[1].split() == ["2", "2", "0"]
    assert lines["0.005"].split("|")[1].split() == ["3", "3", "0"]
