"""Deciding who is told what, and when (pure: no I/O, the clock is an argument).

Every planned notification has a key unique per (case, team, channel, kind) — never the address, so a
team whose address changed is not alerted again for what it was told — and planning the same event
twice, or a CaseOpened and the CaseAssigned events that follow it, yields the same keys: the store records
each key once and the sender sends each once. Digests are notifications too, keyed per period
(`...|reports-digest@<period start>`); what they fold in are digest entries, each with its own unique key
(the alert it replaces, or the linked report), so a replayed event adds nothing. A closed case calls for
nothing, whatever the event (a replay of an old case sends nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from caseway_notifier.domain import wording
from caseway_notifier.domain.cases import apply_event, facts_of_assignment
from caseway_notifier.domain.hours import digest_slot, escalation_send_time, send_time
from caseway_shared.events import CaseAssigned, CaseOpened, NotificationKind, ReportLinked

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from datetime import datetime
    from uuid import UUID

    from caseway_notifier.domain.cases import CaseState
    from caseway_notifier.domain.directory import ChannelAddress, Directory, Team
    from caseway_shared.events import CaseEvent


@dataclass(frozen=True, slots=True)
class PlannedNotification:
    key: str
    case_id: UUID | None  # None only for a team's digest, which covers several cases
    reference: str
    team: str
    channel: str
    address: str
    kind: NotificationKind
    subject: str
    body: str
    not_before: datetime


@dataclass(frozen=True, slots=True)
class DigestEntry:
    """One item folded into a digest instead of being sent on its own."""

    entry_key: str
    digest_key: str
    case_id: UUID
    reference: str
    team: str
    channel: str
    kind: NotificationKind  # what was folded: NotificationKind.NEW_CASE or NotificationKind.REPORT_LINKED
    line: str


@dataclass(frozen=True, slots=True)
class Plan:
    """What one event calls for: alerts to send, digests to (maybe) open, and entries folded into them."""

    notifications: tuple[PlannedNotification, ...] = ()
    digests: tuple[PlannedNotification, ...] = ()
    entries: tuple[DigestEntry, ...] = ()


def notification_key(*, case_id: UUID | str, team: str, channel: str, kind: str) -> str:
    """The notification's identity: case (or 'team' for a team's digest), team, channel kind and kind."""
    return f"{case_id}|{team}|{channel}|{kind}"


def _notifications(
    *,
    case_id: UUID | None,
    reference: str,
    team: str,
    channels: Iterable[ChannelAddress],
    kind: NotificationKind,
    text: wording.Text,
    when: datetime,
    key_case: UUID | str | None = None,
    key_kind: str | None = None,
) -> tuple[PlannedNotification, ...]:
    """The one way a notification is built: one per channel of its recipient."""
    return tuple(
        PlannedNotification(
            key=notification_key(
                case_id=key_case if key_case is not None else str(case_id),
                team=team,
                channel=channel.kind,
                kind=key_kind or kind,
            ),
            case_id=case_id,
            reference=reference,
            team=team,
            channel=channel.kind,
            address=channel.address,
            kind=kind,
            subject=text.subject,
            body=text.body,
            not_before=when,
        )
        for channel in channels
    )


def plan_notifications(
    event: CaseEvent,
    directory: Directory,
    *,
    now: datetime,
    case: CaseState | None = None,
    ignore_hours: bool = False,
) -> Plan:
    """The notifications `event` calls for; `case` is the case's state after `event` (see `apply_event`)."""
    if isinstance(event, CaseOpened):
        case = case or apply_event(None, event, directory)
        if case is None or case.closed:
            return Plan()
        plans = [
            _alert_team(team, case, directory, now=now, ignore_hours=ignore_hours)
            for department in event.departments
            for team in directory.teams_for(department, event.neighbourhood)
        ]
        if len(event.departments) > 1:
            plans.append(_tell_manager(case, directory, now=now, ignore_hours=ignore_hours))
        return _merge(plans)
    if isinstance(event, CaseAssigned):
        # Usually already planned from CaseOpened (same keys); this covers a later assignment.
        facts = case or facts_of_assignment(event)
        if facts.closed:
            return Plan()
        return _merge(
            [
                _alert_team(team, facts, directory, now=now, ignore_hours=ignore_hours)
                for team in directory.teams_for(event.department, event.neighbourhood)
            ]
        )
    if isinstance(event, ReportLinked) and case is not None and not case.closed:
        return _merge(
            [
                _fold_linked_report(team, case, event, directory, now=now, ignore_hours=ignore_hours)
                for department in case.departments
                for team in directory.teams_for(department, case.neighbourhood)
            ]
        )
    return Plan()


