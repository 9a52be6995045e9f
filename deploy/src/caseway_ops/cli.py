"""`caseway`, the command line: a thin registration of one sub-app per module of caseway_ops.commands."""

from __future__ import annotations

import typer

from caseway_ops.commands import stack

app = typer.Typer(
    name="caseway",
    help="Caseway: run the local stack, look at topics, dead letters and cases, run the demo.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(stack.app, name="stack")


def main() -> None:
    app()
