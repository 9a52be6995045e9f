"""Each service's Kafka subscribers, wired as the service wires them, on FastStream's in-memory test broker
(`TestKafkaBroker`): a published record reaches the service's handler through the shared batch consumer,
and a malformed one is dead-lettered with its provenance instead of holding the others back. The handlers
work on in-memory repositories; tests/integration proves the same on the real broker and database."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

import pytest
from faststream.kafka import TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage  # noqa: TC002 - FastStream reads the annotation at run time

from caseway_intake.entrypoints.consumers import subscribe_consumers as subscribe_intake
from caseway_intake.service import IntakeService
from caseway_intake.settings import IntakeSettings
from caseway_notifier.adapters.memory import InMemoryNotifierStore
from caseway_notifier.domain.directory import load_directory
from caseway_notifier.entrypoints import consumer as notifier_consumer
from caseway_notifier.service.case_events import CaseEvents
from caseway_notifier.service.messages import Messages
from caseway_notifier.settings import NotifierSettings
from caseway_router.adapters.memory import MemoryRoutingStore
from caseway_router.domain.places import PlaceFinder
from caseway_router.entrypoints.consumers import subscribe_consumers as subscribe_router
from caseway_router.entrypoints.resident_updates import ResidentUpdates
from caseway_router.service import RouterService
from caseway_router.settings import RouterSettings
from caseway_shared import headers as h
from caseway_shared.contact_centre import ContactCentreReport
from caseway_shared.council import load_council
from caseway_shared.events import ResidentUpdateReceived
from caseway_shared.runtime import ServiceRuntime
from caseway_shared.topics import Topic
from caseway_shared.unit_of_work import InMemoryUnitOfWork
from factories import METRE, case_opened, report_received

COUNCIL = load_council()
PREFIX = "unit."


class DeadLetterInbox:
    """What reaches ops.deadletter.v1 on the test broker."""

    def __init__(self, runtime: ServiceRuntime) -> None:
        self.letters: list[tuple[bytes, dict[str, str]]] = []

        @runtime.broker.subscriber(runtime.topic(Topic.DEADLETTER))
        async def keep(message: KafkaMessage) -> None:
            self.letters.append((message.body, dict(message.headers)))


def _bytes(event) -> bytes:
    return event.model_dump_json().encode()


async def _publish_batch(broker, topic: str, *bodies: bytes) -> None:
    await broker.publish_batch(*bodies, topic=topic)


class FakeDesk:
    def __init__(self) -> None:
        self.updates: list[ResidentUpdateReceived] = []

    async def resident_update(self, update: ResidentUpdateReceived) -> str:
        self.updates.append(update)
        return "noted"


def _router() -> tuple[ServiceRuntime, MemoryRoutingStore, FakeDesk, DeadLetterInbox]:
    runtime = ServiceRuntime(settings=RouterSettings(topic_prefix=PREFIX), service="router", schema="router")
    store, desk = MemoryRoutingStore(), FakeDesk()
    routing = RouterService(
        unit_of_work=InMemoryUnitOfWork(store),
        council=COUNCIL,
        places=PlaceFinder(COUNCIL),
        topic=runtime.topic,
    )
    subscribe_router(runtime, routing=routing, resident_updates=ResidentUpdates(desk=desk))
    return runtime, store, desk, DeadLetterInbox(runtime)


async def test_router_reports_are_routed_and_a_malformed_one_is_dead_lettered_beside_them():
    runtime, store, _, inbox = _router()
    first = report_received()
    again = report_received(lat=first.place.point.lat + 4 * METRE)
    async with TestKafkaBroker(runtime.broker) as broker:
        await _publish_batch(
            broker,
            runtime.topic(Topic.REPORTS_RECEIVED),
            _bytes(first),
            b'{"event_type": "ReportReceived"}',
            _bytes(again),
        )
    assert len(store.cases) == 1
    assert next(iter(store.cases.values())).row.reports_count == 2
    ((body, headers),) = inbox.letters
    assert body == b'{"event_type": "ReportReceived"}'
    assert headers[h.ORIGINAL_TOPIC] == runtime.topic(Topic.REPORTS_RECEIVED)
    assert "report_id" in headers[h.ERROR]


async def test_router_resident_updates_reach_the_desk_once_per_update_id():
    runtime, _, desk, inbox = _router()
    update = ResidentUpdateReceived(
        occurred_at=datetime.now(UTC),
        update_id="u-1",
        report_id=uuid.uuid4(),
        case_id=None,
        action="note",
        description="Still there this morning",
    )
    async with TestKafkaBroker(runtime.broker) as broker:
        await _publish_batch(broker, runtime.topic(Topic.REPORT_UPDATES), _bytes(update), _bytes(update))
    assert [u.update_id for u in desk.updates] == ["u-1"]
    assert inbox.letters == []


async def test_notifier_case_events_plan_each_team_s_alert_once_and_a_malformed_event_is_dead_lettered():
    settings = NotifierSettings(topic_prefix=PREFIX, ignore_hours=True)
    runtime = ServiceRuntime(settings=settings, service="notifier", schema="notifier")
    store = InMemoryNotifierStore()
    case_events = CaseEvents(
        unit_of_work=InMemoryUnitOfWork(store),
        directory=load_directory(settings.council_dir),
        messages=Messages(topic=runtime.topic),
        clock=lambda: datetime.now(UTC),
        ignore_hours=True,
    )
    notifier_consumer.subscribe(runtime, case_events)
    inbox = DeadLetterInbox(runtime)
    opened = case_opened(departments=("streetscene", "env-crime"))
    bad = json.dumps({"event_type": "CaseStatusChanged", "status": "in-progress"}).encode()
    async with TestKafkaBroker(runtime.broker) as broker:
        topic = runtime.topic(Topic.CASES)
        await _publish_batch(broker, topic, _bytes(opened), bad, _bytes(opened))
    planned = [key for key in store.notifications if key.startswith(str(opened.case_id))]
    assert planned
    assert len(planned) == len(set(planned))
    assert "new-case" in {key.split("|")[3] for key in planned}
    ((body, headers),) = inbox.letters
    assert body == bad
    assert headers[h.ORIGINAL_TOPIC] == runtime.topic(Topic.CASES)


class IntakeTables:
    """The part of intake's repository its consumers use, in memory."""

    def __init__(self) -> None:
        self.reports: dict[uuid.UUID, object] = {}
        self.case_events: list[object] = []

    async def insert_new_reports(self, reports) -> set[uuid.UUID]:
        new = {r.event.report_id for r in reports if r.event.report_id not in self.reports}
        self.reports.update({r.event.report_id: r for r in reports if r.event.report_id in new})
        return new

    async def received_events(self, report_ids) -> list[object]:
        return [self.reports[i].event for i in report_ids if i in self.reports]  # type: ignore[attr-defined]

    async def apply_case_events(self, events, council) -> None:
        self.case_events.extend(events)


