"""What the notifier remembers of a case (from cases.v1), and how each event changes it. Pure."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from caseway_shared.events import (
    CaseAssigned,
    CaseClosed,
    CaseOpened,
    CaseStatus,
    CaseStatusChanged,
    CaseUnassigned,
    Priority,
)

if TYPE_CHECKING:
    from uuid import UUID

    from caseway_notifier.domain.directory import Directory
    from caseway_shared.events import CaseEvent


@dataclass(frozen=True, slots=True)
class CaseState:
    """What the notifier remembers of a case, from cases.v1: enough to word alerts and to escalate."""

    case_id: UUID
    reference: str
    category: str
    priority: Priority
    neighbourhood: str | None
    ward_code: str | None
    departments: tuple[str, ...]
    opened_at: datetime
    due_at: datetime | None
    status: CaseStatus
    escalate_at: datetime | None

    @property
    def urgent(self) -> bool:
        return self.priority == Priority.URGENT

    @property
    def closed(self) -> bool:
        return self.status == CaseStatus.CLOSED


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)  # the router writes UTC; a naive time is read as UTC


def escalation_time(opened_at: datetime, due_at: datetime | None, fraction: float) -> datetime | None:
    """When `fraction` of the time from opening to due has passed (None when there is no due time)."""
    if due_at is None:
        return None
    return opened_at + (due_at - opened_at) * fraction


def apply_event(state: CaseState | None, event: CaseEvent, directory: Directory) -> CaseState | None:
    """The case's state after `event` (a redelivered CaseOpened leaves a known case as it is)."""
    if isinstance(event, CaseOpened):
        return state if state is not None else _opened(event, directory)
    if state is None:
        return None
    if isinstance(event, (CaseAssigned, CaseUnassigned)):
        return replace(state, departments=_departments_after(state.departments, event))
    if isinstance(event, CaseStatusChanged):
        return replace(state, status=event.status)
    if isinstance(event, CaseClosed):
        return replace(state, status=CaseStatus.CLOSED)
    return state


def _departments_after(departments: tuple[str, ...], event: CaseAssigned | CaseUnassigned) -> tuple[str, ...]:
    if isinstance(event, CaseAssigned):
        return departments if event.department in departments else (*departments, event.department)
    # An unassigned department's part was handed over (or dropped): its teams hear nothing more of the case
    # (no digests of further reports; not counted among the departments in what others are told).
    return tuple(d for d in departments if d != event.department)


def _opened(event: CaseOpened, directory: Directory) -> CaseState:
    due_at = _aware(event.due_at)
    return CaseState(
        case_id=event.case_id,
        reference=event.reference,
        category=event.category,
        priority=event.priority,
        neighbourhood=event.neighbourhood,
        ward_code=event.ward_code,
        departments=tuple(event.departments),
        opened_at=event.occurred_at,
        due_at=due_at,
        status=CaseStatus.OPEN,
        escalate_at=escalation_time(event.occurred_at, due_at, directory.escalation.at_fraction),
    )


def facts_of_assignment(event: CaseAssigned) -> CaseState:
    """What an assignment alone says of a case the notifier has not seen opened."""
    return CaseState(
        case_id=event.case_id,
        reference=event.reference,
        category="",
        priority=Priority.NORMAL,
        neighbourhood=event.neighbourhood,
        ward_code=None,
        departments=(event.department,),
        opened_at=event.occurred_at,
        due_at=None,
        status=CaseStatus.OPEN,
        escalate_at=None,
    )
