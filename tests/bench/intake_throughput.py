"""Intake throughput benchmark (a command, not a timed test), against the real broker and database.

    uv run python tests/bench/intake_throughput.py --events 50000 --requests 5000 [--profile]

Kafka path: publishes `events` valid contact-centre events to a fresh, prefixed contact-centre.reports.v1
first, then starts intake in this process and counts ReportReceived on reports.received.v1 until all are
out. Printed: events/s from start-up to the last ReportReceived, and events/s between the first and the
last ReportReceived (steady state: validation, normalisation, one transaction per batch, outbox relay).
`--profile` runs that part under cProfile and prints where the time goes.

HTTP path: runs `caseway-intake` as its own process (uvicorn, loopback) and POSTs `requests` form-encoded
Open311 requests from `--concurrency` concurrent clients; prints requests/s and checks each was accepted.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import socket
import subprocess
import sys
import time
import uuid

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import SecretStr

from caseway_intake.entrypoints.app import create_app
from caseway_intake.settings import IntakeSettings
from caseway_ops.database import create_database, drop_database
from caseway_ops.kafka_topics import create_topics
from caseway_shared.settings import DEFAULT_DATABASE_URL, DEFAULT_KAFKA_BOOTSTRAP_SERVERS

API_KEY = "bench-open311-key-0123456789abcdef0123456789"


def _event(run: str, number: int) -> bytes:
    return json.dumps(
        {
            "source_system": "bench",
            "source_id": f"{run}-{number}",
            "channel": "phone",
            "received_at": "2026-11-23T09:00:00+00:00",
            "category": "pothole" if number % 3 else None,
            "category_text": None if number % 3 else "rubbish dumped behind the shops",
            "location": {"lat": 53.4 + number % 100 / 1000, "lon": -2.98, "postcode": "L1 4DQ"},
            "description": "A deep pothole outside the school, getting worse after the rain.",
            "reporter": {"name": "A Resident", "phone": "0151 000 0000"},
        }
    ).encode()


async def _produce(bootstrap: str, topic: str, run: str, count: int) -> float:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=512 * 1024
    )
    await producer.start()
    started = time.perf_counter()
    try:
        pending = [await producer.send(topic, _event(run, n), key=str(n).encode()) for n in range(count)]
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def kafka_path(settings: IntakeSettings, events: int, *, profile: bool) -> None:
    run = uuid.uuid4().hex[:8]
    prefix = settings.topic_prefix
    produce_seconds = await _produce(
        settings.kafka_bootstrap_servers, f"{prefix}contact-centre.reports.v1", run, events
    )
    print(f"kafka: published {events} events upstream in {produce_seconds:.1f}s (not counted)")
    reader = AIOKafkaConsumer(
        f"{prefix}reports.received.v1",
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=f"bench-{run}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await reader.start()
    profiler = cProfile.Profile() if profile else None
    app = create_app(settings)
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    seen = 0
    first_ts = last_ts = 0
    async with app.router.lifespan_context(app):
        while seen < events:
            batch = await reader.getmany(timeout_ms=500, max_records=10_000)
            for records in batch.values():
                for record in records:
                    seen += 1
                    first_ts = first_ts or record.timestamp
                    last_ts = max(last_ts, record.timestamp)
            if time.perf_counter() - started > 600:
                break
        elapsed = time.perf_counter() - started
    if profiler:
        profiler.disable()
    await reader.stop()
    window = (last_ts - first_ts) / 1000
    rate = seen / elapsed
    print(f"kafka: {seen}/{events} ReportReceived in {elapsed:.1f}s from start-up: {rate:,.0f} events/s")
    if window > 0:
        print(
            f"kafka: steady state, first to last ReportReceived {window:.1f}s: {seen / window:,.0f} events/s"
        )
    if profiler:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(25)
        print("kafka: where the time goes (cProfile, own time, top 25)")
        print(out.getvalue())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def http_path(settings: IntakeSettings, requests: int, concurrency: int) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "DATABASE_URL": settings.database_url.get_secret_value(),
        "CASEWAY_TOPIC_PREFIX": settings.topic_prefix,
        "CASEWAY_INTAKE_HTTP_PORT": str(port),
        "CASEWAY_INTAKE_OPEN311_SEED_API_KEY": API_KEY,
        "CASEWAY_LOG_LEVEL": "warning",
    }
    process = subprocess.Popen(  # noqa: ASYNC220 - one server process for the run
        [sys.executable, "-m", "caseway_intake"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30
        ) as client:
            deadline = time.monotonic() + 180  # a loaded 2-core machine starts slowly
            while True:
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("intake did not become ready")
                await asyncio.sleep(0.3)
            form = {
                "api_key": API_KEY,
                "service_code": "fly-tipping",
                "lat": "53.4084",
                "long": "-2.9916",
                "description": "Mattress and bin bags dumped by the back entry.",
                "attribute[hazardous]": "no",
                "email": "resident@example.net",
            }
            statuses: dict[int, int] = {}
            queue: asyncio.Queue[int] = asyncio.Queue()
            for n in range(requests):
                queue.put_nowait(n)

            async def worker() -> None:
                while not queue.empty():
                    queue.get_nowait()
                    response = await client.post("/open311/v2/requests.json", data=form)
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            elapsed = time.perf_counter() - started
        print(
            f"http: {requests} POST requests.json, {concurrency} concurrent, in {elapsed:.1f}s: "
            f"{requests / elapsed:,.0f} requests/s; statuses {statuses}"
        )
    finally:
        process.terminate()
        process.wait(timeout=30)


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--requests", type=int, default=5_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--max-records", type=int, default=None, help="intake's batch size (default: its own)"
    )
    parser.add_argument("--profile", action="store_true", help="profile the Kafka path with cProfile")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--skip-kafka", action="store_true")
    arguments = parser.parse_args()
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", DEFAULT_KAFKA_BOOTSTRAP_SERVERS)
    base_url = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    run = uuid.uuid4().hex[:10]
    prefix = f"bench-{run}."
    await create_topics(bootstrap, prefix)
    name = f"caseway_bench_{run}"
    database_url = await create_database(base_url, name)
    overrides = {"consumer_max_records": arguments.max_records} if arguments.max_records else {}
    settings = IntakeSettings(
        kafka_bootstrap_servers=bootstrap,
        database_url=SecretStr(database_url),
        topic_prefix=prefix,
        open311_seed_api_key=SecretStr(API_KEY),
        log_level="warning",
        **overrides,
    )
    try:
        if not arguments.skip_kafka:
            await kafka_path(settings, arguments.events, profile=arguments.profile)
        if not arguments.skip_http:
            await http_path(settings, arguments.requests, arguments.concurrency)
    finally:
        await drop_database(base_url, name)
    print(f"topics left under the prefix {prefix!r} (the stack's retention removes them)")


if __name__ == "__main__":
    asyncio.run(main())
