"""What the detector's measurement reads back from the router's tables (SQL kept here, by name): staff's
labels (router.duplicate_labels) and a shadow detector's decisions beside the live ones
(router.shadow_decisions with router.reports.decision). For the research commands, not for the services.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime  # noqa: TC003 - a dataclass field type
from typing import TYPE_CHECKING
from uuid import UUID  # noqa: TC003 - a dataclass field type

from caseway_router.domain.casefile import Label
from caseway_router.domain.casework import Verdict

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


@dataclass(frozen=True, slots=True)
class ShadowRecord:
    """What shadow configuration `shadow` would have decided for a report, beside what the live detector
    decided (the report's own decision)."""

    shadow: str
    report_id: UUID
    routed_at: datetime
    category: str
    live: Verdict
    verdict: Verdict


async def load_shadow_decisions(
    connection: DbConnection, *, shadow: str | None = None, since: datetime | None = None
) -> list[ShadowRecord]:
    """The shadow decisions (of `shadow`, routed at or after `since`, when given) with the live decision
    of each report, by shadow then in routing order."""
    rows = await connection.fetch(
        """
        SELECT s.shadow, s.report_id, s.routed_at, s.category, s.decision, s.case_id, s.score, s.key,
            r.decision AS live, r.decision_case_id AS live_case_id, r.decision_score AS live_score,
            r.decision_key AS live_key
        FROM router.shadow_decisions AS s JOIN router.reports AS r USING (report_id)
        WHERE ($1::text IS NULL OR s.shadow = $1) AND ($2::timestamptz IS NULL OR s.routed_at >= $2)
            AND r.decision IS NOT NULL
        ORDER BY s.shadow, s.routed_at, s.report_id
        """,
        shadow,
        since,
    )
    return [
        ShadowRecord(
            shadow=row["shadow"],
            report_id=row["report_id"],
            routed_at=row["routed_at"],
            category=row["category"],
            live=Verdict(row["live"], row["live_case_id"], row["live_score"] or 0.0, row["live_key"]),
            verdict=Verdict(row["decision"], row["case_id"], row["score"], row["key"]),
        )
        for row in rows
    ]
