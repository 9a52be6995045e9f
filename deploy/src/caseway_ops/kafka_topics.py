"""Creating the catalogue's topics on a broker: idempotent, and done only when every partition has a
leader (so the first producer does not meet UNKNOWN_TOPIC_OR_PARTITION).

Each topic is created with the catalogue's settings (retention, clean-up policy, ``min.insync.replicas``).
With ``production=True`` (what `caseway stack up` uses against an external cluster) the replication factor
is 3 wherever the cluster has three brokers, and replication factor 1 is refused unless the caller says
the cluster has one broker (``single_broker``): one copy of residents' reports is one disk away from loss.
Secured clusters: ``client_options`` are aiokafka's security arguments
(`caseway_shared.kafka.security_options`).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import for_code

from caseway_ops.errors import StackError
from caseway_shared.topics import CATALOGUE, PRODUCTION_REPLICATION_FACTOR

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

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
    replication_factor: int = 1
    replication_mismatches: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted((*self.created, *self.existing)))


def _partitions_by_topic(described: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    return {t["topic"]: t["partitions"] for t in described if t["error_code"] == 0}


def plan_replication(brokers: int, *, requested: int | None = None, single_broker: bool = False) -> int:
    """The replication factor for production topics on a cluster of ``brokers``: ``requested``, else 3, or
    as many as the cluster has when fewer. Raises `StackError` for a factor the cluster cannot hold, and for
    a factor of 1 unless ``single_broker`` says the cluster is meant to have one broker."""
    factor = requested if requested is not None else min(PRODUCTION_REPLICATION_FACTOR, max(brokers, 1))
    if factor < 1:
        raise StackError(f"replication factor {factor}: it must be at least 1")
    if factor > brokers:
        raise StackError(f"replication factor {factor} needs {factor} brokers; the cluster has {brokers}")
    if factor == 1 and not single_broker:
        raise StackError(
            f"refusing to create production topics with replication factor 1 (the cluster has {brokers} "
            "broker(s)): one broker lost would lose reports. Add brokers, or, for a cluster that is meant "
            "to have one broker, say so with `caseway stack up --single-broker` "
            "(CASEWAY_KAFKA_SINGLE_BROKER=true)."
        )
    return factor


async def create_topics(
    bootstrap_servers: str,
    prefix: str = "",
    *,
    replication_factor: int | None = 1,
    production: bool = False,
    single_broker: bool = False,
    catalogue: Iterable[TopicSpec] = CATALOGUE,
    client_options: Mapping[str, Any] | None = None,
) -> TopicsReport:
    """Create every topic of the catalogue (named ``prefix + base name``) that does not exist yet, with
    the catalogue's partition count and settings, and wait until each partition has a leader.

    ``production`` plans the replication factor from the cluster (see `plan_replication`;
    ``replication_factor`` is then a request, None for the default); otherwise ``replication_factor``
    (1 unless given) is used as it is, as the local one-node stack and the tests do."""
    specs = {spec.full_name(prefix): spec for spec in catalogue}
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers, client_id="caseway-stack", **dict(client_options or {})
    )
    try:
        await admin.start()
        if production:
            brokers = len((await admin.describe_cluster()).get("brokers", []))
            factor = plan_replication(brokers, requested=replication_factor, single_broker=single_broker)
        else:
            factor = replication_factor or 1
        present = set(await admin.list_topics())
        missing = [name for name in specs if name not in present]
        created: list[str] = []
        if missing:
            new = [
                NewTopic(name, specs[name].partitions, factor, topic_configs=specs[name].configs(factor))
                for name in missing
            ]
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
    replication = tuple(
        f"{name} has replication factor {len(partitions[name][0]['replicas'])}, the plan says {factor}"
        for name in existing
        if partitions[name] and len(partitions[name][0]["replicas"]) != factor
    )
    return TopicsReport(tuple(sorted(created)), existing, mismatches, factor, replication)


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


async def existing_topics(
    bootstrap_servers: str, prefix: str = "", *, client_options: Mapping[str, Any] | None = None
) -> tuple[str, ...]:
    """Which of the catalogue's topics (with ``prefix``) exist on the broker."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers, client_id="caseway-stack", **dict(client_options or {})
    )
    try:
        await admin.start()
        present = set(await admin.list_topics())
    finally:
        await admin.close()
    return tuple(sorted(spec.full_name(prefix) for spec in CATALOGUE if spec.full_name(prefix) in present))


async def delete_topics(
    bootstrap_servers: str,
    prefix: str,
    *,
    catalogue_only: bool = True,
    client_options: Mapping[str, Any] | None = None,
) -> tuple[str, ...]:
    """Delete the catalogue's topics under ``prefix`` (a test run's own; the unprefixed ones never),
    returning the names deleted sorted. Tests should call it when done: every partition left behind
    makes the broker's next start slower, and a load test's runs fill the disk with gigabytes.

    ``catalogue_only=False`` deletes every topic whose name starts with ``prefix``, also those a run
    made beyond the catalogue (the benchmark's raw chain)."""
    if not prefix:
        raise StackError("delete_topics needs a prefix: it never deletes the unprefixed catalogue topics")
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers, client_id="caseway-stack", **dict(client_options or {})
    )
    try:
        await admin.start()
        present = set(await admin.list_topics())
        if catalogue_only:
            names = sorted(spec.full_name(prefix) for spec in CATALOGUE if spec.full_name(prefix) in present)
        else:
            names = sorted(name for name in present if name.startswith(prefix))
        if names:
            await admin.delete_topics(names, timeout_ms=30_000)
    finally:
        await admin.close()
    return tuple(names)
