"""The end-to-end benchmark against fair ceilings, in one run on the load test's own stack.

The end point, for throughput and latency alike, is **notification recorded**: the notifier has stored the
alert a report's case event called for (delivery to SMTP, Notify or webhooks is the channels' own cost and
is measured by tests/bench/notifier_throughput.py). Every timestamp is PostgreSQL's clock_timestamp() at the
row's insert, not now() (which is its transaction's start).

(a) Caseway: a backlog published as fast as possible, from contact-centre.reports.v1 (and Open311) to the
    last notification recorded: sustained reports/s, and the workload's mix (new cases, links, case events
    and notifications per report); meanwhile PostgreSQL's top statements (pg_stat_statements) and a py-spy
    flame graph of each service (bench/flame-*.svg);
(b) the ceilings, with that mix: a three-hop chain of raw aiokafka consume-and-produce with Caseway's fan-out
    and commit policy (the physical limit of a three-service Kafka pipeline here), and PostgreSQL alone
    writing the same rows set-based (caseway_ops.loadtest.ceiling); Caseway's rate as a ratio of each;
(c) paced load at fixed offered rates, at least a minute each, with the latency of **every** report: to its
    router commit, and to its notification recorded (every report whose case event called for one);
    p50/p95/p99/max and the sample count;
peak memory (VmHWM) of each service, and CPU seconds per 1,000 reports of every process: the services, the
broker, PostgreSQL, the mail sink and this harness. Services log at their production level (info).
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
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from caseway_ops.loadtest.ceiling import FanOut, RowMix, measure_chain, measure_db_floor
from caseway_ops.loadtest.generator import LoadGenerator
from caseway_ops.loadtest.harness import Sent, paced, wait_quiet
from caseway_ops.loadtest.profiling import flame_graphs, reset_statements, top_statements
from caseway_ops.loadtest.runs import open_run
from caseway_ops.loadtest.services import SERVICES
from caseway_shared.council import load_council
from caseway_shared.topics import Topic, topic_name

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from caseway_ops.loadtest.generator import GeneratedReport
    from caseway_ops.loadtest.stack import LoadtestStack

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class BenchPlan:
    backlog: int = 20_000
    rates: tuple[int, ...] = (50, 200, 1000)
    phase_seconds: float = 60.0
    profile_seconds: float = 20.0
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


async def _report_timings(database_url: str, sent: Sequence[Sent]) -> list[dict[str, Any]]:
    """For every sent report that was accepted: published, accepted and routed times, and when the notifier
    recorded the first notification its case event called for (None when it called for none: a report that
    joined a case is folded into a digest, by design). Epoch seconds."""
    published = {s.report_id: s.at for s in sent if s.report.valid and s.report_id is not None}
    db = await asyncpg.connect(database_url)
    try:
        rows = await db.fetch(
            """
            SELECT i.report_id, i.accepted_at, r.routed_at, n.recorded_at
            FROM intake.reports i JOIN router.reports r USING (report_id)
            -- One pass over the notifications (hash join): a subquery per report, with no index on the
            -- correlation id, took five minutes of a core after a 20,000-report backlog.
            LEFT JOIN (
                SELECT correlation_id, min(created_at) AS recorded_at
                FROM notifier.notifications GROUP BY correlation_id
            ) n ON n.correlation_id = i.report_id::text
            WHERE i.report_id = ANY($1::uuid[])
            """,
            list(published),
        )
    finally:
        await db.close()
    return [
        {
            "published": published[row["report_id"]],
            "accepted": row["accepted_at"].timestamp(),
            "routed": row["routed_at"].timestamp(),
            "recorded": row["recorded_at"].timestamp() if row["recorded_at"] is not None else None,
        }
        for row in rows
    ]


async def _last_activity(database_url: str) -> float:
    db = await asyncpg.connect(database_url)
    try:
        value = await db.fetchval(
            "SELECT greatest((SELECT max(created_at) FROM notifier.notifications),"
            " (SELECT max(routed_at) FROM router.reports))"
        )
    finally:
        await db.close()
    return float(value.timestamp()) if value is not None else time.time()


def _summary(ms: Sequence[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(ms, 50), 1),
        "p95": round(percentile(ms, 95), 1),
        "p99": round(percentile(ms, 99), 1),
        "max": round(max(ms), 1) if ms else float("nan"),
        "samples": len(ms),
    }


def _latency(timings: Sequence[dict[str, Any]]) -> dict[str, Any]:
    recorded = [t for t in timings if t["recorded"] is not None]
    return {
        "to_notification_recorded": _summary([(t["recorded"] - t["published"]) * 1000 for t in recorded]),
        "to_routed": _summary([(t["routed"] - t["published"]) * 1000 for t in timings]),
    }


def _stages(timings: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Median milliseconds spent in each hop."""
    hops = {
        "publish_to_intake_insert": ("published", "accepted"),
        "intake_insert_to_router_insert": ("accepted", "routed"),
        "router_insert_to_notification_recorded": ("routed", "recorded"),
    }
    medians = {}
    for name, (a, b) in hops.items():
        spans = [(t[b] - t[a]) * 1000 for t in timings if t[a] is not None and t[b] is not None]
        medians[name] = round(statistics.median(spans), 1) if spans else float("nan")
    return medians


