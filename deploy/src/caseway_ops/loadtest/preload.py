"""A router case table as a council has it after months or years of use: N cases already stored, spread over
the city the way the load generator spreads reports (most anywhere in a ward, some gathered at hotspots), of
the generator's categories, opened at a steady `cases_per_day` (2,000 by default, a storm-free large city):
10,000 cases are five days of work, 1,000,000 about sixteen months. Cases of the last month are mostly open
(15% already closed); older ones are mostly closed (3% still open, the backlog every council has). So the
cases near a new report and inside its window are about as many whatever the table's size, and what grows
is only what an index has to skip: the condition under which a search can stay flat.

Written with COPY, so a million cases take about a minute; used by the router benchmark (10k, 100k, 1M) and
by the fault suite's CI version (a table of at least 10k cases, so a search that grows with the table fails).
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from caseway_ops.loadtest.generator import CATEGORY_WEIGHTS
from caseway_ops.loadtest.places import HotspotMap, council_wards
from caseway_router.domain.areas import case_cell

if TYPE_CHECKING:
    import asyncpg

    from caseway_shared.council import Council

_COLUMNS = (
    "case_id",
    "reference",
    "category",
    "family",
    "status",
    "priority",
    "neighbourhood",
    "ward_code",
    "lat",
    "lon",
    "summary",
    "description",
    "lead_department",
    "opened_at",
    "closed_at",
    "last_report_at",
    "reports_count",
    "points_count",
    "cell",
)
_REPORT_COLUMNS = (
    "report_id",
    "case_id",
    "source_system",
    "source_id",
    "received_at",
    "category",
    "lat",
    "lon",
    "description",
    "correlation_id",
)
_CHUNK = 50_000
_HOTSPOT_SHARE = 0.3  # as the load generator's
_RECENT = timedelta(days=30)
_RECENT_CLOSED = 0.15
_OLD_CLOSED = 0.97


async def preload_cases(
    connection: asyncpg.Connection[Any],
    council: Council,
    count: int,
    *,
    seed: int = 11,
    cases_per_day: float = 2_000,
    now: datetime | None = None,
) -> int:
    """Insert `count` cases into router.cases, each with the one report that opened it in router.reports
    (source system "preload"); returns how many cases were written."""
    now = now or datetime.now(UTC)
    rng = random.Random(seed)  # noqa: S311 - a reproducible table, not a secret
    wards = council_wards(council)
    hotspots = HotspotMap(wards, rng, per_ward=10)
    categories = [c for c in CATEGORY_WEIGHTS if c in council.categories]
    weights = [CATEGORY_WEIGHTS[c] for c in categories]
    written = 0
    while written < count:
        rows = []
        reports = []
        for number in range(written, min(count, written + _CHUNK)):
            code = rng.choices(categories, weights=weights)[0]
            category = council.categories[code]
            if rng.random() < _HOTSPOT_SHARE:
                ward, lat, lon = hotspots.point(scatter_m=150.0)
            else:
                ward = rng.choice(wards)
                lat, lon = ward.random_point(rng)
            age = timedelta(days=count / cases_per_day) * rng.random()
            last = now - age
            closed = rng.random() < (_RECENT_CLOSED if age < _RECENT else _OLD_CLOSED)
            closed_at = last + min(now - last, _RECENT) * rng.random()
            rows.append(
                (
                    uuid.uuid4(),
                    f"PRE-{number:08d}",
                    code,
                    category.family,
                    "closed" if closed else "open",
                    category.priority,
                    council.neighbourhood_of_ward.get(ward.name),
                    ward.code,
                    lat,
                    lon,
                    f"{category.name} - {ward.name}",
                    "preloaded case",
                    category.lead,
                    last,
                    closed_at if closed else None,
                    last,
                    1,
                    1,
                    case_cell(lat, lon),
                )
            )
            case_id = rows[-1][0]
            reports.append(
                (
                    uuid.uuid4(),
                    case_id,
                    "preload",
                    f"{number:08d}",
                    last,
                    code,
                    lat,
                    lon,
                    "preloaded",
                    str(case_id),
                )
            )
        await connection.copy_records_to_table("cases", schema_name="router", columns=_COLUMNS, records=rows)
        await connection.copy_records_to_table(
            "reports", schema_name="router", columns=_REPORT_COLUMNS, records=reports
        )
        written += len(rows)
    await connection.execute("ANALYZE router.cases")
    await connection.execute("ANALYZE router.reports")
    return written
