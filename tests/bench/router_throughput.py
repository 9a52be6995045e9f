"""Router throughput benchmark (a command, not a timed test), against the real broker and database.

    uv run python tests/bench/router_throughput.py --reports 5000 --duplicates 0.2 [--replicas 2] [--profile]

Creates its own topic prefix and database, publishes N ReportReceived events (about one in five another
resident's report of an earlier problem, 10 m away and a few minutes later), then starts the router
in-process and measures how fast it routes them all (reports/s from the first routed batch to the last).
`--profile` runs the router under cProfile and prints where the time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import os
import pstats
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
from aiokafka import AIOKafkaProducer

from caseway_ops.database import create_database, drop_database
from caseway_ops.kafka_topics import create_topics
from caseway_router.app import create_app
from caseway_router.settings import RouterSettings
from caseway_shared import headers as h
from caseway_shared.events import Channel, GeoPoint, Place, ReportReceived
from caseway_shared.settings import DEFAULT_DATABASE_URL, DEFAULT_KAFKA_BOOTSTRAP_SERVERS

CATEGORIES = (
    "fly-tipping",
    "litter",
    "pothole",
    "street-lighting",
    "graffiti",
    "dog-fouling",
    "noise",
    "asb",
)
# Liverpool's built-up area, roughly.
SOUTH, NORTH, WEST, EAST = 53.35, 53.46, -3.00, -2.88
METRE = 1 / 111_195


def make_reports(count: int, duplicate_share: float, seed: int) -> list[ReportReceived]:
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(hours=2)
    made: list[ReportReceived] = []
    for i in range(count):
        at = start + timedelta(seconds=i * 7200 / count)
        if made and rng.random() < duplicate_share:
            original = rng.choice(made[-2000:])
            point = original.place.point
            assert point is not None
            lat, lon, category = point.lat + rng.gauss(0, 7) * METRE, point.lon, original.category
        else:
            lat, lon = rng.uniform(SOUTH, NORTH), rng.uniform(WEST, EAST)
            category = rng.choice(CATEGORIES)
        made.append(
            ReportReceived(
                occurred_at=at,
                report_id=uuid.uuid4(),
                source_system="bench",
                source_id=str(i),
                channel=Channel.APP,
                received_at=at,
                category=category,
                place=Place(point=GeoPoint(lat=lat, lon=lon)),
                description=f"{category} reported near here, number {i}",
            )
        )
    return made


async def publish(bootstrap: str, topic: str, reports: list[ReportReceived]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=10
    )
    await producer.start()
    try:
        futures = [
            await producer.send(
                topic,
                r.model_dump_json().encode(),
                key=str(r.report_id).encode(),
                headers=h.encode_headers(
                    {h.CORRELATION_ID: str(r.report_id), h.EVENT_TYPE: "ReportReceived"}
                ),
            )
            for r in reports
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def run(args: argparse.Namespace) -> None:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", DEFAULT_KAFKA_BOOTSTRAP_SERVERS)
    base_url = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    run_id = uuid.uuid4().hex[:10]
    prefix, name = f"bench-{run_id}.", f"caseway_bench_{run_id}"
    await create_topics(bootstrap, prefix)
    url = await create_database(base_url, name)
    try:
        reports = make_reports(args.reports, args.duplicates, args.seed)
        await publish(bootstrap, f"{prefix}reports.received.v1", reports)
        sys.stdout.write(f"published {len(reports)} reports to {prefix}reports.received.v1\n")
        settings = [
            RouterSettings(
                kafka_bootstrap_servers=bootstrap,
                topic_prefix=prefix,
                database_url=url,
                instance_id=f"bench-router-{i}",
                log_level="warning",
                consumer_max_records=args.batch,
            )
            for i in range(args.replicas)
        ]
        apps = [create_app(s) for s in settings]
        profiler = cProfile.Profile() if args.profile else None
        db = await asyncpg.connect(url)
        started = time.monotonic()
        async with contextlib.AsyncExitStack() as stack:
            for app in apps:
                await stack.enter_async_context(app.state.runtime.lifespan())
            if profiler:
                profiler.enable()
            while (done := await db.fetchval("SELECT count(*) FROM router.reports")) < len(reports):
                if time.monotonic() - started > args.timeout:
                    sys.stdout.write(f"timed out with {done} routed\n")
                    break
                await asyncio.sleep(0.2)
            if profiler:
                profiler.disable()
        wall = time.monotonic() - started
        row = await db.fetchrow(
            "SELECT count(*) AS n, extract(epoch FROM max(routed_at) - min(routed_at)) AS span,"
            " count(DISTINCT case_id) AS cases, count(*) FILTER (WHERE link_score IS NOT NULL) AS linked"
            " FROM router.reports"
        )
        await db.close()
        span = float(row["span"] or 0) or wall
        sys.stdout.write(
            f"routed {row['n']} reports into {row['cases']} cases ({row['linked']} linked as duplicates)\n"
            f"sustained: {row['n'] / span:,.0f} reports/s over {span:.2f} s (first to last routed batch); "
            f"wall incl. start-up: {row['n'] / wall:,.0f} reports/s over {wall:.2f} s; "
            f"replicas {args.replicas}, batch up to {args.batch}\n"
        )
        if profiler:
            pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(30)
    finally:
        await drop_database(base_url, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--reports", type=int, default=5000)
    parser.add_argument("--duplicates", type=float, default=0.2, help="share of reports repeating a problem")
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--batch", type=int, default=500, help="most records per consumer batch")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--profile", action="store_true")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
