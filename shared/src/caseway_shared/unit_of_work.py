"""A unit of work: one transaction in a service's schema, the events to publish recorded with it (the
transactional outbox), committed together, and the outbox relay woken once they are.

    async with unit_of_work() as work:
        await work.repositories.save(...)
        work.publish(message)
    # committed: the relay publishes `message`; an exception inside rolls everything back, messages too.

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
    from collections.abc import AsyncIterator, Callable

    import asyncpg

    from caseway_shared.db import DbConnection

R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


class Work(Protocol[R_co]):
    """One open unit of work: its repositories, bound to its transaction, and its events to publish."""

    @property
    def repositories(self) -> R_co: ...

    def publish(self, *messages: OutboxMessage) -> None: ...


class UnitOfWork(Protocol[R_co]):
    def __call__(self) -> contextlib.AbstractAsyncContextManager[Work[R_co]]: ...

    def reading(self) -> contextlib.AbstractAsyncContextManager[R_co]:
        """Repositories for reads only: no transaction, nothing to publish (a page, an API answer)."""
        ...


@dataclass
class _Work(Generic[R]):
    repositories: R
    messages: list[OutboxMessage] = field(default_factory=list)

    def publish(self, *messages: OutboxMessage) -> None:
        self.messages.extend(messages)


class PostgresUnitOfWork(Generic[R]):
    """Units of work on a service's PostgreSQL schema, its repositories built from the connection.

    `pool` and `wake` are callables because the pool and the relay exist only once the service has
    started (see `ServiceRuntime.unit_of_work`)."""

    def __init__(
        self,
        *,
        pool: Callable[[], asyncpg.Pool],
        schema: str,
        repositories: Callable[[DbConnection], R],
        wake: Callable[[], object],
    ) -> None:
        self._pool = pool
        self._schema = schema
        self._repositories = repositories
        self._wake = wake

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

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[R]:
        # No transaction: a read is one statement (or a few that need not agree).
        async with self._pool().acquire() as connection:
            yield self._repositories(connection)


class InMemoryUnitOfWork(Generic[R]):
    """The unit-test twin: the same repositories object for every unit (the test's fake), and the
    messages of each committed unit in `published`. A unit that raises publishes nothing (the fake
    repositories' own changes are theirs to undo, if a test needs it)."""

    def __init__(self, repositories: R) -> None:
        self.repositories = repositories
        self.published: list[OutboxMessage] = []
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
        self.committed += 1

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[R]:
        yield self.repositories
