"""PostgreSQL connection pools, built from settings in exactly one place.

TLS is a setting: `DATABASE_SSL_MODE` (libpq's names; `verify-full` checks the chain against
`DATABASE_SSL_ROOT_CERT` and the host name) — unset, the URL's own `sslmode` applies as before, or its
`ssl`, SQLAlchemy's spelling of the same (the migration Job's URL uses it), read as `sslmode`.
"""

from __future__ import annotations

import json
import ssl
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

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


def database_dsn(settings: ServiceSettings) -> str:
    """DATABASE_URL as asyncpg takes it. An ``ssl`` query parameter (SQLAlchemy's name) is read as libpq's
    ``sslmode``, as the production profile reads it (`ServiceSettings.effective_database_ssl_mode`; an
    ``sslmode`` beside it wins): asyncpg would send it to the server as a run-time parameter instead, which
    the server refuses (``parameter "ssl" cannot be changed now``), after a handshake that verified
    nothing."""
    return asyncpg_url(settings.database_url.get_secret_value())


def asyncpg_url(url: str) -> str:
    """A database URL with SQLAlchemy's ``ssl`` query parameter read as ``sslmode`` (see `database_dsn`);
    the deployment tools connect through this too."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if not any(name == "ssl" for name, _ in query):
        return url
    has_sslmode = any(name == "sslmode" for name, _ in query)
    kept = [
        ("sslmode" if name == "ssl" else name, value)
        for name, value in query
        if not (name == "ssl" and has_sslmode)
    ]
    return urlunsplit(parts._replace(query=urlencode(kept, safe="/:")))


def ssl_argument(settings: ServiceSettings) -> ssl.SSLContext | str | None:
    """asyncpg's ``ssl`` argument for DATABASE_SSL_MODE: None leaves the URL in charge; ``verify-ca`` and
    ``verify-full`` give a context that requires a certificate chaining to DATABASE_SSL_ROOT_CERT (or the
    system's trust store), ``verify-full`` also its host name."""
    mode = settings.database_ssl_mode
    if mode is None:
        return None
    if mode not in {"verify-ca", "verify-full"}:
        return mode  # disable / prefer / require: asyncpg's own meanings, no verification
    root = settings.database_ssl_root_cert
    context = ssl.create_default_context(cafile=str(root) if root else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = mode == "verify-full"
    return context


def connect_options(settings: ServiceSettings) -> dict[str, Any]:
    """What every connection of a service passes to asyncpg besides the DSN (the TLS settings)."""
    argument = ssl_argument(settings)
    return {} if argument is None else {"ssl": argument}


def server_settings(
    settings: ServiceSettings, *, application_name: str, schema: str | None = None
) -> dict[str, str]:
    """Startup parameters of every connection: its name, the statement timeout, the service's schema first
    on the search path (then public, for the shared extensions), and the service's role when one is
    configured (the server then checks every statement against that role's rights).

    The search path is a startup parameter rather than a SET LOCAL in each transaction: the same for every
    user of the pool, and one round trip less per unit of work."""
    values = {
        "application_name": application_name,
        "statement_timeout": str(round(settings.database_statement_timeout_seconds * 1000)),
    }
    if schema is not None:
        values["search_path"] = f"{schema}, public"
    if settings.database_role:
        values["role"] = settings.database_role
    return values


async def _keep_session(_connection: asyncpg.Connection) -> None:
    """Nothing to reset when a connection goes back to the pool (asyncpg still rolls back a transaction
    left open). Caseway keeps no session state: settings are SET LOCAL, advisory locks are the
    transaction's, nothing LISTENs or keeps a cursor (tests/unit/test_session_state.py holds the code to
    that). asyncpg's default reset costs a round trip (advisory unlock, CLOSE ALL, UNLISTEN, RESET ALL) on
    every release, on every hot loop."""


async def create_pool(
    settings: ServiceSettings, *, application_name: str, schema: str | None = None
) -> asyncpg.Pool:
    """A connection pool for one service (its tables in `schema`); the caller closes it."""
    pool = await asyncpg.create_pool(
        dsn=database_dsn(settings),
        min_size=settings.database_pool_min,
        max_size=settings.database_pool_max,
        init=_init_connection,
        reset=_keep_session,
        server_settings=server_settings(settings, application_name=application_name, schema=schema),
        # A statement the server has not answered this long after its own timeout means the server (or the
        # way to it) is gone: TimeoutError, an infrastructure error, retried until it is back.
        command_timeout=settings.database_statement_timeout_seconds + 20,
        **connect_options(settings),
    )
    if pool is None:  # pragma: no cover - asyncpg returns None only when used in an odd way
        raise RuntimeError("asyncpg returned no pool")
    return pool
