"""Due times from response targets: working days and hours in the council's time zone, bank holidays
excluded (pure; the holidays come from the maintained `holidays` library, not a hand-written list)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import holidays

if TYPE_CHECKING:
    from caseway_shared.council import Target


@lru_cache(maxsize=8)
def _holidays(country: str, subdivision: str | None) -> holidays.HolidayBase:
    return holidays.country_holidays(country, subdiv=subdivision)


def is_working_day(day: date, *, country: str, subdivision: str | None) -> bool:
    return day.weekday() < 5 and day not in _holidays(country, subdivision)  # noqa: PLR2004 - Mon-Fri


def due_at(
    received_at: datetime, target: Target, *, timezone: str, country: str, subdivision: str | None
) -> datetime:
    """When a case received at `received_at` is due.

    Hours run around the clock (a dangerous pothole is made safe at night too). Working days count whole
    working days after the day it was received, in local time: due by the same local time on the Nth
    working day, or by the end of that day when it arrived outside a working day.
    """
    if target.hours is not None:
        return received_at + timedelta(hours=target.hours)
    assert target.working_days is not None  # noqa: S101 - the model guarantees one of the two
    zone = ZoneInfo(timezone)
    local = received_at.astimezone(zone)
    day = local.date()
    arrived_on_working_day = is_working_day(day, country=country, subdivision=subdivision)
    remaining = target.working_days
    while remaining:
        day += timedelta(days=1)
        if is_working_day(day, country=country, subdivision=subdivision):
            remaining -= 1
    clock = (
        local.timetz().replace(tzinfo=None)
        if arrived_on_working_day
        else datetime.max.time().replace(microsecond=0)
    )
    return datetime.combine(day, clock, tzinfo=zone)
