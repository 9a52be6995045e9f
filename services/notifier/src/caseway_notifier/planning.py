"""Deciding who is told what, and when (pure: no I/O, the clock is an argument).

Every planned notification has a key unique per (case, team, channel, kind), so planning the same event
twice, or a CaseOpened and the CaseAssigned events that follow it, yields the same keys: the store
records each key once and the sender sends each once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from caseway_notifier.directory import DAYS, ChannelAddress, Directory, Team, WorkingHours
from caseway_shared.events import CaseAssigned, CaseOpened

if TYPE_CHECKING:
    from uuid import UUID

    from caseway_shared.events import CaseEvent

NEW_CASE = "new-case"
JOINING_UP = "joining-up"


@dataclass(frozen=True, slots=True)
class PlannedNotification:
    key: str
    case_id: UUID
    reference: str
    team: str
    channel: str
    address: str
    kind: str
    subject: str
    body: str
    not_before: datetime


def notification_key(*, case_id: UUID, team: str, channel: ChannelAddress, kind: str) -> str:
    return f"{case_id}|{team}|{channel.kind}:{channel.address}|{kind}"


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


def plan_notifications(
    event: CaseEvent, directory: Directory, *, now: datetime, ignore_hours: bool = False
) -> list[PlannedNotification]:
    """The notifications `event` calls for."""
    if isinstance(event, CaseOpened):
        planned = [
            planned
            for department in event.departments
            for team in directory.teams_for(department, event.neighbourhood)
            for planned in _alert_team(
                team, event, event.priority, directory, now=now, ignore_hours=ignore_hours
            )
        ]
        if len(event.departments) > 1:
            planned.extend(_tell_manager(event, directory, now=now))
        return planned
    if isinstance(event, CaseAssigned):
        # Usually already planned from CaseOpened (same keys); this covers a later assignment.
        return [
            planned
            for team in directory.teams_for(event.department, event.neighbourhood)
            for planned in _alert_team(team, event, "normal", directory, now=now, ignore_hours=ignore_hours)
        ]
    return []


def _alert_team(
    team: Team,
    event: CaseOpened | CaseAssigned,
    priority: str,
    directory: Directory,
    *,
    now: datetime,
    ignore_hours: bool,
) -> list[PlannedNotification]:
    urgent = priority == "urgent"
    when = (
        now
        if urgent or ignore_hours
        else next_working_time(now, directory.working_hours_of(team), directory.timezone)
    )
    link = directory.staff_case_url.format(reference=event.reference)
    summary = event.summary if isinstance(event, CaseOpened) else f"assigned to {team.name}"
    subject = f"{'URGENT ' if urgent else ''}New case {event.reference}: {summary}"[:200]
    body = f"Case {event.reference} needs {team.name}.\n{summary}\nOpen the case: {link}\n"
    return [
        PlannedNotification(
            key=notification_key(case_id=event.case_id, team=team.id, channel=channel, kind=NEW_CASE),
            case_id=event.case_id,
            reference=event.reference,
            team=team.id,
            channel=channel.kind,
            address=channel.address,
            kind=NEW_CASE,
            subject=subject,
            body=body,
            not_before=when,
        )
        for channel in team.channels
    ]


def _tell_manager(event: CaseOpened, directory: Directory, *, now: datetime) -> list[PlannedNotification]:
    manager = directory.manager_for(event.neighbourhood)
    if manager is None:
        return []
    link = directory.staff_case_url.format(reference=event.reference)
    departments = ", ".join(event.departments)
    team = f"manager:{manager.neighbourhood}"
    return [
        PlannedNotification(
            key=notification_key(case_id=event.case_id, team=team, channel=channel, kind=JOINING_UP),
            case_id=event.case_id,
            reference=event.reference,
            team=team,
            channel=channel.kind,
            address=channel.address,
            kind=JOINING_UP,
            subject=f"Joined-up case {event.reference}: {len(event.departments)} departments"[:200],
            body=f"Case {event.reference} involves {departments}.\n{event.summary}\nOpen the case: {link}\n",
            not_before=now,
        )
        for channel in manager.channels
    ]
