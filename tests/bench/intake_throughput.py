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
import urllib.parse
import uuid
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import SecretStr

from caseway_intake.entrypoints.app import create_app
from caseway_intake.settings import IntakeSettings
from caseway_ops.database import create_database, drop_database
from caseway_ops.kafka_topics import create_topics
from caseway_ops.loadtest.profiling import py_spy
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


def _form_request(port: int) -> bytes:
    """One Open311 POST as bytes on the wire, built once: the load generator only writes and reads."""
    form = urllib.parse.urlencode(
        {
            "api_key": API_KEY,
            "service_code": "fly-tipping",
            "lat": "53.4084",
            "long": "-2.9916",
            "description": "Mattress and bin bags dumped by the back entry.",
            "attribute[hazardous]": "no",
            "email": "resident@example.net",
        }
    ).encode()
    head = (
        f"POST /open311/v2/requests.json HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(form)}\r\n\r\n"
    )
    return head.encode() + form


async def _post_many(port: int, request: bytes, count: int, statuses: dict[int, int]) -> None:
    """`count` requests one after another on one keep-alive connection, reading each answer whole.

    A raw HTTP/1.1 client (a few dozen microseconds of CPU a request) rather than httpx (about a
    millisecond): on two cores the load generator must not take the CPU the server is measured on."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for _ in range(count):
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


async def _profile(pid: int, seconds: float, out: Path) -> str:
    """py-spy on the server for `seconds`, its stacks written to `out` (collapsed, one line a stack, for
    flamegraph.pl or speedscope); returns what took the most samples, by function and by file."""
    executable = py_spy()
    if executable is None:
        return "py-spy is not installed"
    process = await asyncio.create_subprocess_exec(
        executable, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
        "--rate", "100", "--nonblocking", "--format", "raw", "--output", str(out),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    await process.wait()
    return await asyncio.to_thread(_summarise, out)


def _summarise(out: Path) -> str:
    if not out.exists():
        return "py-spy wrote nothing"
    own: dict[str, int] = {}  # samples with the function on top of the stack
    within: dict[str, int] = {}  # samples with it anywhere in the stack
    total = 0
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        total += int(count)
        own[frames[-1]] = own.get(frames[-1], 0) + int(count)
        for frame in set(frames):
            within[frame] = within.get(frame, 0) + int(count)

    def top(counts: dict[str, int]) -> str:
        return "\n".join(
            f"    {100 * n / total:5.1f}%  {frame}"
            for frame, n in sorted(counts.items(), key=lambda kv: -kv[1])[:25]
        )

    return (
        f"{out} ({total} samples)\n  on top of the stack:\n{top(own)}\n"
        f"  anywhere in the stack:\n{top(within)}"
    )


async def http_path(
    settings: IntakeSettings, requests: int, concurrency: int, *, profile_to: Path | None = None
) -> None:
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
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
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
        request = _form_request(port)
        await _post_many(port, request, 50, {})  # warm up: connections, prepared statements
        statuses: dict[int, int] = {}
        server_cpu = _cpu_seconds(process.pid)
        started = time.perf_counter()
        client_cpu = time.process_time()
        load = asyncio.gather(
            *(_post_many(port, request, requests // concurrency, statuses) for _ in range(concurrency))
        )
        if profile_to is not None:
            # Sampled in the middle of the run, while every connection is busy.
            profiled = asyncio.create_task(_profile(process.pid, 10, profile_to))
            await load
            print(f"http: profile {await profiled}")
        else:
            await load
        elapsed = time.perf_counter() - started
        sent = sum(statuses.values())
        print(
            f"http: {sent} POST requests.json, {concurrency} keep-alive connections, in {elapsed:.1f}s: "
            f"{sent / elapsed:,.0f} requests/s; statuses {statuses}; CPU per request: server "
            f"{(_cpu_seconds(process.pid) - server_cpu) / sent * 1000:.2f} ms, load generator "
            f"{(time.process_time() - client_cpu) / sent * 1000:.2f} ms"
        )
    finally:
        process.terminate()
        process.wait(timeout=30)


def _cpu_seconds(pid: int) -> float:
    """User and system CPU of process `pid` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
    parser.add_argument(
        "--profile-http", type=Path, default=None, help="py-spy flame graph of the server (an .svg path)"
    )
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
            await http_path(
                settings, arguments.requests, arguments.concurrency, profile_to=arguments.profile_http
            )
    finally:
        await drop_database(base_url, name)
    print(f"topics left under the prefix {prefix!r} (the stack's retention removes them)")


if __name__ == "__main__":
    asyncio.run(main())
