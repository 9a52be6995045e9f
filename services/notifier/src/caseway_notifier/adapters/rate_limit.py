"""Per-channel rate limits the sender waits on before each delivery: a token bucket in this process
(`TokenBucket`), or one kept in PostgreSQL and shared by every replica (`SharedRateLimit`), for limits
that belong to an account rather than to a process — GOV.UK Notify allows 3,000 messages a minute per
API key, however many replicas send with it."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    import asyncpg


class TokenBucket:
    """Allows `rate` acquisitions a second on average and at most `burst` at once.

    Safe for concurrent use within one event loop: the check and the take happen without an await in
    between. `clock` and `sleep` are arguments so tests can drive time."""

    def __init__(
        self,
        *,
        rate: float,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._tokens = self.burst
        self._clock = clock
        self._sleep = sleep
        self._updated = clock()

    @classmethod
    def per_minute(cls, count: int) -> TokenBucket:
        """`count` a minute, with a burst of a second's worth (so a minute's quota is never sent at once)."""
        return cls(rate=count / 60, burst=max(1.0, count / 60))

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    def try_acquire(self) -> bool:
        """Take a token if one is there."""
        self._refill()
        # A hair under one counts as one: float sums of waits would otherwise never quite get there.
        if self._tokens >= 1 - 1e-9:
            self._tokens -= 1
            return True
        return False

    async def acquire(self) -> None:
        """Wait until a token is there, and take it."""
        while not self.try_acquire():
            await self._sleep((1 - self._tokens) / self.rate)


class SharedRateLimit:
    """A token bucket in `notifier.rate_limits`, one row per limit, shared by every replica.

    Each `acquire` refills the row by the time elapsed (PostgreSQL's clock, so replicas' clocks do not
    matter) and takes a token in one statement under the row's lock; when none is there it waits for
    the next and tries again. The pool is given as a callable because it exists only once the service
    has started."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool | Callable[[], asyncpg.Pool],
        name: str,
        rate: float,
        burst: float | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._pool = pool
        self.name = name
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._sleep = sleep

    @classmethod
    def per_minute(
        cls, count: int, *, pool: asyncpg.Pool | Callable[[], asyncpg.Pool], name: str
    ) -> SharedRateLimit:
        return cls(pool=pool, name=name, rate=count / 60, burst=max(1.0, count / 60))

    def _get_pool(self) -> asyncpg.Pool:
        return self._pool() if callable(self._pool) else self._pool

    async def try_acquire(self) -> float:
        """Take a token if one is there (0.0), else the seconds until the next."""
        tokens = await self._get_pool().fetchval(
            """
            WITH seed AS (
                INSERT INTO notifier.rate_limits (name, tokens, updated_at)
                VALUES ($1, $3 - 1, clock_timestamp())
                ON CONFLICT (name) DO NOTHING
                RETURNING name
            ), current AS (
                SELECT name, least($3, tokens + extract(epoch FROM clock_timestamp() - updated_at) * $2) AS t
                FROM notifier.rate_limits WHERE name = $1 FOR UPDATE
            )
            UPDATE notifier.rate_limits AS r
            SET tokens = CASE WHEN c.t >= 1 - 1e-9 THEN c.t - 1 ELSE c.t END, updated_at = clock_timestamp()
            FROM current AS c WHERE r.name = c.name
            RETURNING CASE WHEN c.t >= 1 - 1e-9 THEN -1 ELSE c.t END
            """,
            self.name,
            float(self.rate),
            float(self.burst),
        )
        if tokens is None:  # the row was being created by this very statement: it is full
            return 0.0
        return 0.0 if tokens < 0 else (1 - float(tokens)) / self.rate

    async def acquire(self) -> None:
        while (wait := await self.try_acquire()) > 0:
            await self._sleep(wait)
