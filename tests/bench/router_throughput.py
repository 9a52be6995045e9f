"""Router throughput benchmark (a command, not a timed test), against the real broker and database.

    uv run python tests/bench/router_throughput.py --reports 5000 --duplicates 0.2 [--cases 100000 ...]
        [--replicas 2] [--profile] [--poison-every 1000]

Creates its own topic prefix and database, publishes N ReportReceived events (Liverpool's categories,
places spread over the wards like the load generator's; about one in five another resident's report of
an earlier problem, a few metres away and a few minutes later), then starts the router in-process and
measures how fast it routes them all (reports/s from the first routed batch to the last).

`--cases 10000 100000 1000000` runs once per size, each on a table already holding that many cases (open
and recently closed, spread over the city, all inside their duplicate windows: see
caseway_ops.loadtest.preload), and prints for each the rate and the candidate search's time per batch,
so a cost that grows with the table shows. `--profile` runs the router under cProfile. `--poison-every N`
puts a record that is not a report after every N-th (dead-lettered by the router), as the fault suite
does: how much one poison record in a full batch costs.
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
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from caseway_ops.database import create_database, drop_database
from caseway_ops.kafka_topics import create_topics
from caseway_ops.loadtest.generator import CATEGORY_WEIGHTS
from caseway_ops.loadtest.places import HotspotMap, wards_from_geojson
from caseway_ops.loadtest.preload import preload_cases
from caseway_router.adapters import store as _store
from caseway_router.entrypoints.app import create_app
from caseway_router.settings import RouterSettings
from caseway_shared import headers as h
from caseway_shared.council import Council, load_council
from caseway_shared.events import Channel, GeoPoint, Place, ReportReceived
from caseway_shared.settings import DEFAULT_DATABASE_URL, DEFAULT_KAFKA_BOOTSTRAP_SERVERS

METRE = 1 / 111_195


def make_reports(council: Council, count: int, duplicate_share: float, seed: int) -> list[ReportReceived]:
    rng = random.Random(seed)
    wards = wards_from_geojson(council.wards_geojson)
    hotspots = HotspotMap(wards, rng, per_ward=10)
    categories = [c for c in CATEGORY_WEIGHTS if c in council.categories]
    weights = [CATEGORY_WEIGHTS[c] for c in categories]
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
            if rng.random() < 0.3:
                _, lat, lon = hotspots.point(scatter_m=150.0)
            else:
                lat, lon = rng.choice(wards).random_point(rng)
            category = rng.choices(categories, weights=weights)[0]
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


async def publish(bootstrap: str, topic: str, reports: list[ReportReceived], *, poison_every: int = 0) -> int:
    """Publish `reports`, and after every `poison_every`-th one a record that is not a report (the fault
    suite's 1 in 1,000); returns how many of those were published."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=10
    )
    await producer.start()
    poison = 0
    try:
        futures = []
        for number, r in enumerate(reports, start=1):
            headers = h.encode_headers({h.CORRELATION_ID: str(r.report_id), h.EVENT_TYPE: "ReportReceived"})
            key = str(r.report_id).encode()
            futures.append(await producer.send(topic, r.model_dump_json().encode(), key=key, headers=headers))
            if poison_every and number % poison_every == 0:
                futures.append(await producer.send(topic, b'{"not": "a report"}', key=key, headers=headers))
                poison += 1
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return poison


