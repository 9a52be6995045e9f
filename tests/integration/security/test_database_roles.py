"""One PostgreSQL role per service (migration 0011): each reaches its own schema and nothing else; the
router and the notifier cannot read residents' contact details in intake.reporter_contacts."""

from __future__ import annotations

import asyncpg
import pytest

from caseway_shared.db import create_pool
from caseway_shared.settings import ServiceSettings

pytestmark = pytest.mark.infra

CONTACTS = "SELECT count(*) FROM intake.reporter_contacts"


async def _as(db, role: str, sql: str):
    async with db.transaction():
        await db.execute(f"SET LOCAL ROLE {role}")
        return await db.fetchval(sql)


@pytest.mark.parametrize("role", ["caseway_router", "caseway_notifier"])
async def test_router_and_notifier_cannot_read_residents_contact_details(db, role):
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied for schema intake"):
        await _as(db, role, CONTACTS)


async def test_intake_reads_its_own_contact_details(db):
    assert await _as(db, "caseway_intake", CONTACTS) >= 0


@pytest.mark.parametrize(
    ("role", "own", "other"),
    [
        ("caseway_intake", "SELECT count(*) FROM intake.reports", "SELECT count(*) FROM router.cases"),
        (
            "caseway_router",
            "SELECT count(*) FROM router.cases",
            "SELECT count(*) FROM notifier.notifications",
        ),
        (
            "caseway_notifier",
            "SELECT count(*) FROM notifier.notifications",
            "SELECT count(*) FROM router.cases",
        ),
    ],
)
async def test_each_service_reaches_its_own_schema_only(db, role, own, other):
    assert await _as(db, role, own) >= 0
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await _as(db, role, other)


async def test_a_service_role_cannot_change_its_tables(db):
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await _as(db, "caseway_router", "ALTER TABLE router.cases ADD COLUMN x int")


async def test_a_service_uses_its_role_when_configured(infra):
    """CASEWAY_ROUTER_DATABASE_ROLE=caseway_router: every pooled connection acts as the router's role."""
    settings = ServiceSettings(database_url=infra.database_url, database_role="caseway_router")
    pool = await create_pool(settings, application_name="roles-test")
    try:
        async with pool.acquire() as connection:
            assert await connection.fetchval("SELECT current_user") == "caseway_router"
            assert await connection.fetchval("SELECT count(*) FROM router.cases") >= 0
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await connection.fetchval(CONTACTS)
    finally:
        await pool.close()
