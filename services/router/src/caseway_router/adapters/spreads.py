"""How far each candidate case's reports lie from their mean point (its scatter, m^2), read from the
reports it holds: the evidence the detector learns the GPS error from (`duplicates.place_agreement`).

Kept apart from `store`'s candidate search: one extra round trip per batch over `reports_case`, only for
the cases the search found."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from caseway_router.domain.duplicates import scatter_m2

if TYPE_CHECKING:
    from collections.abc import Iterable
    from uuid import UUID

    from caseway_shared.db import DbConnection


async def case_spreads(connection: DbConnection, case_ids: Iterable[UUID]) -> dict[UUID, float]:
    """Each case's scatter: the sum of squared distances of its reports' points from their mean (cases
    with fewer than two points are absent, i.e. 0)."""
    ids = sorted(set(case_ids))
    if not ids:
        return {}
    rows = await connection.fetch(
        "SELECT case_id, lat, lon FROM router.reports"
        " WHERE case_id = ANY($1::uuid[]) AND lat IS NOT NULL AND lon IS NOT NULL",
        ids,
    )
    points: dict[UUID, list[tuple[float, float]]] = defaultdict(list)
    for row in rows:
        points[row["case_id"]].append((row["lat"], row["lon"]))
    return {case_id: scatter_m2(found) for case_id, found in points.items() if len(found) > 1}
