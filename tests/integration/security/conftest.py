"""A secured broker of the project's own for the security tests: the one-node KRaft broker from the
stack's jars, on free ports and in a state folder of its own, with TLS certificates made here (the
`cryptography` package), SCRAM-SHA-512 users for the three services and an outsider, and the ACLs that
`caseway_ops.kafka_security` derives from the topic catalogue. Stopped at the end of the module."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import socket
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from caseway_ops import kafka_broker, kafka_security
from caseway_ops.kafka_topics import create_topics
from caseway_ops.stack_config import StackConfig
from caseway_shared.kafka import producer_options, security_options, topic_name
from caseway_shared.settings import ServiceSettings
from caseway_shared.topics import Topic
from certificates import certificate_authority, server_certificate

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

SERVICES = ("intake", "router", "notifier")
OUTSIDER = "someone-else"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_certificates(folder: Path, password: str) -> tuple[Path, Path]:
    """A CA, and a broker certificate it signed for 127.0.0.1 and localhost: (keystore.p12, ca.pem)."""
    ca_key, ca = certificate_authority("caseway test CA")
    key, broker = server_certificate(
        ca_key, ca, common_name="127.0.0.1", dns_names=("localhost",), client_auth=True
    )
    keystore = folder / "broker.p12"
    keystore.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"broker",
            key,
            broker,
            [ca],
            serialization.BestAvailableEncryption(password.encode()),
        )
    )
    ca_file = folder / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return keystore, ca_file


@dataclass(frozen=True)
class SecuredKafka:
    bootstrap_servers: str
    ca_file: Path
    passwords: dict[str, str]
    prefix: str
    state_dir: Path

    def env(self, user: str, *, password: str | None = None) -> dict[str, str]:
        """The environment that points a service at this broker as `user`: configuration only."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KAFKA_SASL_USERNAME": user,
            "KAFKA_SASL_PASSWORD": password if password is not None else self.passwords[user],
            "KAFKA_SSL_CAFILE": str(self.ca_file),
            "CASEWAY_TOPIC_PREFIX": self.prefix,
        }

    def settings(self, user: str, *, password: str | None = None) -> ServiceSettings:
        values = {name.lower(): value for name, value in self.env(user, password=password).items()}
        values["topic_prefix"] = values.pop("caseway_topic_prefix")
        return ServiceSettings.model_validate(values)

    def client_options(self, user: str, *, password: str | None = None) -> dict[str, Any]:
        return security_options(self.settings(user, password=password))


async def _wait_until_acls_apply(secured: SecuredKafka) -> None:
    """CreateAcls returns once the controller committed them; the broker applies its metadata a moment
    later. Wait until each service may write its heartbeat before a test relies on its grants."""
    deadline = time.monotonic() + 180  # a loaded 2-core machine starts slowly
    for service in SERVICES:
        user = f"caseway-{service}"
        settings = secured.settings(user)
        while True:
            producer = AIOKafkaProducer(**producer_options(settings, client_id="acl-wait"))
            try:
                await producer.start()
                await producer.send_and_wait(topic_name(settings, Topic.HEARTBEAT), b"{}", key=user.encode())
                break
            except KafkaError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
            finally:
                await producer.stop()


@pytest.fixture(scope="module")
async def secured_kafka(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SecuredKafka]:
    dev = StackConfig.from_env()
    if not kafka_broker.jars_are_current(dev):
        await kafka_broker.ensure_jars(dev)
    state = tmp_path_factory.mktemp("secured-kafka")
    (state / "kafka-lib").symlink_to(dev.kafka_lib_dir, target_is_directory=True)
    config = StackConfig(
        deploy_dir=dev.deploy_dir,
        state_dir=state,
        kafka_port=free_port(),
        controller_port=free_port(),
        external_bootstrap_servers=None,
    )
    keystore_password = secrets.token_urlsafe(16)
    keystore, ca_file = make_certificates(state, keystore_password)
    broker_secrets = kafka_security.BrokerSecrets(
        keystore=keystore,
        keystore_password=keystore_password,
        ca_file=ca_file,
        admin_password=secrets.token_urlsafe(24),
        controller_password=secrets.token_urlsafe(24),
    )
    users = {f"caseway-{service}": secrets.token_urlsafe(24) for service in SERVICES}
    users[OUTSIDER] = secrets.token_urlsafe(24)
    pid = await kafka_security.start_secured_broker(config, broker_secrets, users)
    passwords = {kafka_security.ADMIN_USER: broker_secrets.admin_password, **users}
    secured = SecuredKafka(
        bootstrap_servers=config.bootstrap_servers,
        ca_file=ca_file,
        passwords=passwords,
        prefix=f"sec-{uuid.uuid4().hex[:8]}.",
        state_dir=state,
    )
    try:
        admin = secured.client_options(kafka_security.ADMIN_USER)
        await kafka_broker.wait_ready(secured.bootstrap_servers, config=config, pid=pid, client_options=admin)
        await create_topics(secured.bootstrap_servers, secured.prefix, client_options=admin)
        await kafka_security.create_acls(
            secured.bootstrap_servers,
            kafka_security.acl_bindings(secured.prefix),
            client_options=admin,
        )
        await _wait_until_acls_apply(secured)
        yield secured
    finally:
        await kafka_broker.stop(config)
        shutil.rmtree(state / "kafka" / "data", ignore_errors=True)
