"""Kafka secured for production: SASL/SCRAM-SHA-512 over TLS, one principal per service, ACLs.

Two uses. `acl_bindings` / `create_acls` grant each service's principal exactly what
`caseway_shared.topics.ACCESS` says (read its input topics with its own consumer group, write its output
topics) on any cluster whose authorizer is on; an operator runs them once as a super user. And
`render_secured_server_properties` / `format_storage_with_scram` turn the project's own one-node KRaft
broker into a secured one (on other ports, in another state folder), which is how the tests prove that
an unauthorised read or write is refused.

The broker's listener for clients and for itself is SASL_SSL with SCRAM-SHA-512; its controller listener
is SASL_SSL with PLAIN (KRaft controllers cannot use SCRAM: the credentials live in the metadata they
serve). SCRAM credentials are written into the metadata when the storage is formatted
(``kafka-storage format --add-scram``, KIP-900), so no client ever connects without them. The authorizer
is KRaft's StandardAuthorizer with ``allow.everyone.if.no.acl.found=false``: no ACL, no access.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.admin import CreateAclsRequest

from caseway_ops import kafka_broker
from caseway_ops.errors import StackError
from caseway_shared.topics import ACCESS, Topic

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from pathlib import Path

    from caseway_ops.stack_config import StackConfig
    from caseway_shared.topics import ServiceAccess

ADMIN_USER = "admin"
CONTROLLER_USER = "controller"
SCRAM = "SCRAM-SHA-512"


class ResourceType(IntEnum):
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4


class Operation(IntEnum):
    READ = 3
    WRITE = 4
    DESCRIBE = 8


_LITERAL = 3
_ALLOW = 3


@dataclass(frozen=True, slots=True)
class AclBinding:
    """One ACL: ``principal`` may do ``operation`` on the resource of that type and exact name."""

    principal: str
    resource_type: ResourceType
    resource_name: str
    operation: Operation

    def describe(self) -> str:
        return f"{self.principal} {self.operation.name} {self.resource_type.name}:{self.resource_name}"


def consumer_group_name(prefix: str, service: str) -> str:
    """As `caseway_shared.kafka.consumer_group` names it."""
    return f"{prefix}caseway-{service}"


def acl_bindings(prefix: str = "", entries: Iterable[ServiceAccess] = ACCESS) -> list[AclBinding]:
    """Every ACL the services need, and not one more: per service, READ on the topics it consumes and
    on its own consumer group, WRITE on the topics it produces (idempotent producers need nothing else
    since Kafka 3.0). Names are literal, so a service cannot reach another deployment's topics either."""
    bindings: list[AclBinding] = []
    for entry in entries:
        principal = f"User:{entry.principal}"
        bindings.extend(
            AclBinding(principal, ResourceType.TOPIC, prefix + topic.value, Operation.READ)
            for topic in entry.reads
        )
        group = consumer_group_name(prefix, entry.service)
        bindings.append(AclBinding(principal, ResourceType.GROUP, group, Operation.READ))
        bindings.extend(
            AclBinding(principal, ResourceType.TOPIC, prefix + topic.value, Operation.WRITE)
            for topic in entry.writes
        )
    return bindings


