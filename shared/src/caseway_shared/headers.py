"""The headers every Caseway message carries, and how to read them back.

The correlation id is the original report's id as text; it is kept across all three services so that one
resident's report can be followed through every topic and every log line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from uuid import uuid4

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

EVENT_ID = "event-id"
EVENT_TYPE = "event-type"
SCHEMA_VERSION = "schema-version"
CORRELATION_ID = "correlation-id"
PRODUCER = "producer"

# Dead-letter provenance (ops.deadletter.v1) and rejection provenance (reports.rejected.v1).
ORIGINAL_TOPIC = "original-topic"
ORIGINAL_PARTITION = "original-partition"
ORIGINAL_OFFSET = "original-offset"
ERROR = "error"
ATTEMPTS = "attempts"

SCHEMA_VERSION_1 = "1"


@dataclass(frozen=True, slots=True)
class EventHeaders:
    """The standard headers of one message."""

    event_id: str
    event_type: str
    correlation_id: str
    producer: str
    schema_version: str = SCHEMA_VERSION_1

    @classmethod
    def new(cls, *, event_type: str, correlation_id: str, producer: str) -> EventHeaders:
        """Headers for a freshly produced event, with a new random event id."""
        return cls(
            event_id=str(uuid4()), event_type=event_type, correlation_id=correlation_id, producer=producer
        )

    def as_dict(self) -> dict[str, str]:
        return {
            EVENT_ID: self.event_id,
            EVENT_TYPE: self.event_type,
            SCHEMA_VERSION: self.schema_version,
            CORRELATION_ID: self.correlation_id,
            PRODUCER: self.producer,
        }


def decode_headers(raw: Iterable[tuple[str, bytes]] | Mapping[str, str]) -> dict[str, str]:
    """Kafka record headers (name, bytes) as text; undecodable values are replaced, never fatal."""
    if hasattr(raw, "items"):
        return dict(raw.items())
    return {name: value.decode("utf-8", "replace") for name, value in raw}


def encode_headers(headers: Mapping[str, str]) -> list[tuple[str, bytes]]:
    """Text headers as Kafka record headers."""
    return [(name, value.encode()) for name, value in headers.items()]
