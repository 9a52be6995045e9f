"""`caseway case show ID`: one case's full story from PostgreSQL."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from caseway_ops.case_history import load_case
from caseway_ops.commands.common import connection_settings, console, run

app = typer.Typer(name="case", help="Cases in PostgreSQL.", no_args_is_help=True)


def _table(title: str, rows: list[dict[str, object]], columns: tuple[str, ...]) -> Table:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(escape("-" if row.get(c) is None else str(row.get(c))) for c in columns))
    return table


@app.command()
def show(case: Annotated[str, typer.Argument(help="A case id or reference, e.g. LV-2026-000001.")]) -> None:
    """The case, its reports, departments, every change in its history, and its notifications."""
    story = run(load_case(connection_settings().database_url.get_secret_value(), case))
    c = story.case
    console.print(f"[bold]{escape(str(c['reference']))}[/bold]  {escape(str(c['summary']))}")
    console.print(
        f"status {c['status']} | priority {c['priority']} | category {c['category']} | "
        f"neighbourhood {c['neighbourhood'] or '-'} | ward {c['ward_code'] or '-'} | "
        f"due {c['due_at'] or '-'} | reports {c['reports_count']} | flags {', '.join(c['flags']) or '-'}"
    )
    console.print(_table("Departments", story.assignments, ("department", "role", "assigned_at")))
    console.print(
        _table(
            "Reports", story.reports, ("report_id", "source_system", "source_id", "received_at", "link_score")
        )
    )
    history = [
        {
            **entry,
            "detail": json.dumps(json.loads(entry["detail"]))
            if isinstance(entry["detail"], str)
            else entry["detail"],
        }
        for entry in story.history
    ]
    console.print(_table("History", history, ("at", "actor", "action", "detail")))
    console.print(
        _table(
            "Notifications", story.notifications, ("team", "channel", "kind", "status", "attempts", "sent_at")
        )
    )
