"""What every `caseway` command shares: consoles, the connection settings, and running a coroutine with
the failures a person can act on shown as one red line instead of a traceback."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, TypeVar

import asyncpg
import typer
from rich.console import Console
from rich.markup import escape

from caseway_ops.errors import StackError
from caseway_shared.settings import ServiceSettings

if TYPE_CHECKING:
    from collections.abc import Coroutine
    from typing import Any

T = TypeVar("T")

console = Console(highlight=False, soft_wrap=True)
errors = Console(stderr=True, highlight=False, soft_wrap=True)


def connection_settings() -> ServiceSettings:
    """KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL and CASEWAY_TOPIC_PREFIX, as the services read them."""
    return ServiceSettings()


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    # aiokafka logs every refused connection itself; the command says it once, clearly.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        return asyncio.run(coroutine)
    except StackError as exc:
        errors.print(f"[bold red]error:[/bold red] {escape(str(exc))}")
        raise typer.Exit(1) from None
    except asyncpg.PostgresError as exc:
        errors.print(
            f"[bold red]error:[/bold red] database: {escape(str(exc))} (has `caseway stack up` run?)"
        )
        raise typer.Exit(1) from None
    except (OSError, ConnectionError) as exc:
        errors.print(f"[bold red]error:[/bold red] cannot connect: {escape(str(exc))}")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        errors.print("[yellow]interrupted[/yellow]")
        raise typer.Exit(130) from None
