"""A case's whole story from PostgreSQL, for `caseway case show`: the case, its reports, assignments,
history and notifications. Residents' contact details are not part of it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import asyncpg

from caseway_ops.errors import StackError

_UUID = re.compile(r"^[0-9a-fA-F-]{36}$")


@dataclass(frozen=True, slots=True)
class CaseStory:
    case: dict[str, Any]
    reports: list[dict[str, Any]]
    assignments: list[dict[str, Any]]
    history: list[dict[str, Any]]
    notifications: list[dict[str, Any]]


async def load_case(database_url: str, case: str) -> CaseStory:
    """The case with id or reference `case`; StackError when there is none."""
    connection = await asyncpg.connect(database_url)
    try:
        column = "case_id" if _UUID.match(case) else "reference"
        row = await connection.fetchrow(f"SELECT * FROM router.cases WHERE {column}::text = $1", case)
        if row is None:
            raise StackError(f"no case {case!r} (give a case id or a reference such as LV-2026-000001)")
        case_id = row["case_id"]
        reports = await connection.fetch(
            "SELECT report_id, source_system, source_id, received_at, category, link_score"
            " FROM router.reports WHERE case_id = $1 ORDER BY received_at",
            case_id,
        )
        assignments = await connection.fetch(
            "SELECT department, role, assigned_at FROM router.assignments WHERE case_id = $1"
            " ORDER BY role DESC, department",
            case_id,
        )
        history = await connection.fetch(
            "SELECT at, actor, action, detail FROM router.case_history WHERE case_id = $1 ORDER BY id",
            case_id,
        )
        notifications = await connection.fetch(
            "SELECT team, channel, kind, status, attempts, sent_at, last_error FROM notifier.notifications"
            " WHERE case_id = $1 ORDER BY created_at, team",
            case_id,
        )
    finally:
        await connection.close()
    return CaseStory(
        case=dict(row),
        reports=[dict(r) for r in reports],
        assignments=[dict(r) for r in assignments],
        history=[dict(r) for r in history],
        notifications=[dict(r) for r in notifications],
    )
