"""Per-channel rate limits: a token bucket the sender waits on before each delivery (GOV.UK Notify
allows 3,000 messages a minute per API key)."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


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


def backoff_delay(attempt: int, *, base: float, cap: float, jitter: float) -> float:
    """Seconds to wait before retry `attempt + 1`: exponential from `base`, capped at `cap`, scaled by
    `jitter` in [0.5, 1] so that many failures at once do not retry in step."""
    return min(cap, base * 2.0 ** max(0, attempt - 1)) * (0.5 + 0.5 * min(1.0, max(0.0, jitter)))
