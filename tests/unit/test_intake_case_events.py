"""intake's handler of cases.v1 under the shared batch consumer's retries (issue 11, item 13).

Pure: the real `BatchConsumer` and `IntakeService.handle_case_events`, with an in-memory database that can
be made to fail, in-memory dead letters, and a clock that moves only when the consumer sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import asyncpg
import pytest

from caseway_intake.adapters.store import IntakeStore
from caseway_intake.service import IntakeService
from caseway_shared.consuming import BatchConsumer, DeadLetters, MalformedMessage, RetryPolicy
from caseway_shared.council import load_council
from caseway_shared.events import CaseStatusChanged
from caseway_shared.kafka import Record
from caseway_shared.unit_of_work import PostgresUnitOfWork

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

COUNCIL = load_council()
TOPIC = "cases.v1"


class Clock:
    """Time that passes only when the consumer sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


class RecordedDeadLetters(DeadLetters):
    def __init__(self) -> None:
        self.published: list[tuple[Record, BaseException]] = []

    async def publish(self, record: Record, *, error: BaseException, attempts: int) -> None:
        self.published.append((record, error))


class Database:
    """Just enough of an asyncpg pool for `apply_case_events`: `fail(args)` says what a statement raises."""

    def __init__(self, fail: Callable[[tuple[Any, ...]], BaseException | None]) -> None:
        self._fail = fail
        self.committed: list[tuple[Any, ...]] = []
        self._pending: list[tuple[Any, ...]] = []

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[Database]:
        yield self

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        self._pending = []
        yield
        self.committed.extend(self._pending)

    async def execute(self, _query: str, *args: Any) -> str:
        if (error := self._fail(args)) is not None:
            raise error
        self._pending.append(args)
        return "INSERT 0 1"

    async def fetch(self, _query: str, *_args: Any) -> list[Any]:
        return []  # no report of the case is known: the case's updates have no one to go to


def status_changed(case_id: uuid.UUID, note: str) -> bytes:
    event = CaseStatusChanged(
        occurred_at=datetime(2026, 11, 23, 9, tzinfo=UTC),
        case_id=case_id,
        reference="LV-2026-000042",
        status="acknowledged",
        note=note,
    )
    return event.model_dump_json().encode()


def records(*values: bytes) -> list[Record]:
    return [Record(TOPIC, 0, offset, b"case", value, {}, 0) for offset, value in enumerate(values)]


def once_then_fine(error: BaseException) -> Callable[[tuple[Any, ...]], BaseException | None]:
    raised: list[BaseException] = []

    def fail(_args: tuple[Any, ...]) -> BaseException | None:
        if raised:
            return None
        raised.append(error)
        return error

    return fail


def values(args: tuple[Any, ...]) -> list[Any]:
    """A statement's parameters, the set-based ones' arrays opened."""
    return [value for arg in args for value in (arg if isinstance(arg, list) else [arg])]


def always_for_note(note: str, error: BaseException) -> Callable[[tuple[Any, ...]], BaseException | None]:
    return lambda args: error if note in values(args) else None


@pytest.mark.parametrize(
    ("last_note", "failure"),
    [
        # The whole batch is tried again once the database answers.
        pytest.param("still there", once_then_fine(ConnectionError()), id="database-unreachable"),
        # The batch falls back to one record at a time; the poison is retried, then dead-lettered.
        pytest.param(
            "poison",
            always_for_note("poison", asyncpg.CharacterNotInRepertoireError("invalid byte sequence")),
            id="another-record-kept-failing",
        ),
    ],
)
async def test_a_malformed_case_event_is_dead_lettered_once_however_often_its_batch_is_retried(
    last_note: str, failure: Callable[[tuple[Any, ...]], BaseException | None]
) -> None:
    case_id = uuid.uuid4()
    batch = records(
        status_changed(case_id, "crew sent"),
        b'{"event_type": "CaseOpened", "nonsense": true}',
        status_changed(case_id, last_note),
    )
    database = Database(failure)
    dead_letters = RecordedDeadLetters()
    service = IntakeService(
        # The production unit of work and repository, on the in-memory database.
        unit_of_work=PostgresUnitOfWork(
            pool=lambda: database, schema="intake", repositories=IntakeStore, wake=list
        ),
        council=COUNCIL,
        topic=lambda topic: topic.value,
        send_rejection=None,  # no rejection here: case events are the router's
    )
    clock = Clock()
    consumer = BatchConsumer(
        handle=service.handle_case_events,
        dead_letters=dead_letters,
        retry=RetryPolicy(attempts=3, backoff_seconds=0.01),
        clock=clock,
        sleep=clock.sleep,
    )

    await consumer(batch)

    dead_lettered = Counter(record.offset for record, _ in dead_letters.published)
    assert dead_lettered[1] == 1, f"the malformed record was dead-lettered {dead_lettered[1]} times"
    malformed_error = next(error for record, error in dead_letters.published if record.offset == 1)
    assert isinstance(malformed_error, MalformedMessage)
    good_notes = {"crew sent", last_note} - {"poison"}
    committed = {value for args in database.committed for value in values(args) if isinstance(value, str)}
    assert committed & good_notes == good_notes
    assert dead_lettered[2] == (1 if last_note == "poison" else 0)  # the poison, after its retries
