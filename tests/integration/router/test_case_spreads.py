"""The scatter of a case's reports' points, read from the real PostgreSQL (issue 17 item 1): what the
duplicate detector learns the GPS error from."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import asyncpg
import pytest

from caseway_ops.database import create_database, drop_database
from caseway_ops.loadtest.preload import preload_cases
from caseway_router.adapters.spreads import case_spreads
from caseway_router.domain.duplicates import scatter_m2
from caseway_shared.council import load_council
from caseway_shared.settings import DEFAULT_DATABASE_URL

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

METRE = 1 / 111_195


@pytest.fixture
async def connection(infra) -> AsyncIterator[asyncpg.Connection]:
    del infra
    base_url = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    name = f"caseway_spreads_{uuid.uuid4().hex[:10]}"
    url = await create_database(base_url, name)
    connection = await asyncpg.connect(url)
    try:
        await preload_cases(connection, load_council(), 3, now=datetime.now(UTC))
        yield connection
    finally:
        await connection.close()
        await drop_database(base_url, name)


async def test_a_case_scatter_comes_from_its_reports_points(connection):
    cases = await connection.fetch("SELECT case_id FROM router.cases ORDER BY reference")
    grown, lone = cases[0]["case_id"], cases[1]["case_id"]
    first = await connection.fetchrow("SELECT * FROM router.reports WHERE case_id = $1", grown)
    for metres in (8.0, -5.0):
        await connection.execute(
            "INSERT INTO router.reports (report_id, case_id, source_system, source_id, received_at,"
            " category, lat, lon, address, description, link_score, correlation_id)"
            " VALUES ($1, $2, 'test', $3, $4, $5, $6, $7, NULL, '', 0.5, 'test')",
            uuid.uuid4(),
            grown,
            uuid.uuid4().hex,
            first["received_at"],
            first["category"],
            first["lat"] + metres * METRE,
            first["lon"],
        )
    spreads = await case_spreads(connection, [grown, lone, uuid.uuid4()])
    points = [(first["lat"], first["lon"]), *((first["lat"] + m * METRE, first["lon"]) for m in (8.0, -5.0))]
    assert spreads[grown] == pytest.approx(scatter_m2(points), rel=1e-6)
    assert lone not in spreads  # one point: no scatter
    assert await case_spreads(connection, []) == {}
