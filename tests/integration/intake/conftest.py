"""Fixtures for intake's integration tests: the app running in-process (lifespan and all) against this
session's broker and database, and small helpers to write to and read from its topics.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import SecretStr

from caseway_intake.entrypoints.app import create_app
from caseway_intake.settings import IntakeSettings

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

API_KEY = "test-open311-key-0123456789abcdef0123456789"


def settings_for(infra, **overrides: Any) -> IntakeSettings:
    return IntakeSettings(
        kafka_bootstrap_servers=infra.bootstrap_servers,
        database_url=SecretStr(infra.database_url),
        topic_prefix=infra.topic_prefix,
        open311_seed_api_key=SecretStr(API_KEY),
        log_format="console",
        **overrides,
    )


@dataclass
class Running:
    app: Any
    client: httpx.AsyncClient


@asynccontextmanager
async def running_intake(settings: IntakeSettings) -> AsyncIterator[Running]:
    """The intake app started as uvicorn would start it, ready and consuming (partitions of every topic
    it reads assigned) before it yields."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        runtime = app.state.runtime
        deadline = time.monotonic() + 180  # a loaded 2-core machine starts slowly
        while not (all((await runtime.readiness()).values()) and runtime.consuming()):
            assert time.monotonic() < deadline, "intake did not become ready"
            await asyncio.sleep(0.2)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
            yield Running(app=app, client=client)


@pytest.fixture(scope="module")
async def intake(infra) -> AsyncIterator[Running]:
    async with running_intake(settings_for(infra)) as running:
        yield running


class Topics:
    """Write to and read from this session's topics (names without the session's prefix)."""

    def __init__(self, infra) -> None:
        self._infra = infra

    def name(self, topic: str) -> str:
        return f"{self._infra.topic_prefix}{topic}"

    async def produce(self, topic: str, values: list[bytes], *, key: bytes | None = None) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self._infra.bootstrap_servers, acks="all")
        await producer.start()
        try:
            for value in values:
                await producer.send_and_wait(self.name(topic), value, key=key)
        finally:
            await producer.stop()

    async def produce_together(self, topic: str, values: list[bytes], *, key: bytes) -> None:
        """`values` in one producer batch, so that intake reads them in one poll: one batch of its own."""
        producer = AIOKafkaProducer(
            bootstrap_servers=self._infra.bootstrap_servers, acks="all", linger_ms=500
        )
        await producer.start()
        try:
            sent = [await producer.send(self.name(topic), value, key=key) for value in values]
            await asyncio.gather(*sent)
        finally:
            await producer.stop()

    async def read(
        self, topic: str, *, want: Callable[[list[Any]], bool], timeout: float = 30.0
    ) -> list[Any]:
        """Every record of `topic` from the start, read until `want(records)` holds or `timeout` passes."""
        consumer = AIOKafkaConsumer(
            self.name(topic),
            bootstrap_servers=self._infra.bootstrap_servers,
            group_id=f"test-reader-{uuid.uuid4().hex}",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        records: list[Any] = []
        try:
            deadline = time.monotonic() + timeout
            while not want(records) and time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=300)
                for partition_records in batch.values():
                    records.extend(partition_records)
            return records
        finally:
            await consumer.stop()

    @staticmethod
    def report_event(source_id: str, **overrides: Any) -> dict[str, Any]:
        """A valid contact-centre event; `overrides` replace its fields."""
        body: dict[str, Any] = {
            "source_system": "liverpool-direct",
            "source_id": source_id,
            "channel": "phone",
            "received_at": "2026-11-23T09:00:00+00:00",
            "category": "pothole",
            "location": {"lat": 53.4, "lon": -2.98},
            "description": "A deep pothole outside the school.",
        }
        body.update(overrides)
        return body

    @staticmethod
    def as_bytes(document: dict[str, Any]) -> bytes:
        return json.dumps(document).encode()

    @staticmethod
    def received_ids(records: list[Any]) -> list[str]:
        return [json.loads(record.value)["report_id"] for record in records]


@pytest.fixture
def topics(infra) -> Topics:
    return Topics(infra)
