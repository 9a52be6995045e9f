"""Notifier throughput benchmark (a command, not a timed test).

    uv run python tests/bench/notifier_throughput.py --count 3000

For each channel (SMTP, then webhook) it publishes `count` single-department CaseOpened events to a
fresh, prefixed cases.v1, runs the notifier in this process (real broker, a fresh migrated database),
and prints:
- planned/s: events turned into recorded notification rows, from the first publish;
- sent+recorded/s: notifications delivered to the loopback server and their outcome recorded (and
  NotificationSent queued in the outbox), from the first publish;
- cpu ms/notification: this process's CPU time (the notifier, and the harness's producer and polling)
  over the phase, per notification: a figure that a busy machine disturbs less than rates do.
A success at the first try writes no attempts row (its notification's row says it all): the figure
printed counts the attempts rows there are.
The SMTP sink (aiosmtpd) and the webhook receiver (uvicorn) run in a separate process, so they do not
share this process's interpreter lock; the server's own count is checked against the database's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer

from caseway_notifier.entrypoints.app import create_app
from caseway_notifier.settings import NotifierSettings
from caseway_ops.database import create_database, drop_database
from caseway_ops.kafka_topics import create_topics
from caseway_shared.events import CaseOpened
from caseway_shared.settings import DEFAULT_DATABASE_URL, DEFAULT_KAFKA_BOOTSTRAP_SERVERS


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(smtp_port: int, http_port: int) -> None:
    """The loopback servers (child process): an SMTP sink and a webhook receiver that count."""
    import uvicorn  # noqa: PLC0415 - only the child needs them
    from aiosmtpd.controller import Controller  # noqa: PLC0415

    counts = {"mail": 0, "hooks": 0}

    class Sink:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            counts["mail"] += 1
            return "250 OK"

    controller = Controller(Sink(), hostname="127.0.0.1", port=smtp_port)
    controller.start()

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        if scope["method"] == "POST":
            while (await receive()).get("more_body"):
                pass
            counts["hooks"] += 1
            body = b"ok"
        else:
            body = json.dumps(counts).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    uvicorn.run(app, host="127.0.0.1", port=http_port, log_level="warning", access_log=False)


def _teams(channel: str) -> str:
    return f"""
staff_case_url = "https://staff.example.org/cases/{{reference}}"
[[teams]]
id = "bench"
name = "Bench"
department = "waste"
channels = [{{ kind = "{channel[0]}", address = "{channel[1]}" }}]
"""


def _event(index: int) -> CaseOpened:
    return CaseOpened(
        occurred_at=datetime.now(UTC),
        case_id=uuid.uuid4(),
        reference=f"BN-{index:07d}",
        report_id=uuid.uuid4(),
        category="missed-bin",
        priority="normal",
        neighbourhood="Bench",
        ward_code=None,
        lead_department="waste",
        departments=("waste",),
        due_at=None,
        point=None,
        summary="bench",
    )


async def _phase(name, channel, *, count, base, database_url, prefix, http_port, args) -> dict[str, float]:
    council = Path(tempfile.mkdtemp(prefix="caseway-bench-"))
    (council / "teams.toml").write_text(_teams(channel))
    settings = NotifierSettings(
        kafka_bootstrap_servers=base["kafka"],
        database_url=database_url,
        topic_prefix=prefix,
        council_dir=council,
        smtp_port=base["smtp_port"],
        smtp_connections=args.smtp_connections,
        webhook_connections=args.webhook_connections,
        ignore_hours=True,
        send_batch_size=args.batch,
        send_concurrency=args.concurrency,
        sender_workers=args.workers,
        consumer_max_records=1000,
        database_pool_max=10,
        log_format="console",
        log_level="warning",
    )
    app = create_app(settings)
    db = await asyncpg.connect(database_url)
    producer = AIOKafkaProducer(bootstrap_servers=base["kafka"], acks="all", linger_ms=5)
    await producer.start()
    events = [_event(i) for i in range(count)]
    async with httpx.AsyncClient() as client:
        before = (await client.get(f"http://127.0.0.1:{http_port}/count")).json()
    async with app.router.lifespan_context(app):
        while not (all((await app.state.runtime.readiness()).values()) and app.state.runtime.consuming()):
            await asyncio.sleep(0.1)
        planned_at = sent_at = None
        cpu = time.process_time()
        start = time.perf_counter()
        futures = [
            await producer.send(
                f"{prefix}cases.v1", e.model_dump_json().encode(), key=str(e.case_id).encode()
            )
            for e in events
        ]
        await asyncio.gather(*futures)
        published = time.perf_counter() - start
        ids = [e.case_id for e in events]
        while sent_at is None:
            planned, sent = await db.fetchrow(
                "SELECT count(*), count(*) FILTER (WHERE status = 'sent') FROM notifier.notifications"
                " WHERE case_id = ANY($1::uuid[])",
                ids,
            )
            now = time.perf_counter() - start
            if planned_at is None and planned >= count:
                planned_at = now
            if sent >= count:
                sent_at = now
            await asyncio.sleep(0.05)
        cpu = time.process_time() - cpu
        attempts = await db.fetchval(
            "SELECT count(*) FROM notifier.attempts a JOIN notifier.notifications n USING (notification_key)"
            " WHERE n.case_id = ANY($1::uuid[])",
            ids,
        )
    await producer.stop()
    await db.close()
    async with httpx.AsyncClient() as client:
        after = (await client.get(f"http://127.0.0.1:{http_port}/count")).json()
    key = "mail" if channel[0] == "email" else "hooks"
    received = after[key] - before[key]
    print(
        f"{name:8} n={count}  published in {published:.2f}s  planned/s={count / planned_at:,.0f}  "
        f"sent+recorded/s={count / sent_at:,.0f}  cpu ms/notification={cpu * 1000 / count:.2f}"
        f"  (server received {received}, attempts rows {attempts})"
    )
    return {"planned_per_s": count / planned_at, "sent_per_s": count / sent_at, "cpu_s": cpu}


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--smtp-connections", type=int, default=8)
    parser.add_argument("--webhook-connections", type=int, default=8)
    parser.add_argument("--only", choices=["smtp", "webhook"], default=None)
    args = parser.parse_args()
    kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", DEFAULT_KAFKA_BOOTSTRAP_SERVERS)
    base_url = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    run = uuid.uuid4().hex[:8]
    prefix = f"bench-{run}."
    name = f"caseway_bench_{run}"
    smtp_port, http_port = _free_port(), _free_port()
    servers = multiprocessing.get_context("spawn").Process(
        target=_serve, args=(smtp_port, http_port), daemon=True
    )
    servers.start()
    await create_topics(kafka, prefix)
    database_url = await create_database(base_url, name)
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(100):
                try:
                    await client.get(f"http://127.0.0.1:{http_port}/count")
                    break
                except httpx.HTTPError:
                    await asyncio.sleep(0.1)
        base = {"kafka": kafka, "smtp_port": smtp_port}
        common = {"count": args.count, "base": base, "database_url": database_url, "prefix": prefix}
        print(f"notifier benchmark on {os.cpu_count()} CPUs, {args}")
        if args.only in {None, "smtp"}:
            await _phase("smtp", ("email", "bench@example.org"), http_port=http_port, args=args, **common)
        if args.only in {None, "webhook"}:
            webhook = ("webhook", f"http://127.0.0.1:{http_port}/hook")
            await _phase("webhook", webhook, http_port=http_port, args=args, **common)
    finally:
        await drop_database(base_url, name)
        servers.terminate()
        servers.join(5)


if __name__ == "__main__":
    asyncio.run(main())
