"""Kafka secured: SASL/SCRAM-SHA-512 over TLS, one principal per service, ACLs from the catalogue.

Runs against the project's own broker reconfigured for it (see conftest: other ports, its own state
folder, certificates made by the test). Each service may read and write its own topics and nothing else;
an unauthorised read and write are refused; a wrong password, a plaintext client and a client that does
not trust the broker's CA are turned away; the services' own client code reaches it by configuration only.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    KafkaError,
    TopicAuthorizationFailedError,
)

from caseway_shared.kafka import (
    consumer_group,
    make_broker,
    producer_options,
    security_options,
    topic_name,
)
from caseway_shared.topics import Topic

from .conftest import OUTSIDER

pytestmark = pytest.mark.infra
TOPIC_AUTHORIZATION_FAILED = 29


async def _produce(secured, user: str, topic: str, *, password: str | None = None) -> None:
    settings = secured.settings(user, password=password)
    producer = AIOKafkaProducer(
        **producer_options(settings, client_id=f"test-{user}"), request_timeout_ms=10_000
    )
    try:
        await producer.start()
        await producer.send_and_wait(topic, b"payload", key=b"k")
    finally:
        await producer.stop()


async def _read_one(secured, user: str, topic: str, group: str) -> bytes:
    options = secured.client_options(user)
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=secured.bootstrap_servers,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        request_timeout_ms=10_000,
        **options,
    )
    try:
        await consumer.start()
        async with asyncio.timeout(30):
            record = await consumer.getone()
        await consumer.commit()
    finally:
        await consumer.stop()
    return bytes(record.value)


async def _try_to_read(secured, user: str, topic: str) -> tuple[int, list[bytes]]:
    """Ask for the topic as a reader would (metadata, then records with the user's own group) and try to
    commit an offset on it. Returns the broker's error code for the topic's metadata and what was read;
    raises what the broker answered to the commit."""
    admin = AIOKafkaAdminClient(bootstrap_servers=secured.bootstrap_servers, **secured.client_options(user))
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    service = user.removeprefix("caseway-")
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=secured.bootstrap_servers,
        group_id=f"{secured.prefix}caseway-{service}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        request_timeout_ms=10_000,
        **secured.client_options(user),
    )
    try:
        await consumer.start()
        batches = await consumer.getmany(timeout_ms=5000)
        read = [bytes(r.value) for records in batches.values() for r in records]
        await consumer.commit({TopicPartition(topic, 0): 1})
    finally:
        await consumer.stop()
    return described["error_code"], read


async def _describe(client: AIOKafkaAdminClient) -> None:
    try:
        async with asyncio.timeout(20):
            await client.start()
            await client.describe_cluster()
    finally:
        await client.close()


async def test_each_service_writes_and_reads_its_own_topics(secured_kafka):
    p = secured_kafka.prefix
    # intake writes reports.received.v1; the router reads it with its own group.
    await _produce(secured_kafka, "caseway-intake", p + Topic.REPORTS_RECEIVED.value)
    assert (
        await _read_one(
            secured_kafka, "caseway-router", p + Topic.REPORTS_RECEIVED.value, f"{p}caseway-router"
        )
        == b"payload"
    )
    # the router writes cases.v1; the notifier reads it.
    await _produce(secured_kafka, "caseway-router", p + Topic.CASES.value)
    assert (
        await _read_one(secured_kafka, "caseway-notifier", p + Topic.CASES.value, f"{p}caseway-notifier")
        == b"payload"
    )
    # every service writes dead letters and heartbeats.
    for service in ("intake", "router", "notifier"):
        await _produce(secured_kafka, f"caseway-{service}", p + Topic.DEADLETTER.value)


async def test_an_unauthorised_write_is_refused(secured_kafka):
    p = secured_kafka.prefix
    # The router may not forge intake's output, nor the notifier the router's.
    for user, topic in (
        ("caseway-router", Topic.REPORTS_RECEIVED),
        ("caseway-notifier", Topic.CASES),
        ("caseway-intake", Topic.NOTIFICATIONS),
    ):
        with pytest.raises(TopicAuthorizationFailedError):
            await _produce(secured_kafka, user, p + topic.value)
    # An outsider may write nowhere, so it is refused even the idempotent producer's id.
    with pytest.raises((TopicAuthorizationFailedError, ClusterAuthorizationFailedError)):
        await _produce(secured_kafka, OUTSIDER, p + Topic.CONTACT_CENTRE_REPORTS.value)


async def test_an_unauthorised_read_is_refused(secured_kafka):
    p = secured_kafka.prefix
    await _produce(secured_kafka, "caseway-intake", p + Topic.REPORTS_RECEIVED.value)
    # The notifier may not read reports (residents' words and places), the router not the raw upstream
    # input, an outsider nothing.
    for user, topic in (
        ("caseway-notifier", Topic.REPORTS_RECEIVED),
        ("caseway-router", Topic.CONTACT_CENTRE_REPORTS),
        ("caseway-intake", Topic.REPORTS_RECEIVED),
    ):
        with pytest.raises(TopicAuthorizationFailedError):
            await _try_to_read(secured_kafka, user, p + topic.value)
    # The broker answers the metadata request itself with TOPIC_AUTHORIZATION_FAILED (29), so no
    # partition, leader or record is ever handed out; the same question from the router is answered.
    admin = AIOKafkaAdminClient(
        bootstrap_servers=secured_kafka.bootstrap_servers, **secured_kafka.client_options(OUTSIDER)
    )
    await admin.start()
    try:
        [refused] = await admin.describe_topics([p + Topic.REPORTS_RECEIVED.value])
    finally:
        await admin.close()
    assert refused["error_code"] == TOPIC_AUTHORIZATION_FAILED
    assert not refused["partitions"]


async def test_a_service_cannot_use_another_services_consumer_group(secured_kafka):
    p = secured_kafka.prefix
    await _produce(secured_kafka, "caseway-intake", p + Topic.REPORTS_RECEIVED.value)
    # The intake may read cases.v1, but only in its own group: the notifier's offsets are not its to move.
    with pytest.raises((GroupAuthorizationFailedError, KafkaError)):
        await _read_one(secured_kafka, "caseway-intake", p + Topic.CASES.value, f"{p}caseway-notifier")


async def test_a_wrong_password_is_turned_away(secured_kafka):
    with pytest.raises(KafkaError):
        await _produce(
            secured_kafka,
            "caseway-router",
            secured_kafka.prefix + Topic.CASES.value,
            password="guessed",  # noqa: S106
        )


async def test_plaintext_and_untrusted_clients_are_turned_away(secured_kafka):
    plaintext = AIOKafkaAdminClient(
        bootstrap_servers=secured_kafka.bootstrap_servers, request_timeout_ms=5000
    )
    with pytest.raises((KafkaConnectionError, KafkaError, OSError, asyncio.TimeoutError)):
        await _describe(plaintext)
    # TLS with the system's trust store only: the test CA is unknown there, so the handshake fails.
    untrusted = secured_kafka.settings("caseway-router").model_copy(update={"kafka_ssl_cafile": None})
    options = security_options(untrusted)
    client = AIOKafkaAdminClient(
        bootstrap_servers=secured_kafka.bootstrap_servers, request_timeout_ms=5000, **options
    )
    with pytest.raises((KafkaConnectionError, KafkaError, OSError, asyncio.TimeoutError)):
        await _describe(client)


async def test_the_services_own_broker_reaches_it_by_configuration_only(secured_kafka):
    """FastStream's broker as every service builds it (`make_broker`), from settings alone."""
    settings = secured_kafka.settings("caseway-router")
    broker = make_broker(settings, service="router")
    await broker.start()
    try:
        assert await broker.ping(timeout=10)
        await broker.publish(b"case", topic=topic_name(settings, Topic.CASES), key=uuid.uuid4().bytes)
        with pytest.raises(TopicAuthorizationFailedError):
            await broker.publish(b"forged", topic=topic_name(settings, Topic.REPORTS_RECEIVED), key=b"k")
    finally:
        await broker.stop()
    assert consumer_group(settings, "router") == f"{secured_kafka.prefix}caseway-router"
