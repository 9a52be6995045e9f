"""PostgreSQL connection pools, built from settings in exactly one place."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, TypeAlias

import asyncpg

if TYPE_CHECKING:
    from caseway_shared.settings import ServiceSettings

# What repositories take: a plain connection, or one borrowed from a pool.
DbConnection: TypeAlias = (
    "asyncpg.Connection[asyncpg.Record] | asyncpg.pool.PoolConnectionProxy[asyncpg.Record]"
)


async def _init_connection(connection: asyncpg.Connection) -> None:
    # jsonb columns come and go as Python objects, not as strings to parse by hand.
    await connection.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(settings: ServiceSettings, *, application_name: str) -> asyncpg.Pool:
    """A connection pool for one service; the caller closes it."""
    pool = await asyncpg.create_pool(
        dsn=settings.database_url.get_secret_value(),
        min_size=settings.database_pool_min,
        max_size=settings.database_pool_max,
        init=_init_connection,
        server_settings={
            "application_name": application_name,
            "statement_timeout": str(round(settings.database_statement_timeout_seconds * 1000)),
        },
        # A statement the server has not answered this long after its own timeout means the server (or the
        # way to it) is gone: TimeoutError, an infrastructure error, retried until it is back.
        command_timeout=settings.database_statement_timeout_seconds + 20,
    )
    if pool is None:  # pragma: no cover - asyncpg returns None only when used in an odd way
        raise RuntimeError("asyncpg returned no pool")
    return pool
