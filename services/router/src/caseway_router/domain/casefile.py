"""What staff read about a case, worked out from what is stored (pure): possible duplicates awaiting a
person, whether a case is overdue, the start of the reporting week, the choices staff have, and the
labels their decisions about duplicates make for the detector (`Label`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID
from zoneinfo import ZoneInfo

from caseway_router.domain.casework import LINK, REVIEW
from caseway_shared.events import CaseStatus

if TYPE_CHECKING:
    from collections.abc import Iterable

    from caseway_router.domain.casework import Verdict

RESOLUTIONS: dict[str, str] = {
    "fixed": "Fixed",
    "not-councils-responsibility": "Not the council's responsibility",
    "no-further-action": "No further action",
    "duplicate": "Duplicate of another case",
}
NOTE_VISIBILITY = ("internal", "public")
DEPARTMENT_STATES = ("assigned", "acknowledged")

# The router flags a new case that may repeat another with this reason (see service._Writes).
_POSSIBLE = re.compile(r"may be the same problem as (?P<reference>\S+) \(score (?P<score>[0-9.]+)\)")


@dataclass(frozen=True, slots=True)
class PossibleDuplicate:
    reference: str
    score: float | None
    flagged_at: datetime


def possible_duplicates(history: Iterable[tuple[datetime, str, dict[str, Any]]]) -> list[PossibleDuplicate]:
    """The possible duplicates of a case still awaiting review, from its history (at, action, detail):
    flagged by routing or staff, and neither confirmed nor rejected since."""
    pending: dict[str, PossibleDuplicate] = {}
    for at, action, detail in history:
        if action == "flagged" and detail.get("flag") == "possible-duplicate":
            match = _POSSIBLE.search(str(detail.get("reason", "")))
            reference = detail.get("other") or (match.group("reference") if match else None)
            if reference:
                score = float(match.group("score")) if match else None
                pending[str(reference)] = PossibleDuplicate(str(reference), score, at)
        elif action in ("duplicate-confirmed", "duplicate-rejected"):
            pending.pop(str(detail.get("other", "")), None)
    return sorted(pending.values(), key=lambda p: p.flagged_at)


def is_overdue(due_at: datetime | None, status: CaseStatus, now: datetime) -> bool:
    return due_at is not None and status != CaseStatus.CLOSED and due_at < now


def overdue_by(due_at: datetime, now: datetime) -> str:
    """'3 days 4 hours' (or '25 minutes'): how long past due."""
    late = now - due_at
    days, rest = late.days, late.seconds
    hours, minutes = rest // 3600, (rest % 3600) // 60
    if days:
        return f"{days} day{'s' if days != 1 else ''}" + (
            f" {hours} hour{'s' if hours != 1 else ''}" if hours else ""
        )
    if hours:
        return f"{hours} hour{'s' if hours != 1 else ''}"
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def week_start(now: datetime, timezone: str) -> datetime:
    """Monday 00:00 local time of `now`'s week (the neighbourhood manager's reporting week)."""
    local = now.astimezone(ZoneInfo(timezone))
    return (local - timedelta(days=local.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)


def local_time(moment: datetime | None, timezone: str) -> str:
    if moment is None:
        return "none"
    return moment.astimezone(ZoneInfo(timezone)).strftime("%a %d %b %Y %H:%M")


# What the detector had decided about a labelled pair (see `detector_verdict`).
LINKED, FLAGGED, APART, UNKNOWN = "linked", "flagged", "apart", "unknown"
# The staff decisions that make labels.
DUPLICATE_CONFIRMED = "duplicate-confirmed"
DUPLICATE_REJECTED = "duplicate-rejected"
CLOSED_AS_DUPLICATE = "closed-as-duplicate"
REPORT_LINKED = "report-linked"
REPORT_UNLINKED = "report-unlinked"
CASE_CLOSED = "case-closed"


@dataclass(frozen=True, slots=True)
class Label:
    """A person's judgement of one pair, for measuring the detector: is report `report_id` the same problem
    as case `case_id` (`same_problem`)? `report_case_id` is the case the report was in when judged;
    `decision` the staff action that said so; `detector` what routing had decided about this pair
    (`linked` it, `flagged` it as a possible duplicate, kept it `apart`, or `unknown`: routed before
    routing recorded its decisions), with its `score` and the exact `key` of a certain link when it had
    them."""

    report_id: UUID
    case_id: UUID
    report_case_id: UUID | None
    same_problem: bool
    decision: str
    detector: str
    score: float | None = None
    key: str | None = None


def detector_verdict(verdict: Verdict | None, case_id: UUID) -> tuple[str, float | None, str | None]:
    """What a detector's verdict on a report said about it and case `case_id`: (linked, flagged, apart or
    unknown; the score of the link or flag; the exact key of a certain link)."""
    if verdict is None:
        return UNKNOWN, None, None
    if verdict.case_id == case_id and verdict.outcome == LINK:
        return LINKED, verdict.score, verdict.key
    if verdict.case_id == case_id and verdict.outcome == REVIEW:
        return FLAGGED, verdict.score, None
    return APART, None, None


def label(
    report_id: UUID,
    case_id: UUID,
    *,
    same: bool,
    decision: str,
    verdict: Verdict | None,
    report_case_id: UUID | None,
) -> Label:
    """The label of a staff decision about report `report_id` and case `case_id`, with what routing had
    decided about them (`verdict`: routing's verdict on the report, None when not recorded)."""
    detector, score, key = detector_verdict(verdict, case_id)
    return Label(
        report_id=report_id,
        case_id=case_id,
        report_case_id=report_case_id,
        same_problem=same,
        decision=decision,
        detector=detector,
        score=score,
        key=key,
    )


def opening_report(history: Iterable[tuple[str, dict[str, Any]]]) -> UUID | None:
    """The report a case was opened with (its history's `opened` entry), whose routing raised any flag the
    case carries."""
    for action, detail in history:
        if action == "opened" and detail.get("report_id"):
            return UUID(str(detail["report_id"]))
    return None
