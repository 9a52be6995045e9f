"""A routing transaction holds a bounded number of advisory locks (issue: the router at scale / reliability).

A batch of 500 reports scattered over the city wants about 4,500 area locks (nine cells per report); taken in
one transaction, two replicas catching up together exhausted PostgreSQL's lock table ("out of shared
memory"). The router now routes a batch in runs whose locks fit `most_locks_per_transaction`.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from caseway_ops.loadtest.places import wards_from_geojson
from caseway_router.adapters import store
from caseway_router.entrypoints.app import create_app
from caseway_router.settings import RouterSettings
from caseway_shared.council import load_council
from factories import as_record, report_received

if TYPE_CHECKING:
    from caseway_shared.kafka import Record


def _records(count: int) -> list[Record]:
    rng = random.Random(8)
    wards = wards_from_geojson(load_council().wards_geojson)
    now = datetime.now(UTC)
    records = []
    for offset in range(count):
        lat, lon = rng.choice(wards).random_point(rng)
        report = report_received(
            category=rng.choice(["fly-tipping", "pothole", "graffiti", "litter"]),
            lat=lat,
            lon=lon,
            description="scattered report",
            received_at=now,
            source_system="locks-test",
        )
        records.append(as_record(report, offset=offset))
    return records


async def test_a_large_scattered_batch_is_routed_in_transactions_of_bounded_locks(infra, db, monkeypatch):
    taken: list[int] = []
    original = store.lock_areas

    async def counting(connection, keys):
        keys = list(keys)
        taken.append(len(set(keys)))
        await original(connection, keys)

    monkeypatch.setattr(store, "lock_areas", counting)
    settings = RouterSettings(
        kafka_bootstrap_servers=infra.bootstrap_servers,
        topic_prefix=infra.topic_prefix,
        database_url=infra.database_url,
        instance_id="locks-test",
        log_level="warning",
        most_locks_per_transaction=300,
    )
    app = create_app(settings)
    records = _records(500)
    async with app.state.runtime.lifespan():
        await app.state.router.handle_reports_batch(records)
        await app.state.router.handle_reports_batch(records)  # redelivered whole: nothing new
    routed = await db.fetchval("SELECT count(*) FROM router.reports WHERE source_system = 'locks-test'")
    assert routed == 500
    assert sum(taken[: len(taken) // 2]) > 300, "the batch wanted more locks than the budget"
    assert max(taken) <= 300


async def test_reports_joining_a_case_opened_in_the_same_batch_are_counted(infra, db):
    """Two residents report one problem seconds apart, in one batch: one case, and it says two reports
    (it used to say one: only cases stored before the batch had their count written)."""
    settings = RouterSettings(
        kafka_bootstrap_servers=infra.bootstrap_servers,
        topic_prefix=infra.topic_prefix,
        database_url=infra.database_url,
        instance_id="count-test",
        log_level="warning",
    )
    now = datetime.now(UTC)
    source = f"count-{uuid.uuid4().hex[:8]}"
    records = []
    for offset, lat in enumerate((53.40452, 53.40455, 53.40451)):
        report = report_received(
            category="graffiti",
            lat=lat,
            lon=-2.98321,
            description="graffiti on the wall",
            received_at=now,
            source_system=source,
        )
        records.append(as_record(report, offset=offset))
    app = create_app(settings)
    async with app.state.runtime.lifespan():
        await app.state.router.handle_reports_batch(records)
    rows = await db.fetch(
        "SELECT c.case_id, c.reports_count, c.points_count, c.lat,"
        " (SELECT count(*) FROM router.reports r WHERE r.case_id = c.case_id) AS linked"
        " FROM router.cases c WHERE c.case_id IN"
        " (SELECT case_id FROM router.reports WHERE source_system = $1)",
        source,
    )
    assert len(rows) == 1
    assert rows[0]["linked"] == 3
    assert rows[0]["reports_count"] == 3
    assert rows[0]["points_count"] == 3
    assert rows[0]["lat"] == pytest.approx((53.40452 + 53.40455 + 53.40451) / 3)
