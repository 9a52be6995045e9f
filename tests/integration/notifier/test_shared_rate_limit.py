"""Notify's rate limit is per API key, so every replica of the notifier draws on one allowance kept in
PostgreSQL (issue 11, item 5)."""

import asyncio
import time
import uuid

import asyncpg
import pytest

pytestmark = pytest.mark.infra


async def test_two_replicas_together_send_no_more_than_the_shared_rate(infra):
    from caseway_notifier.adapters.rate_limit import SharedRateLimit  # noqa: PLC0415

    pools = [await asyncpg.create_pool(infra.database_url, min_size=1, max_size=2) for _ in range(2)]
    try:
        name = f"notify-it-{uuid.uuid4().hex[:8]}"
        # 20 a second with a burst of 20: in 1.5 s the two replicas may take at most 20 + 30 together.
        replicas = [SharedRateLimit(pool=pool, name=name, rate=20, burst=20) for pool in pools]
        taken = [0, 0]

        async def take(index: int, until: float) -> None:
            while time.monotonic() < until:
                try:
                    async with asyncio.timeout(until - time.monotonic()):
                        await replicas[index].acquire()
                except TimeoutError:
                    return
                taken[index] += 1

        until = time.monotonic() + 1.5
        await asyncio.gather(take(0, until), take(1, until))
        assert sum(taken) <= 20 + 30 + 2
        assert sum(taken) >= 40  # and the allowance is used, not starved
        assert min(taken) > 0
    finally:
        for pool in pools:
            await pool.close()
