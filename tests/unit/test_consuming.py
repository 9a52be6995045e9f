"""The batch consumer's guard, error classes, stall budget and dead letters (issue 11, items 7, 8, 9).

Pure: a fake handler, fake dead letters, a fake Kafka consumer and a clock that moves only when the
consumer sleeps, so a budget of minutes is tested in milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import json
from typing import TYPE_CHECKING, Any

import asyncpg
import asyncpg.exceptions._base as asyncpg_base
import pytest
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError
from opentelemetry import trace
from prometheus_client import CollectorRegistry

from caseway_shared import tracing
from caseway_shared.consuming import (
    ORIGINAL_SHA256,
    ORIGINAL_SIZE,
    TRUNCATED,
    BatchConsumer,
    DeadLetters,
    MalformedMessage,
    RetryPolicy,
    is_infrastructure_error,
    is_transient_error,
)
from caseway_shared.kafka import Record
from caseway_shared.metrics import ServiceMetrics

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence


class Clock:
    """Time that passes only when the consumer sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


class FakeDeadLetters(DeadLetters):
    def __init__(self, fail_with: list[BaseException] | None = None) -> None:
        self.published: list[tuple[Record, BaseException]] = []
        self._fail_with = fail_with or []

    async def publish(self, record: Record, *, error: BaseException, attempts: int) -> None:
        if self._fail_with:
            raise self._fail_with.pop(0)
        self.published.append((record, error))


class FakePartitions:
    def __init__(self) -> None:
        self.seeks: list[tuple[str, int, int]] = []
        self.paused: set[tuple[str, int]] = set()
        self.resumed: list[tuple[str, int]] = []

    def seek(self, topic: str, partition: int, offset: int) -> None:
        self.seeks.append((topic, partition, offset))

    def pause(self, topic: str, partition: int) -> None:
        self.paused.add((topic, partition))

    def resume(self, topic: str, partition: int) -> None:
        self.paused.discard((topic, partition))
        self.resumed.append((topic, partition))


def records(count: int, *, partition: int = 0, value: bytes = b"{}") -> list[Record]:
    return [
        Record(topic="t", partition=partition, offset=o, key=b"k", value=value, headers={}, timestamp_ms=0)
        for o in range(count)
    ]


def consumer(
    handle: Any,
    *,
    clock: Clock,
    dead: FakeDeadLetters | None = None,
    partitions: FakePartitions | None = None,
    metrics: ServiceMetrics | None = None,
    **policy: Any,
) -> BatchConsumer:
    return BatchConsumer(
        handle=handle,
        dead_letters=dead or FakeDeadLetters(),
        retry=RetryPolicy(**policy),
        metrics=metrics,
        partitions=partitions,
        clock=clock,
        sleep=clock.sleep,
        context=None,
    )


# --- item 8: which errors are an outage ------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed"),
        ConnectionResetError(),
        TimeoutError(),  # asyncpg's command_timeout: the server stopped answering
        OSError("Multiple exceptions: [Errno 111] Connect call failed ('127.0.0.1', 5432)"),
        OSError(errno.EHOSTUNREACH, "No route to host"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.InterfaceError("cannot perform operation: connection is closed"),
        KafkaTimeoutError(),
    ],
    ids=repr,
)
def test_connection_errors_are_an_outage(error: BaseException) -> None:
    assert is_infrastructure_error(error)


@pytest.mark.parametrize(
    "error",
    [
        FileNotFoundError(errno.ENOENT, "No such file"),
        OSError(errno.EINVAL, "Invalid argument"),
        PermissionError(),
        asyncpg_base.DataError("invalid input for query argument $1: 'x' (an integer is required)"),
        asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
        asyncpg.QueryCanceledError("canceling statement due to statement timeout"),
        asyncpg.DeadlockDetectedError("deadlock detected"),
        ValueError(),
    ],
    ids=repr,
)
def test_other_errors_are_not_an_outage(error: BaseException) -> None:
    assert not is_infrastructure_error(error)


