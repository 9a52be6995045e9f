"""`caseway`, the command line: a thin registration of one sub-app per module of caseway_ops.commands."""

from __future__ import annotations

import typer

from caseway_ops.commands import asyncapi, case, demo, dlq, k8s, notifications, services, stack, tail, topics
from caseway_ops.loadtest import commands as loadtest

app = typer.Typer(
    name="caseway",
    help="Caseway: run the local stack, look at topics, dead letters and cases, run the demo.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(stack.app, name="stack")
app.add_typer(services.app, name="services")
app.add_typer(dlq.app, name="dlq")
app.add_typer(case.app, name="case")
app.add_typer(notifications.app, name="notifications")
app.command()(topics.topics)
app.command()(tail.tail)
app.command()(demo.demo)
app.command()(asyncapi.asyncapi)
app.command()(k8s.k8s)
app.command()(loadtest.bench)
app.command()(loadtest.faults)
app.command()(loadtest.fuzz)


def main() -> None:
    app()
