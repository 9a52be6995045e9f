"""Creating the catalogue's topics on a broker: idempotent, and done only when every partition has a
leader (so the first producer does not meet UNKNOWN_TOPIC_OR_PARTITION)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import for_code

from caseway_ops.errors import StackError
from caseway_shared.topics import CATALOGUE

if TYPE_CHECKING:
    from collections.abc import Iterable

    from caseway_shared.topics import TopicSpec

_TOPIC_ALREADY_EXISTS = 36
LEADERS_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class TopicsReport:
    """What `create_topics` found: names created now, names already there, and existing topics whose
    partition count differs from the catalogue's (left as they are; changing it would move keys)."""

    created: tuple[str, ...]
    existing: tuple[str, ...]
    partition_mismatches: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted((*self.created, *self.existing)))


def _partitions_by_topic(described: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    return {t["topic"]: t["partitions"] for t in described if t["error_code"] == 0}


async def create_topics(
    bootstrap_servers: str,
    prefix: str = "",
    *,
    replication_factor: int = 1,
    catalogue: Iterable[TopicSpec] = CATALOGUE,
) -> TopicsReport:
    """Create every topic of the catalogue (named ``prefix + base name``) that does not exist yet, with
    the catalogue's partition count, and wait until each partition has a leader."""
    specs = {spec.full_name(prefix): spec for spec in catalogue}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="caseway-stack")
    try:
        await admin.start()
        present = set(await admin.list_topics())
        missing = [name for name in specs if name not in present]
        created: list[str] = []
        if missing:
            new = [NewTopic(name, specs[name].partitions, replication_factor) for name in missing]
            response = (await admin.create_topics(new, timeout_ms=30_000)).to_object()
            failures = []
            for entry in response["topic_errors"]:
                code = entry["error_code"]
                if code == 0:
                    created.append(entry["topic"])
                elif code != _TOPIC_ALREADY_EXISTS:  # created meanwhile by someone else: fine
                    message = entry.get("error_message") or for_code(code).__name__
                    failures.append(f"{entry['topic']}: {message}")
            if failures:
                raise StackError("could not create topics: " + "; ".join(failures))
        partitions = await _wait_for_leaders(admin, list(specs))
    finally:
        await admin.close()
    mismatches = tuple(
        f"{name} has {len(partitions[name])} partitions, the catalogue says {spec.partitions}"
        for name, spec in specs.items()
        if len(partitions[name]) != spec.partitions
    )
    existing = tuple(sorted(name for name in specs if name not in created))
    return TopicsReport(tuple(sorted(created)), existing, mismatches)


async def _wait_for_leaders(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, list[dict[str, Any]]]:
    deadline = time.monotonic() + LEADERS_TIMEOUT
    while True:
        partitions = _partitions_by_topic(await admin.describe_topics(names))
        waiting = [
            name
            for name in names
            if name not in partitions
            or not partitions[name]
            or any(p["leader"] < 0 or p["error_code"] != 0 for p in partitions[name])
        ]
        if not waiting:
            return partitions
        if time.monotonic() > deadline:
            raise StackError(f"topics without a leader after {LEADERS_TIMEOUT:.0f} s: {', '.join(waiting)}")
        await asyncio.sleep(0.1)


async def existing_topics(bootstrap_servers: str, prefix: str = "") -> tuple[str, ...]:
    """Which of the catalogue's topics (with ``prefix``) exist on the broker."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="caseway-stack")
    try:
        await admin.start()
        present = set(await admin.list_topics())
    finally:
        await admin.close()
    return tuple(sorted(spec.full_name(prefix) for spec in CATALOGUE if spec.full_name(prefix) in present))


async def delete_topics(bootstrap_servers: str, prefix: str) -> tuple[str, ...]:
    """Delete the catalogue's topics under ``prefix`` (a test run's own; the unprefixed ones never),
    returning the names deleted. Tests should call it when done: every partition left behind makes
    the broker's next start slower."""
    if not prefix:
        raise StackError("delete_topics needs a prefix: it never deletes the unprefixed catalogue topics")
    names = list(await existing_topics(bootstrap_servers, prefix))
    if not names:
        return ()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="caseway-stack")
    try:
        await admin.start()
        await admin.delete_topics(names, timeout_ms=30_000)
    finally:
        await admin.close()
    return tuple(names)