async def _mix(database_url: str, bootstrap: str, prefix: str, sent: Sequence[Sent]) -> dict[str, float]:
    """What the backlog's reports did: the share that opened a case or joined one, and per report the case
    events on cases.v1, notifications recorded, assignments and history rows."""
    ids = [s.report_id for s in sent if s.report.valid and s.report_id is not None]
    db = await asyncpg.connect(database_url)
    try:
        row = await db.fetchrow(
            """
            WITH mine AS (SELECT report_id, case_id, link_score FROM router.reports
                          WHERE report_id = ANY($1::uuid[]))
            SELECT count(*) AS reports,
                   count(*) FILTER (WHERE link_score IS NULL) AS opened,
                   count(*) FILTER (WHERE link_score IS NOT NULL) AS linked,
                   (SELECT count(*) FROM router.assignments a
                    WHERE a.case_id IN (SELECT case_id FROM mine WHERE link_score IS NULL)) AS assignments,
                   (SELECT count(*) FROM router.case_history h
                    WHERE h.case_id IN (SELECT case_id FROM mine)) AS history,
                   (SELECT count(*) FROM notifier.notifications n
                    WHERE n.correlation_id IN (SELECT report_id::text FROM mine)) AS notifications
            FROM mine
            """,
            ids,
        )
    finally:
        await db.close()
    if row is None:  # an aggregate always answers one row
        raise RuntimeError("no mix row")
    reports = max(row["reports"], 1)
    # Events on the topic come from every report of the run (the warm-up too): divide by all of them.
    events = await _messages(bootstrap, topic_name(Topic.CASES, prefix))
    db = await asyncpg.connect(database_url)
    try:
        every = max(await db.fetchval("SELECT count(*) FROM router.reports"), 1)
    finally:
        await db.close()
    return {
        "reports": row["reports"],
        "new_case_share": round(row["opened"] / reports, 3),
        "linked_share": round(row["linked"] / reports, 3),
        # Each case event the router publishes is written to the case's history with it (opened,
        # assigned, flagged, report-linked): the history is the fallback when the topic's offsets cannot
        # be read (a first run read 0 from them).
        "case_events_per_report": round(events / every, 3) if events else round(row["history"] / reports, 3),
        "notifications_per_report": round(row["notifications"] / reports, 3),
        "assignments_per_new_case": round(row["assignments"] / max(row["opened"], 1), 3),
        "history_rows_per_report": round(row["history"] / reports, 3),
    }


