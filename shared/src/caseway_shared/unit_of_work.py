"""A unit of work: one transaction in a service's schema, the events to publish recorded with it (the
transactional outbox), committed together, and the outbox relay woken once they are.

    async with unit_of_work() as work:
        await work.repositories.save(...)
        work.publish(message)
    # committed: the relay publishes `message`; an exception inside rolls everything back, messages too.

A consumer's handler may instead hand its events to `work.publish_after_commit`: they are not written to
the outbox but published from memory once the transaction has committed, and the unit of work returns
only when the broker has acknowledged them (it raises if it could not). That is sound only where the
caller is redelivered when it raises, and emits the same events again on redelivery, for work it finds
already done (ADR 0002): a Kafka handler whose offsets are committed after it returns. It saves the
outbox's insert, the relay's read and its delete for each event.

Services take a `UnitOfWork` (and a clock) instead of reaching into a runtime object for a pool, a
transaction, the outbox and the relay. `InMemoryUnitOfWork` is its twin for unit tests: the same calls,
no database, and what each committed unit published is kept for the test to read.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from caseway_shared.outbox import OutboxMessage, enqueue

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

    import asyncpg

    from caseway_shared.db import DbConnection

R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


class Work(Protocol[R_co]):
    """One open unit of work: its repositories, bound to its transaction, and its events to publish."""

    @property
    def repositories(self) -> R_co: ...

    def publish(self, *messages: OutboxMessage) -> None: ...

    def publish_after_commit(self, *messages: OutboxMessage) -> None: ...


class UnitOfWork(Protocol[R_co]):
    def __call__(self) -> contextlib.AbstractAsyncContextManager[Work[R_co]]: ...

    def reading(self) -> contextlib.AbstractAsyncContextManager[R_co]:
        """Repositories for reads only: no transaction, nothing to publish (a page, an API answer)."""
        ...


@dataclass
class _Work(Generic[R]):
    repositories: R
    messages: list[OutboxMessage] = field(default_factory=list)
    after_commit: list[OutboxMessage] = field(default_factory=list)

    def publish(self, *messages: OutboxMessage) -> None:
        self.messages.extend(messages)

    def publish_after_commit(self, *messages: OutboxMessage) -> None:
        self.after_commit.extend(messages)


class PostgresUnitOfWork(Generic[R]):
    """Units of work on a service's PostgreSQL schema, its repositories built from the connection.

    `pool` and `wake` are callables because the pool and the relay exist only once the service has
    started (see `ServiceRuntime.unit_of_work`); `send` publishes what a unit hands to
    `publish_after_commit` and waits for the broker's acknowledgements (`outbox.publish_now`)."""

    def __init__(
        self,
        *,
        pool: Callable[[], asyncpg.Pool],
        schema: str,
        repositories: Callable[[DbConnection], R],
        wake: Callable[[], object],
        send: Callable[[Sequence[OutboxMessage]], Awaitable[None]] | None = None,
    ) -> None:
        self._pool = pool
        self._schema = schema
        self._repositories = repositories
        self._wake = wake
        self._send = send

    @contextlib.asynccontextmanager
    async def __call__(self) -> AsyncIterator[_Work[R]]:
        async with self._pool().acquire() as connection:
            async with connection.transaction():
                # The pool's connections have the service's schema first on their search path
                # (`caseway_shared.db.server_settings`): no SET LOCAL round trip per unit of work.
                work = _Work(self._repositories(connection))
                yield work
                await enqueue(connection, self._schema, work.messages)
            if work.messages:
                self._wake()
        if work.after_commit:
            if self._send is None:
                raise RuntimeError("this unit of work has no producer to publish after commit with")
            await self._send(work.after_commit)

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[R]:
        # No transaction: a read is one statement (or a few that need not agree).
        async with self._pool().acquire() as connection:
            yield self._repositories(connection)


class InMemoryUnitOfWork(Generic[R]):
    """The unit-test twin: the same repositories object for every unit (the test's fake), the outbox
    messages of each committed unit in `published`, and those published after its commit in
    `published_after_commit`. A unit that raises publishes nothing (the fake repositories' own changes
    are theirs to undo, if a test needs it)."""

    def __init__(self, repositories: R) -> None:
        self.repositories = repositories
        self.published: list[OutboxMessage] = []
        self.published_after_commit: list[OutboxMessage] = []
        self.committed = 0
        self.rolled_back = 0

    @contextlib.asynccontextmanager
    async def __call__(self) -> AsyncIterator[_Work[R]]:
        work = _Work(self.repositories)
        try:
            yield work
        except BaseException:
            self.rolled_back += 1
            raise
        self.published.extend(work.messages)
        self.published_after_commit.extend(work.after_commit)
        self.committed += 1

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[R]:
        yield self.repositories