class CandidateTimer:
    """Times every candidate search the router makes (wraps the store function it calls)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.queries: list[int] = []
        self.found = 0  # candidates returned: the detector's real work, which a search cannot avoid

    def install(self) -> None:
        original = _store.find_candidates

        async def timed(connection: Any, queries: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            result = await original(connection, queries, **kwargs)
            self.seconds.append(time.perf_counter() - started)
            self.queries.append(len(queries))
            self.found += sum(len(candidates) for candidates in result)
            return result

        _store.find_candidates = timed  # type: ignore[assignment]
        self._original = original

    def remove(self) -> None:
        _store.find_candidates = self._original  # type: ignore[assignment]


async def run_size(args: argparse.Namespace, council: Council, cases: int) -> dict[str, float]:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", DEFAULT_KAFKA_BOOTSTRAP_SERVERS)
    base_url = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    run_id = uuid.uuid4().hex[:10]
    prefix, name = f"bench-{run_id}.", f"caseway_bench_{run_id}"
    await create_topics(bootstrap, prefix)
    url = await create_database(base_url, name)
    try:
        db = await asyncpg.connect(url)
        loading = time.monotonic()
        await preload_cases(db, council, cases)
        if cases:
            sys.stdout.write(f"preloaded {cases:,} cases in {time.monotonic() - loading:.1f} s\n")
        reports = make_reports(council, args.reports, args.duplicates, args.seed)
        poison = await publish(
            bootstrap, f"{prefix}reports.received.v1", reports, poison_every=args.poison_every
        )
        sys.stdout.write(
            f"published {len(reports)} reports and {poison} poison records to {prefix}reports.received.v1\n"
        )
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
        timer = CandidateTimer()
        timer.install()
        started = time.monotonic()
        try:
            async with contextlib.AsyncExitStack() as stack:
                for app in apps:
                    await stack.enter_async_context(app.state.runtime.lifespan())
                if profiler:
                    profiler.enable()
                while (
                    done := await db.fetchval(
                        "SELECT count(*) FROM router.reports WHERE source_system = 'bench'"
                    )
                ) < len(reports):
                    if time.monotonic() - started > args.timeout:
                        sys.stdout.write(f"timed out with {done} routed\n")
                        break
                    await asyncio.sleep(0.2)
                if profiler:
                    profiler.disable()
        finally:
            timer.remove()
        wall = time.monotonic() - started
        row = await db.fetchrow(
            "SELECT count(*) AS n, extract(epoch FROM max(routed_at) - min(routed_at)) AS span,"
            " count(DISTINCT case_id) AS cases, count(*) FILTER (WHERE link_score IS NOT NULL) AS linked"
            " FROM router.reports WHERE source_system = 'bench'"
        )
        await db.close()
        span = float(row["span"] or 0) or wall
        searches = sorted(timer.seconds)
        per_batch_ms = 1000 * sum(searches) / max(len(searches), 1)
        p95_ms = 1000 * searches[int(0.95 * (len(searches) - 1))] if searches else 0.0
        per_report_ms = 1000 * sum(searches) / max(sum(timer.queries), 1)
        sys.stdout.write(
            f"cases already stored: {cases:,}\n"
            f"routed {row['n']} reports into {row['cases']} cases ({row['linked']} linked as duplicates)\n"
            f"sustained: {row['n'] / span:,.0f} reports/s over {span:.2f} s (first to last routed batch); "
            f"wall incl. start-up: {row['n'] / wall:,.0f} reports/s over {wall:.2f} s; "
            f"replicas {args.replicas}, batch up to {args.batch}\n"
            f"candidate search: {len(searches)} batches, mean {per_batch_ms:.1f} ms, p95 {p95_ms:.1f} ms, "
            f"max {1000 * (searches[-1] if searches else 0):.1f} ms per batch; "
            f"{per_report_ms:.3f} ms per report; "
            f"{timer.found / max(sum(timer.queries), 1):.2f} candidates found per report\n"
        )
        if profiler:
            pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(30)
        return {
            "cases": cases,
            "reports_per_s": row["n"] / span,
            "search_ms_per_batch": per_batch_ms,
            "search_ms_p95": p95_ms,
            "search_ms_per_report": per_report_ms,
            "candidates_per_report": timer.found / max(sum(timer.queries), 1),
        }
    finally:
        await drop_database(base_url, name)


async def run(args: argparse.Namespace) -> None:
    council = load_council()
    results = [await run_size(args, council, cases) for cases in args.cases]
    if len(results) > 1:
        sys.stdout.write(
            "\ncases stored | reports/s | search ms/batch (mean, p95) | search ms/report"
            " | candidates/report\n"
        )
        for r in results:
            sys.stdout.write(
                f"{r['cases']:>12,} | {r['reports_per_s']:>9,.0f} | {r['search_ms_per_batch']:>8.1f}, "
                f"{r['search_ms_p95']:>8.1f} | {r['search_ms_per_report']:.3f} | "
                f"{r['candidates_per_report']:.2f}\n"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--reports", type=int, default=5000)
    parser.add_argument("--duplicates", type=float, default=0.2, help="share of reports repeating a problem")
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--batch", type=int, default=500, help="most records per consumer batch")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--poison-every", type=int, default=0, help="a record that is not a report after every N (0: none)"
    )
    parser.add_argument(
        "--cases", type=int, nargs="+", default=[0], help="cases already stored; one run per size"
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