def test_deadlocks_serialization_failures_and_lock_timeouts_are_transient() -> None:
    assert is_transient_error(asyncpg.DeadlockDetectedError("x"))
    assert is_transient_error(asyncpg.SerializationError("x"))
    assert is_transient_error(asyncpg.LockNotAvailableError("x"))
    assert not is_transient_error(asyncpg.QueryCanceledError("x"))


async def test_a_record_that_always_raises_a_client_data_error_is_dead_lettered_not_retried_for_ever() -> (
    None
):
    clock = Clock()
    calls = 0

    async def handle(batch: Sequence[Record]) -> None:
        nonlocal calls
        calls += 1
        if any(r.offset == 1 for r in batch):
            raise asyncpg_base.DataError("invalid input for query argument $2")

    dead = FakeDeadLetters()
    run = consumer(handle, clock=clock, dead=dead, partitions=FakePartitions())
    await asyncio.wait_for(run(records(3)), timeout=5)
    assert [r.offset for r, _ in dead.published] == [1]
    assert calls == 1 + 1 + 1 + 3 + 1  # whole batch, record 0, records 1-2, record 1 three times, record 2


async def test_a_good_batch_that_meets_deadlocks_for_a_while_is_retried_whole_not_dead_lettered() -> None:
    clock = Clock()
    failures = 8  # about 8 s of contention at the default backoff: the old rules dead-lettered after ~1 s
    handled: list[list[int]] = []

    async def handle(batch: Sequence[Record]) -> None:
        nonlocal failures
        if failures:
            failures -= 1
            raise asyncpg.DeadlockDetectedError("deadlock detected")
        handled.append([r.offset for r in batch])

    dead = FakeDeadLetters()
    await consumer(handle, clock=clock, dead=dead, partitions=FakePartitions())(records(4))
    assert dead.published == []
    assert handled == [[0, 1, 2, 3]]


async def test_contention_that_never_passes_counts_against_the_record_after_its_budget() -> None:
    clock = Clock()

    async def handle(batch: Sequence[Record]) -> None:
        raise asyncpg.LockNotAvailableError("canceling statement due to lock timeout")

    dead = FakeDeadLetters()
    partitions = FakePartitions()
    run = consumer(
        handle, clock=clock, dead=dead, partitions=partitions, transient_seconds=5, stall_seconds=600
    )
    start = clock.now
    await asyncio.wait_for(run(records(2)), timeout=5)
    assert [r.offset for r, _ in dead.published] == [0, 1]
    # The whole batch, then each record, got its contention budget once (not once per attempt).
    assert clock.now - start < 3 * 5 + 3 * 10 + 10


async def test_an_outage_past_the_stall_budget_pauses_the_partition_and_raises_an_alert() -> None:
    clock = Clock()

    async def handle(batch: Sequence[Record]) -> None:
        raise ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed")

    partitions = FakePartitions()
    metrics = ServiceMetrics(CollectorRegistry(), service="test")
    run = consumer(
        handle,
        clock=clock,
        partitions=partitions,
        metrics=metrics,
        stall_seconds=60,
        pause_seconds=0.05,
    )
    batch = records(3, partition=2)[1:]
    start = clock.now
    await asyncio.wait_for(run(batch), timeout=5)  # returns: the consumer polls again, stays in the group
    assert clock.now - start <= 60  # never past the budget (max.poll.interval.ms is 300 s)
    assert partitions.seeks == [("t", 2, 1)]  # given back from its first record
    assert partitions.paused == {("t", 2)}
    assert metrics.totals["stalls"] == 1
    assert metrics.totals["paused:t:2"] == 1
    assert metrics.totals["stalled_seconds:t:2"] >= 50
    assert run.paused == {("t", 2)}
    await asyncio.sleep(0.1)  # the pause ends by itself; the records are tried again
    assert partitions.paused == set()
    assert partitions.resumed == [("t", 2)]
    assert metrics.totals["paused:t:2"] == 0


