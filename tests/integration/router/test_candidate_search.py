"""The router's duplicate-candidate search on a table of 10,000 cases, against the real PostgreSQL.

The batched search used to collapse into a scan of every case (a total routing outage once about 10,000
cases existed): these tests check the plan the server really uses for the prepared statement, generic and
custom, that its answers are exactly those of a brute-force search, and that growing a case is atomic.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import asyncpg
import pytest

from caseway_ops.database import create_database, drop_database
from caseway_ops.loadtest.places import wards_from_geojson
from caseway_ops.loadtest.preload import preload_cases
from caseway_router.adapters import store
from caseway_router.domain.duplicates import distance_m
from caseway_shared.council import load_council
from caseway_shared.settings import DEFAULT_DATABASE_URL

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

COUNCIL = load_council()
NOW = datetime.now(UTC)
CLOSED_SINCE = NOW - timedelta(hours=COUNCIL.duplicate_closed_window_hours)
CASES = 10_000
# Open cases given exact keys: two of one property in two categories of one family, a street light, a street.
KEYS = (
    ("uprn", "38164538", "fly-tipping"),
    ("uprn", "38164538", "litter"),
    ("asset_id", "SL-00417", "street-lighting"),
    ("usrn", "11400123", "pothole"),
)


@pytest.fixture(scope="module")
async def table(infra) -> AsyncIterator[str]:
    """A database of its own holding 10,000 cases spread over Liverpool like the load generator's."""
    import os  # noqa: PLC0415

    base_url = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    name = f"caseway_cells_{uuid.uuid4().hex[:10]}"
    url = await create_database(base_url, name)
    connection = await asyncpg.connect(url)
    try:
        await preload_cases(connection, COUNCIL, CASES, now=NOW)
        # A few cases found by address only (no point), as address-only reports open them.
        await connection.execute(
            "UPDATE router.cases SET address = '12 Bold Street', address_key = '12 bold street'"
            " WHERE reference IN ('PRE-00000001', 'PRE-00000002')"
        )
        # A few open cases with exact keys (issue 17 item 3).
        keyed = await connection.fetch(
            "SELECT reference FROM router.cases WHERE status = 'open' AND reference > 'PRE-00000002'"
            " ORDER BY reference LIMIT 4"
        )
        for (reference,), (column, value, category) in zip(keyed, KEYS, strict=True):
            await connection.execute(
                f"UPDATE router.cases SET {column} = $2, category = $3, family = $4 WHERE reference = $1",
                reference,
                value,
                category,
                COUNCIL.categories[category].family,
            )
    finally:
        await connection.close()
    yield url
    await drop_database(base_url, name)


def _queries(count: int, seed: int = 3) -> list[store.CandidateQuery]:
    rng = random.Random(seed)
    wards = wards_from_geojson(COUNCIL.wards_geojson)
    searched = [c for c in COUNCIL.categories.values() if c.duplicate_window_hours > 0]
    made = []
    for _ in range(count):
        category = rng.choice(searched)
        lat, lon = rng.choice(wards).random_point(rng)
        made.append(
            store.CandidateQuery(
                family=category.family,
                lat=lat,
                lon=lon,
                radius_m=category.duplicate_radius_m * 4,  # wider than configured: more to find
                since=NOW - timedelta(hours=category.duplicate_window_hours),
                address_key=None,
            )
        )
    return made


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan]
    for child in plan.get("Plans", []):
        found.extend(_nodes(child))
    return found


def _keyed_queries(count: int, seed: int = 7) -> list[store.CandidateQuery]:
    """Reports with exact keys (most of them found nowhere), half of them with a point too."""
    rng = random.Random(seed)
    made = []
    for n, query in enumerate(_queries(count, seed=seed)):
        category = rng.choice([c for c in COUNCIL.categories.values() if c.family == query.family])
        made.append(
            dataclasses.replace(
                query,
                lat=query.lat if n % 2 else None,
                lon=query.lon if n % 2 else None,
                category=category.code,
                uprn=f"{rng.randrange(10**8)}",
                usrn=f"{rng.randrange(10**7)}",
                asset_id=f"SL-{rng.randrange(10**5):05d}",
            )
        )
    return made


