"""`caseway notifications failed|resend`: notifications that failed for good, and sending them again once
the cause is fixed (a team's address corrected, a receiver back).

A re-send puts a failed notification back to pending with a fresh retry budget, due at once; the
notifier's sender delivers it as any other (nothing for a case closed since). Each re-send is recorded as
an attempt (`requeued by <user>`), so the notification's history says who sent it again and when."""

from __future__ import annotations

import getpass
from typing import TYPE_CHECKING, Annotated

import asyncpg
import typer
from rich.markup import escape
from rich.table import Table

from caseway_ops.commands.common import connection_settings, console, errors, run

if TYPE_CHECKING:
    from collections.abc import Sequence

app = typer.Typer(
    name="notifications", help="Notifications that failed for good: list and re-send.", no_args_is_help=True
)


async def failed(database_url: str) -> list[dict[str, object]]:
    """Every notification that failed for good, newest first (no addresses: they may be secrets)."""
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT notification_key, reference, team, channel, kind, attempts, last_error, created_at"
            " FROM notifier.notifications WHERE status = 'failed' ORDER BY created_at DESC"
        )
    finally:
        await connection.close()
    return [dict(row) for row in rows]


async def resend(
    database_url: str, *, keys: Sequence[str] = (), all_failed: bool = False, requested_by: str
) -> list[str]:
    """Put failed notifications (those named, or all) back to pending, due now; returns their keys.
    A notification that is not failed (sent, pending, or re-sent already) is left as it is."""
    connection = await asyncpg.connect(database_url)
    try:
        async with connection.transaction():
            rows = await connection.fetch(
                """
                UPDATE notifier.notifications
                SET status = 'pending', failures = 0, not_before = now(), claimed_until = NULL
                WHERE status = 'failed' AND ($2 OR notification_key = ANY($1::text[]))
                RETURNING notification_key, attempts
                """,
                sorted(set(keys)),
                all_failed,
            )
            await connection.executemany(
                "INSERT INTO notifier.attempts (notification_key, attempt, outcome, error)"
                " VALUES ($1, $2, 'requeued', $3)",
                [(row["notification_key"], row["attempts"], f"requeued by {requested_by}") for row in rows],
            )
    finally:
        await connection.close()
    return sorted(row["notification_key"] for row in rows)


@app.command("failed")
def failed_() -> None:
    """Notifications that failed for good: key, case, team, channel, kind, attempts and the error."""
    rows = run(failed(connection_settings().database_url.get_secret_value()))
    table = Table(title=f"Failed notifications ({len(rows)})")
    for column in ("notification_key", "reference", "channel", "attempts", "last_error"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            *(escape(str(row[c] or "-"))[:120] for c in ("notification_key", "reference", "channel")),
            str(row["attempts"]),
            escape(str(row["last_error"] or ""))[:120],
        )
    console.print(table)


@app.command("resend")
def resend_(
    keys: Annotated[
        list[str] | None, typer.Argument(help="Notification keys to send again (see `notifications failed`).")
    ] = None,
    all_failed: Annotated[bool, typer.Option("--all", help="Every notification that failed.")] = False,
) -> None:
    """Send failed notifications again, now, with a fresh retry budget."""
    if not keys and not all_failed:
        errors.print("[bold red]error:[/bold red] name notification keys, or give --all")
        raise typer.Exit(2)
    done = run(
        resend(
            connection_settings().database_url.get_secret_value(),
            keys=keys or (),
            all_failed=all_failed,
            requested_by=getpass.getuser(),
        )
    )
    skipped = sorted(set(keys or ()) - set(done))
    console.print(f"{len(done)} notification(s) put back to be sent")
    if skipped:
        errors.print(f"[yellow]not failed (left as they are):[/yellow] {escape(', '.join(skipped))}")