async def _messages(bootstrap: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not partitions:
            await consumer.topics()
            partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = await consumer.end_offsets(partitions)
        return sum(ends.values())
    finally:
        await consumer.stop()


async def run_bench(  # noqa: PLR0915 - one run's phases, in order, read best in one place
    plan: BenchPlan, *, stack: LoadtestStack, say: Callable[[str], None] = print, keep_stack: bool = False
) -> dict[str, Any]:
    run_id = f"b{uuid.uuid4().hex[:8]}"
    say(f"benchmark {run_id}: the load test's own stack at {stack.config.bootstrap_servers}")
    run = await open_run(stack, run_id)
    env, services, publisher = run.env, run.services, run.publisher
    generator = LoadGenerator(load_council(), seed=plan.seed, run_id=run_id, http_share=plan.http_share)
    results: dict[str, Any] = {"run_id": run_id, "end_point": "notification recorded"}
    try:
        backlog: list[GeneratedReport] = [generator.next() for _ in range(plan.backlog)]
        await services.start_all()
        await publisher.start()
        # A few reports first, so that every service has joined its group and warmed its caches.
        await paced(publisher, [generator.next() for _ in range(50)], rate=50)
        await wait_quiet(
            env.database_url, env.bootstrap_servers, env.topic_prefix, expect_reports=None, timeout=120
        )

        say(f"(a) peak: a backlog of {plan.backlog} reports, published as fast as possible")
        statements = await reset_statements(env.database_url)
        pids = {name: services.pid(name) for name in SERVICES}
        everyone = {**pids, "mail_sink": services.pid("smtp"), "harness": os.getpid()}
        cpu_before = {n: cpu_seconds(p) for n, p in everyone.items()} | infrastructure_cpu(stack)
        first = len(publisher.sent)
        start = time.time()
        profiling = asyncio.create_task(flame_graphs(pids, Path("bench"), seconds=plan.profile_seconds))
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
        cpu_after = {n: cpu_seconds(p) for n, p in everyone.items()} | infrastructure_cpu(stack)
        cpu = {
            name: round((cpu_after[name] - cpu_before.get(name, 0.0)) / accepted * 1000, 2)
            for name in cpu_after
        }
        flames = await profiling
        top = await top_statements(env.database_url) if statements else []
        peak_timings = await _report_timings(env.database_url, publisher.sent[first:])
        mix = await _mix(env.database_url, env.bootstrap_servers, env.topic_prefix, publisher.sent[first:])
        say(
            f"    published in {publish_s:.1f} s; {accepted} reports to notification recorded"
            f" in {done - start:.1f} s: {e2e:,.0f}/s; mix {mix}"
        )

        say("(b) ceilings with the same mix: three-hop raw aiokafka chain, PostgreSQL-only floor")
        chain = await measure_chain(
            env.bootstrap_servers,
            env.topic_prefix,
            [r.value or b"{}" for r in backlog],
            FanOut(case_events=mix["case_events_per_report"], notifications=mix["notifications_per_report"]),
        )
        floor = await measure_db_floor(
            env.database_url,
            plan.backlog,
            RowMix(
                new_case_share=mix["new_case_share"],
                assignments_per_case=mix["assignments_per_new_case"],
                history_per_report=mix["history_rows_per_report"],
                notifications_per_report=mix["notifications_per_report"],
            ),
        )
        say(f"    chain {chain:,.0f} reports/s; PostgreSQL floor {floor:,.0f} reports/s")

        say(f"(c) latency of every report at {', '.join(map(str, plan.rates))} reports/s offered")
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
            recorded = latency[str(rate)]["to_notification_recorded"]
            say(
                f"    {rate}/s offered: to notification recorded p50 {recorded['p50']} ms,"
                f" p95 {recorded['p95']} ms, p99 {recorded['p99']} ms, max {recorded['max']} ms"
                f" ({recorded['samples']} reports)"
            )
        rss = services.record_rss()
        results |= {
            "end_to_end_rps": round(e2e, 1),
            "ceiling_chain_rps": round(chain, 1),
            "ratio_chain": round(e2e / chain, 3),
            "db_floor_rps": round(floor, 1),
            "ratio_db_floor": round(e2e / floor, 3),
            "mix": mix,
            "latency_ms": latency,
            "peak_rss_mb": {k: round(v, 1) for k, v in rss.items()},
            "stage_median_ms": stages,
            "cpu_seconds_per_1000_reports": cpu,
            "pg_top_statements": top if statements else "pg_stat_statements is not preloaded",
            "flame_graphs": flames,
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
