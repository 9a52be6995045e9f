"""What operators ask of the broker: topics with partitions and end offsets, and each consumer group's
lag per partition; and reading a topic's records."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from caseway_ops.errors import StackError
from caseway_shared.topics import CATALOGUE

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from aiokafka import ConsumerRecord

# Which service's consumer group reads each topic (the others are read by operators and upstream).
SERVICE_GROUPS = {
    "contact-centre.reports.v1": "intake",
    "reports.received.v1": "router",
    "cases.v1": "notifier",
}


@dataclass(frozen=True, slots=True)
class PartitionLag:
    partition: int
    end_offset: int
    committed: int | None

    @property
    def lag(self) -> int | None:
        return None if self.committed is None else max(self.end_offset - self.committed, 0)


@dataclass(frozen=True, slots=True)
class TopicView:
    name: str
    partitions: int
    end_offsets: dict[int, int]
    group: str | None
    lag: tuple[PartitionLag, ...]

    @property
    def messages(self) -> int:
        return sum(self.end_offsets.values())

    @property
    def total_lag(self) -> int | None:
        known = [p.lag for p in self.lag if p.lag is not None]
        return sum(known) if known else None


async def _admin(bootstrap: str) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        await admin.start()
    except Exception as error:
        await admin.close()
        raise StackError(f"Kafka is not reachable at {bootstrap}: {type(error).__name__}") from error
    return admin


async def describe_topics(bootstrap: str, prefix: str = "") -> list[TopicView]:
    """Every catalogue topic (with `prefix`): partitions, end offsets, and the lag of the service that
    consumes it."""
    admin = await _admin(bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        await consumer.start()
        existing = set(await admin.list_topics())
        views = []
        for spec in CATALOGUE:
            name = spec.full_name(prefix)
            if name not in existing:
                views.append(TopicView(name, 0, {}, None, ()))
                continue
            described = await admin.describe_topics([name])
            partitions = sorted(p["partition"] for p in described[0]["partitions"])
            tps = [TopicPartition(name, p) for p in partitions]
            ends = {tp.partition: offset for tp, offset in (await consumer.end_offsets(tps)).items()}
            service = SERVICE_GROUPS.get(spec.topic.value)
            group = f"{prefix}caseway-{service}" if service else None
            lag: tuple[PartitionLag, ...] = ()
            if group:
                committed = await admin.list_consumer_group_offsets(group, partitions=tps)
                lag = tuple(
                    PartitionLag(
                        tp.partition,
                        ends[tp.partition],
                        committed[tp].offset if tp in committed and committed[tp].offset >= 0 else None,
                    )
                    for tp in tps
                )
            views.append(TopicView(name, len(partitions), ends, group, lag))
        return views
    finally:
        await consumer.stop()
        await admin.close()


async def topic_exists(bootstrap: str, topic: str) -> bool:
    admin = await _admin(bootstrap)
    try:
        return topic in set(await admin.list_topics())
    finally:
        await admin.close()


async def read_topic(
    bootstrap: str, topic: str, *, from_beginning: bool, follow: bool, idle_seconds: float = 2.0
) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
    """Records of `topic` (no consumer group, nothing committed): from the start or only new ones; stops
    after `idle_seconds` without records unless `follow`."""
    if not await topic_exists(bootstrap, topic):
        raise StackError(f"unknown topic {topic!r}: `caseway topics` lists them")
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        client_id=f"caseway-cli-{uuid.uuid4().hex[:6]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest",
    )
    await consumer.start()
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=int(idle_seconds * 1000))
            if not batch and not follow:
                return
            for records in batch.values():
                for record in records:
                    yield record
    finally:
        await consumer.stop()
