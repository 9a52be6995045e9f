"""intake's consumer publishes ReportReceived from memory after its commit, not through the outbox (issue
16 item 7), and a redelivery after a failed publish emits the events again: nothing is lost between the
commit and the broker's acknowledgement. On the real database and broker, without the outbox relay (a row
left in the outbox would be published by nobody here).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

from caseway_intake.adapters.store import IntakeStore
from caseway_intake.service import IntakeService
from caseway_shared.council import load_council
from caseway_shared.db import create_pool
from caseway_shared.events import report_id_for
from caseway_shared.kafka import Record, producer_options, topic_name
from caseway_shared.outbox import OutboxMessage, publish_now
from caseway_shared.unit_of_work import PostgresUnitOfWork

from .conftest import Topics, settings_for

if TYPE_CHECKING:
    from collections.abc import Sequence

pytestmark = pytest.mark.infra


async def test_a_batch_is_published_after_its_commit_and_again_when_redelivered(infra, topics: Topics, db):
    settings = settings_for(infra)
    run = uuid.uuid4().hex[:8]
    source_ids = [f"after-commit-{run}-{i}" for i in range(20)]
    records = [
        Record(
            topic=topics.name("contact-centre.reports.v1"),
            partition=0,
            offset=i,
            key=None,
            value=topics.as_bytes(topics.report_event(source_id)),
            headers={},
            timestamp_ms=0,
        )
        for i, source_id in enumerate(source_ids)
    ]
    wanted = {str(report_id_for("liverpool-direct", s)) for s in source_ids}

    pool = await create_pool(settings, application_name="test-after-commit", schema="intake")
    producer = AIOKafkaProducer(**producer_options(settings, client_id="test-after-commit"))
    await producer.start()
    broker_down = True
    handed: list[int] = []

    async def send(messages: Sequence[OutboxMessage]) -> None:
        handed.append(len(messages))
        if broker_down:
            raise KafkaConnectionError("the broker went away after the commit")
        await publish_now(producer, messages)

    async def no_rejection(*_: Any) -> Any:
        raise AssertionError("nothing here is invalid")

    service = IntakeService(
        unit_of_work=PostgresUnitOfWork(
            pool=lambda: pool, schema="intake", repositories=IntakeStore, wake=lambda: None, send=send
        ),
        council=load_council(),
        topic=lambda topic: topic_name(settings, topic),
        send_rejection=no_rejection,
    )
    try:
        # The first delivery: committed, then the publish fails. The handler must raise, so that the
        # consumer does not commit its offsets.
        with pytest.raises(KafkaConnectionError):
            await service.handle_contact_centre_batch(records)
        stored = await db.fetchval(
            "SELECT count(*) FROM intake.reports WHERE source_id = ANY($1::text[])", source_ids
        )
        assert stored == len(source_ids)
        in_outbox = await db.fetchval(
            "SELECT count(*) FROM intake.outbox WHERE key = ANY($1::text[])", sorted(wanted)
        )
        assert in_outbox == 0, "the consumer path wrote its events to the outbox"

        # The redelivery: every report is already stored, and every event goes out all the same.
        broker_down = False
        await service.handle_contact_centre_batch(records)
        assert handed == [len(source_ids), len(source_ids)]
        received = await topics.read(
            "reports.received.v1", want=lambda rs: wanted <= set(topics.received_ids(rs))
        )
        assert wanted <= set(topics.received_ids(received))
        assert (
            await db.fetchval(
                "SELECT count(*) FROM intake.outbox WHERE key = ANY($1::text[])", sorted(wanted)
            )
            == 0
        )
    finally:
        await producer.stop()
        await pool.close()
