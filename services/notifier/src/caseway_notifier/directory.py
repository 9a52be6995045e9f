"""The team directory from configuration (`teams.toml`): teams, their channels and hours, and the
neighbourhood managers."""

from __future__ import annotations

import tomllib
from datetime import time
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from pathlib import Path

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class ChannelAddress(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["email", "sms", "webhook"]
    address: str = Field(min_length=3, max_length=500)


class WorkingHours(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    days: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri")
    start: time = time(8)
    end: time = time(18)


class QuietHours(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    start: time = time(20)
    end: time = time(8)


class Team(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    name: str
    department: str
    neighbourhoods: tuple[str, ...] = ()
    channels: tuple[ChannelAddress, ...]
    working_hours: WorkingHours | None = None
    quiet_hours: QuietHours | None = None
    delivery: Literal["each", "digest"] | None = None


class Manager(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    neighbourhood: str
    name: str
    channels: tuple[ChannelAddress, ...]


class Defaults(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    working_hours: WorkingHours = WorkingHours()
    quiet_hours: QuietHours = QuietHours()
    delivery: Literal["each", "digest"] = "each"


class Directory(BaseModel):
    """Who is alerted for what."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    staff_case_url: str
    timezone: str = "Europe/London"
    defaults: Defaults = Defaults()
    teams: tuple[Team, ...]
    managers: tuple[Manager, ...] = ()

    def teams_for(self, department: str, neighbourhood: str | None) -> tuple[Team, ...]:
        """The team(s) of `department` covering `neighbourhood`: a neighbourhood team when one exists,
        else the department's city-wide team(s)."""
        local = tuple(
            team
            for team in self.teams
            if team.department == department
            and neighbourhood is not None
            and neighbourhood in team.neighbourhoods
        )
        if local:
            return local
        return tuple(team for team in self.teams if team.department == department and not team.neighbourhoods)

    def manager_for(self, neighbourhood: str | None) -> Manager | None:
        return next((m for m in self.managers if m.neighbourhood == neighbourhood), None)

    def working_hours_of(self, team: Team) -> WorkingHours:
        return team.working_hours or self.defaults.working_hours


def load_directory(council_dir: Path) -> Directory:
    with (council_dir / "teams.toml").open("rb") as file:
        return Directory.model_validate(tomllib.load(file))
