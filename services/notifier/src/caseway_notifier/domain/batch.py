"""Deciding what a batch of case events calls for (pure): the cases' new states, the notifications and
digest entries to record, the digests to open, and what to say was suppressed. The service layer applies
the decision in one unit of work.

Everything is in key order, so that two replicas writing overlapping batches take their row locks in the
same order and never deadlock each other (PostgreSQL locks a row as each is inserted).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from caseway_notifier.domain.cases import apply_event
from caseway_notifier.domain.planning import plan_notifications
from caseway_shared.events import CaseOpened

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from datetime import datetime
    from uuid import UUID

    from caseway_notifier.domain.cases import CaseState
    from caseway_notifier.domain.directory import Directory
    from caseway_notifier.domain.planning import DigestEntry, PlannedNotification
    from caseway_shared.events import CaseEvent


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Correlated(Generic[T]):
    """Something planned, with the correlation id of the event that called for it."""

    item: T
    correlation_id: str


@dataclass(frozen=True, slots=True)
class Suppression:
    """A notification that will not be sent on its own, and why."""

    case_id: UUID
    notification_key: str
    team: str
    channel: str
    kind: str
    reason: str
    correlation_id: str


@dataclass(frozen=True, slots=True)
class CaseEventsPlan:
    cases: tuple[Correlated[CaseState], ...]  # the cases whose state changed, by case id
    notifications: tuple[Correlated[PlannedNotification], ...]  # by key
    digests: Mapping[str, Correlated[PlannedNotification]]  # by key: opened only for new entries
    entries: tuple[Correlated[DigestEntry], ...]  # by entry key
    openings: frozenset[str]  # keys of the notifications a CaseOpened called for

    def digests_for(self, new_entry_keys: Iterable[str]) -> tuple[Correlated[PlannedNotification], ...]:
        """The digests to open for the entries that are new (a replayed event opens no empty digest)."""
        new = set(new_entry_keys)
        wanted = {entry.item.digest_key for entry in self.entries if entry.item.entry_key in new}
        return tuple(self.digests[key] for key in sorted(wanted))

    def suppressions(self, *, new_keys: Iterable[str], new_entry_keys: Iterable[str]) -> list[Suppression]:
        """A CaseOpened whose notifications exist already is a redelivery or a replay: say so; and say
        that every new entry was folded into its digest."""
        new, folded = set(new_keys), set(new_entry_keys)
        said = [
            Suppression(
                case_id=n.item.case_id,
                notification_key=n.item.key,
                team=n.item.team,
                channel=n.item.channel,
                kind=n.item.kind,
                reason="already notified (redelivered event)",
                correlation_id=n.correlation_id,
            )
            for n in self.notifications
            if n.item.key in self.openings and n.item.key not in new and n.item.case_id is not None
        ]
        said.extend(
            Suppression(
                case_id=e.item.case_id,
                notification_key=e.item.entry_key,
                team=e.item.team,
                channel=e.item.channel,
                kind=e.item.kind,
                reason=f"folded into digest {e.item.digest_key}",
                correlation_id=e.correlation_id,
            )
            for e in self.entries
            if e.item.entry_key in folded
        )
        return said


def plan_case_events(
    events: Sequence[tuple[CaseEvent, str]],
    known: Mapping[UUID, CaseState],
    directory: Directory,
    *,
    now: datetime,
    ignore_hours: bool,
) -> CaseEventsPlan:
    """What `events` (each with its correlation id, in the order consumed) call for, given the cases'
    known states. The first event to plan a key gives it its correlation id."""
    cases = dict(known)
    changed: dict[UUID, Correlated[CaseState]] = {}
    notifications: dict[str, Correlated[PlannedNotification]] = {}
    digests: dict[str, Correlated[PlannedNotification]] = {}
    entries: dict[str, Correlated[DigestEntry]] = {}
    openings: set[str] = set()
    for event, correlation_id in events:
        before = cases.get(event.case_id)
        state = apply_event(before, event, directory)
        if state is not None and state != before:
            cases[event.case_id] = state
            first = changed.get(event.case_id)
            changed[event.case_id] = Correlated(state, first.correlation_id if first else correlation_id)
        plan = plan_notifications(event, directory, now=now, case=state, ignore_hours=ignore_hours)
        for notification in plan.notifications:
            notifications.setdefault(notification.key, Correlated(notification, correlation_id))
            if isinstance(event, CaseOpened):
                openings.add(notification.key)
        for digest in plan.digests:
            digests.setdefault(digest.key, Correlated(digest, correlation_id))
        for entry in plan.entries:
            entries.setdefault(entry.entry_key, Correlated(entry, correlation_id))
    return CaseEventsPlan(
        cases=tuple(changed[case_id] for case_id in sorted(changed, key=str)),
        notifications=tuple(notifications[key] for key in sorted(notifications)),
        digests=digests,
        entries=tuple(entries[key] for key in sorted(entries)),
        openings=frozenset(openings),
    )
