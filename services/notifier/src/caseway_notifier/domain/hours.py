"""When a team may be told: working hours, quiet hours and digest periods, in local wall time (so they
stay right across the clock changes). Pure: the clock is an argument."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from caseway_notifier.domain.directory import DAYS
from caseway_shared.events import NotificationKind

if TYPE_CHECKING:
    from caseway_notifier.domain.directory import Directory, QuietHours, Team, WorkingHours

# A digest is sent a little after its period ends, so that an entry planned in the period's last moment
# (and committed a few milliseconds later) is in it rather than in nobody's digest.
DIGEST_GRACE = timedelta(seconds=30)


def next_working_time(now: datetime, hours: WorkingHours, timezone: str) -> datetime:
    """`now` if it is within working hours, else the start of the next working period."""
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
    """The end of the quiet window `now` falls in, or None when `now` is not quiet."""
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


def send_time(
    team: Team | None, directory: Directory, *, urgent: bool, now: datetime, ignore_hours: bool
) -> datetime:
    """When an alert to `team` (None: a manager) may go: at once if urgent, else in its hours."""
    if urgent or ignore_hours:
        return now
    return next_allowed_time(
        now, directory.working_hours_of(team), directory.quiet_hours_of(team), directory.timezone
    )


def escalation_send_time(
    directory: Directory, *, urgent: bool, now: datetime, ignore_hours: bool
) -> datetime:
    """Escalations are time-critical: they wait only for the end of quiet hours (urgent cases not even
    that), not for working hours."""
    if urgent or ignore_hours:
        return now
    return outside_quiet_hours(now, directory.defaults.quiet_hours, directory.timezone)


def digest_slot(
    team: Team, directory: Directory, *, now: datetime, ignore_hours: bool
) -> tuple[str, datetime]:
    """The label of `team`'s digest period holding `now`, and when that digest goes."""
    start, end = digest_period(now, directory.digest_minutes_of(team), directory.timezone)
    label = start.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")
    return label, send_time(team, directory, urgent=False, now=end + DIGEST_GRACE, ignore_hours=ignore_hours)


def held_until(
    kind: str, team: Team | None, directory: Directory, *, urgent: bool, now: datetime, ignore_hours: bool
) -> datetime | None:
    """When a notification that is due at `now` may go after all, by the rules it was planned by, or None
    when it may go now. A sender that falls behind (a backlog, an outage's retries) reaches some
    notifications after their team's hours have ended or its quiet hours have begun: they wait again."""
    if kind == NotificationKind.ESCALATION:
        allowed = escalation_send_time(directory, urgent=urgent, now=now, ignore_hours=ignore_hours)
    else:
        allowed = send_time(team, directory, urgent=urgent, now=now, ignore_hours=ignore_hours)
    return allowed if allowed > now else None
