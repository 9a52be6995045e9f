"""The staff directory from the council's configuration: `staff.toml` (people) over `teams.toml` (teams:
a department in some neighbourhoods). A council folder without `staff.toml` has no staff: every staff
page then refuses everyone, which is the safe default."""

from __future__ import annotations

import tomllib
from typing import TYPE_CHECKING, Any

from caseway_router.domain.access import StaffDirectory, StaffMember, TeamScope

if TYPE_CHECKING:
    from pathlib import Path


def load_teams(directory: Path) -> dict[str, TeamScope]:
    path = directory / "teams.toml"
    if not path.exists():
        return {}
    with path.open("rb") as file:
        raw = tomllib.load(file)
    return {
        team["id"]: TeamScope(
            id=team["id"],
            name=team.get("name", team["id"]),
            department=team["department"],
            neighbourhoods=frozenset(team.get("neighbourhoods", ())),
        )
        for team in raw.get("teams", [])
    }


def load_staff_directory(directory: Path, *, neighbourhoods: set[str]) -> StaffDirectory:
    """Read `staff.toml`; every problem (an unknown team or neighbourhood, a repeated id) is named at once."""
    path = directory / "staff.toml"
    if not path.exists():
        return StaffDirectory()
    with path.open("rb") as file:
        raw: dict[str, Any] = tomllib.load(file)
    teams = load_teams(directory)
    problems: list[str] = []
    members: dict[str, StaffMember] = {}
    for person in raw.get("staff", []):
        staff_id = str(person.get("id", "")).strip().lower()
        if not staff_id:
            problems.append("a person without an id")
            continue
        if staff_id in members:
            problems.append(f"{staff_id!r} is listed twice")
        problems.extend(
            f"{staff_id!r}: unknown team {team!r}" for team in person.get("teams", []) if team not in teams
        )
        problems.extend(
            f"{staff_id!r}: unknown neighbourhood {hood!r}"
            for hood in person.get("manages", [])
            if hood not in neighbourhoods
        )
        members[staff_id] = StaffMember(
            id=staff_id,
            name=str(person.get("name", staff_id)),
            teams=tuple(teams[team] for team in person.get("teams", []) if team in teams),
            manages=frozenset(person.get("manages", [])),
            admin=bool(person.get("admin", False)),
        )
    if problems:
        raise ValueError(f"{path}: " + "; ".join(problems))
    return StaffDirectory(members)
