"""What each notification says. Pure.

Message text carries only what staff need to find the case: its reference, category name, neighbourhood
and ward code, priority, due time and the staff link. Nothing a resident wrote is ever copied into a
message, so nothing a resident wrote can become a live link in a mail client or chat tool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from caseway_shared.events import NotificationKind

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from caseway_notifier.domain.cases import CaseState
    from caseway_notifier.domain.directory import Directory, Team


@dataclass(frozen=True, slots=True)
class Text:
    subject: str
    body: str


def local_time(moment: datetime | None, directory: Directory) -> str:
    if moment is None:
        return "no target"
    return moment.astimezone(ZoneInfo(directory.timezone)).strftime("%a %d %b %Y %H:%M")


def _category(case: CaseState, directory: Directory, *, unknown: str) -> str:
    return directory.category_name(case.category) if case.category else unknown


def facts(case: CaseState, directory: Directory) -> str:
    """The case's facts for staff, one per line; nothing here was written by a resident."""
    place = case.neighbourhood or "no neighbourhood (triage)"
    if case.ward_code:
        place = f"{place}, ward {case.ward_code}"
    return (
        f"Category: {_category(case, directory, unknown='see the case')}\n"
        f"Where: {place}\n"
        f"Priority: {case.priority}\n"
        f"Due: {local_time(case.due_at, directory)}\n"
        f"Open the case: {directory.staff_case_url.format(reference=case.reference)}\n"
    )


def new_case(case: CaseState, team: Team, directory: Directory) -> Text:
    subject = f"{'URGENT ' if case.urgent else ''}New case {case.reference}: "
    subject += _category(case, directory, unknown="case assigned")
    if case.neighbourhood:
        subject += f", {case.neighbourhood}"
    return Text(subject[:200], f"Case {case.reference} needs {team.name}.\n{facts(case, directory)}")


def joining_up(case: CaseState, directory: Directory) -> Text:
    return Text(
        f"Joined-up case {case.reference}: {len(case.departments)} departments"[:200],
        f"Case {case.reference} involves {', '.join(case.departments)}.\n{facts(case, directory)}",
    )


def escalation(case: CaseState, directory: Directory) -> Text:
    return Text(
        f"Escalation: case {case.reference} due {local_time(case.due_at, directory)}, not acknowledged"[:200],
        f"Case {case.reference} is near its due time and no team has acknowledged it.\n"
        f"{facts(case, directory)}",
    )


def new_cases_digest(team: Team) -> Text:
    """The head of a team's digest of new cases; its lines are added when it is sent."""
    return Text(f"New cases for {team.name}"[:180], f"New cases for {team.name}:\n")


def new_case_line(case: CaseState, directory: Directory) -> str:
    link = directory.staff_case_url.format(reference=case.reference)
    return (
        f"{case.reference}: {_category(case, directory, unknown='case assigned')}, "
        f"{case.neighbourhood or 'triage'}, {case.priority}, due {local_time(case.due_at, directory)}: {link}"
    )


def reports_digest(case: CaseState, team: Team, directory: Directory) -> Text:
    return Text(
        f"More residents reported case {case.reference}",
        f"Case {case.reference} ({team.name}).\n{facts(case, directory)}",
    )


def linked_report_line(reports_count: int) -> str:
    return f"reports now {reports_count}"


def compose_digest(kind: str, subject: str, body: str, lines: Sequence[str]) -> tuple[str, str]:
    """A digest's final subject and body, from its stored head and the lines of its entries."""
    count = len(lines)
    if kind == NotificationKind.REPORTS_DIGEST:
        residents = "resident" if count == 1 else "residents"
        return f"{subject}: {count} more", f"{count} more {residents} reported this.\n{body}"
    return f"{subject}: {count}", body + "".join(f"- {line}\n" for line in lines)
