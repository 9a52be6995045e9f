"""Database URLs, migrations (alembic, run in code) and a fresh database per test run.

URLs are accepted as ``postgresql://`` (asyncpg's form, the services' form) or
``postgresql+asyncpg://`` (SQLAlchemy's); each helper converts to the form its library needs.
"""

from __future__ import annotations

import asyncio
import re
import threading
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, urlsplit

import asyncpg

from caseway_ops.errors import StackError
from caseway_ops.stack_config import StackConfig
from caseway_shared.db import asyncpg_url

if TYPE_CHECKING:
    from pathlib import Path

    from alembic.config import Config

_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# alembic's `context` and `op` are process-wide proxies, so two upgrades in one process (threads) would
# trample each other: one at a time here, and across processes the advisory lock in env.py.
_UPGRADE_LOCK = threading.Lock()


def _deploy_dir() -> Path:
    return StackConfig.from_env().deploy_dir


def _split(database_url: str) -> SplitResult:
    parts = urlsplit(database_url)
    if parts.scheme.split("+", 1)[0] not in {"postgresql", "postgres"}:
        raise StackError(f"not a PostgreSQL URL: {redact(database_url)}")
    return parts


def sqlalchemy_url(database_url: str) -> str:
    """The URL with SQLAlchemy's asyncpg driver named (``postgresql+asyncpg://``)."""
    return _split(database_url)._replace(scheme="postgresql+asyncpg").geturl()


def asyncpg_dsn(database_url: str) -> str:
    """The URL as asyncpg takes it (``postgresql://``, an ``ssl=`` option read as ``sslmode``, as the
    services read it)."""
    return asyncpg_url(_split(database_url)._replace(scheme="postgresql").geturl())


def with_database(database_url: str, name: str) -> str:
    """The same server, credentials and options, another database."""
    return _split(database_url)._replace(path=f"/{name}").geturl()


def host_and_port(database_url: str, default_port: int = 5432) -> tuple[str, int]:
    parts = _split(database_url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def redact(database_url: str) -> str:
    """The URL with its password hidden, for messages and logs."""
    try:
        parts = urlsplit(database_url)
    except ValueError:
        return "<unparsable database URL>"
    userinfo, at, hostinfo = parts.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return database_url
    return parts._replace(netloc=f"{userinfo.partition(':')[0]}:***@{hostinfo}").geturl()


def alembic_config(database_url: str, *, migrations_dir: Path | None = None) -> Config:
    """An alembic Config built in code: the scripts in ``deploy/migrations``, the URL passed through
    ``attributes`` (never through the ini parser, which would read ``%`` in a password)."""
    # alembic and SQLAlchemy take a second to import: only migrations pay for them, not every command.
    from alembic.config import Config  # noqa: PLC0415

    scripts = migrations_dir or _deploy_dir() / "migrations"
    config = Config()
    config.set_main_option("script_location", str(scripts))
    config.set_main_option("path_separator", "os")
    config.attributes["database_url"] = sqlalchemy_url(database_url)
    config.attributes["configure_logger"] = False
    return config


def migrate(database_url: str, revision: str = "head") -> None:
    """``alembic upgrade <revision>`` on ``database_url``. Blocking; safe to call while an event loop
    runs (the migration then runs its own loop in a helper thread), and safe to run concurrently on the
    same database (an advisory lock serialises the upgrades; within one process they run one at a time)."""
    from alembic import command  # noqa: PLC0415 - see alembic_config

    with _UPGRADE_LOCK:
        command.upgrade(alembic_config(database_url), revision)


async def current_revision(database_url: str) -> str | None:
    """The revision a database is at (comma-separated if several heads), None before the first one."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url), timeout=10)
    try:
        present = await conn.fetchval("SELECT to_regclass('public.alembic_version') IS NOT NULL")
        if not present:
            return None
        value = await conn.fetchval("SELECT string_agg(version_num, ',') FROM alembic_version")
        return str(value) if value is not None else None
    finally:
        await conn.close()


async def create_database(database_url: str, name: str, *, replace: bool = False) -> str:
    """Create database ``name`` on the server of ``database_url`` (whose role needs CREATEDB), migrate
    it to head and return its URL. ``replace`` drops an existing database of that name first;
    otherwise an existing one is an error, so a test never runs on yesterday's data by accident."""
    if not _NAME.fullmatch(name):
        raise StackError(f"database name {name!r}: use lower-case letters, digits and _, at most 63")
    conn = await asyncpg.connect(asyncpg_dsn(database_url), timeout=10)
    try:
        if replace:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        except asyncpg.DuplicateDatabaseError:
            raise StackError(
                f"database {name!r} already exists (pass replace=True to start afresh)"
            ) from None
    finally:
        await conn.close()
    url = with_database(database_url, name)
    await asyncio.to_thread(migrate, url)
    return url


async def drop_database(database_url: str, name: str) -> None:
    """Drop database ``name`` (if it exists), disconnecting its clients."""
    if not _NAME.fullmatch(name):
        raise StackError(f"database name {name!r}: use lower-case letters, digits and _, at most 63")
    conn = await asyncpg.connect(asyncpg_dsn(database_url), timeout=10)
    try:
        # A pool just closed leaves its server processes exiting for a moment. FORCE would terminate
        # them, which a non-superuser may do only to its own roles' processes: a service's pool runs as
        # the service's role, and the drop failed "must be a member of the role whose process is being
        # terminated". So wait (briefly) for clients that are leaving anyway; FORCE is for the rest.
        for _ in range(50):
            connected = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", name
            )
            if not connected:
                break
            await asyncio.sleep(0.1)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
