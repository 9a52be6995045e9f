"""The router against the real broker and database: replicas run in-process, reports go in through
reports.received.v1, and the cases, history and published events are read back."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from typing import TYPE_CHECKING

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from caseway_router.domain.access import StaffMember
from caseway_router.entrypoints.app import create_app
from caseway_router.settings import RouterSettings
from caseway_shared import headers as h
from factories import BOLD_STREET, METRE, report_received

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from caseway_router.staff import StaffDesk
    from caseway_shared.events import ReportReceived
    from caseway_shared.runtime import ServiceRuntime


def settings(infra, name: str) -> RouterSettings:
    return RouterSettings(
        kafka_bootstrap_servers=infra.bootstrap_servers,
        topic_prefix=infra.topic_prefix,
        database_url=infra.database_url,
        instance_id=name,
        log_format="console",
        log_level="warning",
    )


@contextlib.asynccontextmanager
async def running_routers(infra, count: int = 1) -> AsyncIterator[list[tuple[ServiceRuntime, StaffDesk]]]:
    """`count` router replicas in one consumer group; yields once every replica has partitions."""
    apps = [create_app(settings(infra, f"router-{i}")) for i in range(count)]
    async with contextlib.AsyncExitStack() as stack:
        for app in apps:
            await stack.enter_async_context(app.state.runtime.lifespan())
        runtimes = [app.state.runtime for app in apps]
        deadline = time.monotonic() + 180  # a loaded 2-core machine starts slowly
        while not all(runtime.consuming() for runtime in runtimes):
            assert time.monotonic() < deadline, "the replicas never all got partitions"
            await asyncio.sleep(0.2)
        yield [(app.state.runtime, app.state.staff) for app in apps]


def assigned_partitions(runtime: ServiceRuntime) -> set[int]:
    """The partitions of reports.received.v1 this replica owns (the router reads residents' updates too)."""
    return {
        tp.partition
        for subscriber in runtime._subscribers
        for tp in subscriber.consumer.assignment()
        if tp.topic.endswith("reports.received.v1")
    }


@contextlib.asynccontextmanager
async def producer(infra) -> AsyncIterator[AIOKafkaProducer]:
    client = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers, acks="all", linger_ms=0)
    await client.start()
    try:
        yield client
    finally:
        await client.stop()


async def publish(infra, client: AIOKafkaProducer, event: ReportReceived, *, partition: int | None = None):
    """Send one report to reports.received.v1 (keyed by report id, or to a given partition); returns the
    future of its acknowledgement."""
    return await client.send(
        f"{infra.topic_prefix}reports.received.v1",
        event.model_dump_json().encode(),
        key=str(event.report_id).encode(),
        partition=partition,
        headers=h.encode_headers({h.CORRELATION_ID: str(event.report_id), h.EVENT_TYPE: "ReportReceived"}),
    )


async def wait_routed(db, report_ids, *, timeout: float = 45.0) -> None:
    """Until every report id has a row in router.reports."""
    wanted = [uuid.UUID(str(r)) for r in report_ids]
    deadline = time.monotonic() + timeout
    while True:
        done = await db.fetchval(
            "SELECT count(*) FROM router.reports WHERE report_id = ANY($1::uuid[])", wanted
        )
        if done == len(wanted):
            return
        assert time.monotonic() < deadline, f"only {done} of {len(wanted)} reports were routed"
        await asyncio.sleep(0.1)


pytestmark = pytest.mark.infra


async def _events(db, case_id) -> list[str]:
    """The event types queued or published for a case: the outbox keeps rows until relayed, so read the
    topic's worth from the history instead (what the router decided), plus the outbox."""
    rows = await db.fetch("SELECT action FROM router.case_history WHERE case_id = $1 ORDER BY id", case_id)
    return [row["action"] for row in rows]


async def _case_of(db, report_id):
    return await db.fetchrow(
        "SELECT c.* FROM router.cases c JOIN router.reports r USING (case_id) WHERE r.report_id = $1",
        report_id,
    )


