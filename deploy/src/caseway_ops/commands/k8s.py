"""`caseway k8s`: print, write or check the Strimzi KafkaTopic / KafkaUser files of deploy/k8s/base."""

from __future__ import annotations

from typing import Annotated

import typer

from caseway_ops import k8s as generated
from caseway_ops.commands.common import console, errors


def k8s(
    write: Annotated[
        bool, typer.Option("--write", help="Write deploy/k8s/base/kafka-topics.yaml and kafka-users.yaml.")
    ] = False,
    check: Annotated[
        bool, typer.Option("--check", help="Fail if the committed files differ from the catalogue.")
    ] = False,
) -> None:
    """The Strimzi KafkaTopic and KafkaUser resources, generated from the topic catalogue and ACCESS."""
    if write:
        for path in generated.write():
            console.print(f"wrote {path}")
    elif check:
        stale = generated.stale_files()
        if stale:
            errors.print(
                f"[bold red]stale:[/bold red] deploy/k8s/base/{', '.join(stale)} differ from the catalogue; "
                "run `caseway k8s --write`"
            )
            raise typer.Exit(1)
        console.print("deploy/k8s/base's KafkaTopic and KafkaUser files match the catalogue")
    else:
        for name, text in generated.render().items():
            console.print(f"# {name}", markup=False, highlight=False)
            console.print(text, markup=False, highlight=False, end="")
