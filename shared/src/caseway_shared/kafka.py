"""Kafka clients built from settings in exactly one place, and the records handlers work on.

Producers send with `acks=all` and idempotence on; consumers never auto-commit: FastStream commits a batch
only after its handler returned, that is after the batch's effects are durable (see `consuming`).

Security is configuration only (`KAFKA_SECURITY_PROTOCOL` and friends, see `settings`): with the default
PLAINTEXT every client is built exactly as before; with SASL_SSL every client (FastStream's producer and
consumers, the outbox producer, the tooling's admin clients) authenticates with SCRAM over TLS.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from caseway_shared import topics
from caseway_shared.headers import decode_headers

if TYPE_CHECKING:
    from aiokafka import ConsumerRecord

    from caseway_shared.settings import ServiceSettings
    from caseway_shared.topics import Topic


def topic_name(settings: ServiceSettings, topic: Topic) -> str:
    """The name of `topic` on the broker for this deployment."""
    return topics.topic_name(topic, settings.topic_prefix)


def ssl_context(settings: ServiceSettings) -> ssl.SSLContext | None:
    """The TLS context for a TLS protocol (None for plaintext): the brokers' certificates verified against
    KAFKA_SSL_CAFILE (or the system's trust store), their host names checked unless told otherwise, and a
    client certificate when one is configured."""
    if not settings.kafka_uses_tls:
        return None
    context = ssl.create_default_context(
        purpose=ssl.Purpose.SERVER_AUTH,
        cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None,
    )
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = settings.kafka_ssl_check_hostname
    if settings.kafka_ssl_certfile is not None:
        context.load_cert_chain(
            str(settings.kafka_ssl_certfile),
            str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None,
        )
    return context


def security_options(settings: ServiceSettings) -> dict[str, Any]:
    """aiokafka's security arguments for any client (producer, consumer, admin); empty for PLAINTEXT, so
    the clients of a development stack are built as they always were."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {}
    options: dict[str, Any] = {"security_protocol": protocol}
    if settings.kafka_uses_tls:
        options["ssl_context"] = ssl_context(settings)
    if protocol.startswith("SASL"):
        password = settings.kafka_sasl_password
        options |= {
            "sasl_mechanism": settings.kafka_sasl_mechanism,
            "sasl_plain_username": settings.kafka_sasl_username,
            "sasl_plain_password": password.get_secret_value() if password else None,
        }
    return options


def broker_security(settings: ServiceSettings) -> BaseSecurity | None:
    """The same, in FastStream's terms (it passes them on to every producer and consumer it builds)."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = ssl_context(settings)
    if not protocol.startswith("SASL"):
        return BaseSecurity(ssl_context=context, use_ssl=True)
    kind = {"SCRAM-SHA-512": SASLScram512, "SCRAM-SHA-256": SASLScram256, "PLAIN": SASLPlaintext}[
        settings.kafka_sasl_mechanism
    ]
    password = settings.kafka_sasl_password
    return kind(
        username=settings.kafka_sasl_username or "",
        password=password.get_secret_value() if password else "",
        ssl_context=context,
        use_ssl=protocol == "SASL_SSL",
    )


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
        **security_options(settings),
    }


def bootstrap_list(servers: str) -> list[str]:
    """``host:port,host:port`` (KAFKA_BOOTSTRAP_SERVERS) as a list of addresses. aiokafka splits such a
    string itself, but FastStream takes a string as one address, so a cluster's list must be split here."""
    return [server.strip() for server in servers.split(",") if server.strip()]


def make_broker(settings: ServiceSettings, *, service: str) -> KafkaBroker:
    """The service's FastStream broker: one producer, and the subscribers the service registers on it."""
    options = producer_options(settings, client_id=f"caseway-{service}")
    return KafkaBroker(
        bootstrap_list(options.pop("bootstrap_servers")),
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
        security=broker_security(settings),
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
