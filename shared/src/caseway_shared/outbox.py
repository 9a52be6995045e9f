"""A transactional outbox: events written in the same transaction as the change they describe, then
published to Kafka by a relay.

Kafka transactions do not cover PostgreSQL, so a service that must both change its tables and publish an
event writes the event into its schema's `outbox` table inside the same transaction. The relay publishes
rows in id order and deletes them once the broker acknowledged them (acks=all). A crash between the two
publishes a row again on restart: at-least-once, which consumers absorb through their unique keys.

One relay per schema publishes at a time (a PostgreSQL advisory lock), so several replicas keep the
order of events per key. The relay wakes as soon as a handler commits (`wake`), and otherwise polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from caseway_shared import headers as h
from caseway_shared import tracing
from caseway_shared.consuming import is_infrastructure_error

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import asyncpg
    from aiokafka import AIOKafkaProducer
    from pydantic import BaseModel

    from caseway_shared.db import DbConnection

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One event to publish: topic, key, JSON body and the standard headers."""

    topic: str
    key: str
    payload: bytes
    headers: dict[str, str]

    @classmethod
    def for_event(
        cls, *, topic: str, key: str, event: BaseModel, correlation_id: str, producer: str
    ) -> OutboxMessage:
        event_type = str(getattr(event, "event_type", type(event).__name__))
        headers = h.EventHeaders.new(
            event_type=event_type, correlation_id=correlation_id, producer=producer
        ).as_dict()
        tracing.inject_for(correlation_id, headers)
        return cls(topic=topic, key=key, payload=event.model_dump_json().encode(), headers=headers)


async def enqueue(connection: DbConnection, schema: str, messages: Sequence[OutboxMessage]) -> None:
    """Add `messages` to `schema`'s outbox, inside the caller's transaction."""
    if not messages:
        return
    await connection.execute(
        f"""
        INSERT INTO {schema}.outbox (topic, key, payload, headers)
        SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::jsonb[])
        """,
        [m.topic for m in messages],
        [m.key for m in messages],
        [m.payload for m in messages],
        [m.headers for m in messages],
    )


class OutboxRelay:
    """Publishes a schema's outbox to Kafka, in order, until stopped."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        producer: AIOKafkaProducer,
        schema: str,
        batch_size: int = 1000,
        poll_seconds: float = 1.0,
        on_published: Callable[[int], object] | None = None,
    ) -> None:
        self._pool = pool
        self._producer = producer
        self._schema = schema
        self._batch_size = batch_size
        self._poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self._stopping = False
        self._lock_id = zlib.crc32(f"caseway-outbox-{schema}".encode())
        self.published = 0
        self._on_published = on_published

    def wake(self) -> None:
        """Ask the relay to publish now: a handler just committed outbox rows."""
        self._wake.set()

    def stop(self) -> None:
        """Ask the relay to finish: it publishes what is pending, then `run` returns.

        Stopping this way rather than by cancellation matters: a pass cancelled after the broker took its
        messages but before their rows were deleted would publish them again on the next start.
        """
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                while await self.publish_pending():
                    pass
            except asyncio.CancelledError:
                raise
            except Exception as error:
                level = "warning" if is_infrastructure_error(error) else "error"
                getattr(log, level)("outbox_relay_failed", schema=self._schema, error=str(error)[:500])
                if self._stopping:
                    return
                await asyncio.sleep(self._poll_seconds)
            if self._stopping:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._poll_seconds)
            self._wake.clear()

    async def publish_pending(self) -> int:
        """Publish one batch of pending rows; returns how many were published (0 when none or locked)."""
        async with self._pool.acquire() as connection, connection.transaction():
            locked = await connection.fetchval("SELECT pg_try_advisory_xact_lock($1)", self._lock_id)
            if not locked:
                return 0
            rows = await connection.fetch(
                f"SELECT id, topic, key, payload, headers FROM {self._schema}.outbox ORDER BY id LIMIT $1",
                self._batch_size,
            )
            if not rows:
                return 0
            await self._publish(rows)
            await connection.execute(
                f"DELETE FROM {self._schema}.outbox WHERE id = ANY($1::bigint[])", [row["id"] for row in rows]
            )
        self.published += len(rows)
        if self._on_published is not None:
            self._on_published(len(rows))
        return len(rows)

    async def _publish(self, rows: Sequence[Any]) -> None:
        # Send everything first and wait for the acknowledgements together: one round trip, not one a row.
        # The relay talks to aiokafka directly: FastStream's per-message middlewares cost more than the
        # send itself at thousands of events a second, and the relay counts what it publishes itself.
        futures = []
        for row in rows:
            headers = dict(row["headers"])
            with tracing.publishing(row["topic"], headers):
                futures.append(
                    await self._producer.send(
                        row["topic"],
                        bytes(row["payload"]),
                        key=row["key"].encode(),
                        headers=h.encode_headers(headers),
                    )
                )
        await asyncio.gather(*futures)
