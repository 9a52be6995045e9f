"""Deciding who is told what, and when (pure: no I/O, the clock is an argument).

Every planned notification has a key unique per (case, team, channel, kind), so planning the same event
twice, or a CaseOpened and the CaseAssigned events that follow it, yields the same keys: the store
records each key once and the sender sends each once. Digests are notifications too, keyed per period
(`...|reports-digest@<period start>`); what they fold in are digest entries, each with its own unique key
(the alert it replaces, or the linked report), so a replayed event adds nothing.

Message text carries only what staff need to find the case: its reference, category name, neighbourhood
and ward code, priority, due time and the staff link. Nothing a resident wrote is ever copied into a
message, so nothing a resident wrote can become a live link in a mail client or chat tool.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from caseway_notifier.directory import DAYS, ChannelAddress, Directory, QuietHours, Team, WorkingHours
from caseway_shared.events import (
    CaseAssigned,
    CaseClosed,
    CaseOpened,
    CaseStatusChanged,
    ReportLinked,
)

if TYPE_CHECKING:
    from collections.abc import Sequence
    from uuid import UUID

    from caseway_shared.events import CaseEvent

NEW_CASE = "new-case"
JOINING_UP = "joining-up"
ESCALATION = "escalation"
REPORTS_DIGEST = "reports-digest"
NEW_CASES_DIGEST = "new-cases-digest"
DIGEST_KINDS = frozenset({REPORTS_DIGEST, NEW_CASES_DIGEST})
REPORT_LINKED = "report-linked"

OPEN, ACKNOWLEDGED, CLOSED = "open", "acknowledged", "closed"
# Statuses that mean nobody has taken the case up yet; every other status counts as acknowledged.
UNACKNOWLEDGED_STATUSES = frozenset({"open", "new", "reopened", "opened", "unacknowledged"})
CLOSED_STATUSES = frozenset({"closed", "resolved", "cancelled", "withdrawn"})

# A digest is sent a little after its period ends, so that an entry planned in the period's last moment
# (and committed a few milliseconds later) is in it rather than in nobody's digest.
DIGEST_GRACE = timedelta(seconds=30)


@dataclass(frozen=True, slots=True)
class PlannedNotification:
    key: str
    case_id: UUID | None  # None only for a team's digest, which covers several cases
    reference: str
    team: str
    channel: str
    address: str
    kind: str
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
    kind: str  # what was folded: NEW_CASE or REPORT_LINKED
    line: str


@dataclass(frozen=True, slots=True)
class Plan:
    """What one event calls for: alerts to send, digests to (maybe) open, and entries folded into them."""

    notifications: tuple[PlannedNotification, ...] = ()
    digests: tuple[PlannedNotification, ...] = ()
    entries: tuple[DigestEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class CaseState:
    """What the notifier remembers of a case, from cases.v1: enough to word alerts and to escalate."""

    case_id: UUID
    reference: str
    category: str
    priority: str
    neighbourhood: str | None
    ward_code: str | None
    departments: tuple[str, ...]
    opened_at: datetime
    due_at: datetime | None
    status: str
    escalate_at: datetime | None

    @property
    def urgent(self) -> bool:
        return self.priority == "urgent"


def notification_key(*, case_id: UUID | str, team: str, channel: ChannelAddress, kind: str) -> str:
    return f"{case_id}|{team}|{channel.kind}:{channel.address}|{kind}"


# --- case state -------------------------------------------------------------------------------------


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)  # the router writes UTC; a naive time is read as UTC


def escalation_time(opened_at: datetime, due_at: datetime | None, fraction: float) -> datetime | None:
    """When `fraction` of the time from opening to due has passed (None when there is no due time)."""
    if due_at is None:
        return None
    return opened_at + (due_at - opened_at) * fraction


def apply_event(  # noqa: PLR0911 - one return per kind of event reads best
    state: CaseState | None, event: CaseEvent, directory: Directory
) -> CaseState | None:
    """The case's state after `event` (a redelivered CaseOpened leaves a known case as it is)."""
    if isinstance(event, CaseOpened):
        if state is not None:
            return state
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
            status=OPEN,
            escalate_at=escalation_time(event.occurred_at, due_at, directory.escalation.at_fraction),
        )
    if state is None:
        return None
    if isinstance(event, CaseAssigned) and event.department not in state.departments:
        return replace(state, departments=(*state.departments, event.department))
    if isinstance(event, CaseStatusChanged):
        status = event.status.strip().lower().replace(" ", "-").replace("_", "-")
        if status in CLOSED_STATUSES:
            return replace(state, status=CLOSED)
        if status in UNACKNOWLEDGED_STATUSES:
            return replace(state, status=OPEN)
        return replace(state, status=ACKNOWLEDGED)
    if isinstance(event, CaseClosed):
        return replace(state, status=CLOSED)
    return state


