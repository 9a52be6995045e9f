"""`caseway topics`: the catalogue's topics with partitions, end offsets and consumer lag."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from caseway_ops.commands.common import connection_settings, console, run
from caseway_ops.kafka_inspect import describe_topics


def topics(
    per_partition: Annotated[bool, typer.Option("--partitions", "-p", help="One row per partition.")] = False,
) -> None:
    """Topics of the catalogue: partitions, messages (end offsets) and the consuming service's lag."""
    settings = connection_settings()
    views = run(describe_topics(settings.kafka_bootstrap_servers, settings.topic_prefix))
    table = Table(title=f"Topics on {settings.kafka_bootstrap_servers}")
    for column in ("topic", "partitions", "messages", "consumer group", "lag"):
        table.add_column(column, justify="right" if column in {"partitions", "messages", "lag"} else "left")
    for view in views:
        if view.partitions == 0:
            table.add_row(view.name, "[red]missing[/red]", "-", "-", "-")
            continue
        lag = view.total_lag
        table.add_row(
            view.name,
            str(view.partitions),
            str(view.messages),
            view.group or "-",
            "-" if lag is None else (f"[yellow]{lag}[/yellow]" if lag else "0"),
        )
        if per_partition:
            for item in view.lag or ():
                table.add_row(
                    f"  partition {item.partition}",
                    "",
                    str(item.end_offset),
                    "committed " + ("-" if item.committed is None else str(item.committed)),
                    "-" if item.lag is None else str(item.lag),
                )
    console.print(table)
