"""Who may see and act on which case (pure).

Staff are named by the council's single sign-on proxy in a trusted request header. The router believes
that header only from the addresses configured as the proxy; a request from anywhere else that carries it
is refused (it is a forgery or a misconfiguration, and both must be loud). Without a configured proxy, a
development user may stand in for requests from the machine itself.

The staff directory (`staff.toml` in the council's configuration) says who is a member of which teams
(a team is a department in some neighbourhoods, or city-wide; `teams.toml`) and who manages which
neighbourhoods. A person sees and acts on a case when they manage its neighbourhood, or when one of their
teams' departments is assigned to it in a neighbourhood the team covers. Cases with no neighbourhood
(triage) are seen by the triage department's teams and by administrators.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable


@dataclass(frozen=True, slots=True)
class TeamScope:
    """A team as the router needs it: a department, and the neighbourhoods it covers (empty: all)."""

    id: str
    name: str
    department: str
    neighbourhoods: frozenset[str] = frozenset()

    def covers(self, neighbourhood: str | None) -> bool:
        return not self.neighbourhoods or (neighbourhood is not None and neighbourhood in self.neighbourhoods)


@dataclass(frozen=True, slots=True)
class StaffMember:
    id: str
    name: str
    teams: tuple[TeamScope, ...] = ()
    manages: frozenset[str] = frozenset()
    admin: bool = False

    @property
    def departments(self) -> frozenset[str]:
        return frozenset(team.department for team in self.teams)

    @property
    def role(self) -> str:
        if self.admin:
            return "administrator"
        if self.manages and self.teams:
            return "neighbourhood manager and team member"
        return "neighbourhood manager" if self.manages else "team member"

    def may_see(self, neighbourhood: str | None, departments: Iterable[str]) -> bool:
        """May this person see (and act on) a case in `neighbourhood` assigned to `departments`?"""
        if self.admin:
            return True
        if neighbourhood is not None and neighbourhood in self.manages:
            return True
        assigned = set(departments)
        return any(team.department in assigned and team.covers(neighbourhood) for team in self.teams)

    def neighbourhoods(self, every: Iterable[str]) -> list[str]:
        """The neighbourhoods whose board this person may open, in `every`'s order."""
        return [
            hood
            for hood in every
            if self.admin or hood in self.manages or any(team.covers(hood) for team in self.teams)
        ]

    def board_departments(self, neighbourhood: str) -> frozenset[str] | None:
        """On `neighbourhood`'s board: every department's cases (None) for its manager, else only the
        departments of the person's teams covering it."""
        if self.admin or neighbourhood in self.manages:
            return None
        return frozenset(team.department for team in self.teams if team.covers(neighbourhood))


@dataclass(frozen=True, slots=True)
class StaffDirectory:
    members: dict[str, StaffMember] = field(default_factory=dict)

    def get(self, staff_id: str) -> StaffMember | None:
        return self.members.get(staff_id.strip().lower())


@dataclass(frozen=True, slots=True)
class IdentityRules:
    header: str  # e.g. X-Caseway-Staff (compared case-insensitively, as HTTP does)
    trusted_proxies: tuple[str, ...]  # addresses or networks (CIDR) of the council's SSO proxy
    development_user: str | None  # used only when no proxy is configured, for loopback requests


@dataclass(frozen=True, slots=True)
class Identified:
    staff_id: str
    via: str  # "proxy" or "development"


@dataclass(frozen=True, slots=True)
class Refused:
    status: int  # 401: nobody named; 403: a header from an address that is not the proxy
    reason: str


def _in(address: str | None, networks: Iterable[str]) -> bool:
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(network, strict=False) for network in networks)


def identify(rules: IdentityRules, *, client: str | None, header_value: str | None) -> Identified | Refused:
    """Who is asking: the proxy's header from the proxy; the development user from this machine when no
    proxy is configured; otherwise refused (a header from anywhere else is refused, never ignored)."""
    from_proxy = _in(client, rules.trusted_proxies)
    if header_value is not None:
        if not from_proxy:
            return Refused(403, f"the {rules.header} header is accepted only from the sign-on proxy")
        staff_id = header_value.strip()
        if not staff_id:
            return Refused(401, "the sign-on proxy named nobody")
        return Identified(staff_id, "proxy")
    if from_proxy:
        return Refused(401, "the sign-on proxy named nobody")
    if rules.development_user and not rules.trusted_proxies and _in(client, ("127.0.0.0/8", "::1/128")):
        return Identified(rules.development_user, "development")
    return Refused(401, "sign in through the council's sign-on")
