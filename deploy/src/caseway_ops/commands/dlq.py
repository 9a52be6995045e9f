"""`caseway dlq list|replay`: what failed after its retries, and sending it back once fixed."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from caseway_ops.commands.common import connection_settings, console, errors, run
from caseway_ops.deadletters import DeadLetter, ReplayOutcome, list_dead_letters, replay

app = typer.Typer(
    name="dlq", help="Dead letters on ops.deadletter.v1: list and replay.", no_args_is_help=True
)


def _letters() -> list[DeadLetter]:
    settings = connection_settings()
    return run(
        list_dead_letters(
            settings.kafka_bootstrap_servers,
            settings.database_url.get_secret_value(),
            prefix=settings.topic_prefix,
        )
    )


@app.command("list")
def list_(
    pending: Annotated[bool, typer.Option("--pending", help="Only those not replayed yet.")] = False,
) -> None:
    """Every dead letter: where it came from, why it failed, how often it was tried, whether replayed."""
    letters = [letter for letter in _letters() if not (pending and letter.replayed_at)]
    table = Table(title=f"Dead letters ({len(letters)})")
    for column in ("offset", "when", "from", "attempts", "error", "replayed"):
        table.add_column(column)
    for letter in letters:
        origin = f"{letter.original_topic} p{letter.headers.get('original-partition', '?')}"
        origin += f" @{letter.headers.get('original-offset', '?')}"
        table.add_row(
            f"{letter.partition}:{letter.offset}",
            letter.at.strftime("%Y-%m-%d %H:%M:%S"),
            escape(origin),
            str(letter.attempts),
            escape(letter.error[:120]),
            letter.replayed_at.strftime("%Y-%m-%d %H:%M") if letter.replayed_at else "-",
        )
    console.print(table)


@app.command("replay")
def replay_(
    offsets: Annotated[
        list[str] | None, typer.Argument(help="Dead letters to replay, as PARTITION:OFFSET (see `dlq list`).")
    ] = None,
    all_pending: Annotated[bool, typer.Option("--all", help="Replay every one not replayed yet.")] = False,
) -> None:
    """Send dead letters back to their original topics, each at most once."""
    if not offsets and not all_pending:
        errors.print("[bold red]error:[/bold red] name dead letters as PARTITION:OFFSET, or give --all")
        raise typer.Exit(2)
    letters = _letters()
    if all_pending:
        chosen = [letter for letter in letters if letter.replayed_at is None]
    else:
        wanted = set(offsets or [])
        chosen = [letter for letter in letters if f"{letter.partition}:{letter.offset}" in wanted]
        missing = wanted - {f"{letter.partition}:{letter.offset}" for letter in chosen}
        if missing:
            errors.print(f"[bold red]error:[/bold red] no dead letter at {', '.join(sorted(missing))}")
            raise typer.Exit(1)
    settings = connection_settings()
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("Replaying", total=len(chosen))

        def advance(_outcome: ReplayOutcome) -> None:
            progress.advance(task)

        outcomes = run(
            replay(
                settings.kafka_bootstrap_servers,
                settings.database_url.get_secret_value(),
                chosen,
                progress=advance,
            )
        )
    for outcome in outcomes:
        mark = "[green]replayed[/green]" if outcome.replayed else "[yellow]skipped[/yellow]"
        console.print(f"{outcome.letter.partition}:{outcome.letter.offset} {mark} - {escape(outcome.reason)}")
    console.print(
        f"{sum(o.replayed for o in outcomes)} replayed, {sum(not o.replayed for o in outcomes)} skipped"
    )
