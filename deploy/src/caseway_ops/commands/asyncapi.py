"""`caseway asyncapi`: print, write or check the AsyncAPI document generated from the code."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from caseway_ops.commands.common import console, errors
from caseway_shared.asyncapi import render_asyncapi

STORED = Path(__file__).resolve().parents[4] / "shared" / "asyncapi.json"


def asyncapi(
    write: Annotated[bool, typer.Option("--write", help="Store it as shared/asyncapi.json.")] = False,
    check: Annotated[bool, typer.Option("--check", help="Fail if shared/asyncapi.json is stale.")] = False,
) -> None:
    """The AsyncAPI 3.0 document of every topic, message and header."""
    document = render_asyncapi()
    if write:
        STORED.write_text(document)
        console.print(f"wrote {STORED}")
    elif check:
        if not STORED.is_file() or STORED.read_text() != document:
            errors.print(
                f"[bold red]stale:[/bold red] {STORED} differs from the code; run `caseway asyncapi --write`"
            )
            raise typer.Exit(1)
        console.print("shared/asyncapi.json matches the code")
    else:
        console.print(document, markup=False, highlight=False, end="")
