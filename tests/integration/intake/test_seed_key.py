"""The configured Open311 seed key is the one that works, also after it changed (it used to be ignored once
a key of that name existed, so a rotated key, or a second intake configuration on the same database,
answered every request with 403)."""

from __future__ import annotations

import asyncpg
import pytest

from caseway_intake.adapters.api_keys import key_digest, seed_api_key
from caseway_intake.adapters.store import api_key_name


@pytest.mark.parametrize("rounds", [2])
async def test_a_changed_seed_key_replaces_the_one_registered_before(infra, rounds):
    pool = await asyncpg.create_pool(infra.database_url, min_size=1, max_size=2)
    try:
        await seed_api_key(pool, name="seed-rotation", key="first-key-0123456789abcdef0123456789")
        await seed_api_key(pool, name="seed-rotation", key="first-key-0123456789abcdef0123456789")
        async with pool.acquire() as connection:
            assert await api_key_name(connection, key_digest("first-key-0123456789abcdef0123456789")) == (
                "seed-rotation"
            )
        for _ in range(rounds):
            await seed_api_key(pool, name="seed-rotation", key="second-key-0123456789abcdef012345678")
        async with pool.acquire() as connection:
            assert await api_key_name(connection, key_digest("second-key-0123456789abcdef012345678")) == (
                "seed-rotation"
            )
            assert await api_key_name(connection, key_digest("first-key-0123456789abcdef0123456789")) is None
    finally:
        await pool.close()