def plan_escalation(
    case: CaseState, directory: Directory, *, now: datetime, ignore_hours: bool = False
) -> list[PlannedNotification]:
    """Tell the neighbourhood's manager that `case` nears its due time unacknowledged."""
    manager = directory.manager_for(case.neighbourhood)
    if manager is None:
        return []
    return list(
        _notifications(
            case_id=case.case_id,
            reference=case.reference,
            team=f"manager:{manager.neighbourhood}",
            channels=manager.channels,
            kind=NotificationKind.ESCALATION,
            text=wording.escalation(case, directory),
            when=escalation_send_time(directory, urgent=case.urgent, now=now, ignore_hours=ignore_hours),
        )
    )


def _merge(plans: Sequence[Plan]) -> Plan:
    return Plan(
        notifications=tuple(n for plan in plans for n in plan.notifications),
        digests=tuple(d for plan in plans for d in plan.digests),
        entries=tuple(e for plan in plans for e in plan.entries),
    )


def _alert_team(
    team: Team, case: CaseState, directory: Directory, *, now: datetime, ignore_hours: bool
) -> Plan:
    if not case.urgent and directory.delivery_of(team) == "digest":
        return _fold_new_case(team, case, directory, now=now, ignore_hours=ignore_hours)
    return Plan(
        notifications=_notifications(
            case_id=case.case_id,
            reference=case.reference,
            team=team.id,
            channels=team.channels,
            kind=NotificationKind.NEW_CASE,
            text=wording.new_case(case, team, directory),
            when=send_time(team, directory, urgent=case.urgent, now=now, ignore_hours=ignore_hours),
        )
    )


def _tell_manager(case: CaseState, directory: Directory, *, now: datetime, ignore_hours: bool) -> Plan:
    manager = directory.manager_for(case.neighbourhood)
    if manager is None:
        return Plan()
    return Plan(
        notifications=_notifications(
            case_id=case.case_id,
            reference=case.reference,
            team=f"manager:{manager.neighbourhood}",
            channels=manager.channels,
            kind=NotificationKind.JOINING_UP,
            text=wording.joining_up(case, directory),
            when=send_time(None, directory, urgent=case.urgent, now=now, ignore_hours=ignore_hours),
        )
    )


def _folded(
    digests: tuple[PlannedNotification, ...],
    case: CaseState,
    *,
    entry_kind: NotificationKind,
    key_kind: str,
    line: str,
) -> Plan:
    """`digests` (one per channel) and, for each, the entry that folds `case` into it."""
    return Plan(
        digests=digests,
        entries=tuple(
            DigestEntry(
                entry_key=notification_key(
                    case_id=case.case_id, team=digest.team, channel=digest.channel, kind=key_kind
                ),
                digest_key=digest.key,
                case_id=case.case_id,
                reference=case.reference,
                team=digest.team,
                channel=digest.channel,
                kind=entry_kind,
                line=line,
            )
            for digest in digests
        ),
    )


def _fold_new_case(
    team: Team, case: CaseState, directory: Directory, *, now: datetime, ignore_hours: bool
) -> Plan:
    """A team that wants digests gets the new case as a line in its digest of the period."""
    label, when = digest_slot(team, directory, now=now, ignore_hours=ignore_hours)
    digests = _notifications(
        case_id=None,
        reference="",
        team=team.id,
        channels=team.channels,
        kind=NotificationKind.NEW_CASES_DIGEST,
        text=wording.new_cases_digest(team),
        when=when,
        key_case="team",
        key_kind=f"{NotificationKind.NEW_CASES_DIGEST}@{label}",
    )
    return _folded(
        digests,
        case,
        entry_kind=NotificationKind.NEW_CASE,
        key_kind=NotificationKind.NEW_CASE,
        line=wording.new_case_line(case, directory),
    )


def _fold_linked_report(
    team: Team,
    case: CaseState,
    event: ReportLinked,
    directory: Directory,
    *,
    now: datetime,
    ignore_hours: bool,
) -> Plan:
    """Another resident's report of a known case is no new alert: it is counted into the case's digest
    for the period ('3 more residents reported this')."""
    label, when = digest_slot(team, directory, now=now, ignore_hours=ignore_hours or case.urgent)
    digests = _notifications(
        case_id=case.case_id,
        reference=case.reference,
        team=team.id,
        channels=team.channels,
        kind=NotificationKind.REPORTS_DIGEST,
        text=wording.reports_digest(case, team, directory),
        when=when,
        key_kind=f"{NotificationKind.REPORTS_DIGEST}@{label}",
    )
    return _folded(
        digests,
        case,
        entry_kind=NotificationKind.REPORT_LINKED,
        key_kind=f"{NotificationKind.REPORT_LINKED}:{event.report_id}",
        line=wording.linked_report_line(event.reports_count),
    )
