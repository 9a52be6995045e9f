"""`caseway services up|down|status`: the three services and the loopback mail sink as local processes."""

from __future__ import annotations

import typer
from rich.table import Table

from caseway_ops.commands.common import console, run
from caseway_ops.service_processes import ProcessStatus, services_down, services_status, services_up
from caseway_ops.stack_config import StackConfig

app = typer.Typer(
    name="services", help="Run intake, router and notifier (and a mail sink) locally.", no_args_is_help=True
)


def _show(statuses: list[ProcessStatus]) -> None:
    table = Table(title="Caseway processes")
    for column in ("process", "pid", "port", "state"):
        table.add_column(column)
    for status in statuses:
        state = "[green]ready[/green]" if status.ready else f"[yellow]{status.detail}[/yellow]"
        table.add_row(status.name, str(status.pid or "-"), str(status.port), state)
    console.print(table)


@app.command()
def up() -> None:
    """Start whatever is not running (logs in deploy/.state/logs) and wait until all are ready."""
    _show(run(services_up(StackConfig.from_env())))


@app.command()
def down() -> None:
    """Stop the services and the mail sink."""
    for name, outcome in run(services_down(StackConfig.from_env())):
        console.print(f"{name}: {outcome}")


@app.command()
def status() -> None:
    """What runs, and whether it is ready."""
    _show(run(services_status(StackConfig.from_env())))
