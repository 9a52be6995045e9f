"""A transactional outbox: events written in the same transaction as the change they describe, then
published to Kafka by a relay.

Kafka transactions do not cover PostgreSQL, so a service that must both change its tables and publish an
event writes the event into its schema's `outbox` table inside the same transaction. The relay publishes
rows in id order and deletes them once the broker acknowledged them (acks=all). A crash between the two
publishes a row again on restart: at-least-once, which consumers absorb through their unique keys.

One relay per schema publishes at a time (a PostgreSQL advisory lock), so several replicas keep the
order of events per key. The relay wakes as soon as a handler commits (`wake`), and otherwise polls.

A row the broker will never take (too large, an invalid topic, headers that cannot be encoded) must not
block every row after it for ever: when a batch fails for a reason other than an outage, the rows are
sent one by one, and each that fails on its own is set aside in place, its reason recorded in the
`caseway-set-aside` entry of its headers column; the relay skips it from then on (that row's key loses its
order, which beats losing every later event). An operator releases it with
`UPDATE <schema>.outbox SET headers = headers - 'caseway-set-aside' WHERE id = ...` once the cause is
fixed. `measure` gives the backlog, the age of the oldest pending row and the rows set aside, for the
gauges operators watch.

On shutdown the relay is never cancelled: `stop` lets the pass in hand finish (publishing and deleting
its rows together), publishes what else is pending for up to `drain_seconds`, and returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
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

# The key, in an outbox row's headers column, that sets the row aside (its value says when and why).
SET_ASIDE = "caseway-set-aside"


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


async def publish_now(producer: AIOKafkaProducer, messages: Sequence[OutboxMessage]) -> None:
    """Publish `messages` in order and return once the broker has acknowledged every one (acks=all);
    raise the first failure.

    For events whose change is already committed and whose caller makes them again if this fails: a
    consumer's handler, whose offsets are committed only after it returns, so that a redelivery emits the
    events once more (every consumer deduplicates on business keys). Everything else goes through the
    outbox: an HTTP request or a staff action is not redelivered."""
    futures: list[asyncio.Future[Any]] = []
    try:
        for message in messages:
            headers = dict(message.headers)
            future = await _hand_over(producer, message.topic, message.key, message.payload, headers)
            futures.append(future)
    finally:
        # What was handed over goes on its way whatever happened to the rest: wait for it (and retrieve
        # its failure, if any) before reporting.
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome


async def _hand_over(
    producer: AIOKafkaProducer, topic: str, key: str, payload: bytes, headers: dict[str, str]
) -> asyncio.Future[Any]:
    """Give one event to the producer (traced, headers encoded); the future resolves once the broker has
    it. Raises if the producer refuses it before it leaves."""
    with tracing.publishing(topic, headers):
        future: asyncio.Future[Any] = await producer.send(
            topic, payload, key=key.encode(), headers=h.encode_headers(headers)
        )
    return future


@dataclass(frozen=True, slots=True)
class OutboxBacklog:
    """What an outbox holds: rows to publish, how old the oldest is, and rows set aside."""

    pending: int
    oldest_age_seconds: float
    set_aside: int


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
        drain_seconds: float = 10.0,
        on_published: Callable[[int], object] | None = None,
        on_set_aside: Callable[[int], object] | None = None,
    ) -> None:
        self._pool = pool
        self._producer = producer
        self._schema = schema
        self._batch_size = batch_size
        self._poll_seconds = poll_seconds
        self._drain_seconds = drain_seconds
        self._wake = asyncio.Event()
        self._stopping = False
        self._drain_until = 0.0
        self._lock_id = zlib.crc32(f"caseway-outbox-{schema}".encode())
        self.published = 0
        self.set_aside = 0
        self._on_published = on_published
        self._on_set_aside = on_set_aside

    def wake(self) -> None:
        """Ask the relay to publish now: a handler just committed outbox rows."""
        self._wake.set()

    def stop(self) -> None:
        """Ask the relay to finish: it publishes what is pending (for up to `drain_seconds`), then `run`
        returns, always between two passes.

        Stopping this way rather than by cancellation matters: a pass cancelled after the broker took its
        messages but before their rows were deleted would publish them again on the next start.
        """
        if not self._stopping:
            self._drain_until = time.monotonic() + self._drain_seconds
        self._stopping = True
        self._wake.set()

    def _drained(self) -> bool:
        return self._stopping and time.monotonic() >= self._drain_until

    async def run(self) -> None:
        while True:
            try:
                while await self.publish_pending():
                    if self._drained():
                        log.warning("outbox_relay_stopped_with_rows_pending", schema=self._schema)
                        return
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

    async def finish(self, task: asyncio.Task[None]) -> None:
        """Stop the relay running as `task` and wait for it to return by itself: never cancelled, so a
        pass in hand publishes and deletes its rows together (the pass is bounded by the producer's own
        request timeout)."""
        self.stop()
        await asyncio.shield(task)

    async def publish_pending(self) -> int:
        """Publish one batch of pending rows; returns how many were published or set aside (0 when none
        or locked)."""
        async with self._pool.acquire() as connection, connection.transaction():
            locked = await connection.fetchval("SELECT pg_try_advisory_xact_lock($1)", self._lock_id)
            if not locked:
                return 0
            rows = await connection.fetch(
                f"SELECT id, topic, key, payload, headers FROM {self._schema}.outbox"
                " WHERE NOT headers ? $2 ORDER BY id LIMIT $1",
                self._batch_size,
                SET_ASIDE,
            )
            if not rows:
                return 0
            done, error = await self._publish(rows)
            aside: list[tuple[int, str]] = []
            if error is not None:
                if is_infrastructure_error(error):
                    raise error
                log.warning(
                    "outbox_batch_failed_one_by_one", schema=self._schema, error_type=type(error).__name__
                )
                # What the broker took stays taken (sending it again would repeat it); the rest, one by one.
                taken = set(done)
                more, aside = await self._publish_one_by_one([row for row in rows if row["id"] not in taken])
                done += more
            for row_id, reason in aside:
                await connection.execute(
                    f"UPDATE {self._schema}.outbox"
                    " SET headers = headers || jsonb_build_object($2::text, $3::text) WHERE id = $1",
                    row_id,
                    SET_ASIDE,
                    reason,
                )
            await connection.execute(f"DELETE FROM {self._schema}.outbox WHERE id = ANY($1::bigint[])", done)
        self.published += len(done)
        self.set_aside += len(aside)
        if self._on_published is not None and done:
            self._on_published(len(done))
        if self._on_set_aside is not None and aside:
            self._on_set_aside(len(aside))
        return len(done) + len(aside)

    async def _publish_one_by_one(self, rows: Sequence[Any]) -> tuple[list[int], list[tuple[int, str]]]:
        """Each row alone, in order: published ones to delete, and the ones set aside with their reason.
        An outage stops the pass (what is done is kept)."""
        done: list[int] = []
        aside: list[tuple[int, str]] = []
        for row in rows:
            _, error = await self._publish([row])
            if error is not None:
                if is_infrastructure_error(error):
                    break
                reason = (
                    f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {type(error).__name__}: {error}"
                )
                aside.append((row["id"], reason[:1000]))
                log.error(
                    "outbox_row_set_aside",
                    schema=self._schema,
                    id=row["id"],
                    topic=row["topic"],
                    error_type=type(error).__name__,
                    error=str(error)[:300],
                    exc_info=error,
                )
            else:
                done.append(row["id"])
        return done, aside

    async def measure(self) -> OutboxBacklog:
        """The outbox's backlog, the age of its oldest pending row (0 when empty) and rows set aside."""
        row = await self._pool.fetchrow(
            f"""
            SELECT count(*) FILTER (WHERE NOT headers ? $1) AS pending,
                   coalesce(extract(epoch FROM now() - min(created_at) FILTER (WHERE NOT headers ? $1)), 0)
                     AS oldest,
                   count(*) FILTER (WHERE headers ? $1) AS set_aside
            FROM {self._schema}.outbox
            """,
            SET_ASIDE,
        )
        if row is None:  # pragma: no cover - an aggregate always returns a row
            return OutboxBacklog(0, 0.0, 0)
        return OutboxBacklog(int(row["pending"]), float(row["oldest"]), int(row["set_aside"]))

    async def _publish(self, rows: Sequence[Any]) -> tuple[list[int], BaseException | None]:
        """Send `rows` and wait for the acknowledgements together: one round trip, not one a row. Returns
        the ids the broker took, in order, and the first failure (None: all taken).

        The relay talks to aiokafka directly: FastStream's per-message middlewares cost more than the send
        itself at thousands of events a second, and the relay counts what it publishes itself."""
        sent: list[tuple[int, asyncio.Future[Any]]] = []
        failure: BaseException | None = None
        for row in rows:
            headers = dict(row["headers"])
            headers.pop(SET_ASIDE, None)
            try:
                future = await _hand_over(
                    self._producer, row["topic"], row["key"], bytes(row["payload"]), headers
                )
            except Exception as error:  # refused before it left: what was handed over still goes
                failure = error
                break
            sent.append((row["id"], future))
        taken: list[int] = []
        outcomes = await asyncio.gather(*(future for _, future in sent), return_exceptions=True)
        for (row_id, _), outcome in zip(sent, outcomes, strict=True):
            if not isinstance(outcome, BaseException):
                taken.append(row_id)
            elif failure is None:
                failure = outcome
        return taken, failure