@pytest.mark.parametrize("mode", ["force_generic_plan", "force_custom_plan"])
async def test_the_batched_search_reads_each_report_s_cells_through_the_index(table, mode):
    connection = await asyncpg.connect(table)
    try:
        arguments = store.candidate_search_arguments(
            _queries(500) + _keyed_queries(50), closed_since=CLOSED_SINCE
        )
        kinds = ["int[]", "text[]", "bigint[]", "timestamptz[]", "int[]", "text[]", "text[]"]
        by_key = ["int[]", "text[]", "text[]", "text[]", "text[]", "text[]", "timestamptz[]"]
        types = ", ".join([*kinds, "timestamptz", "timestamptz[]", *by_key])
        await connection.execute(f"PREPARE candidates ({types}) AS {store._CANDIDATES}")
        await connection.execute(f"SET plan_cache_mode = {mode}")
        # EXECUTE takes its parameters as SQL literals (a utility statement takes no bound parameters).
        literals = [
            await connection.fetchval(f"SELECT quote_literal($1::{kind}::text) || '::{kind}'", value)
            for kind, value in zip(types.split(", "), arguments, strict=True)
        ]
        explained = await connection.fetchval(
            f"EXPLAIN (FORMAT JSON, ANALYZE, BUFFERS) EXECUTE candidates ({', '.join(literals)})"
        )
    finally:
        await connection.close()
    plan = json.loads(explained)[0]["Plan"]
    nodes = _nodes(plan)
    on_cases = [n for n in nodes if n.get("Relation Name") == "cases"]
    assert on_cases, plan
    assert not [n for n in on_cases if n["Node Type"] == "Seq Scan"], f"a scan of every case under {mode}"
    # Searched once per row of each report's box (a parameterised index scan), not once for the batch.
    by_cell = [n for n in nodes if n.get("Index Name") == "cases_cell"]
    assert by_cell, [(n["Node Type"], n.get("Index Name")) for n in nodes]
    assert by_cell[0]["Actual Loops"] > 500
    # Each lookup descends to one cell's cases inside the window: cell and time are both index conditions
    # (not filters applied to every case of the cell, however old), and a lookup reads a few pages.
    condition = by_cell[0]["Index Cond"]
    assert "cell =" in condition, condition
    assert "last_report_at >=" in condition, condition
    blocks = plan.get("Shared Hit Blocks", 0) + plan.get("Shared Read Blocks", 0)
    assert blocks / by_cell[0]["Actual Loops"] < 12, (
        f"{blocks} blocks for {by_cell[0]['Actual Loops']} lookups"
    )
    # Each exact key is one descent of its own index per report that has it (issue 17 item 3).
    for index in ("cases_uprn", "cases_asset", "cases_usrn"):
        by_key = [n for n in nodes if n.get("Index Name") == index]
        assert by_key, (index, [(n["Node Type"], n.get("Index Name")) for n in nodes])
        assert by_key[0]["Actual Loops"] == 50, by_key[0]


async def test_the_search_finds_exactly_what_a_brute_force_search_finds(table):
    queries = _queries(300, seed=5)
    queries.append(
        store.CandidateQuery(
            family=COUNCIL.categories["fly-tipping"].family,
            lat=None,
            lon=None,
            radius_m=60,
            since=NOW - timedelta(days=400),
            address_key="12 bold street",
        )
    )
    connection = await asyncpg.connect(table)
    try:
        found = await store.find_candidates(connection, queries, closed_since=CLOSED_SINCE)
        every = await connection.fetch(
            "SELECT case_id, family, lat, lon, last_report_at, status, closed_at, address_key"
            " FROM router.cases"
        )
    finally:
        await connection.close()
    expected_total = 0
    for query, candidates in zip(queries, found, strict=True):
        expected = {
            row["case_id"]
            for row in every
            if row["family"] == query.family
            and row["last_report_at"] >= query.since
            and (row["status"] != "closed" or row["closed_at"] >= CLOSED_SINCE)
            and (
                (
                    query.lat is not None
                    and query.lon is not None
                    and row["lat"] is not None
                    and distance_m(query.lat, query.lon, row["lat"], row["lon"]) <= query.radius_m
                )
                or (query.address_key is not None and row["address_key"] == query.address_key)
            )
        }
        expected_total += len(expected)
        assert {c.candidate.case_id for c in candidates} == expected
        assert len(candidates) == len(expected)  # each case once, even when found two ways
    assert expected_total > 100, "the sample should find candidates, or it proves nothing"