# --- time ---------------------------------------------------------------------------------------------


def next_working_time(now: datetime, hours: WorkingHours, timezone: str) -> datetime:
    """`now` if it is within working hours, else the start of the next working period (local wall time,
    so it stays right across the clock changes)."""
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    for days_ahead in range(8):
        day = (local + timedelta(days=days_ahead)).date()
        if DAYS[day.weekday()] not in hours.days:
            continue
        start = datetime.combine(day, hours.start, tzinfo=zone)
        end = datetime.combine(day, hours.end, tzinfo=zone)
        if days_ahead == 0 and start <= local < end:
            return now
        if local < start:
            return start
    return now  # a team with no working days at all is told at once rather than never


def quiet_until(now: datetime, quiet: QuietHours, timezone: str) -> datetime | None:
    """The end of the quiet window `now` falls in (local wall time), or None when `now` is not quiet."""
    if quiet.start == quiet.end:
        return None
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    clock = local.time().replace(tzinfo=None)
    today = local.date()
    if quiet.start < quiet.end:  # a window within one day, e.g. 12:00-13:00
        inside, end_day = quiet.start <= clock < quiet.end, today
    elif clock >= quiet.start:  # a window across midnight, before midnight
        inside, end_day = True, today + timedelta(days=1)
    else:  # ... or after midnight
        inside, end_day = clock < quiet.end, today
    return datetime.combine(end_day, quiet.end, tzinfo=zone) if inside else None


def next_allowed_time(now: datetime, working: WorkingHours, quiet: QuietHours, timezone: str) -> datetime:
    """The first moment at or after `now` that is within working hours and outside quiet hours."""
    moment = now
    for _ in range(16):  # each step moves to a later boundary; a week of boundaries is plenty
        moment = next_working_time(moment, working, timezone)
        end = quiet_until(moment, quiet, timezone)
        if end is None:
            return moment
        moment = end
    return moment


def outside_quiet_hours(now: datetime, quiet: QuietHours, timezone: str) -> datetime:
    """`now`, or the end of the quiet window it falls in."""
    return quiet_until(now, quiet, timezone) or now


def digest_period(now: datetime, minutes: int, timezone: str) -> tuple[datetime, datetime]:
    """The digest period (local wall-clock buckets of `minutes`, from local midnight) holding `now`."""
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    index = (local.hour * 60 + local.minute) // minutes
    start_wall = datetime.combine(local.date(), time(0)) + timedelta(minutes=index * minutes)
    end_wall = start_wall + timedelta(minutes=minutes)
    return start_wall.replace(tzinfo=zone).astimezone(UTC), end_wall.replace(tzinfo=zone).astimezone(UTC)


def _period_label(start: datetime) -> str:
    return start.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


# --- planning -----------------------------------------------------------------------------------------


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
        assert case is not None  # noqa: S101 - apply_event always makes a state from a CaseOpened
        plans = [
            _alert_team(team, case, directory, now=now, ignore_hours=ignore_hours)
            for department in event.departments
            for team in directory.teams_for(department, event.neighbourhood)
        ]
        if len(event.departments) > 1:
            plans.append(
                Plan(notifications=_tell_manager(case, directory, now=now, ignore_hours=ignore_hours))
            )
        return _merge(plans)
    if isinstance(event, CaseAssigned):
        # Usually already planned from CaseOpened (same keys); this covers a later assignment.
        facts = case or _facts_of_assignment(event)
        return _merge(
            [
                _alert_team(team, facts, directory, now=now, ignore_hours=ignore_hours)
                for team in directory.teams_for(event.department, event.neighbourhood)
            ]
        )
    if isinstance(event, ReportLinked) and case is not None and case.status != CLOSED:
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
    """Tell the neighbourhood's manager that `case` nears its due time unacknowledged. Escalations are
    time-critical, so they do not wait for working hours, only for the end of quiet hours (urgent cases
    not even that)."""
    manager = directory.manager_for(case.neighbourhood)
    if manager is None:
        return []
    when = (
        now
        if case.urgent or ignore_hours
        else outside_quiet_hours(now, directory.defaults.quiet_hours, directory.timezone)
    )
    team = f"manager:{manager.neighbourhood}"
    due = _local_time(case.due_at, directory)
    subject = f"Escalation: case {case.reference} due {due}, not acknowledged"
    body = (
        f"Case {case.reference} is near its due time and no team has acknowledged it.\n"
        f"{_facts(case, directory)}"
    )
    return [
        PlannedNotification(
            key=notification_key(case_id=case.case_id, team=team, channel=channel, kind=ESCALATION),
            case_id=case.case_id,
            reference=case.reference,
            team=team,
            channel=channel.kind,
            address=channel.address,
            kind=ESCALATION,
            subject=subject[:200],
            body=body,
            not_before=when,
        )
        for channel in manager.channels
    ]


