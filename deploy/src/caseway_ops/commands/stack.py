"""`caseway stack up|down|status`: the local Kafka + PostgreSQL stack, without Docker."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from caseway_ops.database import redact
from caseway_ops.errors import StackError
from caseway_ops.stack import StackConfig, ensure_stack, stack_status, stop_stack

if TYPE_CHECKING:
    from collections.abc import Coroutine
    from typing import Any

    from caseway_ops.steps import StepTiming

T = TypeVar("T")

app = typer.Typer(
    name="stack",
    help="The local stack without Docker: Apache Kafka (KRaft, from Maven Central) and PostgreSQL.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

console = Console(highlight=False, soft_wrap=True)
errors = Console(stderr=True, highlight=False, soft_wrap=True)


def _print_step(timing: StepTiming) -> None:
    console.print(f"  {timing.seconds:7.2f} s  {escape(timing.name):<26} [dim]{escape(timing.detail)}[/dim]")


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a stack coroutine; the failures a person can act on become one red line, not a traceback."""
    # aiokafka logs every refused connection while the broker starts; readiness is reported by us.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        return asyncio.run(coroutine)
    except StackError as exc:
        errors.print(f"[bold red]error:[/bold red] {escape(str(exc))}")
        raise typer.Exit(1) from None
    except PermissionError as exc:
        errors.print(f"[bold red]error:[/bold red] permission denied: {escape(str(exc))}")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        errors.print("[yellow]interrupted[/yellow]")
        raise typer.Exit(130) from None


@app.command()
def up(
    topic_prefix: Annotated[
        str, typer.Option("--topic-prefix", help="Create the catalogue's topics under this prefix.")
    ] = "",
    *,
    migrate: Annotated[
        bool, typer.Option(help="Apply the database migrations (alembic upgrade head).")
    ] = True,
    single_broker: Annotated[
        bool,
        typer.Option(
            "--single-broker",
            help="An external cluster meant to have one broker: accept replication factor 1 "
            "(CASEWAY_KAFKA_SINGLE_BROKER=true).",
        ),
    ] = False,
    replication_factor: Annotated[
        int | None,
        typer.Option(
            "--replication-factor",
            min=1,
            help="Replication factor of topics created on an external cluster (default 3, or the "
            "cluster's broker count when smaller; CASEWAY_KAFKA_REPLICATION_FACTOR).",
        ),
    ] = None,
) -> None:
    """Start what is missing, wait until Kafka and PostgreSQL truly answer, create topics, migrate."""
    console.print("[bold]caseway stack up[/bold]")
    try:
        config = StackConfig.from_env()
    except StackError as exc:
        errors.print(f"[bold red]error:[/bold red] {escape(str(exc))}")
        raise typer.Exit(1) from None
    if single_broker:
        config = dataclasses.replace(config, kafka_single_broker=True)
    if replication_factor is not None:
        config = dataclasses.replace(config, topic_replication_factor=replication_factor)
    info = _run(
        ensure_stack(topic_prefix=topic_prefix, config=config, migrate_database=migrate, reporter=_print_step)
    )
    started = f"started {' and '.join(info.started)}" if info.started else "nothing to start"
    console.print(f"[bold green]ready[/bold green] in {info.elapsed_seconds:.2f} s ({started})")
    database_url = info.database_url if info.postgres_managed else redact(info.database_url)
    console.print(f"  KAFKA_BOOTSTRAP_SERVERS={info.bootstrap_servers}")
    console.print(f"  DATABASE_URL={database_url}")


@app.command()
def down() -> None:
    """Stop the Kafka broker and PostgreSQL server that `up` started (external servers are left alone)."""
    console.print("[bold]caseway stack down[/bold]")
    began = time.monotonic()
    _run(stop_stack(reporter=_print_step))
    console.print(f"[bold]stopped[/bold] in {time.monotonic() - began:.2f} s")


def _shorten(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@app.command()
def status() -> None:
    """Show what runs, pids, addresses and readiness; exits 1 unless everything is ready."""
    result = _run(stack_status())
    for c in result.components:
        state = "[green]ready[/green]" if c.ready else "[red]not ready[/red]"
        pid = f"pid {c.pid}" if c.pid is not None else "no pid"
        origin = "managed by this stack" if c.managed else "external"
        console.print(f"[bold]{c.name:<9}[/bold] {state}  {pid}  {escape(c.address)}  ({origin})")
        console.print(f"          {escape(c.detail)}")
        if c.log is not None:
            console.print(f"          log: {escape(_shorten(c.log))}")
    if result.topics is not None:
        console.print(
            f"topics    {len(result.topics)} of the catalogue's (no prefix): {', '.join(result.topics)}"
        )
    if result.revision is not None or any(c.name == "postgres" and c.ready for c in result.components):
        console.print(f"database  at revision {result.revision or 'none (not migrated)'}")
    if not result.ready:
        raise typer.Exit(1)
