"""Kafka clients built from settings in exactly one place, and the records handlers work on.

Producers send with `acks=all` and idempotence on; consumers never auto-commit: FastStream commits a batch
only after its handler returned, that is after the batch's effects are durable (see `consuming`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from faststream import AckPolicy
from faststream.kafka import KafkaBroker

from caseway_shared.headers import decode_headers

if TYPE_CHECKING:
    from aiokafka import ConsumerRecord

    from caseway_shared.settings import ServiceSettings
    from caseway_shared.topics import Topic


def topic_name(settings: ServiceSettings, topic: Topic) -> str:
    """The name of `topic` on the broker for this deployment."""
    return f"{settings.topic_prefix}{topic.value}"


def producer_options(settings: ServiceSettings, *, client_id: str) -> dict[str, Any]:
    """aiokafka producer arguments: durable, idempotent, batched a little for throughput."""
    return {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "client_id": client_id,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "max_batch_size": 256 * 1024,
        "compression_type": None,
    }


def make_broker(settings: ServiceSettings, *, service: str) -> KafkaBroker:
    """The service's FastStream broker: one producer, and the subscribers the service registers on it."""
    options = producer_options(settings, client_id=f"caseway-{service}")
    return KafkaBroker(
        options.pop("bootstrap_servers"),
        client_id=options.pop("client_id"),
        acks=options.pop("acks"),
        enable_idempotence=options.pop("enable_idempotence"),
        linger_ms=options.pop("linger_ms"),
        max_batch_size=options.pop("max_batch_size"),
        # Commit after the handler returns; an error that escapes a handler rewinds to the batch's start.
        ack_policy=AckPolicy.NACK_ON_ERROR,
        # FastStream logs every message at INFO; that is noise at thousands a second, so it goes to DEBUG.
        logger=logging.getLogger("caseway.faststream"),
        log_level=logging.DEBUG,
        graceful_timeout=15.0,
        allow_auto_create_topics=False,
    )


def consumer_group(settings: ServiceSettings, service: str) -> str:
    """The consumer group of a service: replicas of one service share it."""
    return f"{settings.topic_prefix}caseway-{service}"


@dataclass(frozen=True, slots=True)
class Record:
    """One consumed Kafka record, with what a dead letter or a rejection needs to say where it came from."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, str]
    timestamp_ms: int

    @classmethod
    def from_consumer_record(cls, record: ConsumerRecord[Any, Any]) -> Record:
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value if record.value is not None else b"",
            headers=decode_headers(record.headers or ()),
            timestamp_ms=record.timestamp,
        )

    def provenance(self) -> dict[str, Any]:
        """Where the record came from, for logs, dead letters and rejections."""
        return {"topic": self.topic, "partition": self.partition, "offset": self.offset}
