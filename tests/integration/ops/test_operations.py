"""What operators watch, from a real service against the real broker and database: health, readiness,
Prometheus metrics, heartbeats, and a poison message dead-lettered with its provenance while the
messages after it are still processed."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from caseway_router.entrypoints.app import create_app
from caseway_router.settings import RouterSettings
from factories import report_received

pytestmark = pytest.mark.infra


async def _wait_for(predicate, *, timeout=30.0, interval=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = await predicate()
        if result:
            return result
        await asyncio.sleep(interval)
    raise AssertionError("condition not met in time")


async def _read_all(infra, topic):
    consumer = AIOKafkaConsumer(
        f"{infra.topic_prefix}{topic}",
        bootstrap_servers=infra.bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        found = []
        for _ in range(4):
            batch = await consumer.getmany(timeout_ms=300)
            found.extend(r for records in batch.values() for r in records)
        return found
    finally:
        await consumer.stop()


async def test_a_service_reports_health_readiness_metrics_and_heartbeats_and_dead_letters_poison(infra, db):
    settings = RouterSettings(
        kafka_bootstrap_servers=infra.bootstrap_servers,
        database_url=infra.database_url,
        topic_prefix=infra.topic_prefix,
        heartbeat_seconds=0.5,
        retry_backoff_seconds=0.01,
        instance_id=f"router-ops-test-{uuid.uuid4().hex[:6]}",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://router")
        assert (await client.get("/healthz")).json()["status"] == "ok"

        async def ready():
            response = await client.get("/readyz")
            return response.status_code == 200 and response.json()["ready"]

        await _wait_for(ready)

        poison_key = uuid.uuid4().hex.encode()
        good = report_received(
            category="graffiti",
            lat=53.4084,
            lon=-2.9916,
            description="Tags on the wall",
            source_system="ops-test",
        )
        producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers, acks="all")
        await producer.start()
        topic = f"{infra.topic_prefix}reports.received.v1"
        # Same key, so the same partition: the good report comes after the poison in one partition.
        await producer.send_and_wait(
            topic,
            b'{"event_type": "ReportReceived", "nonsense": true}',
            key=poison_key,
            headers=[("correlation-id", b"poison-correlation")],
        )
        # JSON nested past Python's recursion limit, and a header that is not UTF-8 on a body that claims
        # to be JSON and is not: each once made the framework fail before the handler, for ever.
        await producer.send_and_wait(topic, b"[" * 30000 + b"]" * 30000, key=poison_key)
        await producer.send_and_wait(
            topic,
            b"{not json",
            key=poison_key,
            headers=[("content-type", b"application/json"), ("x-bad", bytes([0xFF, 0xFE]))],
        )
        await producer.send_and_wait(topic, good.model_dump_json().encode(), key=poison_key)
        await producer.stop()

        async def routed():
            return await db.fetchval(
                "SELECT count(*) FROM router.reports WHERE report_id = $1", good.report_id
            )

        await _wait_for(routed)

        async def dead_lettered():
            return [r for r in await _read_all(infra, "ops.deadletter.v1") if r.key == poison_key]

        async def all_dead_lettered():
            found = await dead_lettered()
            return found if len(found) >= 3 else None

        letters = await _wait_for(all_dead_lettered)
        assert len(letters) == 3
        assert all("MalformedMessage" in dict(letter.headers)["error"].decode() for letter in letters)
        headers = {k: v.decode() for k, v in letters[0].headers}
        assert headers["original-topic"] == topic
        assert headers["original-partition"].isdigit()
        assert headers["original-offset"].isdigit()
        assert headers["attempts"] == "1"  # malformed: not retried
        assert "MalformedMessage" in headers["error"]
        assert headers["correlation-id"] == "poison-correlation"
        assert letters[0].value == b'{"event_type": "ReportReceived", "nonsense": true}'

        metrics = (await client.get("/metrics")).text
        assert f'caseway_records_dead_lettered_total{{service="router",topic="{topic}"}} 3.0' in metrics
        assert "caseway_records_processed_total" in metrics
        assert "caseway_consumer_lag" in metrics
        assert "caseway_db_pool_size" in metrics
        assert "faststream_received_messages_total" in metrics

        async def heartbeat():
            return [
                json.loads(r.value)
                for r in await _read_all(infra, "ops.heartbeat.v1")
                if r.key == settings.instance_id.encode() and json.loads(r.value)["assigned"]
            ]

        beats = await _wait_for(heartbeat)
        assert beats[-1]["service"] == "router"
        # The router reads reports and residents' updates (FixMyStreet comments and reopens).
        assert {p["topic"] for p in beats[-1]["assigned"]} == {
            topic,
            f"{infra.topic_prefix}reports.updates.v1",
        }

        spec = (await client.get("/asyncapi.json")).json()
        assert spec["asyncapi"] == "3.0.0"
        await client.aclose()