def _intake() -> tuple[ServiceRuntime, IntakeTables, InMemoryUnitOfWork, DeadLetterInbox, list]:
    runtime = ServiceRuntime(settings=IntakeSettings(topic_prefix=PREFIX), service="intake", schema="intake")
    tables, rejected = IntakeTables(), []
    uow = InMemoryUnitOfWork(tables)

    async def send_rejection(body, topic, key, headers):
        rejected.append((topic, key, json.loads(body)))
        return asyncio.sleep(0)

    service = IntakeService(
        unit_of_work=uow, council=COUNCIL, topic=runtime.topic, send_rejection=send_rejection
    )
    subscribe_intake(runtime, service)
    return runtime, tables, uow, DeadLetterInbox(runtime), rejected


async def test_intake_accepts_contact_centre_reports_once_and_rejects_the_invalid_with_reasons():
    runtime, tables, uow, inbox, rejected = _intake()
    example = ContactCentreReport.model_config["json_schema_extra"]["examples"][0]
    good = json.dumps(example).encode()
    invalid = json.dumps({**example, "source_id": "cc-2", "category": ""}).encode()
    async with TestKafkaBroker(runtime.broker) as broker:
        await _publish_batch(broker, runtime.topic(Topic.CONTACT_CENTRE_REPORTS), good, invalid, good)
    assert len(tables.reports) == 1
    # Published from memory once committed (issue 16 item 7), not through the outbox; the repeat in the
    # same batch is one report.
    assert uow.published == []
    assert [m.headers[h.EVENT_TYPE] for m in uow.published_after_commit] == ["ReportReceived"]
    ((topic, key, body),) = rejected
    assert (topic, key) == (runtime.topic(Topic.REPORTS_REJECTED), b"cc-2")
    assert any("category" in reason for reason in body["reasons"])
    assert inbox.letters == []


async def test_intake_follows_case_events_and_dead_letters_an_unreadable_one():
    runtime, tables, _, inbox, _ = _intake()
    opened = case_opened()
    async with TestKafkaBroker(runtime.broker) as broker:
        await _publish_batch(broker, runtime.topic(Topic.CASES), _bytes(opened), b"{not json")
    assert [e.case_id for e in tables.case_events] == [opened.case_id]
    ((body, headers),) = inbox.letters
    assert body == b"{not json"
    assert headers[h.ORIGINAL_TOPIC] == runtime.topic(Topic.CASES)


@pytest.mark.parametrize("topic", [Topic.REPORTS_RECEIVED, Topic.REPORT_UPDATES])
def test_the_router_subscribes_to_its_topics_with_the_deployment_s_prefix(topic):
    runtime, *_ = _router()
    assert runtime.topic(topic) in {
        name for s in runtime._subscribers for name in s.topic_names_for_subscribe
    }
