"""The outbox relay's rules, on a fake pool and producer (milliseconds): rows go out in id order and are
deleted once the broker took them; a row the broker will never take is set aside with its reason instead
of blocking every row after it; an outage keeps every row for the next pass; only the replica holding the
schema's lock publishes. tests/integration proves the relay against PostgreSQL and Kafka."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError

from caseway_shared.outbox import SET_ASIDE, OutboxRelay


class FakeConnection:
    def __init__(self, rows: list[dict[str, Any]], *, locked: bool) -> None:
        self.rows = rows
        self.locked = locked
        self.statements: list[tuple[str, tuple[Any, ...]]] = []
        self.committed = False

    async def fetchval(self, sql: str, *args: Any) -> bool:
        assert "pg_try_advisory_xact_lock" in sql
        return self.locked

    async def fetch(self, sql: str, batch_size: int, set_aside: str) -> list[dict[str, Any]]:
        assert set_aside == SET_ASIDE
        return [row for row in self.rows if SET_ASIDE not in row["headers"]][:batch_size]

    async def execute(self, sql: str, *args: Any) -> None:
        self.statements.append((sql.split(maxsplit=1)[0], args))

    @contextlib.asynccontextmanager
    async def transaction(self):
        yield
        self.committed = True

    def deleted(self) -> list[int]:
        return [i for verb, args in self.statements if verb == "DELETE" for i in args[0]]

    def set_aside(self) -> list[int]:
        return [args[0] for verb, args in self.statements if verb == "UPDATE"]


class FakePool:
    def __init__(self, connection: FakeConnection) -> None:
        self.connection = connection

    @contextlib.asynccontextmanager
    async def acquire(self):
        yield self.connection


class FakeProducer:
    """Takes every message but those whose payload names an error to raise."""

    def __init__(self, refuse: dict[bytes, Exception]) -> None:
        self.refuse = refuse
        self.sent: list[bytes] = []

    async def send(self, topic: str, value: bytes, *, key: bytes, headers: list[tuple[str, bytes]]):
        if value in self.refuse:
            raise self.refuse[value]
        self.sent.append(value)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def _rows(count: int) -> list[dict[str, Any]]:
    return [
        {"id": i, "topic": "cases.v1", "key": f"k{i}", "payload": f"row-{i}".encode(), "headers": {}}
        for i in range(1, count + 1)
    ]


def _relay(connection: FakeConnection, producer: FakeProducer) -> OutboxRelay:
    return OutboxRelay(pool=FakePool(connection), producer=producer, schema="router")  # type: ignore[arg-type]


async def test_rows_are_published_in_id_order_and_deleted_once_taken():
    connection, producer = FakeConnection(_rows(3), locked=True), FakeProducer({})
    assert await _relay(connection, producer).publish_pending() == 3
    assert producer.sent == [b"row-1", b"row-2", b"row-3"]
    assert connection.deleted() == [1, 2, 3]


async def test_a_row_the_broker_will_never_take_is_set_aside_and_the_rows_after_it_go():
    connection = FakeConnection(_rows(3), locked=True)
    producer = FakeProducer({b"row-2": MessageSizeTooLargeError()})
    relay = _relay(connection, producer)
    assert await relay.publish_pending() == 3
    assert producer.sent == [b"row-1", b"row-3"]  # the batch failed, then each row alone
    assert connection.set_aside() == [2]
    assert connection.deleted() == [1, 3]
    assert (relay.published, relay.set_aside) == (2, 1)


async def test_an_outage_keeps_every_row_for_the_next_pass():
    connection = FakeConnection(_rows(3), locked=True)
    producer = FakeProducer({b"row-2": KafkaConnectionError()})
    with pytest.raises(KafkaConnectionError):
        await _relay(connection, producer).publish_pending()
    assert connection.deleted() == []
    assert connection.set_aside() == []
    assert not connection.committed  # the pass's transaction rolls back


async def test_only_the_replica_holding_the_schema_s_lock_publishes():
    connection, producer = FakeConnection(_rows(2), locked=False), FakeProducer({})
    assert await _relay(connection, producer).publish_pending() == 0
    assert producer.sent == []
    assert connection.statements == []
