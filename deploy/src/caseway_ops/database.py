"""Database URLs, migrations (alembic, run in code) and a fresh database per test run.

URLs are accepted as ``postgresql://`` (asyncpg's form, the services' form) or
``postgresql+asyncpg://`` (SQLAlchemy's); each helper converts to the form its library needs.
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING

import asyncpg
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

from caseway_ops.errors import StackError

if TYPE_CHECKING:
    from pathlib import Path

_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _deploy_dir() -> Path:
    from caseway_ops.stack_config import StackConfig  # noqa: PLC0415 - reads the environment; only here

    return StackConfig.from_env().deploy_dir


def sqlalchemy_url(database_url: str) -> str:
    """The URL with SQLAlchemy's asyncpg driver named (``postgresql+asyncpg://``)."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        raise StackError(f"not a PostgreSQL URL: {redact(database_url)}")
    return url.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def asyncpg_dsn(database_url: str) -> str:
    """The URL as asyncpg takes it (``postgresql://``)."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        raise StackError(f"not a PostgreSQL URL: {redact(database_url)}")
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def with_database(database_url: str, name: str) -> str:
    """The same server and credentials, another database."""
    return make_url(database_url).set(database=name).render_as_string(hide_password=False)


def redact(database_url: str) -> str:
    """The URL with its password hidden, for messages and logs."""
    try:
        return make_url(database_url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is shown as nothing rather than leaked
        return "<unparsable database URL>"


def alembic_config(database_url: str, *, migrations_dir: Path | None = None) -> Config:
    """An alembic Config built in code: the scripts in ``deploy/migrations``, the URL passed through
    ``attributes`` (never through the ini parser, which would read ``%`` in a password)."""
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
    same database (an advisory lock serialises the upgrades)."""
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
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
