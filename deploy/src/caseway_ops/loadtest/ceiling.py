"""The fair ceilings Caseway's end-to-end rate is measured against, in the same run on the same machine.

- `measure_chain`: the physical limit of a three-service Kafka pipeline on this box: three hops of raw
  aiokafka consume-and-produce, each with Caseway's commit policy (a consumed batch's results are produced
  with acks=all and idempotence and waited for, then the offsets are committed) and Caseway's fan-out as
  measured in the same run (per report: one ReportReceived, `case_events` events on cases.v1, then
  `notifications` notification events). No JSON, no database: what is left is Kafka and the client.
- `measure_db_floor`: what PostgreSQL needs to store the rows Caseway keeps for that many reports (a report
  in intake, a report and per new case a case, its assignments and history in the router, the notifier's
  notifications), written by plain set-based statements (one INSERT ... SELECT FROM unnest per table per
  500 reports, fsync and synchronous_commit on), in a scratch schema of the run's database.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

if TYPE_CHECKING:
    from collections.abc import Sequence

_PARTITIONS = 6
_BATCH = 500


@dataclass(frozen=True, slots=True)
class FanOut:
    """Messages each hop produces per message it consumes, as Caseway did in the same run."""

    case_events: float  # cases.v1 events per report
    notifications: float  # notification events per report


async def _topics(bootstrap: str, names: Sequence[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, num_partitions=_PARTITIONS, replication_factor=1) for name in names]
        )
    finally:
        await admin.close()


def _producer(bootstrap: str) -> AIOKafkaProducer:
    # Caseway's producers: acks=all with idempotence (caseway_shared.kafka).
    return AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5)


async def _hop(
    bootstrap: str,
    *,
    source: str,
    target: str,
    group: str,
    per_message: float,
    stop: asyncio.Event,
    ready: asyncio.Event,
) -> None:
    """Consume `source` in batches; for each batch produce `per_message` messages per record (a running
    remainder, so fractional fan-outs come out exact), wait for every ack, then commit the offsets."""
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=_BATCH,
    )
    producer = _producer(bootstrap)
    await consumer.start()
    await producer.start()
    owed = 0.0
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=100)
        ready.set()
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=100, max_records=_BATCH)
            futures = []
            for records in batches.values():
                for record in records:
                    owed += per_message
                    while owed >= 1:
                        owed -= 1
                        futures.append(await producer.send(target, record.value, key=record.key))
            if futures:
                await asyncio.gather(*futures)
            if batches:
                await consumer.commit()
    finally:
        await producer.stop()
        await consumer.stop()


async def _count(consumer: AIOKafkaConsumer, topic: str) -> int:
    partitions = [TopicPartition(topic, p) for p in range(_PARTITIONS)]
    ends = await consumer.end_offsets(partitions)
    return sum(ends.values())


async def measure_chain(bootstrap: str, prefix: str, values: Sequence[bytes], fan_out: FanOut) -> float:
    """Reports/s through the three-hop raw chain: from the first input sent to the last output acked."""
    run = uuid.uuid4().hex[:6]
    names = [f"{prefix}chain-{run}-{n}" for n in range(4)]
    await _topics(bootstrap, names)
    stop = asyncio.Event()
    readies = [asyncio.Event() for _ in range(3)]
    per_message = [1.0, fan_out.case_events, fan_out.notifications / max(fan_out.case_events, 1e-9)]
    hops = [
        asyncio.create_task(
            _hop(
                bootstrap,
                source=names[n],
                target=names[n + 1],
                group=f"{prefix}chain-{run}-{n}",
                per_message=per_message[n],
                stop=stop,
                ready=readies[n],
            )
        )
        for n in range(3)
    ]
    watcher = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    producer = _producer(bootstrap)
    await watcher.start()
    await producer.start()
    try:
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), timeout=60)
        # The hops' running remainders add fractional fan-outs in floating point, so the last hop may end
        # a message or two short of the exact product: wait for all but those.
        expected = round(len(values) * fan_out.notifications) - 2
        started = time.monotonic()
        futures = [
            await producer.send(names[0], value, key=str(i).encode()) for i, value in enumerate(values)
        ]
        await asyncio.gather(*futures)
        while await _count(watcher, names[3]) < expected:  # noqa: ASYNC110 - polling the broker's offsets
            await asyncio.sleep(0.05)
        return len(values) / (time.monotonic() - started)
    finally:
        stop.set()
        await asyncio.gather(*hops, return_exceptions=True)
        await producer.stop()
        await watcher.stop()


_FLOOR_TABLES = """
    CREATE SCHEMA floor;
    CREATE TABLE floor.intake_reports (report_id uuid PRIMARY KEY, source_system text NOT NULL,
        source_id text NOT NULL, payload jsonb NOT NULL, accepted_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (source_system, source_id));
    CREATE TABLE floor.cases (case_id uuid PRIMARY KEY, reference text NOT NULL UNIQUE,
        category text NOT NULL, family text NOT NULL, lat float8, lon float8, cell bigint,
        summary text NOT NULL, last_report_at timestamptz NOT NULL, reports_count int NOT NULL DEFAULT 1);
    CREATE INDEX ON floor.cases (family, cell, last_report_at);
    CREATE TABLE floor.router_reports (report_id uuid PRIMARY KEY, case_id uuid NOT NULL,
        description text NOT NULL, routed_at timestamptz NOT NULL DEFAULT now());
    CREATE INDEX ON floor.router_reports (case_id);
    CREATE TABLE floor.assignments (case_id uuid NOT NULL, department text NOT NULL, role text NOT NULL,
        PRIMARY KEY (case_id, department));
    CREATE TABLE floor.history (id bigserial PRIMARY KEY, case_id uuid NOT NULL, action text NOT NULL,
        detail jsonb NOT NULL);
    CREATE TABLE floor.notifications (notification_key text PRIMARY KEY, case_id uuid, team text NOT NULL,
        status text NOT NULL, body text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
"""


@dataclass(frozen=True, slots=True)
class RowMix:
    """Rows per report, as Caseway wrote them in the same run."""

    new_case_share: float
    assignments_per_case: float
    history_per_report: float
    notifications_per_report: float


async def measure_db_floor(database_url: str, reports: int, mix: RowMix) -> float:
    """Reports/s for PostgreSQL alone to store Caseway's rows for `reports` reports, set-based."""
    db = await asyncpg.connect(database_url)
    try:
        await db.execute("DROP SCHEMA IF EXISTS floor CASCADE")
        await db.execute(_FLOOR_TABLES)
        started = time.monotonic()
        for first in range(0, reports, _BATCH):
            count = min(_BATCH, reports - first)
            await _write_floor_batch(db, first, count, mix)
        took = time.monotonic() - started
        await db.execute("DROP SCHEMA floor CASCADE")
    finally:
        await db.close()
    return reports / took


async def _write_floor_batch(db: asyncpg.Connection, first: int, count: int, mix: RowMix) -> None:
    """One batch as the three services would write it, but in one transaction per service-table group."""
    report_ids = [uuid.uuid4() for _ in range(count)]
    new_cases = max(1, round(count * mix.new_case_share))
    case_ids = [uuid.uuid4() for _ in range(new_cases)]
    report_cases = [case_ids[i % new_cases] for i in range(count)]
    payload = '{"category": "fly-tipping", "description": "a bench report, as long as a real one"}'
    async with db.transaction():  # intake's batch
        await db.execute(
            "INSERT INTO floor.intake_reports (report_id, source_system, source_id, payload)"
            " SELECT r, 'bench', s, $3::jsonb FROM unnest($1::uuid[], $2::text[]) AS t (r, s)",
            report_ids,
            [str(first + i) for i in range(count)],
            payload,
        )
    async with db.transaction():  # the router's batch
        await db.execute(
            "INSERT INTO floor.cases (case_id, reference, category, family, lat, lon, cell, summary,"
            " last_report_at)"
            " SELECT c, 'B-' || c::text, 'fly-tipping', 'waste', 53.4, -2.98, 1, 'summary', now()"
            " FROM unnest($1::uuid[]) AS t (c)",
            case_ids,
        )
        await db.execute(
            "INSERT INTO floor.router_reports (report_id, case_id, description)"
            " SELECT r, c, 'a bench report, as long as a real one'"
            " FROM unnest($1::uuid[], $2::uuid[]) AS t (r, c)",
            report_ids,
            report_cases,
        )
        per_case = max(1, round(mix.assignments_per_case))
        await db.execute(
            "INSERT INTO floor.assignments (case_id, department, role)"
            " SELECT c, 'dept-' || d, 'lead' FROM unnest($1::uuid[]) AS t (c), generate_series(1, $2) AS d",
            case_ids,
            per_case,
        )
        await db.execute(
            "INSERT INTO floor.history (case_id, action, detail)"
            " SELECT c, 'opened', '{}'::jsonb FROM unnest($1::uuid[]) AS t (c), generate_series(1, $2)",
            report_cases,
            max(1, round(mix.history_per_report)),
        )
    notifications = round(count * mix.notifications_per_report)
    async with db.transaction():  # the notifier's batch
        await db.execute(
            "INSERT INTO floor.notifications (notification_key, case_id, team, status, body)"
            " SELECT k, c, 'team', 'pending', 'an alert body of a realistic length for a team'"
            " FROM unnest($1::text[], $2::uuid[]) AS t (k, c)",
            [f"{first}-{n}" for n in range(notifications)],
            [case_ids[n % new_cases] for n in range(notifications)],
        )