async def test_records_split_one_by_one_never_hold_the_consumer_past_the_stall_budget() -> None:
    clock = Clock()
    handled: list[int] = []

    async def handle(batch: Sequence[Record]) -> None:
        if len(batch) > 1:
            raise ValueError("one of them is bad")
        await clock.sleep(10)  # each record alone is slow
        handled.append(batch[0].offset)

    partitions = FakePartitions()
    run = consumer(handle, clock=clock, partitions=partitions, stall_seconds=35)
    await run(records(10))
    assert handled == [0, 1, 2, 3]
    assert partitions.seeks == [("t", 0, 4)]  # the rest comes back at the next poll, at once
    assert partitions.paused == set()  # nothing is down: no pause, no alert


async def test_one_poison_record_in_a_large_batch_costs_a_few_attempts_not_one_per_record() -> None:
    # A consumer catching up after an outage takes batches of 500; handled one by one at ~30 ms a unit of
    # work, one poison record in such a batch held its partitions for 15 s (seen in `make faults`).
    clock = Clock()
    calls = 0
    handled: list[int] = []

    async def handle(batch: Sequence[Record]) -> None:
        nonlocal calls
        calls += 1
        if any(r.offset == 37 for r in batch):  # parsed before anything is written, as every handler does
            raise MalformedMessage("not a report")
        handled.extend(r.offset for r in batch)

    dead = FakeDeadLetters()
    partitions = FakePartitions()
    await consumer(handle, clock=clock, dead=dead, partitions=partitions)(records(64))
    assert [r.offset for r, _ in dead.published] == [37]
    assert handled == [o for o in range(64) if o != 37]  # each once, in order
    assert calls <= 2 * 6 + 1  # halving: two attempts per level of 64 = 2**6, and the poison alone
    assert partitions.seeks == []


async def test_without_a_consumer_to_rewind_an_outage_past_the_budget_is_raised_to_the_framework() -> None:
    clock = Clock()

    async def handle(batch: Sequence[Record]) -> None:
        raise ConnectionResetError

    with pytest.raises(ConnectionResetError):
        await consumer(handle, clock=clock, stall_seconds=10)(records(1))


# --- item 7: one guard from poll to commit -----------------------------------------------------------


def _deeply_nested(depth: int = 20_000) -> bytes:
    return b"[" * depth + b"]" * depth


def _correlate_by_parsing(record: Record) -> str | None:
    return str(json.loads(record.value))  # what intake's correlation does: RecursionError at this depth


@pytest.fixture
def tracing_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracing, "tracing_active", lambda: True)
    monkeypatch.setattr(trace, "get_tracer", lambda *_a, **_k: trace.NoOpTracer())


@pytest.mark.usefixtures("tracing_on")
def test_tracing_survives_a_record_whose_correlation_cannot_be_derived() -> None:
    batch = records(1, value=_deeply_nested())
    with tracing.processing(batch, service="intake", correlate=_correlate_by_parsing):
        pass


@pytest.mark.usefixtures("tracing_on")
async def test_20000_nested_brackets_with_tracing_on_reach_the_handler_and_are_dead_lettered() -> None:
    clock = Clock()

    async def handle(batch: Sequence[Record]) -> None:
        for record in batch:
            json.loads(record.value)

    dead = FakeDeadLetters()
    run = BatchConsumer(
        handle=handle,
        dead_letters=dead,
        retry=RetryPolicy(),
        partitions=FakePartitions(),
        context=lambda batch: tracing.processing(batch, service="intake", correlate=_correlate_by_parsing),
        clock=clock,
        sleep=clock.sleep,
    )
    await run([*records(1), Record("t", 0, 1, b"k", _deeply_nested(), {}, 0)])
    assert [(r.offset, type(e).__name__) for r, e in dead.published] == [(1, "RecursionError")]


