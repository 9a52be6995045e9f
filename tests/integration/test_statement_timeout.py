"""A slow query is the batch's problem, not an outage (the router at scale).

The router once took its candidate query running into asyncpg's 30 s client timeout (TimeoutError, an
OSError) for a database outage and retried the same batch for ever. Now PostgreSQL itself cancels a
statement past the service's `database_statement_timeout_seconds`: that arrives as QueryCanceledError, which
the batch consumer does not take for an outage, so it splits the batch and handles each record alone.
"""

from __future__ import annotations

import asyncpg
import pytest

from caseway_router.settings import RouterSettings
from caseway_shared.consuming import BatchConsumer, DeadLetters, RetryPolicy, is_infrastructure_error
from caseway_shared.db import create_pool
from caseway_shared.kafka import Record


async def test_a_statement_past_the_timeout_is_cancelled_by_the_server_and_is_not_an_outage(infra):
    settings = RouterSettings(database_url=infra.database_url, database_statement_timeout_seconds=0.2)
    pool = await create_pool(settings, application_name="timeout-test")
    try:
        async with pool.acquire() as connection:
            with pytest.raises(asyncpg.QueryCanceledError) as raised:
                await connection.execute("SELECT pg_sleep(2)")
            assert await connection.fetchval("SELECT 1") == 1  # the connection is still good
    finally:
        await pool.close()
    assert not is_infrastructure_error(raised.value)


class _NoDeadLetters(DeadLetters):
    def __init__(self) -> None:
        self.published: list[Record] = []

    async def publish(self, record: Record, *, error: BaseException, attempts: int) -> None:
        self.published.append(record)


async def test_a_batch_too_slow_to_finish_is_split_and_each_record_handled_alone(infra):
    """The batch's statement is cancelled (the whole batch is too slow); each record alone is fast."""
    settings = RouterSettings(database_url=infra.database_url, database_statement_timeout_seconds=0.2)
    pool = await create_pool(settings, application_name="timeout-test")
    handled: list[list[int]] = []

    async def handle(records):
        async with pool.acquire() as connection:
            # A statement whose time grows with the batch, as the old candidate search's did.
            await connection.execute("SELECT pg_sleep($1)", 0.1 * len(records))
        handled.append([r.offset for r in records])

    dead_letters = _NoDeadLetters()
    consumer = BatchConsumer(handle=handle, dead_letters=dead_letters, retry=RetryPolicy(attempts=2))
    records = [
        Record(topic="t", partition=0, offset=offset, key=b"k", value=b"{}", headers={}, timestamp_ms=0)
        for offset in range(5)
    ]
    try:
        await consumer(records)
    finally:
        await pool.close()
    assert handled == [[0], [1], [2], [3], [4]]
    assert dead_letters.published == []
