"""`caseway tail TOPIC`: a topic's records as readable JSON, with filters."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.json import JSON
from rich.markup import escape

from caseway_ops.commands.common import connection_settings, console, run
from caseway_ops.errors import StackError
from caseway_ops.kafka_inspect import read_topic
from caseway_shared import headers as h

if TYPE_CHECKING:
    from aiokafka import ConsumerRecord


def _matches(record: ConsumerRecord[bytes, bytes], filters: dict[str, str], body: object) -> bool:
    headers = h.decode_headers(record.headers or ())
    for name, wanted in filters.items():
        value = headers.get(name)
        if value is None and isinstance(body, dict):
            found = body.get(name)
            value = None if found is None else str(found)
        if value != wanted:
            return False
    return True


def _parse_filters(raw: list[str]) -> dict[str, str]:
    filters = {}
    for item in raw:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise StackError(
                f"filter {item!r} is not NAME=VALUE (a header such as event-type, or a JSON field)"
            )
        filters[name] = value
    return filters


def tail(
    topic: Annotated[str, typer.Argument(help="Topic name, e.g. cases.v1 (the deployment prefix is added).")],
    where: Annotated[
        list[str] | None,
        typer.Option("--where", "-w", help="NAME=VALUE on a header or a top-level JSON field; repeatable."),
    ] = None,
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", "-b", help="Start at the oldest.")
    ] = False,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep waiting for new records.")] = False,
    limit: Annotated[
        int, typer.Option("--limit", "-n", help="Stop after this many records (0: no limit).")
    ] = 0,
) -> None:
    """Print a topic's records as readable JSON (headers first), filtered by header or field."""
    settings = connection_settings()
    filters = _parse_filters(where or [])
    name = topic if topic.startswith(settings.topic_prefix) else f"{settings.topic_prefix}{topic}"

    async def show() -> int:
        shown = 0
        async for record in read_topic(
            settings.kafka_bootstrap_servers, name, from_beginning=from_beginning, follow=follow
        ):
            try:
                body: Any = json.loads(record.value or b"")
            except (UnicodeDecodeError, json.JSONDecodeError):
                body = None
            if not _matches(record, filters, body):
                continue
            at = datetime.fromtimestamp(record.timestamp / 1000, tz=UTC).isoformat(timespec="milliseconds")
            key = (record.key or b"").decode(errors="replace")
            where = f"p{record.partition} @{record.offset}"
            console.print(f"[bold]{escape(record.topic)}[/bold] {where} {at} key={escape(key)}")
            console.print(JSON.from_data(h.decode_headers(record.headers or ())))
            if body is not None:
                console.print(JSON.from_data(body))
            else:
                console.print(escape(repr(record.value)))
            shown += 1
            if limit and shown >= limit:
                break
        return shown

    shown = run(show())
    if not shown and not follow:
        console.print(
            "[dim]no records" + (" match" if filters else "") + " (use --from-beginning for old ones)[/dim]"
        )