async def test_exact_keys_find_their_cases_at_any_distance_and_only_those(table):
    """The same property in the family, the same asset or street in the category: found without a point
    or however far the point is, exactly as a brute-force search over every case finds them."""
    connection = await asyncpg.connect(table)
    try:
        every = await connection.fetch(
            "SELECT case_id, reference, category, family, lat, lon, last_report_at, status, closed_at, uprn,"
            " usrn, asset_id FROM router.cases"
        )
        keyed = [row for row in every if row["uprn"] or row["usrn"] or row["asset_id"]]
        assert len(keyed) == len(KEYS)
        since = NOW - timedelta(days=400)
        far = (53.48, -2.85)  # ~10 km from the city centre, far beyond any radius
        queries = []
        for row in keyed:
            base = store.CandidateQuery(
                family=row["family"],
                lat=None,
                lon=None,
                radius_m=60,
                since=since,
                address_key=None,
                category=row["category"],
            )
            queries += [
                dataclasses.replace(base, uprn=row["uprn"], usrn=row["usrn"], asset_id=row["asset_id"]),
                dataclasses.replace(
                    base, lat=far[0], lon=far[1], uprn=row["uprn"], usrn=row["usrn"], asset_id=row["asset_id"]
                ),
                # The asset and the street are keys within a category: another category finds neither.
                dataclasses.replace(
                    base,
                    category="graffiti" if row["category"] != "graffiti" else "noise",
                    usrn=row["usrn"],
                    asset_id=row["asset_id"],
                ),
                # The property is a key within the family: another family finds nothing.
                dataclasses.replace(base, family="no-such-family", uprn=row["uprn"]),
            ]
        found = await store.find_candidates(connection, queries, closed_since=CLOSED_SINCE)
    finally:
        await connection.close()

    for query, candidates in zip(queries, found, strict=True):
        expected = {row["case_id"] for row in every if _should_find(query, row)}
        assert {c.candidate.case_id for c in candidates} == expected, query
        assert len(candidates) == len(expected)
    # The property is a key of the family: each of its two cases (two categories) finds the other.
    property_cases = {row["case_id"] for row in keyed if row["uprn"]}
    for i, row in enumerate(keyed):
        if row["uprn"]:
            assert {c.candidate.case_id for c in found[4 * i]} == property_cases
    # Every keyed case is found by its own key, with or without a point, and comes back with its keys.
    for row, (plain, located, other_category, other_family) in zip(
        keyed, (found[i : i + 4] for i in range(0, len(found), 4)), strict=True
    ):
        for answer in (plain, located):
            mine = next(c.candidate for c in answer if c.candidate.case_id == row["case_id"])
            assert (mine.uprn, mine.usrn, mine.asset_id) == (row["uprn"], row["usrn"], row["asset_id"])
        assert row["case_id"] not in {c.candidate.case_id for c in other_category}
        assert other_family == []


def _should_find(query: store.CandidateQuery, row: Any) -> bool:
    """Brute force: a case of the family inside the window (and open or recently closed) within the radius
    of the point, or with the same property, or with the same asset or street in the category."""
    if row["family"] != query.family or row["last_report_at"] < query.since:
        return False
    if row["status"] == "closed" and row["closed_at"] < CLOSED_SINCE:
        return False
    near = (
        query.lat is not None
        and query.lon is not None
        and row["lat"] is not None
        and distance_m(query.lat, query.lon, row["lat"], row["lon"]) <= query.radius_m
    )
    same_property = query.uprn is not None and row["uprn"] == query.uprn
    same_in_category = row["category"] == query.category and (
        (query.asset_id is not None and row["asset_id"] == query.asset_id)
        or (query.usrn is not None and row["usrn"] == query.usrn)
    )
    return near or same_property or same_in_category


async def test_growing_a_case_from_two_transactions_at_once_loses_no_report(table):
    """Two replicas join a report each to one case at the same moment (one by address, one by point, so no
    area lock keeps them apart): the case ends with both, and its mean point moved."""
    connection = await asyncpg.connect(table)
    other = await asyncpg.connect(table)
    try:
        case = await connection.fetchrow(
            "SELECT case_id, reports_count, points_count, lat, lon FROM router.cases"
            " WHERE lat IS NOT NULL LIMIT 1"
        )

        def growth(lat_sum: float, points: int) -> store.CaseGrowth:
            return store.CaseGrowth(
                case_id=case["case_id"],
                added_reports=1,
                added_points=points,
                lat_sum=lat_sum,
                lon_sum=case["lon"] * points,
                last_report_at=NOW,
                address="12 Bold Street",
                address_key="12 bold street",
            )

        first = connection.transaction()
        await first.start()
        await store.grow_cases(connection, [growth(case["lat"] + 0.0001, 1)])
        second = asyncio.create_task(_grow_in_transaction(other, growth(0.0, 0)))
        await asyncio.sleep(0.3)  # the second waits on the first's row lock
        await first.commit()
        counts = await second
        row = await connection.fetchrow(
            "SELECT reports_count, points_count, lat, cell FROM router.cases WHERE case_id = $1",
            case["case_id"],
        )
    finally:
        await connection.close()
        await other.close()
    assert row["reports_count"] == case["reports_count"] + 2
    assert counts == {case["case_id"]: case["reports_count"] + 2}
    assert row["points_count"] == case["points_count"] + 1
    assert row["lat"] == pytest.approx(
        (case["lat"] * case["points_count"] + case["lat"] + 0.0001) / (case["points_count"] + 1)
    )


async def _grow_in_transaction(connection: asyncpg.Connection, growth: store.CaseGrowth) -> dict[Any, int]:
    async with connection.transaction():
        return await store.grow_cases(connection, [growth])
