"""How every consumer handles a batch: process it, retry what fails, dead-letter what keeps failing.

The rules (DESIGN.md, "Retries and dead letters are ours"):
- A batch is first processed whole, in one go, for throughput.
- If that fails, each record is processed on its own, so one poison record cannot hold back the others.
- A record whose content is malformed (`MalformedMessage`) is not retried: it is dead-lettered at once.
- A record whose processing raises another error is retried with exponential backoff up to
  `retry_attempts` times, then dead-lettered to ops.deadletter.v1 with its provenance and the error.
- An error of the infrastructure itself (PostgreSQL or Kafka unreachable) is not the record's fault: it is
  retried until the infrastructure is back, never dead-lettered, because every record would fail alike.
The batch returns normally only when every record is processed or dead-lettered; only then are the
offsets committed.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import asyncpg
import structlog
from aiokafka.errors import KafkaConnectionError, KafkaError

from caseway_shared import headers as h

if TYPE_CHECKING:
    from faststream.kafka import KafkaBroker
    from pydantic import ValidationError

    from caseway_shared.kafka import Record
    from caseway_shared.metrics import ServiceMetrics

log = structlog.get_logger(__name__)

BatchHandler = Callable[[Sequence["Record"]], Awaitable[None]]

INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InterfaceError,
    KafkaConnectionError,
)


class MalformedMessage(Exception):
    """The record's content can never be processed: retrying would not help."""

    def __init__(self, reasons: Sequence[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = tuple(reasons)

    @classmethod
    def from_validation_error(cls, error: ValidationError) -> MalformedMessage:
        """pydantic's errors as `field: message` reasons (the input values are not repeated)."""
        return cls([f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors(include_input=False)])


def is_infrastructure_error(error: BaseException) -> bool:
    """Whether `error` says a dependency is down rather than that the record is bad."""
    if isinstance(error, KafkaError) and getattr(error, "retriable", False):
        return True
    return isinstance(error, INFRASTRUCTURE_ERRORS)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 3
    backoff_seconds: float = 0.2
    max_backoff_seconds: float = 10.0

    def delay(self, attempt: int) -> float:
        """Exponential backoff with full jitter, so replicas do not retry in step."""
        ceiling = min(self.max_backoff_seconds, self.backoff_seconds * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not security


class DeadLetters:
    """Publishes records that could not be processed to ops.deadletter.v1, with their provenance."""

    def __init__(
        self, *, broker: KafkaBroker, topic: str, service: str, metrics: ServiceMetrics | None = None
    ) -> None:
        self._broker = broker
        self._topic = topic
        self._service = service
        self._metrics = metrics

    async def publish(self, record: Record, *, error: BaseException, attempts: int) -> None:
        record_headers = dict(record.headers)
        record_headers.update(
            {
                h.ORIGINAL_TOPIC: record.topic,
                h.ORIGINAL_PARTITION: str(record.partition),
                h.ORIGINAL_OFFSET: str(record.offset),
                h.ERROR: f"{type(error).__name__}: {error}"[:2000],
                h.ATTEMPTS: str(attempts),
                h.PRODUCER: self._service,
            }
        )
        record_headers.setdefault(h.CORRELATION_ID, record.headers.get(h.CORRELATION_ID, ""))
        await self._broker.publish(record.value, self._topic, key=record.key, headers=record_headers)
        if self._metrics is not None:
            self._metrics.dead_lettered(record)
        log.warning(
            "message_dead_lettered",
            **record.provenance(),
            error_type=type(error).__name__,
            attempts=attempts,
        )


class BatchConsumer:
    """Runs a batch handler with the retry and dead-letter rules above."""

    def __init__(
        self,
        *,
        handle: BatchHandler,
        dead_letters: DeadLetters,
        retry: RetryPolicy,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        self._handle = handle
        self._dead_letters = dead_letters
        self._retry = retry
        self._metrics = metrics

    async def __call__(self, records: Sequence[Record]) -> None:
        if not records:
            return
        try:
            await self._until_infrastructure_answers(records)
        except Exception as error:  # one bad record spoils a batch; find it by handling them one by one
            log.info(
                "batch_failed_falling_back_to_single", size=len(records), error_type=type(error).__name__
            )
            for record in records:
                await self._one(record)
        else:
            self._count_processed(records)

    def _count_processed(self, records: Sequence[Record]) -> None:
        if self._metrics is not None:
            self._metrics.processed(records)

    async def _until_infrastructure_answers(self, records: Sequence[Record]) -> None:
        wait = 0
        while True:
            try:
                await self._handle(records)
            except Exception as error:
                if not is_infrastructure_error(error):
                    raise
                wait += 1
                delay = self._retry.delay(min(wait, 8))
                log.warning("infrastructure_unavailable", error_type=type(error).__name__, retry_in=delay)
                await asyncio.sleep(delay)
            else:
                return

    async def _one(self, record: Record) -> None:
        structlog.contextvars.bind_contextvars(
            correlation_id=record.headers.get(h.CORRELATION_ID), **record.provenance()
        )
        try:
            for attempt in range(1, self._retry.attempts + 1):
                try:
                    await self._until_infrastructure_answers([record])
                except MalformedMessage as error:
                    await self._dead_letters.publish(record, error=error, attempts=attempt)
                    return
                except Exception as error:
                    if attempt == self._retry.attempts:
                        await self._dead_letters.publish(record, error=error, attempts=attempt)
                        return
                    log.info("message_retrying", attempt=attempt, error_type=type(error).__name__)
                    if self._metrics is not None:
                        self._metrics.retried(record)
                    await asyncio.sleep(self._retry.delay(attempt))
                else:
                    self._count_processed([record])
                    return
        finally:
            structlog.contextvars.unbind_contextvars("correlation_id", "topic", "partition", "offset")