async def test_a_batch_context_that_fails_to_open_or_close_does_not_fail_the_batch() -> None:
    clock = Clock()
    handled: list[int] = []

    async def handle(batch: Sequence[Record]) -> None:
        handled.extend(r.offset for r in batch)

    def failing_open(_batch: Sequence[Record]) -> contextlib.AbstractContextManager[object]:
        raise RecursionError("maximum recursion depth exceeded")

    @contextlib.contextmanager
    def failing_close(_batch: Sequence[Record]) -> Iterator[None]:
        yield
        raise RuntimeError("span exporter gone")

    for context in (failing_open, failing_close):
        run = BatchConsumer(
            handle=handle,
            dead_letters=FakeDeadLetters(),
            retry=RetryPolicy(),
            partitions=FakePartitions(),
            context=context,
            clock=clock,
            sleep=clock.sleep,
        )
        await run(records(2))
    assert handled == [0, 1, 0, 1]


async def test_nothing_escapes_the_guard_when_dead_lettering_itself_fails() -> None:
    clock = Clock()

    async def handle(batch: Sequence[Record]) -> None:
        raise ValueError("bad record")

    partitions = FakePartitions()
    dead = FakeDeadLetters(fail_with=[RuntimeError("unexpected")] * 5)
    run = consumer(handle, clock=clock, dead=dead, partitions=partitions, pause_seconds=60)
    await run(records(2))  # no exception: the framework would redeliver at once, for ever
    assert partitions.seeks == [("t", 0, 0)]
    assert partitions.paused == {("t", 0)}
    run.close()


# --- item 9: a record near the size limit can still be dead-lettered ---------------------------------


class SizeLimitedBroker:
    """Refuses, as Kafka does, a message larger than `limit` with its headers."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.sent: list[tuple[bytes, dict[str, str]]] = []

    async def publish(
        self, message: bytes, topic: str, *, key: bytes | None, headers: dict[str, str]
    ) -> None:
        size = len(message) + len(key or b"") + sum(len(k) + len(v) for k, v in headers.items()) + 100
        if size > self.limit:
            raise MessageSizeTooLargeError
        self.sent.append((message, headers))


async def test_a_record_near_the_size_limit_is_dead_lettered_truncated_with_its_digest() -> None:
    broker = SizeLimitedBroker(limit=1_048_576)
    dead = DeadLetters(broker=broker, topic="ops.deadletter.v1", service="router")
    value = b"x" * (1_048_576 - 300)  # fits on its topic; with provenance headers it would not
    record = Record("t", 3, 42, b"key", value, {"correlation-id": "c"}, 0)
    await dead.publish(record, error=ValueError("too big to handle"), attempts=3)
    [(sent, headers)] = broker.sent
    assert len(sent) < len(value)
    assert value.startswith(sent)
    assert headers[TRUNCATED] == "true"
    assert headers[ORIGINAL_SIZE] == str(len(value))
    assert headers[ORIGINAL_SHA256] == hashlib.sha256(value).hexdigest()
    assert (headers["original-topic"], headers["original-partition"], headers["original-offset"]) == (
        "t",
        "3",
        "42",
    )


async def test_a_broker_with_a_lower_limit_still_gets_the_reference_and_digest() -> None:
    broker = SizeLimitedBroker(limit=10_000)
    dead = DeadLetters(broker=broker, topic="ops.deadletter.v1", service="router")
    record = Record("t", 0, 7, b"key", b"y" * 50_000, {"big": "z" * 20_000}, 0)
    await dead.publish(record, error=ValueError("x"), attempts=1)
    [(sent, headers)] = broker.sent
    assert sent == b""
    assert headers[ORIGINAL_SIZE] == "50000"
    assert headers["original-offset"] == "7"
    assert "big" not in headers


async def test_a_small_record_is_dead_lettered_whole() -> None:
    broker = SizeLimitedBroker(limit=1_048_576)
    dead = DeadLetters(broker=broker, topic="ops.deadletter.v1", service="router")
    await dead.publish(Record("t", 0, 1, None, b"{}", {}, 0), error=ValueError("x"), attempts=1)
    [(sent, headers)] = broker.sent
    assert sent == b"{}"
    assert TRUNCATED not in headers
