"""DATABASE_URL as the services' pools give it to asyncpg (`caseway_shared.db.database_dsn`): SQLAlchemy's
`ssl` query parameter is read as libpq's `sslmode`, exactly as the production profile reads it."""

from __future__ import annotations

import pytest

from caseway_shared.db import database_dsn
from caseway_shared.settings import ServiceSettings

BASE = "postgresql://router_login:p%40ss@db.internal:5432/caseway"


def _dsn(url: str) -> str:
    return database_dsn(ServiceSettings(database_url=url))


@pytest.mark.parametrize(
    "url", [BASE, BASE + "?sslmode=verify-full&sslrootcert=/etc/ca.crt&application_name=x"]
)
def test_a_url_without_ssl_is_given_as_it_is(url):
    assert _dsn(url) == url


def test_ssl_is_read_as_sslmode_and_nothing_else_changes():
    dsn = _dsn(BASE + "?ssl=verify-full&sslrootcert=/etc/caseway/postgres-ca/ca.crt")
    assert dsn == BASE + "?sslmode=verify-full&sslrootcert=/etc/caseway/postgres-ca/ca.crt"


def test_sslmode_beside_ssl_wins_as_in_the_production_profile():
    url = BASE + "?ssl=disable&sslmode=verify-full"
    assert ServiceSettings(database_url=url).effective_database_ssl_mode() == "verify-full"
    assert _dsn(url) == BASE + "?sslmode=verify-full"


def test_the_deployment_tools_read_ssl_as_the_services_do():
    """`caseway stack up`, migrations' readiness probe and the operators' tools connect with asyncpg_dsn: a
    URL the services accept must not fail there with `parameter "ssl" cannot be changed now`."""
    from caseway_ops.database import asyncpg_dsn  # noqa: PLC0415 - the tools' side, named where it is used

    url = "postgresql+asyncpg://router_login:p%40ss@db.internal:5432/caseway?ssl=verify-full"
    assert asyncpg_dsn(url) == BASE + "?sslmode=verify-full"
