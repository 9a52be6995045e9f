"""How every consumer handles a batch: process it, retry what fails, dead-letter what keeps failing.

The rules (DESIGN.md, "Retries and dead letters are ours"):
- A batch is first processed whole, in one go, for throughput.
- If that fails, each half is processed the same way, down to single records, so one poison record
  cannot hold back the others and costs a few more attempts, not one per record of the batch.
- A record whose content is malformed (`MalformedMessage`) is not retried: it is dead-lettered at once.
- A record whose processing raises another error is retried with exponential backoff up to
  `retry_attempts` times, then dead-lettered to ops.deadletter.v1 with its provenance and the error.
- An outage (PostgreSQL or Kafka unreachable: an allow-list of connection errors, see
  `is_infrastructure_error`) is not the record's fault: it is retried until the dependency is back, never
  dead-lettered, because every record would fail alike. Any other OSError, and asyncpg's client-side data
  errors, are the record's problem.
- A transient database error (deadlock, serialization failure, lock timeout) is retried for
  `transient_seconds` before it counts against the record: good records are not dead-lettered after a
  second of contention.
- No call runs longer than `stall_seconds` (well under the consumer's max.poll.interval.ms): past it, the
  records not yet done are given back (their partitions rewound to the first of them). When the time went
  on waiting for a dependency, those partitions are paused for `pause_seconds` and the stall is raised
  as an alert (a metric, and the heartbeat's progress) instead of spinning until the group evicts us.
- Everything between the poll and the commit runs inside this guard: the batch's context (tracing,
  timing) cannot fail a batch, and nothing else escapes to the framework, which would redeliver the batch
  at once, for ever.
- A record too large to dead-letter with its provenance headers (near the broker's size limit) is
  dead-lettered truncated, with its size and SHA-256 digest, and found by reference (original topic,
  partition, offset) on its topic.
The batch returns normally only when every record is processed or dead-lettered, or given back; only
then are the offsets committed, up to the first record given back.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import random
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import asyncpg
import structlog
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError, MessageSizeTooLargeError

from caseway_shared import headers as h
from caseway_shared.backoff import backoff_delay
from caseway_shared.errors import validation_reasons

if TYPE_CHECKING:
    from faststream.kafka import KafkaBroker
    from pydantic import ValidationError

    from caseway_shared.kafka import Record
    from caseway_shared.metrics import ServiceMetrics

log = structlog.get_logger(__name__)

BatchHandler = Callable[[Sequence["Record"]], Awaitable[None]]
BatchContext = Callable[[Sequence["Record"]], contextlib.AbstractContextManager[object]]

# Errors that say a dependency cannot be reached. Deliberately not OSError as a whole: a FileNotFoundError
# or an EINVAL from a record's content would otherwise be retried for ever.
INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,  # refused, reset, aborted, broken pipe
    # The client gave up on a server that did not answer (asyncpg's command_timeout sits 20 s past the
    # server's own statement_timeout, which arrives as QueryCanceledError instead: the batch's problem).
    TimeoutError,
    asyncpg.PostgresConnectionError,  # class 08, connection does not exist / failure
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    KafkaConnectionError,
    KafkaTimeoutError,  # the producer found no broker to send to in time
)
_CONNECTION_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ENETDOWN,
        errno.EHOSTDOWN,
        errno.ETIMEDOUT,
        errno.EPIPE,
        errno.ENOTCONN,
    }
)
# asyncpg's InterfaceError also covers client-side data errors (a value it cannot encode): only these
# messages say the connection itself is gone.
_CLOSED_CONNECTION_MESSAGES = ("connection is closed", "connection was closed", "pool is closing")
# Contention between transactions: it passes, so a record gets longer than its ordinary retries.
TRANSIENT_DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    asyncpg.LockNotAvailableError,
)

# Dead letters of records too large to carry their provenance: what they say instead of the whole value.
TRUNCATED = "deadletter-truncated"
ORIGINAL_SIZE = "original-size"
ORIGINAL_SHA256 = "original-sha256"


class MalformedMessage(Exception):
    """The record's content can never be processed: retrying would not help."""

    def __init__(self, reasons: Sequence[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = tuple(reasons)

    @classmethod
    def from_validation_error(cls, error: ValidationError) -> MalformedMessage:
        """pydantic's errors as `field: message` reasons (the input values are not repeated)."""
        return cls(list(validation_reasons(error)))


def is_infrastructure_error(error: BaseException) -> bool:
    """Whether `error` says a dependency is down rather than that the record is bad."""
    if isinstance(error, INFRASTRUCTURE_ERRORS):
        return True
    if isinstance(error, KafkaError):
        return bool(getattr(error, "retriable", False))
    if isinstance(error, asyncpg.InterfaceError):
        return any(message in str(error) for message in _CLOSED_CONNECTION_MESSAGES)
    if isinstance(error, OSError):
        # asyncio reports a connection refused on every address of a host as one plain OSError.
        return error.errno in _CONNECTION_ERRNOS or str(error).startswith("Multiple exceptions:")
    return False


def is_transient_error(error: BaseException) -> bool:
    """A deadlock, serialization failure or lock timeout: another transaction was in the way."""
    return isinstance(error, TRANSIENT_DATABASE_ERRORS)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 3
    backoff_seconds: float = 0.2
    max_backoff_seconds: float = 10.0
    # Deadlocks, serialization failures and lock timeouts are retried this long before they count.
    transient_seconds: float = 30.0
    # Longest one call may take (the consumer polls only between calls: max.poll.interval.ms is 300 s).
    stall_seconds: float = 120.0
    # How long a partition stays paused after a stall on a dependency, before it is tried again.
    pause_seconds: float = 30.0

    def delay(self, attempt: int) -> float:
        """Exponential backoff with full jitter, so replicas do not retry in step."""
        return backoff_delay(
            attempt,
            base=self.backoff_seconds,
            cap=self.max_backoff_seconds,
            jitter=random.random(),  # noqa: S311 - jitter, not security
        )


class PartitionControl(Protocol):
    """What the batch consumer needs of the Kafka consumer to give records back and pause."""

    def seek(self, topic: str, partition: int, offset: int) -> None: ...

    def pause(self, topic: str, partition: int) -> None: ...

    def resume(self, topic: str, partition: int) -> None: ...


class Publisher(Protocol):
    async def publish(
        self, message: bytes, topic: str, *, key: bytes | None, headers: dict[str, str]
    ) -> object: ...


class DeadLetters:
    """Publishes records that could not be processed to ops.deadletter.v1, with their provenance.

    A record too large to be sent again with its provenance headers is dead-lettered with the first
    `truncate_to` bytes of its value, its size and its SHA-256 digest: the whole record stays on its
    original topic, where the headers say it is.

    `value_of`, if given, is what is published instead of the record's value (intake seals residents'
    contact details with it); a service that replays its dead letters reads what it made.
    """

    def __init__(
        self,
        *,
        broker: KafkaBroker | Publisher,
        topic: str,
        service: str,
        metrics: ServiceMetrics | None = None,
        max_bytes: int = 1_000_000,
        truncate_to: int = 64 * 1024,
        value_of: Callable[[Record], bytes] | None = None,
    ) -> None:
        self.value_of = value_of
        self._broker = broker
        self._topic = topic
        self._service = service
        self._metrics = metrics
        self._max_bytes = max_bytes
        self._truncate_to = truncate_to

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
        value = published = record.value if self.value_of is None else self.value_of(record)
        if _size(value, record.key, record_headers) > self._max_bytes:
            value, record_headers = self._truncated(
                record, record_headers, keep_headers=True, value=published
            )
        try:
            await self._broker.publish(value, self._topic, key=record.key, headers=record_headers)
        except MessageSizeTooLargeError:
            # The broker's limit is lower than ours, or the headers themselves are huge: provenance only.
            value, record_headers = self._truncated(record, record_headers, keep_headers=False, value=b"")
            await self._broker.publish(value, self._topic, key=record.key, headers=record_headers)
        if self._metrics is not None:
            self._metrics.dead_lettered(record)
        log.warning(
            "message_dead_lettered",
            **record.provenance(),
            error_type=type(error).__name__,
            attempts=attempts,
            truncated=TRUNCATED in record_headers,
        )

    def _truncated(
        self, record: Record, headers: dict[str, str], *, keep_headers: bool, value: bytes
    ) -> tuple[bytes, dict[str, str]]:
        kept = (
            dict(headers)
            if keep_headers
            else {
                name: headers[name][:500]
                for name in (
                    h.ORIGINAL_TOPIC,
                    h.ORIGINAL_PARTITION,
                    h.ORIGINAL_OFFSET,
                    h.ERROR,
                    h.ATTEMPTS,
                    h.PRODUCER,
                    h.CORRELATION_ID,
                    h.EVENT_ID,
                    h.EVENT_TYPE,
                )
                if name in headers
            }
        )
        kept[TRUNCATED] = "true"
        kept[ORIGINAL_SIZE] = str(len(record.value))
        kept[ORIGINAL_SHA256] = hashlib.sha256(record.value).hexdigest()
        return (value[: self._truncate_to] if keep_headers else b""), kept


def _size(value: bytes, key: bytes | None, headers: dict[str, str]) -> int:
    # Kafka's record and batch framing adds well under 1 KiB.
    framing = 1024
    return len(value) + len(key or b"") + sum(len(k) + len(v.encode()) for k, v in headers.items()) + framing


class _Stalled(Exception):
    """The call ran out of time: give back what is not done (and pause it, if a dependency was the cause)."""

    def __init__(self, cause: BaseException | None) -> None:
        super().__init__(str(cause) if cause else "out of time")
        self.cause = cause


class BatchConsumer:
    """Runs a batch handler with the retry, dead-letter and stall rules above."""

    def __init__(
        self,
        *,
        handle: BatchHandler,
        dead_letters: DeadLetters,
        retry: RetryPolicy,
        metrics: ServiceMetrics | None = None,
        partitions: PartitionControl | None = None,
        context: BatchContext | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self._handle = handle
        self._dead_letters = dead_letters
        self._retry = retry
        self._metrics = metrics
        self._partitions = partitions
        self._context = context
        self._clock = clock
        self._sleep = sleep
        self._deadline = 0.0
        self._started = 0.0
        self._resumes: dict[tuple[str, int], asyncio.TimerHandle] = {}

    @property
    def paused(self) -> set[tuple[str, int]]:
        """The partitions paused after a stall, not resumed yet."""
        return set(self._resumes)

    async def __call__(self, records: Sequence[Record]) -> None:
        if not records:
            return
        self._started = self._clock()
        self._deadline = self._started + self._retry.stall_seconds
        done: set[int] = set()
        try:
            with self._batch_context(records):
                await self._process(records, done)
        except _Stalled as stalled:
            self._give_back(records, done, cause=stalled.cause)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the guard: anything else would be redelivered at once, for ever
            if len(done) == len(records):  # everything is done: what failed came after (a span's end)
                log.exception("batch_context_failed_after_processing", error_type=type(error).__name__)
                return
            log.exception("batch_failed_unexpectedly", error_type=type(error).__name__)
            self._give_back(records, done, cause=error, always_pause=True)

    @contextlib.contextmanager
    def _batch_context(self, records: Sequence[Record]) -> Iterator[None]:
        """The batch's context (tracing spans, timing), which must never be why a batch fails."""
        stack = contextlib.ExitStack()
        if self._context is not None:
            try:
                stack.enter_context(self._context(records))
            except Exception as error:
                log.warning("batch_context_unavailable", error_type=type(error).__name__)
        with stack:
            yield

    async def _process(self, records: Sequence[Record], done: set[int]) -> None:
        await self._halving(list(enumerate(records)), done)

    async def _halving(self, part: list[tuple[int, Record]], done: set[int]) -> None:
        """Handle `part` (records with their index in the batch) whole; if one bad record spoils it, each
        half the same way, in order, down to single records. One poison record among n costs about
        2·log2(n) more attempts, not n: a batch of 500 taken while catching up after an outage, handled
        one by one at tens of milliseconds a unit of work, held its partitions for 17 s."""
        if len(part) == 1:
            index, record = part[0]
            await self._one(record)
            done.add(index)
            return
        records = [record for _, record in part]
        try:
            await self._attempt(records, _Transient())
        except _Stalled:
            raise
        except Exception as error:
            log.info("batch_failed_halving", size=len(records), error_type=type(error).__name__)
        else:
            done.update(index for index, _ in part)
            self._count_processed(records)
            return
        middle = len(part) // 2
        for half in (part[:middle], part[middle:]):
            if done and self._clock() >= self._deadline:
                raise _Stalled(None)  # out of time: the rest comes back at the next poll
            await self._halving(half, done)

    def _count_processed(self, records: Sequence[Record]) -> None:
        if self._metrics is not None:
            self._metrics.processed(records)

    async def _attempt(self, records: Sequence[Record], transient: _Transient) -> None:
        """Handle `records` once, waiting out outages and (within their budget) transient errors."""
        outage_waits = 0
        while True:
            try:
                await self._handle(records)
            except Exception as error:
                if is_infrastructure_error(error):
                    outage_waits += 1
                    delay = self._retry.delay(min(outage_waits, 8))
                    log.warning("infrastructure_unavailable", error_type=type(error).__name__, retry_in=delay)
                elif is_transient_error(error):
                    now = self._clock()
                    if transient.started is None:
                        transient.started = now
                    if now - transient.started >= self._retry.transient_seconds:
                        raise  # contention that does not pass: the record's problem from here on
                    transient.waits += 1
                    delay = self._retry.delay(min(transient.waits, 6))
                    log.info("transient_database_error", error_type=type(error).__name__, retry_in=delay)
                else:
                    raise
                if self._clock() + delay >= self._deadline:
                    raise _Stalled(error) from error
                await self._sleep(delay)
            else:
                return

    async def _one(self, record: Record) -> None:
        structlog.contextvars.bind_contextvars(
            correlation_id=record.headers.get(h.CORRELATION_ID), **record.provenance()
        )
        transient = _Transient()
        try:
            for attempt in range(1, self._retry.attempts + 1):
                try:
                    await self._attempt([record], transient)
                except _Stalled:
                    raise
                except MalformedMessage as error:
                    await self._dead_letter(record, error, attempt)
                    return
                except Exception as error:
                    if attempt == self._retry.attempts:
                        await self._dead_letter(record, error, attempt)
                        return
                    log.info("message_retrying", attempt=attempt, error_type=type(error).__name__)
                    if self._metrics is not None:
                        self._metrics.retried(record)
                    await self._sleep(self._retry.delay(attempt))
                else:
                    self._count_processed([record])
                    return
        finally:
            structlog.contextvars.unbind_contextvars("correlation_id", "topic", "partition", "offset")

    async def _dead_letter(self, record: Record, error: BaseException, attempts: int) -> None:
        """Dead-letter `record`, waiting (within the stall budget) while the broker is unreachable."""
        waits = 0
        while True:
            try:
                await self._dead_letters.publish(record, error=error, attempts=attempts)
            except Exception as failure:
                if not is_infrastructure_error(failure):
                    raise
                waits += 1
                delay = self._retry.delay(min(waits, 8))
                if self._clock() + delay >= self._deadline:
                    raise _Stalled(failure) from failure
                await self._sleep(delay)
            else:
                return

    def _give_back(
        self,
        records: Sequence[Record],
        done: set[int],
        *,
        cause: BaseException | None,
        always_pause: bool = False,
    ) -> None:
        """Rewind each partition to its first record not done; pause them if a dependency was the cause."""
        first: dict[tuple[str, int], int] = {}
        for index, record in enumerate(records):
            if index not in done:
                where = (record.topic, record.partition)
                first[where] = min(first.get(where, record.offset), record.offset)
        if not first:
            return
        if self._partitions is None:
            # No consumer to rewind: let the framework redeliver the batch (processed records absorb it).
            raise cause if cause is not None else RuntimeError("out of time and no consumer to rewind")
        pause = always_pause or cause is not None
        waited = self._clock() - self._started
        for (topic, partition), offset in sorted(first.items()):
            try:
                self._partitions.seek(topic, partition, offset)
            except Exception as error:  # revoked meanwhile: its new owner starts from the commit
                log.warning("give_back_failed", topic=topic, partition=partition, error=str(error)[:200])
                continue
            if not pause:
                log.info("batch_out_of_time_given_back", topic=topic, partition=partition, offset=offset)
                continue
            self._pause(topic, partition, offset=offset, waited=waited, cause=cause)

    def _pause(
        self, topic: str, partition: int, *, offset: int, waited: float, cause: BaseException | None
    ) -> None:
        if self._partitions is None:
            return
        with contextlib.suppress(Exception):
            self._partitions.pause(topic, partition)
        pause_for = self._retry.pause_seconds
        log.error(
            "partition_stalled",
            topic=topic,
            partition=partition,
            offset=offset,
            waited_s=round(waited, 1),
            paused_s=pause_for,
            error_type=type(cause).__name__ if cause is not None else None,
            error=str(cause)[:300] if cause is not None else None,
        )
        if self._metrics is not None:
            self._metrics.stalled(topic, partition, seconds=waited, paused=True)
        if (old := self._resumes.pop((topic, partition), None)) is not None:
            old.cancel()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - always called from the consumer's loop
            return
        self._resumes[(topic, partition)] = loop.call_later(pause_for, self._resume, topic, partition)

    def _resume(self, topic: str, partition: int) -> None:
        self._resumes.pop((topic, partition), None)
        if self._partitions is not None:
            try:
                self._partitions.resume(topic, partition)
            except Exception as error:  # no longer ours: nothing to resume
                log.info("resume_skipped", topic=topic, partition=partition, error=str(error)[:200])
        if self._metrics is not None:
            self._metrics.stalled(topic, partition, seconds=self._retry.pause_seconds, paused=False)
        log.info("partition_resumed", topic=topic, partition=partition)

    def close(self) -> None:
        """Forget pending resumes (the consumer is stopping)."""
        for handle in self._resumes.values():
            handle.cancel()
        self._resumes.clear()


@dataclass(slots=True)
class _Transient:
    """When a record's transient database errors started, shared by its attempts."""

    started: float | None = None
    waits: int = 0