async def _published(infra, case_id, *, want: int, timeout: float = 30.0) -> list[str]:
    """The event types published to cases.v1 under the case's key, once at least `want` arrived."""
    consumer = AIOKafkaConsumer(
        f"{infra.topic_prefix}cases.v1",
        bootstrap_servers=infra.bootstrap_servers,
        group_id=f"test-reader-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    found: list[str] = []
    try:
        deadline = time.monotonic() + timeout
        while len(found) < want and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                found.extend(
                    json.loads(r.value)["event_type"] for r in records if r.key == str(case_id).encode()
                )
        return found
    finally:
        await consumer.stop()


async def test_reports_of_one_problem_become_one_case_with_every_department_once(infra, db):
    """A fly-tip opens one case with three departments; a neighbour's report 10 m away joins it (counted,
    not assigned again); the same event delivered twice changes nothing; a far one opens its own case."""
    first = report_received()
    second = report_received(
        lat=BOLD_STREET[0] + 10 * METRE, description="Someone dumped a mattress and bags"
    )
    far = report_received(lat=BOLD_STREET[0] + 500 * METRE)
    async with running_routers(infra), producer(infra) as client:
        await (await publish(infra, client, first))
        await wait_routed(db, [first.report_id])
        for event in (second, first, far):
            await (await publish(infra, client, event))
        await wait_routed(db, [second.report_id, far.report_id])
        await asyncio.sleep(0.5)  # time for the redelivered first report to be (not) processed
        case = await _case_of(db, first.report_id)
        assert (await _case_of(db, second.report_id))["case_id"] == case["case_id"]
        assert (await _case_of(db, far.report_id))["case_id"] != case["case_id"]
        assert case["reports_count"] == 2
        assert (
            await db.fetchval("SELECT count(*) FROM router.reports WHERE case_id = $1", case["case_id"]) == 2
        )
        departments = await db.fetch(
            "SELECT department, role FROM router.assignments WHERE case_id = $1 ORDER BY role, department",
            case["case_id"],
        )
        assert [(d["department"], d["role"]) for d in departments] == [
            ("city-watch", "contributor"),
            ("env-crime", "contributor"),
            ("streetscene", "lead"),
        ]
        assert await _events(db, case["case_id"]) == [
            "opened",
            "assigned",
            "assigned",
            "assigned",
            "report-linked",
        ]
        published = await _published(infra, case["case_id"], want=2)
        assert sorted(published) == ["CaseOpened", "ReportLinked"]  # departments and flags in CaseOpened


async def test_closing_a_case_records_who_and_publishes_status_and_closed(infra, db):
    event = report_received(category="graffiti", description="Tagging on the bus shelter")
    async with running_routers(infra) as routers, producer(infra) as client:
        await (await publish(infra, client, event))
        await wait_routed(db, [event.report_id])
        case = await _case_of(db, event.report_id)
        _, desk = routers[0]
        officer = StaffMember("officer-17", "Officer 17", admin=True)
        await desk.close(officer, case["reference"], resolution="fixed", note="cleaned")
        closed = await db.fetchrow(
            "SELECT status, closed_at FROM router.cases WHERE case_id = $1", case["case_id"]
        )
        assert closed["status"] == "closed"
        assert closed["closed_at"] is not None
        history = await db.fetchrow(
            "SELECT actor, detail->>'resolution' AS resolution FROM router.case_history"
            " WHERE case_id = $1 AND action = 'closed'",
            case["case_id"],
        )
        assert history["actor"] == "officer-17"
        assert history["resolution"] == "fixed"
        published = await _published(infra, case["case_id"], want=3)
        assert "CaseStatusChanged" in published
        assert "CaseClosed" in published


async def test_a_report_without_coordinates_is_placed_by_postcode_or_triaged_never_dropped(infra, db):
    placed = report_received(category="pothole", lat=None, lon=None, postcode="L26 1AB", description="Hole")
    spread = report_received(category="pothole", lat=None, lon=None, postcode="L17 8XY", description="Hole")
    async with running_routers(infra), producer(infra) as client:
        for event in (placed, spread):
            await (await publish(infra, client, event))
        await wait_routed(db, [placed.report_id, spread.report_id])
    one = await _case_of(db, placed.report_id)
    assert one["ward_code"] is not None
    assert "approximate-location" in one["flags"]
    other = await _case_of(db, spread.report_id)
    assert other["ward_code"] is None
    assert "needs-triage" in other["flags"]
    reason = await db.fetchval(
        "SELECT detail->>'reason' FROM router.case_history WHERE case_id = $1 AND action = 'flagged'",
        other["case_id"],
    )
    assert "L17" in reason


async def test_two_replicas_merge_simultaneous_reports_of_one_problem(infra, db):
    """Two replicas share the consumer group; each pair of same-problem reports is sent at the same moment
    to partitions owned by different replicas; every pair still ends in exactly one case."""
    pairs = 12
    async with running_routers(infra, count=2) as routers, producer(infra) as client:
        (runtime_a, _), (runtime_b, _) = routers
        mine, theirs = sorted(assigned_partitions(runtime_a)), sorted(assigned_partitions(runtime_b))
        assert mine
        assert theirs
        assert not set(mine) & set(theirs)
        sent = []
        for i in range(pairs):
            # Problems 300 m apart on a line 2 km east of the other tests' reports: each pair is its own.
            lat, lon = BOLD_STREET[0] - 0.02 + i * 300 * METRE, BOLD_STREET[1] + 0.03
            a = report_received(
                category="dog-fouling", lat=lat, lon=lon, description="Dog mess all over the path"
            )
            b = report_received(
                category="dog-fouling", lat=lat + 6 * METRE, lon=lon, description="dog fouling on the path"
            )
            futures = await asyncio.gather(
                publish(infra, client, a, partition=mine[i % len(mine)]),
                publish(infra, client, b, partition=theirs[i % len(theirs)]),
            )
            await asyncio.gather(*futures)
            sent.append((a.report_id, b.report_id))
        await wait_routed(db, [r for pair in sent for r in pair])
    for a, b in sent:
        case_a, case_b = await _case_of(db, a), await _case_of(db, b)
        assert case_a["case_id"] == case_b["case_id"]
        rows = await db.fetch(
            "SELECT report_id, link_score FROM router.reports WHERE case_id = $1", case_a["case_id"]
        )
        history = await db.fetch(
            "SELECT action, detail::text FROM router.case_history WHERE case_id = $1 ORDER BY id",
            case_a["case_id"],
        )
        assert case_a["reports_count"] == len(rows) == 2, (rows, history)
    cases = await db.fetchval(
        "SELECT count(DISTINCT case_id) FROM router.reports WHERE report_id = ANY($1::uuid[])",
        [r for pair in sent for r in pair],
    )
    assert cases == pairs
