"""The outbox relay against the real PostgreSQL (issue 11, item 12): a row the broker refuses is set aside
with its reason instead of blocking its schema's relay for ever; the backlog and the oldest row's age are
measured; and on shutdown a pass in hand is finished, never cancelled (it was, after 10 s).

The producer is a fake, so that the broker's refusals and slow acknowledgements are the test's to choose.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import TYPE_CHECKING, Any

import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError

from caseway_shared import runtime as runtime_module
from caseway_shared.db import create_pool
from caseway_shared.outbox import SET_ASIDE, OutboxMessage, OutboxRelay, enqueue
from caseway_shared.runtime import ServiceRuntime
from caseway_shared.settings import ServiceSettings

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import asyncpg

    from tests.conftest import Infra

SCHEMA = "intake"


class FakeProducer:
    """Takes every message at once, except those `refuse` names; acknowledges after `ack_seconds`."""

    def __init__(self, *, refuse: set[bytes] | None = None, ack_seconds: float = 0.0) -> None:
        self.refuse = refuse or set()
        self.ack_seconds = ack_seconds
        self.sent: list[bytes] = []
        self.acknowledged: list[bytes] = []
        self.outage = False

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def send(self, topic: str, value: bytes, *, key: bytes, headers: Any) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.outage:
            future.set_exception(KafkaConnectionError())
            return future
        self.sent.append(value)
        if value in self.refuse:
            future.set_exception(MessageSizeTooLargeError())
            return future

        def acknowledge() -> None:
            self.acknowledged.append(value)
            future.set_result(None)

        asyncio.get_running_loop().call_later(self.ack_seconds, acknowledge)
        return future


@pytest.fixture
async def pool(infra: Infra) -> AsyncIterator[asyncpg.Pool]:
    settings = ServiceSettings(database_url=infra.database_url)
    made = await create_pool(settings, application_name="outbox-test")
    async with made.acquire() as connection:
        await connection.execute(f"DELETE FROM {SCHEMA}.outbox")
    yield made
    async with made.acquire() as connection:
        await connection.execute(f"DELETE FROM {SCHEMA}.outbox")
    await made.close()


async def _enqueue(pool: asyncpg.Pool, *payloads: bytes) -> None:
    async with pool.acquire() as connection, connection.transaction():
        await enqueue(
            connection,
            SCHEMA,
            [
                OutboxMessage(topic="t", key="k", payload=p, headers={"event-id": str(uuid.uuid4())})
                for p in payloads
            ],
        )


async def test_a_row_the_broker_refuses_is_set_aside_with_its_reason_and_the_rest_are_published(
    pool: asyncpg.Pool,
) -> None:
    producer = FakeProducer(refuse={b"too-big"})
    relay = OutboxRelay(pool=pool, producer=producer, schema=SCHEMA, poll_seconds=0.05)
    await _enqueue(pool, b"first", b"too-big", b"third")
    task = asyncio.create_task(relay.run())
    try:
        async with asyncio.timeout(10):
            while b"later" not in producer.acknowledged:
                if b"third" in producer.acknowledged and b"later" not in producer.sent:
                    await _enqueue(pool, b"later")
                    relay.wake()
                await asyncio.sleep(0.05)
    finally:
        await relay.finish(task)
    rows = await pool.fetch(f"SELECT payload, headers FROM {SCHEMA}.outbox")
    assert [bytes(r["payload"]) for r in rows] == [b"too-big"]
    assert "MessageSizeTooLargeError" in rows[0]["headers"][SET_ASIDE]
    assert producer.sent.count(b"too-big") <= 2
    assert relay.set_aside == 1
    backlog = await relay.measure()
    assert (backlog.pending, backlog.set_aside) == (0, 1)


async def test_an_outage_sets_nothing_aside(pool: asyncpg.Pool) -> None:
    producer = FakeProducer()
    producer.outage = True
    relay = OutboxRelay(pool=pool, producer=producer, schema=SCHEMA, poll_seconds=0.05)
    await _enqueue(pool, b"a", b"b")
    with pytest.raises(KafkaConnectionError):
        await relay.publish_pending()
    backlog = await relay.measure()
    assert (backlog.pending, backlog.set_aside) == (2, 0)


async def test_the_backlog_and_the_age_of_its_oldest_row_are_measured(pool: asyncpg.Pool) -> None:
    relay = OutboxRelay(pool=pool, producer=FakeProducer(), schema=SCHEMA)
    assert (await relay.measure()).pending == 0
    await _enqueue(pool, b"a", b"b", b"c")
    await pool.execute(f"UPDATE {SCHEMA}.outbox SET created_at = now() - interval '90 seconds'")
    backlog = await relay.measure()
    assert backlog.pending == 3
    assert 89 <= backlog.oldest_age_seconds < 120


@pytest.mark.timeout(120)
async def test_shutdown_finishes_the_pass_in_hand_instead_of_cancelling_it_after_10_s(
    infra: Infra, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The broker takes 12 s to acknowledge (a slow broker, a leader election): the rows are published and
    deleted together, so a restart publishes nothing twice."""
    producer = FakeProducer(ack_seconds=12)
    monkeypatch.setattr(runtime_module, "AIOKafkaProducer", lambda **_options: producer)
    settings = ServiceSettings(
        database_url=infra.database_url,
        kafka_bootstrap_servers=infra.bootstrap_servers,
        topic_prefix=infra.topic_prefix,
        heartbeat_seconds=3600,
    )
    service = ServiceRuntime(settings=settings, service="intake", schema=SCHEMA)
    async with service.lifespan():
        await _enqueue(pool, b"slow")
        service.relay.wake()
        async with asyncio.timeout(10):
            while b"slow" not in producer.sent:
                await asyncio.sleep(0.05)
    # Shutting down waited for the acknowledgement and deleted the row.
    assert producer.acknowledged == [b"slow"]
    assert await pool.fetchval(f"SELECT count(*) FROM {SCHEMA}.outbox") == 0
    with contextlib.suppress(Exception):
        await service.broker.stop()