def compose_digest(kind: str, subject: str, body: str, lines: Sequence[str]) -> tuple[str, str]:
    """A digest's final subject and body, from its stored header and the lines of its entries."""
    count = len(lines)
    if kind == REPORTS_DIGEST:
        residents = "resident" if count == 1 else "residents"
        return f"{subject}: {count} more", f"{count} more {residents} reported this.\n{body}"
    return f"{subject}: {count}", body + "".join(f"- {line}\n" for line in lines)


def _merge(plans: Sequence[Plan]) -> Plan:
    return Plan(
        notifications=tuple(n for plan in plans for n in plan.notifications),
        digests=tuple(d for plan in plans for d in plan.digests),
        entries=tuple(e for plan in plans for e in plan.entries),
    )


def _facts_of_assignment(event: CaseAssigned) -> CaseState:
    return CaseState(
        case_id=event.case_id,
        reference=event.reference,
        category="",
        priority="normal",
        neighbourhood=event.neighbourhood,
        ward_code=None,
        departments=(event.department,),
        opened_at=event.occurred_at,
        due_at=None,
        status=OPEN,
        escalate_at=None,
    )


def _local_time(moment: datetime | None, directory: Directory) -> str:
    if moment is None:
        return "no target"
    return moment.astimezone(ZoneInfo(directory.timezone)).strftime("%a %d %b %Y %H:%M")


def _facts(case: CaseState, directory: Directory) -> str:
    """The case's facts for staff, one per line; nothing here was written by a resident."""
    category = directory.category_name(case.category) if case.category else "see the case"
    place = case.neighbourhood or "no neighbourhood (triage)"
    if case.ward_code:
        place = f"{place}, ward {case.ward_code}"
    link = directory.staff_case_url.format(reference=case.reference)
    return (
        f"Category: {category}\n"
        f"Where: {place}\n"
        f"Priority: {case.priority}\n"
        f"Due: {_local_time(case.due_at, directory)}\n"
        f"Open the case: {link}\n"
    )


def _when(
    team: Team | None, directory: Directory, *, urgent: bool, now: datetime, ignore_hours: bool
) -> datetime:
    if urgent or ignore_hours:
        return now
    return next_allowed_time(
        now, directory.working_hours_of(team), directory.quiet_hours_of(team), directory.timezone
    )


def _alert_team(
    team: Team, case: CaseState, directory: Directory, *, now: datetime, ignore_hours: bool
) -> Plan:
    if not case.urgent and directory.delivery_of(team) == "digest":
        return _fold_new_case(team, case, directory, now=now, ignore_hours=ignore_hours)
    category = directory.category_name(case.category) if case.category else "case assigned"
    subject = f"{'URGENT ' if case.urgent else ''}New case {case.reference}: {category}"
    if case.neighbourhood:
        subject += f", {case.neighbourhood}"
    body = f"Case {case.reference} needs {team.name}.\n{_facts(case, directory)}"
    when = _when(team, directory, urgent=case.urgent, now=now, ignore_hours=ignore_hours)
    return Plan(
        notifications=tuple(
            PlannedNotification(
                key=notification_key(case_id=case.case_id, team=team.id, channel=channel, kind=NEW_CASE),
                case_id=case.case_id,
                reference=case.reference,
                team=team.id,
                channel=channel.kind,
                address=channel.address,
                kind=NEW_CASE,
                subject=subject[:200],
                body=body,
                not_before=when,
            )
            for channel in team.channels
        )
    )


