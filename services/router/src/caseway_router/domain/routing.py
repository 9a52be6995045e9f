"""Deciding who owns a report (pure): lead department first-match, contributors match-all, priority and
due time from the category's configuration."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from caseway_router.domain.due import due_at
from caseway_shared.council import TRIAGE, Council
from caseway_shared.events import Priority

if TYPE_CHECKING:
    from datetime import datetime

    from caseway_router.domain.places import Placement
    from caseway_shared.events import ReportReceived

_WORDS = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True, slots=True)
class Route:
    """Who owns a case and by when; `flags` are reasons for a person to look (with their explanation)."""

    category: str
    family: str
    lead_department: str
    departments: tuple[str, ...]
    priority: Priority
    due_at: datetime | None
    flags: tuple[tuple[str, str], ...] = ()


def _mentions(text: str, words: tuple[str, ...]) -> bool:
    haystack = " ".join(_WORDS.findall(text.lower()))
    return any(" ".join(_WORDS.findall(word.lower())) in haystack for word in words)


def decide_route(report: ReportReceived, placement: Placement, council: Council) -> Route:
    """The lead and every contributing department of a report's case, its priority and due time.

    A report that is placed nowhere keeps its category's departments but is flagged for triage, so the
    neighbourhood team places it; a report in an unknown category is routed to triage.
    """
    category = council.categories.get(report.category) or council.categories[TRIAGE]
    text = f"{report.category_text or ''} {report.description}"
    departments = [category.lead]
    for rule in category.also:
        if rule.when_land_type and report.place.land_type not in rule.when_land_type:
            continue
        if rule.when_keywords and not _mentions(text, rule.when_keywords):
            continue
        if rule.department not in departments:
            departments.append(rule.department)
    urgent = bool(category.urgent_when) and _mentions(text, category.urgent_when)
    target = category.urgent_target if urgent and category.urgent_target else category.target
    flags: list[tuple[str, str]] = []
    if placement.triage_reason:
        flags.append(("needs-triage", placement.triage_reason))
    if placement.approximate:
        flags.append(("approximate-location", placement.approximate))
    if placement.near_boundary:
        near = ", ".join(placement.near_neighbourhoods)
        flags.append(("near-boundary", f"within {council.boundary_flag_metres:g} m of {near}"))
    if category.code == TRIAGE:
        flags.append(("needs-triage", "the report matched no category"))
    return Route(
        category=category.code,
        family=category.family,
        lead_department=category.lead,
        departments=tuple(departments),
        priority=Priority.URGENT if urgent else category.priority,
        due_at=(
            due_at(
                report.received_at,
                target,
                timezone=council.timezone,
                country=council.holidays_country,
                subdivision=council.holidays_subdivision,
            )
            if target
            else None
        ),
        flags=tuple(flags),
    )
