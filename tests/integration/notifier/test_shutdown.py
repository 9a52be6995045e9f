"""Stopping the notifier while it sends (SIGTERM, issue 11 item 1): what is in flight finishes and is
recorded, nothing else starts, and a restart sends the rest, so nothing is sent twice or lost."""

import asyncio
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import pytest
from aiokafka import AIOKafkaProducer

from caseway_notifier.adapters.channels import Message
from caseway_notifier.entrypoints.app import create_app
from caseway_notifier.settings import NotifierSettings
from caseway_ops.kafka_topics import create_topics

from .conftest import HOOD
from .test_flow import _opened

pytestmark = pytest.mark.infra

TEAMS = f"""
staff_case_url = "https://staff.example.org/cases/{{reference}}"

[[teams]]
id = "sd-team"
name = "SD Team"
department = "sd-dept"
neighbourhoods = ["{HOOD}"]
channels = [{{ kind = "email", address = "sd-team@example.org" }}]
"""


@dataclass
class SlowChannel:
    """Takes a while to deliver; remembers what it started and what it finished."""

    seconds: float = 0.4
    started: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)

    async def send(self, message: Message) -> None:
        self.started.append(message.key)
        await asyncio.sleep(self.seconds)
        self.finished.append(message.key)


async def _ready(app) -> None:
    deadline = time.monotonic() + 180  # a loaded 2-core machine starts slowly
    while not (all((await app.state.runtime.readiness()).values()) and app.state.runtime.consuming()):
        assert time.monotonic() < deadline, "the notifier did not become ready"
        await asyncio.sleep(0.2)


async def test_stopping_mid_batch_finishes_what_is_in_flight_and_repeats_nothing(infra, db, tmp_path):
    prefix = f"{infra.topic_prefix}shutdown-{uuid.uuid4().hex[:6]}."
    await create_topics(infra.bootstrap_servers, prefix)
    (tmp_path / "teams.toml").write_text(TEAMS)
    settings = NotifierSettings(
        kafka_bootstrap_servers=infra.bootstrap_servers,
        database_url=infra.database_url,
        topic_prefix=prefix,
        council_dir=tmp_path,
        ignore_hours=True,
        send_concurrency=4,
        send_poll_seconds=0.1,
        log_format="console",
        log_level="warning",
    )
    channel = SlowChannel()
    events = [_opened(("sd-dept",)) for _ in range(12)]
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for event in events:
            await producer.send_and_wait(
                f"{prefix}cases.v1", event.model_dump_json().encode(), key=str(event.case_id).encode()
            )
    finally:
        await producer.stop()
    case_ids = [e.case_id for e in events]

    app = create_app(settings, channels={"email": channel})
    async with app.router.lifespan_context(app):
        await _ready(app)
        deadline = time.monotonic() + 30
        while not channel.started:
            assert time.monotonic() < deadline, "nothing was sent"
            await asyncio.sleep(0.01)
    # Stopped mid-batch: what had started has finished and is recorded as sent; nothing is half-done.
    started_at_stop = list(channel.started)
    assert 0 < len(started_at_stop) < len(events)
    assert sorted(channel.finished) == sorted(started_at_stop)
    rows = await db.fetch(
        "SELECT notification_key, status FROM notifier.notifications WHERE case_id = ANY($1::uuid[])",
        case_ids,
    )
    assert {r["notification_key"] for r in rows if r["status"] == "sent"} == set(started_at_stop)
    assert {r["status"] for r in rows} <= {"sent", "pending"}

    app = create_app(settings, channels={"email": channel})
    async with app.router.lifespan_context(app):
        await _ready(app)
        deadline = time.monotonic() + 30
        while len(set(channel.finished)) < len(events):
            assert time.monotonic() < deadline, "the rest was not sent after the restart"
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
    assert Counter(channel.started).most_common(1)[0][1] == 1  # each sent once, across the restart
    assert len(channel.finished) == len(events)