def _digest_time(
    team: Team, directory: Directory, *, now: datetime, ignore_hours: bool
) -> tuple[str, datetime]:
    start, end = digest_period(now, directory.digest_minutes_of(team), directory.timezone)
    return _period_label(start), _when(
        team, directory, urgent=False, now=end + DIGEST_GRACE, ignore_hours=ignore_hours
    )


def _fold_new_case(
    team: Team, case: CaseState, directory: Directory, *, now: datetime, ignore_hours: bool
) -> Plan:
    """A team that wants digests gets the new case as a line in its digest of the period."""
    label, when = _digest_time(team, directory, now=now, ignore_hours=ignore_hours)
    link = directory.staff_case_url.format(reference=case.reference)
    category = directory.category_name(case.category) if case.category else "case assigned"
    line = (
        f"{case.reference}: {category}, {case.neighbourhood or 'triage'}, {case.priority}, "
        f"due {_local_time(case.due_at, directory)}: {link}"
    )
    digests, entries = [], []
    for channel in team.channels:
        digest_key = notification_key(
            case_id="team", team=team.id, channel=channel, kind=f"{NEW_CASES_DIGEST}@{label}"
        )
        digests.append(
            PlannedNotification(
                key=digest_key,
                case_id=None,
                reference="",
                team=team.id,
                channel=channel.kind,
                address=channel.address,
                kind=NEW_CASES_DIGEST,
                subject=f"New cases for {team.name}"[:180],
                body=f"New cases for {team.name}:\n",
                not_before=when,
            )
        )
        entries.append(
            DigestEntry(
                entry_key=notification_key(
                    case_id=case.case_id, team=team.id, channel=channel, kind=NEW_CASE
                ),
                digest_key=digest_key,
                case_id=case.case_id,
                reference=case.reference,
                team=team.id,
                channel=channel.kind,
                kind=NEW_CASE,
                line=line,
            )
        )
    return Plan(digests=tuple(digests), entries=tuple(entries))


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
    label, when = _digest_time(team, directory, now=now, ignore_hours=ignore_hours or case.urgent)
    digests, entries = [], []
    for channel in team.channels:
        digest_key = notification_key(
            case_id=case.case_id, team=team.id, channel=channel, kind=f"{REPORTS_DIGEST}@{label}"
        )
        digests.append(
            PlannedNotification(
                key=digest_key,
                case_id=case.case_id,
                reference=case.reference,
                team=team.id,
                channel=channel.kind,
                address=channel.address,
                kind=REPORTS_DIGEST,
                subject=f"More residents reported case {case.reference}",
                body=f"Case {case.reference} ({team.name}).\n{_facts(case, directory)}",
                not_before=when,
            )
        )
        entries.append(
            DigestEntry(
                entry_key=notification_key(
                    case_id=case.case_id,
                    team=team.id,
                    channel=channel,
                    kind=f"{REPORT_LINKED}:{event.report_id}",
                ),
                digest_key=digest_key,
                case_id=case.case_id,
                reference=case.reference,
                team=team.id,
                channel=channel.kind,
                kind=REPORT_LINKED,
                line=f"reports now {event.reports_count}",
            )
        )
    return Plan(digests=tuple(digests), entries=tuple(entries))


def _tell_manager(
    case: CaseState, directory: Directory, *, now: datetime, ignore_hours: bool
) -> tuple[PlannedNotification, ...]:
    manager = directory.manager_for(case.neighbourhood)
    if manager is None:
        return ()
    departments = ", ".join(case.departments)
    team = f"manager:{manager.neighbourhood}"
    when = _when(None, directory, urgent=case.urgent, now=now, ignore_hours=ignore_hours)
    return tuple(
        PlannedNotification(
            key=notification_key(case_id=case.case_id, team=team, channel=channel, kind=JOINING_UP),
            case_id=case.case_id,
            reference=case.reference,
            team=team,
            channel=channel.kind,
            address=channel.address,
            kind=JOINING_UP,
            subject=f"Joined-up case {case.reference}: {len(case.departments)} departments"[:200],
            body=f"Case {case.reference} involves {departments}.\n{_facts(case, directory)}",
            not_before=when,
        )
        for channel in manager.channels
    )
