"""The team directory from configuration (`teams.toml`, validated; pure): teams, their channels and
hours, how they want their alerts (each, or a digest per period), the neighbourhood managers, and when
unacknowledged cases escalate. Category names come from the council's `council.toml` so messages can
name them."""

from __future__ import annotations

import tomllib
from datetime import time
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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
    """A daily window (local time) in which nothing but urgent alerts is sent; it may span midnight."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: time = time(20)
    end: time = time(8)


def _one_channel_per_kind(channels: tuple[ChannelAddress, ...]) -> tuple[ChannelAddress, ...]:
    """A notification is keyed by case, team, channel kind and kind (not by address, so that a changed
    address does not alert again): a recipient has at most one address per kind of channel."""
    kinds = [channel.kind for channel in channels]
    if len(kinds) != len(set(kinds)):
        raise ValueError("at most one channel of each kind (email, sms, webhook)")
    return channels


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
    digest_minutes: int | None = Field(default=None, ge=1, le=1440)

    _channels = field_validator("channels")(_one_channel_per_kind)


class Manager(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    neighbourhood: str
    name: str
    channels: tuple[ChannelAddress, ...]

    _channels = field_validator("channels")(_one_channel_per_kind)


class Defaults(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    working_hours: WorkingHours = WorkingHours()
    quiet_hours: QuietHours = QuietHours()
    delivery: Literal["each", "digest"] = "each"
    # As short as a minute: a team may want a burst folded into one message a minute, and the fault
    # suite's short run needs its digests sent within it.
    digest_minutes: int = Field(
        default=60,
        ge=1,
        le=1440,
        description="Length of a digest period in local minutes (1440: daily); it must divide a day.",
    )

    @model_validator(mode="after")
    def _divides_a_day(self) -> Defaults:
        if 1440 % self.digest_minutes:
            raise ValueError("digest_minutes must divide 1440 (a day)")
        return self


class Escalation(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    at_fraction: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="Escalate an unacknowledged case when this share of its time to due has passed.",
    )


class Directory(BaseModel):
    """Who is alerted for what."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    staff_case_url: str
    timezone: str = "Europe/London"
    defaults: Defaults = Defaults()
    teams: tuple[Team, ...]
    managers: tuple[Manager, ...] = ()
    escalation: Escalation = Escalation()
    category_names: dict[str, str] = Field(default_factory=dict)

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

    def team(self, team_id: str) -> Team | None:
        return next((team for team in self.teams if team.id == team_id), None)

    def working_hours_of(self, team: Team | None) -> WorkingHours:
        return (team.working_hours if team else None) or self.defaults.working_hours

    def quiet_hours_of(self, team: Team | None) -> QuietHours:
        return (team.quiet_hours if team else None) or self.defaults.quiet_hours

    def delivery_of(self, team: Team) -> Literal["each", "digest"]:
        return team.delivery or self.defaults.delivery

    def digest_minutes_of(self, team: Team | None) -> int:
        minutes = (team.digest_minutes if team else None) or self.defaults.digest_minutes
        # A period that does not divide the day would drift against local midnight: use the default.
        return minutes if 1440 % minutes == 0 else self.defaults.digest_minutes

    def category_name(self, code: str) -> str:
        return self.category_names.get(code, code)


def load_directory(council_dir: Path) -> Directory:
    """The directory in `council_dir/teams.toml`, with category names from `council.toml` if present."""
    with (council_dir / "teams.toml").open("rb") as file:
        data = tomllib.load(file)
    council = council_dir / "council.toml"
    if council.exists() and "category_names" not in data:
        with council.open("rb") as file:
            categories = tomllib.load(file).get("categories", {})
        data["category_names"] = {code: str(entry.get("name", code)) for code, entry in categories.items()}
    return Directory.model_validate(data)
