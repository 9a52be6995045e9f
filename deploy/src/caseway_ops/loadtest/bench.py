"""The end-to-end benchmark against the raw Kafka ceiling, in one run on the load test's own stack.

(a) ceiling: the same messages produced (acks=all, idempotent) to a scratch topic on the same broker and
    consumed back, messages/s from the first send to the last message read;
(b) Caseway: a backlog published as fast as possible, from contact-centre.reports.v1 (and Open311) to the
    last notification recorded: sustained reports/s; then paced load at fixed offered rates, with latency
    from publishing a report to the notifier recording its case's alerts as sent (p50/p95/p99);
    peak memory (VmHWM) of each service, and where the time goes: each hop's share of the latency (from
    the rows' timestamps) and each service's CPU seconds per 1,000 reports (from /proc).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from caseway_ops.loadtest.generator import LoadGenerator
from caseway_ops.loadtest.harness import Sent, paced, wait_quiet
from caseway_ops.loadtest.runs import open_run
from caseway_ops.loadtest.services import SERVICES
from caseway_shared.council import load_council

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import datetime

    from caseway_ops.loadtest.generator import GeneratedReport
    from caseway_ops.loadtest.stack import LoadtestStack

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class BenchPlan:
    backlog: int = 20_000
    rates: tuple[int, ...] = (50, 200, 1000)
    phase_seconds: float = 20.0
    http_share: float = 0.05
    quiet_timeout: float = 900.0
    seed: int = 5


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used so far."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:  # noqa: PTH123
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (PostgreSQL's backends under its postmaster)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text(encoding="ascii")
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def infrastructure_cpu(stack: LoadtestStack) -> dict[str, float]:
    """CPU seconds used so far by the broker and by the PostgreSQL server (postmaster and its backends;
    backends that already exited are not counted)."""
    figures = {}
    if (kafka := stack.kafka_pid()) is not None:
        figures["kafka"] = cpu_seconds(kafka)
    if (postgres := stack.postgres_pid()) is not None:
        figures["postgres"] = cpu_seconds(postgres) + sum(cpu_seconds(p) for p in _children(postgres))
    return figures


async def measure_ceiling(bootstrap: str, prefix: str, values: Sequence[bytes]) -> float:
    """Messages/s of an aiokafka produce-then-consume passthrough of `values` (6 partitions, like the
    contact-centre topic), from the first send until the consumer has read the last one."""
    topic = f"{prefix}ceiling"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=6, replication_factor=1)])
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"{prefix}ceiling",
        auto_offset_reset="earliest",
        max_poll_records=5000,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=256 * 1024,
    )
    await consumer.start()
    await producer.start()
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=200)
        start = time.monotonic()

        async def produce() -> None:
            futures = [
                await producer.send(topic, value, key=str(i).encode()) for i, value in enumerate(values)
            ]
            await asyncio.gather(*futures)

        producing = asyncio.create_task(produce())
        seen = 0
        while seen < len(values):
            batch = await consumer.getmany(timeout_ms=1000)
            seen += sum(len(records) for records in batch.values())
        await producing
        return len(values) / (time.monotonic() - start)
    finally:
        await producer.stop()
        await consumer.stop()


async def _report_timings(database_url: str, sent: Sequence[Sent]) -> list[dict[str, Any]]:
    """For each sent report that opened its case: publish time, accepted, routed, alerts recorded and
    sent (epoch seconds)."""
    published = {s.report_id: s.at for s in sent if s.report.valid and s.report_id is not None}
    db = await asyncpg.connect(database_url)
    try:
        rows = await db.fetch(
            """
            WITH first AS (
                SELECT DISTINCT ON (case_id) case_id, report_id, routed_at
                FROM router.reports ORDER BY case_id, routed_at, report_id
            )
            SELECT f.report_id, i.accepted_at, f.routed_at,
                   min(n.created_at) AS planned_at, max(n.sent_at) AS sent_at
            FROM first f
            JOIN intake.reports i USING (report_id)
            JOIN notifier.notifications n
              ON n.case_id = f.case_id AND n.kind = 'new-case' AND n.status = 'sent'
            WHERE f.report_id = ANY($1::uuid[])
            GROUP BY f.report_id, i.accepted_at, f.routed_at
            """,
            list(published),
        )
    finally:
        await db.close()

    def epoch(value: datetime) -> float:
        return value.timestamp()

    return [
        {
            "published": published[row["report_id"]],
            "accepted": epoch(row["accepted_at"]),
            "routed": epoch(row["routed_at"]),
            "planned": epoch(row["planned_at"]),
            "sent": epoch(row["sent_at"]),
        }
        for row in rows
    ]


async def _last_activity(database_url: str) -> float:
    db = await asyncpg.connect(database_url)
    try:
        value = await db.fetchval(
            "SELECT greatest((SELECT max(sent_at) FROM notifier.notifications),"
            " (SELECT max(routed_at) FROM router.reports))"
        )
    finally:
        await db.close()
    return float(value.timestamp()) if value is not None else time.time()


def _latency(timings: Sequence[dict[str, Any]]) -> dict[str, float]:
    ms = [(t["sent"] - t["published"]) * 1000 for t in timings]
    return {
        "p50": round(percentile(ms, 50), 1),
        "p95": round(percentile(ms, 95), 1),
        "p99": round(percentile(ms, 99), 1),
        "max": round(max(ms), 1) if ms else float("nan"),
        "measured_reports": len(ms),
    }


def _stages(timings: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Median milliseconds spent in each hop."""
    hops = {
        "publish_to_intake_commit": ("published", "accepted"),
        "intake_commit_to_router_commit": ("accepted", "routed"),
        "router_commit_to_notifier_planned": ("routed", "planned"),
        "notifier_planned_to_sent": ("planned", "sent"),
    }
    return {
        name: round(statistics.median((t[b] - t[a]) * 1000 for t in timings), 1) if timings else float("nan")
        for name, (a, b) in hops.items()
    }


