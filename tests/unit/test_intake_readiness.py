"""intake's /readyz says whether it can serve the Open311 API, whatever partitions it owns; /consumerz and a
gauge say what it consumes (issue 11, item 15).

Pure: the app as `create_app` builds it, with stand-ins for its database and broker that answer or not,
and Kafka consumers that own what a test says (none, as before the consumer group assigns them or on a
replica beyond the partition count, until a test assigns some).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest
from aiokafka import TopicPartition

from caseway_intake.entrypoints.app import create_app
from caseway_intake.settings import IntakeSettings
from caseway_shared.topics import Topic

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from fastapi import FastAPI


class Database:
    """The pool's part in readiness and /metrics: `SELECT 1`, and its size."""

    def __init__(self) -> None:
        self.answers = True

    async def fetchval(self, _query: str) -> int:
        if not self.answers:
            raise ConnectionRefusedError("connection refused")
        return 1

    def get_size(self) -> int:
        return 1

    def get_idle_size(self) -> int:
        return 1


class KafkaConsumer:
    def __init__(self, topic: str, partitions: list[int]) -> None:
        self._owned = {TopicPartition(topic, partition) for partition in partitions}

    def assignment(self) -> set[TopicPartition]:
        return self._owned


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> FastAPI:
    app = create_app(IntakeSettings(log_format="console"))
    runtime = app.state.runtime

    async def broker_answers(timeout: float | None) -> bool:
        return True

    monkeypatch.setattr(runtime, "_pool", Database())
    monkeypatch.setattr(runtime.broker, "ping", broker_answers)
    return app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake") as client:
        yield client


def reports(app: FastAPI) -> str:
    return str(app.state.runtime.topic(Topic.CONTACT_CENTRE_REPORTS))


def cases(app: FastAPI) -> str:
    return str(app.state.runtime.topic(Topic.CASES))


def assign(monkeypatch: pytest.MonkeyPatch, app: FastAPI, partitions: dict[str, list[int]]) -> None:
    for subscriber in app.state.runtime._subscribers:
        (topic,) = subscriber.topic_names
        consumer = KafkaConsumer(topic, partitions.get(topic, []))
        monkeypatch.setattr(subscriber, "consumer", consumer, raising=False)


async def test_an_intake_that_owns_no_partitions_is_ready_to_serve_while_its_database_and_broker_answer(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/readyz")

    assert response.status_code == 200, response.json()
    assert response.json() == {"ready": True, "checks": {"kafka": True, "database": True}}


async def test_an_intake_whose_database_does_not_answer_is_not_ready(
    app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    assign(monkeypatch, app, {reports(app): [0, 1], cases(app): [0, 1]})
    app.state.runtime.pool.answers = False

    response = await client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"] == {"kafka": True, "database": False}


async def test_what_an_intake_consumes_is_shown_apart_from_readiness(
    app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before the consumer group assigns partitions, or on a replica beyond the partition count: nothing
    # to consume, ready all the same.
    idle = await client.get("/consumerz")
    assert idle.status_code == 503
    assert idle.json() == {
        "consuming": False,
        "assigned": {reports(app): [], cases(app): []},
    }

    assign(monkeypatch, app, {reports(app): [3, 1], cases(app): [2]})
    consuming = await client.get("/consumerz")
    assert consuming.status_code == 200
    assert consuming.json() == {
        "consuming": True,
        "assigned": {reports(app): [1, 3], cases(app): [2]},
    }
    metrics = (await client.get("/metrics")).text
    gauge = "caseway_consumer_assigned_partitions"
    assert f'{gauge}{{service="intake",topic="{reports(app)}"}} 2.0' in metrics
    assert f'{gauge}{{service="intake",topic="{cases(app)}"}} 1.0' in metrics
