"""The council a fault run uses: a copy of the default council whose team directory (teams.toml) gives some
teams a webhook channel besides their email, puts some on digest delivery, and gives some hours that keep
them out of hours for part of the run.

Teams are chosen by their place in the directory (the first team is 1): every `webhook_every`-th team gets
a webhook; with `digest_every`, teams 1, 1 + d, 1 + 2d, ... want digests; with `hours_every`, teams
2, 2 + h, ... start work during the run (their working hours begin at `opens_at`) and teams 3, 3 + h, ...
have quiet hours inside it (`quiet_from` to `quiet_until`). Everyone else is in hours all day, every day.

Working and quiet hours are local wall-clock times of minutes, in the directory's time zone; so that a run
at any hour has the rest of a day ahead of it, the run's directory lives in the fixed-offset zone
(``Etc/GMT...``) where the run starts at about nine in the morning.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from caseway_shared.council import LIVERPOOL_DIR

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

_ALL_DAYS = '["mon", "tue", "wed", "thu", "fri", "sat", "sun"]'
_LOCAL_START_HOUR = 9


@dataclass(frozen=True, slots=True)
class TeamHours:
    """When the run's out-of-hours teams are out of hours (UTC, each on a whole minute)."""

    timezone: str
    opens_at: datetime  # late starters begin work here
    quiet_from: datetime
    quiet_until: datetime

    def local(self, moment: datetime) -> str:
        return moment.astimezone(ZoneInfo(self.timezone)).strftime("%H:%M")


def morning_zone(now: datetime) -> str:
    """A fixed-offset zone (UTC-12 to UTC+11) in which `now` is between 09:00 and 10:00."""
    offset = (_LOCAL_START_HOUR - now.astimezone(UTC).hour + 12) % 24 - 12
    return f"Etc/GMT{-offset:+d}"  # POSIX signs: Etc/GMT-5 is five hours ahead of UTC


def _next_minute(moment: datetime) -> datetime:
    whole = moment.replace(second=0, microsecond=0)
    return whole if whole == moment else whole + timedelta(minutes=1)


def plan_hours(now: datetime, *, opens_after_s: float) -> TeamHours:
    """Late starters open `opens_after_s` from `now`; the quiet window runs from half that to one and a
    half times it."""
    return TeamHours(
        timezone=morning_zone(now),
        opens_at=_next_minute(now + timedelta(seconds=opens_after_s)),
        quiet_from=_next_minute(now + timedelta(seconds=opens_after_s / 2)),
        quiet_until=_next_minute(now + timedelta(seconds=opens_after_s * 1.5)),
    )


def _defaults(text: str, *, digest_minutes: int, hours: TeamHours | None) -> str:
    if digest_minutes:
        text = re.sub(r"(?m)^digest_minutes = \d+$", f"digest_minutes = {digest_minutes}", text, count=1)
    if hours is not None:
        text = re.sub(r'(?m)^timezone = ".*"$', f'timezone = "{hours.timezone}"', text, count=1)
        text = re.sub(
            r"(?m)^working_hours = .*$",
            f'working_hours = {{ days = {_ALL_DAYS}, start = "00:00", end = "23:59" }}',
            text,
            count=1,
        )
        text = re.sub(
            r"(?m)^quiet_hours = .*$", 'quiet_hours = { start = "00:00", end = "00:00" }', text, count=1
        )
    return text


def council_for_run(
    folder: Path,
    *,
    webhook_url: Callable[[str], str],
    webhook_every: int,
    digest_every: int = 0,
    digest_minutes: int = 0,
    hours_every: int = 0,
    hours: TeamHours | None = None,
) -> Path:
    """Write the run's council into `folder` (see the module's docstring) and return it."""
    shutil.copytree(LIVERPOOL_DIR, folder, dirs_exist_ok=True)
    teams = folder / "teams.toml"
    text = _defaults(teams.read_text(encoding="utf-8"), digest_minutes=digest_minutes, hours=hours)
    lines = text.splitlines()
    out: list[str] = []
    team_id, seen = "", 0
    for line in lines:
        if line.startswith("["):  # a new table: a team's id comes next, or it is no team (a manager)
            team_id = ""
        if found := re.match(r'^id = "([^"]+)"', line):
            team_id = found.group(1)
            seen += 1
        if not (line.startswith("channels = [") and line.endswith("]") and team_id):
            out.append(line)
            continue
        if webhook_every > 0 and seen % webhook_every == 0:
            hook = f'{{ kind = "webhook", address = "{webhook_url(team_id)}" }}'
            line = f"{line[:-1].rstrip()}, {hook}]"  # noqa: PLW2901 - the line, rewritten
        out.append(line)
        if digest_every > 0 and seen % digest_every == 1 % digest_every:
            out.append('delivery = "digest"')
        if hours is not None and hours_every > 0:
            if seen % hours_every == 2 % hours_every:
                out.append(
                    f'working_hours = {{ days = {_ALL_DAYS}, start = "{hours.local(hours.opens_at)}",'
                    ' end = "23:59" }'
                )
            elif seen % hours_every == 3 % hours_every:
                out.append(
                    f'quiet_hours = {{ start = "{hours.local(hours.quiet_from)}",'
                    f' end = "{hours.local(hours.quiet_until)}" }}'
                )
    teams.write_text("\n".join(out) + "\n", encoding="utf-8")
    return folder


def move_addresses(council: Path) -> None:
    """Every team's address changes (email and webhook): a replay must still alert nobody again."""
    teams = council / "teams.toml"
    text = teams.read_text(encoding="utf-8")
    teams.write_text(text.replace("@example.org", "@moved.example.org").replace("/hook/", "/hook-moved/"))
