"""Dead letters for operators: list what is on ops.deadletter.v1 and replay it to where it came from.

A replay republishes the original bytes, key and headers (less the dead-letter provenance) to the
original topic, with `replayed-from` and a `replays` count added. Each dead letter is replayed at most
once: the replay is recorded in PostgreSQL (ops.deadletter_replays, keyed by the dead letter's topic,
partition and offset) in the same transaction that waits for the broker's acknowledgement, so a replay
that fails to publish is not recorded, and one that was recorded is never sent again.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import asyncpg
from aiokafka import AIOKafkaProducer

from caseway_ops.kafka_inspect import read_topic
from caseway_shared import headers as h
from caseway_shared.topics import Topic, topic_name

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

PROVENANCE_HEADERS = {h.ORIGINAL_TOPIC, h.ORIGINAL_PARTITION, h.ORIGINAL_OFFSET, h.ERROR, h.ATTEMPTS}
REPLAYED_FROM = "replayed-from"
REPLAYS = "replays"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    at: datetime
    key: bytes | None
    value: bytes
    headers: dict[str, str]
    replayed_at: datetime | None = None

    @property
    def original_topic(self) -> str:
        return self.headers.get(h.ORIGINAL_TOPIC, "")

    @property
    def error(self) -> str:
        return self.headers.get(h.ERROR, "")

    @property
    def attempts(self) -> int:
        return int(self.headers.get(h.ATTEMPTS, "0") or 0)

    def replay_headers(self) -> list[tuple[str, bytes]]:
        kept = {name: value for name, value in self.headers.items() if name not in PROVENANCE_HEADERS}
        kept[REPLAYED_FROM] = f"{self.topic}:{self.partition}:{self.offset}"
        kept[REPLAYS] = str(int(self.headers.get(REPLAYS, "0") or 0) + 1)
        return h.encode_headers(kept)


async def list_dead_letters(bootstrap: str, database_url: str, *, prefix: str = "") -> list[DeadLetter]:
    """Every record on the dead-letter topic, with when it was replayed, if it was."""
    topic = topic_name(Topic.DEADLETTER, prefix)
    found = [
        DeadLetter(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            at=datetime.fromtimestamp(record.timestamp / 1000, tz=UTC),
            key=record.key,
            value=record.value or b"",
            headers=h.decode_headers(record.headers or ()),
        )
        async for record in read_topic(bootstrap, topic, from_beginning=True, follow=False, idle_seconds=1.5)
    ]
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT deadletter_partition, deadletter_offset, replayed_at FROM ops.deadletter_replays"
            " WHERE deadletter_topic = $1",
            topic,
        )
    finally:
        await connection.close()
    replayed = {(row["deadletter_partition"], row["deadletter_offset"]): row["replayed_at"] for row in rows}
    return [replace(letter, replayed_at=replayed.get((letter.partition, letter.offset))) for letter in found]


@dataclass(frozen=True, slots=True)
class ReplayOutcome:
    letter: DeadLetter
    replayed: bool
    reason: str


async def replay(
    bootstrap: str,
    database_url: str,
    letters: Sequence[DeadLetter],
    *,
    progress: Callable[[ReplayOutcome], object] | None = None,
) -> list[ReplayOutcome]:
    """Replay `letters` to their original topics, each at most once."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    connection = await asyncpg.connect(database_url)
    outcomes = []
    try:
        for letter in letters:
            outcome = await _replay_one(producer, connection, letter)
            outcomes.append(outcome)
            if progress is not None:
                progress(outcome)
    finally:
        await connection.close()
        await producer.stop()
    return outcomes


async def _replay_one(
    producer: AIOKafkaProducer, connection: asyncpg.Connection, letter: DeadLetter
) -> ReplayOutcome:
    if not letter.original_topic:
        return ReplayOutcome(letter, replayed=False, reason="no original-topic header: nowhere to replay to")
    async with connection.transaction():
        claimed = await connection.fetchval(
            """
            INSERT INTO ops.deadletter_replays
                (deadletter_topic, deadletter_partition, deadletter_offset, original_topic, replayed_by)
            VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT DO NOTHING
            RETURNING true
            """,
            letter.topic,
            letter.partition,
            letter.offset,
            letter.original_topic,
            getpass.getuser(),
        )
        if not claimed:
            return ReplayOutcome(letter, replayed=False, reason="already replayed")
        await producer.send_and_wait(
            letter.original_topic, letter.value, key=letter.key, headers=letter.replay_headers()
        )
    return ReplayOutcome(letter, replayed=True, reason=f"replayed to {letter.original_topic}")