async def create_acls(
    bootstrap_servers: str, bindings: Iterable[AclBinding], *, client_options: Mapping[str, Any]
) -> int:
    """Create `bindings` on the cluster (as a super user: ``client_options`` carry its credentials);
    creating an ACL that exists already is a no-op. Returns how many were sent."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers, client_id="caseway-acls", **dict(client_options)
    )
    sent = 0
    failures: list[str] = []
    try:
        await admin.start()
        node = admin._client.get_random_node()  # noqa: SLF001 - aiokafka has no public create_acls
        for binding in bindings:
            request = CreateAclsRequest(
                binding.resource_type,
                binding.resource_name,
                _LITERAL,
                binding.principal,
                "*",
                binding.operation,
                _ALLOW,
            )
            response = await admin._client.send(node, request)  # noqa: SLF001
            sent += 1
            failures.extend(
                f"{binding.describe()}: {result['error_message'] or result['error_code']}"
                for result in response.to_object()["creation_responses"]
                if result["error_code"] != 0
            )
    finally:
        await admin.close()
    if failures:
        raise StackError("could not create ACLs: " + "; ".join(failures))
    return sent


# The project's own broker, secured --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BrokerSecrets:
    """What a secured broker needs besides its ports: its TLS key and certificate (a PKCS#12 keystore),
    the CA clients and the broker itself trust (PEM), and the passwords of its own two users."""

    keystore: Path
    keystore_password: str
    ca_file: Path
    admin_password: str
    controller_password: str


def _jaas_value(text: str) -> str:
    if any(c in text for c in '"\\;\n'):
        raise StackError("a broker password may not contain quotes, backslashes, semicolons or newlines")
    return text


def render_secured_server_properties(config: StackConfig, secrets: BrokerSecrets) -> str:
    """The plaintext one-node broker's configuration with every listener behind TLS and SASL, SCRAM for
    clients and for the broker itself, PLAIN (over TLS) between broker and controller, and the
    StandardAuthorizer denying whatever no ACL allows."""
    host = config.host
    admin = _jaas_value(secrets.admin_password)
    controller = _jaas_value(secrets.controller_password)
    base = [
        line
        for line in kafka_broker.render_server_properties(config).splitlines()
        if not line.startswith(
            (
                "listeners=",
                "advertised.listeners=",
                "listener.security.protocol.map=",
                "inter.broker.listener.name=",
                "#",
            )
        )
    ]
    return "\n".join(
        [
            "# Written by caseway_ops.kafka_security: the one-node broker, secured (TLS + SASL + ACLs).",
            *base,
            f"listeners=SASL_SSL://{host}:{config.kafka_port},CONTROLLER://{host}:{config.controller_port}",
            f"advertised.listeners=SASL_SSL://{host}:{config.kafka_port}",
            "listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:SASL_SSL",
            "inter.broker.listener.name=SASL_SSL",
            f"sasl.enabled.mechanisms={SCRAM}",
            f"sasl.mechanism.inter.broker.protocol={SCRAM}",
            (
                "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config="
                "org.apache.kafka.common.security.scram.ScramLoginModule required "
                f'username="{ADMIN_USER}" password="{admin}";'
            ),
            "sasl.mechanism.controller.protocol=PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
            (
                "listener.name.controller.plain.sasl.jaas.config="
                "org.apache.kafka.common.security.plain.PlainLoginModule required "
                f'username="{CONTROLLER_USER}" password="{controller}" '
                f'user_{CONTROLLER_USER}="{controller}";'
            ),
            "ssl.keystore.type=PKCS12",
            f"ssl.keystore.location={secrets.keystore}",
            f"ssl.keystore.password={secrets.keystore_password}",
            f"ssl.key.password={secrets.keystore_password}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={secrets.ca_file}",
            "ssl.endpoint.identification.algorithm=https",
            "ssl.enabled.protocols=TLSv1.3,TLSv1.2",
            "ssl.client.auth=none",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            f"super.users=User:{ADMIN_USER};User:{CONTROLLER_USER}",
            "allow.everyone.if.no.acl.found=false",
            "",
        ]
    )


def scram_format_arguments(users: Mapping[str, str]) -> list[str]:
    """``kafka-storage format`` arguments that write each user's SCRAM-SHA-512 credential (KIP-900)."""
    arguments: list[str] = []
    for name, password in users.items():
        if any(c in name + password for c in ",=[]\n"):
            raise StackError(f"SCRAM user {name!r}: names and passwords may not contain , = [ ] or newlines")
        arguments += ["--add-scram", f"{SCRAM}=[name={name},password={password}]"]
    return arguments


def write_secured_configuration(config: StackConfig, secrets: BrokerSecrets) -> None:
    config.kafka_dir.mkdir(parents=True, exist_ok=True)
    config.logs_dir.mkdir(parents=True, exist_ok=True)
    (config.kafka_dir / "server.properties").write_text(
        render_secured_server_properties(config, secrets), encoding="utf-8"
    )
    (config.kafka_dir / "log4j2.properties").write_text(
        kafka_broker.render_log4j_properties(config), encoding="utf-8"
    )
    (config.kafka_dir / "server.properties").chmod(0o600)


async def start_secured_broker(config: StackConfig, secrets: BrokerSecrets, users: Mapping[str, str]) -> int:
    """Write the secured configuration, format the storage with every user's SCRAM credential (the
    broker's own admin user included) and start the broker; returns its pid. The caller waits for it
    (`kafka_broker.wait_ready` with the admin's client options) and stops it (`kafka_broker.stop`)."""
    write_secured_configuration(config, secrets)
    everyone = {ADMIN_USER: secrets.admin_password, **users}
    await kafka_broker.format_storage(config, extra_arguments=scram_format_arguments(everyone))
    return kafka_broker.start(config)


def service_topics(prefix: str, service: str) -> dict[str, tuple[str, ...]]:
    """The names a service reads and writes under `prefix` (for messages and tests)."""
    entry = next(e for e in ACCESS if e.service == service)
    return {
        "reads": tuple(prefix + t.value for t in entry.reads),
        "writes": tuple(prefix + t.value for t in entry.writes),
    }


__all__ = [
    "ADMIN_USER",
    "AclBinding",
    "BrokerSecrets",
    "Topic",
    "acl_bindings",
    "create_acls",
    "render_secured_server_properties",
    "scram_format_arguments",
    "service_topics",
    "start_secured_broker",
]
