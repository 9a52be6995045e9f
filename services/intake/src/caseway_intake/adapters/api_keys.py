"""Open311 API keys: made at random, stored only as a SHA-256 digest, checked with a short-lived cache.

A key is 32 random bytes (URL-safe text). With that much entropy a fast digest is safe: there is nothing to
guess, so a slow password hash (scrypt) would only cost every request time without adding protection.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from typing import TYPE_CHECKING

from caseway_intake.adapters.store import api_key_name, insert_api_key, replace_api_key

if TYPE_CHECKING:
    from collections.abc import Callable

    import asyncpg

MAX_KEY_LENGTH = 256
KEY_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")


def new_api_key() -> str:
    return secrets.token_urlsafe(32)


def key_digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "replace")).digest()


async def register_api_key(pool: asyncpg.Pool, *, name: str, key: str) -> bool:
    """Store `key` (its digest) under `name`; False if either is already registered."""
    if not KEY_NAME.match(name):
        raise ValueError("a key name is 1-40 lower-case letters, digits and hyphens")
    async with pool.acquire() as connection:
        return await insert_api_key(connection, name=name, key_hash=key_digest(key))


async def seed_api_key(pool: asyncpg.Pool, *, name: str, key: str) -> None:
    """The configured seed key is the live key of `name`: a restart with the same key changes nothing, and
    one with another key replaces it (it used to be ignored, so a rotated seed key answered 403)."""
    if not KEY_NAME.match(name):
        raise ValueError("a key name is 1-40 lower-case letters, digits and hyphens")
    async with pool.acquire() as connection:
        await replace_api_key(connection, name=name, key_hash=key_digest(key))


class ApiKeys:
    """Answers "whose key is this?" for the API, remembering answers briefly so that a busy client does
    not cost a query per request. Revocation takes effect within `ttl_seconds`.
    """

    def __init__(
        self, *, pool: Callable[[], asyncpg.Pool], ttl_seconds: float = 30.0, max_entries: int = 10_000
    ) -> None:
        self._pool = pool
        self._ttl = ttl_seconds
        self._max = max_entries
        self._cache: dict[bytes, tuple[float, str | None]] = {}

    async def name_of(self, key: str | None) -> str | None:
        """The name the key was registered under, or None for a missing, unknown or revoked key."""
        if not key or len(key) > MAX_KEY_LENGTH:
            return None
        digest = key_digest(key)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached and cached[0] > now:
            return cached[1]
        async with self._pool().acquire() as connection:
            name = await api_key_name(connection, digest)
        if len(self._cache) >= self._max:
            self._cache.clear()
        self._cache[digest] = (now + self._ttl, name)
        return name