async def run_bench(
    plan: BenchPlan, *, stack: LoadtestStack, say: Callable[[str], None] = print, keep_stack: bool = False
) -> dict[str, Any]:
    run_id = f"b{uuid.uuid4().hex[:8]}"
    say(f"benchmark {run_id}: the load test's own stack at {stack.config.bootstrap_servers}")
    run = await open_run(stack, run_id)
    env, services, publisher = run.env, run.services, run.publisher
    generator = LoadGenerator(load_council(), seed=plan.seed, run_id=run_id, http_share=plan.http_share)
    results: dict[str, Any] = {"run_id": run_id}
    try:
        backlog: list[GeneratedReport] = [generator.next() for _ in range(plan.backlog)]
        say(f"(a) ceiling: {plan.backlog} messages through aiokafka, produce then consume")
        ceiling = await measure_ceiling(
            env.bootstrap_servers, env.topic_prefix, [r.value or b"{}" for r in backlog]
        )
        say(f"    ceiling {ceiling:,.0f} messages/s")

        await services.start_all()
        await publisher.start()
        # A few reports first, so that every service has joined its group and warmed its caches.
        await paced(publisher, [generator.next() for _ in range(50)], rate=50)
        await wait_quiet(
            env.database_url, env.bootstrap_servers, env.topic_prefix, expect_reports=None, timeout=120
        )

        say(f"(b) peak: a backlog of {plan.backlog} reports, published as fast as possible")
        cpu_before = {name: cpu_seconds(services.pid(name)) for name in SERVICES} | infrastructure_cpu(stack)
        first = len(publisher.sent)
        start = time.time()
        publish_s = await paced(publisher, backlog, rate=None)
        expect = len({s.report_id for s in publisher.sent if s.report.valid and s.report_id})
        await wait_quiet(
            env.database_url,
            env.bootstrap_servers,
            env.topic_prefix,
            expect_reports=expect,
            timeout=plan.quiet_timeout,
        )
        done = await _last_activity(env.database_url)
        accepted = sum(1 for s in publisher.sent[first:] if s.report.valid and s.report_id)
        e2e = accepted / (done - start)
        cpu_after = {name: cpu_seconds(services.pid(name)) for name in SERVICES} | infrastructure_cpu(stack)
        cpu = {
            name: round((cpu_after[name] - cpu_before.get(name, 0.0)) / accepted * 1000, 2)
            for name in cpu_after
        }
        peak_timings = await _report_timings(env.database_url, publisher.sent[first:])
        say(
            f"    published in {publish_s:.1f} s; {accepted} reports end to end"
            f" in {done - start:.1f} s: {e2e:,.0f}/s"
        )

        latency: dict[str, Any] = {}
        stages: dict[str, Any] = {"peak": _stages(peak_timings)}
        for rate in plan.rates:
            reports = [generator.next() for _ in range(int(rate * plan.phase_seconds))]
            first = len(publisher.sent)
            took = await paced(publisher, reports, rate=rate)
            await wait_quiet(
                env.database_url,
                env.bootstrap_servers,
                env.topic_prefix,
                expect_reports=None,
                timeout=plan.quiet_timeout,
            )
            timings = await _report_timings(env.database_url, publisher.sent[first:])
            latency[str(rate)] = {**_latency(timings), "achieved_offered_rps": round(len(reports) / took, 1)}
            stages[str(rate)] = _stages(timings)
            figures = latency[str(rate)]
            say(
                f"    {rate}/s offered: p50 {figures['p50']} ms, p95 {figures['p95']} ms,"
                f" p99 {figures['p99']} ms"
                f" ({figures['measured_reports']} reports)"
            )
        rss = services.record_rss()
        results |= {
            "ceiling_rps": round(ceiling, 1),
            "end_to_end_rps": round(e2e, 1),
            "ratio": round(e2e / ceiling, 3),
            "latency_ms": latency,
            "peak_rss_mb": {k: round(v, 1) for k, v in rss.items()},
            "stage_median_ms": stages,
            "cpu_seconds_per_1000_reports": cpu,
            "backlog": plan.backlog,
            "phase_seconds": plan.phase_seconds,
            "http_share": plan.http_share,
            "publish_retries": publisher.failures,
        }
    finally:
        await publisher.stop()
        await services.stop_all()
        if not keep_stack:
            await stack.drop_run(env)
            await stack.down()
    return results
