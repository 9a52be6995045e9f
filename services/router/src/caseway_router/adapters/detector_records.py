"""What the detector's measurement reads back from the router's tables (SQL kept here, by name): staff's
labels (router.duplicate_labels) and a shadow detector's decisions beside the live ones
(router.shadow_decisions with router.reports). For the research commands, not for the services' hot path.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime  # noqa: TC003 - a dataclass field type
from typing import TYPE_CHECKING

from caseway_router.domain.casefile import Label

if TYPE_CHECKING:
    from caseway_shared.db import DbConnection


@dataclass(frozen=True, slots=True)
class StoredLabel:
    """A label as stored: the judgement, who made it and when."""

    at: datetime
    actor: str
    label: Label


async def load_labels(connection: DbConnection, *, since: datetime | None = None) -> list[StoredLabel]:
    """Every label (made at or after `since`, when given), oldest first."""
    rows = await connection.fetch(
        """
        SELECT at, actor, report_id, case_id, report_case_id, same_problem, decision, detector, score, key
        FROM router.duplicate_labels WHERE $1::timestamptz IS NULL OR at >= $1 ORDER BY at, id
        """,
        since,
    )
    return [
        StoredLabel(
            at=row["at"],
            actor=row["actor"],
            label=Label(
                report_id=row["report_id"],
                case_id=row["case_id"],
                report_case_id=row["report_case_id"],
                same_problem=row["same_problem"],
                decision=row["decision"],
                detector=row["detector"],
                score=row["score"],
                key=row["key"],
            ),
        )
        for row in rows
    ]
