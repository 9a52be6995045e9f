"""What staff read about a case, worked out from what is stored (pure): possible duplicates awaiting a
person, whether a case is overdue, the start of the reporting week, and the choices staff have.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from caseway_shared.events import CaseStatus

if TYPE_CHECKING:
    from collections.abc import Iterable

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
