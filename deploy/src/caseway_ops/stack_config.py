"""Where the local stack keeps its state and which addresses it uses.

Everything the stack creates lives under one state directory (``deploy/.state`` by default, git-ignored):

    kafka-lib/   the broker's jars, fetched by Maven, with a stamp of the pom.xml they came from
    kafka/       server.properties, log4j2.properties, cluster-id, kafka.pid and data/ (the log dirs)
    postgres/    data/ (the cluster), superuser.password, postgres.log (see postgres_server for when
                 these live outside the state directory instead)
    logs/        kafka.log, kafka.out, postgres.log, maven.log, kafka-format.log, one log per service
    run/         the pid (and port) of each service and of the mail sink
    mail/        the mail sink's Maildir
    stack.lock   held while the stack is being brought up or down

``KAFKA_BOOTSTRAP_SERVERS`` and ``DATABASE_URL`` name existing servers instead: the stack then starts
nothing of that kind and only waits for it, creates topics and migrates. Against such a cluster the topics
are production topics: replication factor 3 where the cluster has three brokers
(``CASEWAY_KAFKA_REPLICATION_FACTOR`` asks for another), and never 1 unless
``CASEWAY_KAFKA_SINGLE_BROKER=true`` says the cluster has one broker. A secured cluster is reached with
the services' own ``KAFKA_SECURITY_PROTOCOL`` / ``KAFKA_SASL_*`` / ``KAFKA_SSL_*`` settings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from caseway_ops.errors import StackError
from caseway_shared.kafka import security_options
from caseway_shared.settings import ServiceSettings

if TYPE_CHECKING:
    from collections.abc import Mapping

DEFAULT_HOST = "127.0.0.1"
DEFAULT_KAFKA_PORT = 9092
DEFAULT_CONTROLLER_PORT = 9093
DEFAULT_POSTGRES_PORT = 5432
DEFAULT_MAIL_SINK_PORT = 1025
DEFAULT_INTAKE_PORT = 8080
DEFAULT_ROUTER_PORT = 8081
DEFAULT_NOTIFIER_PORT = 8082
DB_USER = "caseway"
DB_PASSWORD = "caseway"  # noqa: S105 - the local stack's well-known development password, loopback only
DB_NAME = "caseway"


def _deploy_dir(environ: Mapping[str, str]) -> Path:
    if explicit := environ.get("CASEWAY_DEPLOY_DIR"):
        return Path(explicit).resolve()
    # deploy/src/caseway_ops/stack_config.py: the package is installed editable from the workspace.
    found = Path(__file__).resolve().parents[2]
    if not (found / "kafka" / "pom.xml").is_file():
        raise StackError(
            f"cannot find the deploy/ folder (looked in {found}); run from the repository's workspace "
            "(uv sync) or set CASEWAY_DEPLOY_DIR"
        )
    return found


def _port(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise StackError(f"{name}={raw!r} is not a port number") from None
    if not 0 < value < 65536:  # noqa: PLR2004 - the range of TCP ports
        raise StackError(f"{name}={raw!r} is not a port number")
    return value


def _flag(environ: Mapping[str, str], name: str) -> bool:
    raw = (environ.get(name) or "").strip().lower()
    if raw in {"", "0", "false", "no", "off"}:
        return False
    if raw in {"1", "true", "yes", "on"}:
        return True
    raise StackError(f"{name}={environ.get(name)!r} is not true or false")


def _optional_int(environ: Mapping[str, str], name: str) -> int | None:
    raw = environ.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise StackError(f"{name}={raw!r} is not a whole number") from None


def kafka_client_options(environ: Mapping[str, str]) -> dict[str, Any]:
    """aiokafka's security arguments from the services' own ``KAFKA_*`` settings (empty for plaintext)."""
    fields = ServiceSettings.model_fields
    given = {name.lower(): value for name, value in environ.items() if name.lower() in fields}
    given = {name: value for name, value in given.items() if name.startswith("kafka_")}
    if not given.get("kafka_security_protocol"):
        return {}
    # Validated from the given mapping alone (not the process's environment), as a development profile:
    # the tooling checks the connection, not a service's production readiness.
    return security_options(ServiceSettings.model_validate({**given, "environment": "development"}))


@dataclass(frozen=True, slots=True)
class StackConfig:
    """The local stack's paths and addresses; ``from_env()`` builds the usual one."""

    deploy_dir: Path
    state_dir: Path
    host: str = DEFAULT_HOST
    kafka_port: int = DEFAULT_KAFKA_PORT
    controller_port: int = DEFAULT_CONTROLLER_PORT
    postgres_port: int = DEFAULT_POSTGRES_PORT
    external_bootstrap_servers: str | None = None
    external_database_url: str | None = None
    postgres_bin_dir: Path | None = None
    mail_sink_port: int = DEFAULT_MAIL_SINK_PORT
    intake_port: int = DEFAULT_INTAKE_PORT
    router_port: int = DEFAULT_ROUTER_PORT
    notifier_port: int = DEFAULT_NOTIFIER_PORT
    # As root, where the cluster goes when the postgres OS user cannot reach the state folder.
    postgres_outside_root: Path = Path("/var/tmp")  # noqa: S108 - a folder of our own, checked before use
    # An external cluster: the replication factor asked for (None: 3, or fewer brokers' worth), and
    # whether it is meant to have one broker (the only way replication factor 1 is accepted there).
    topic_replication_factor: int | None = None
    kafka_single_broker: bool = False
    kafka_client_options: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    # One node of a local KRaft cluster of several (the load test's three-broker stack): this node's id,
    # every controller's (node id, controller port), and the replication of the cluster's internal topics.
    # The defaults are the usual single node.
    kafka_node_id: int = 1
    kafka_voters: tuple[tuple[int, int], ...] = ()
    kafka_internal_replication: int = 1

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> StackConfig:
        """Read ``KAFKA_BOOTSTRAP_SERVERS``, ``DATABASE_URL`` and the ``CASEWAY_*`` overrides.

        ``CASEWAY_STATE_DIR`` (default ``deploy/.state``), ``CASEWAY_KAFKA_PORT`` (9092),
        ``CASEWAY_KAFKA_CONTROLLER_PORT`` (9093), ``CASEWAY_POSTGRES_PORT`` (5432), ``CASEWAY_PG_BIN``
        (the PostgreSQL bin directory; found under /usr/lib/postgresql otherwise); for `caseway services`,
        ``CASEWAY_MAIL_SINK_PORT`` (1025) and the services' own ``CASEWAY_INTAKE_HTTP_PORT`` (8080),
        ``CASEWAY_ROUTER_HTTP_PORT`` (8081) and ``CASEWAY_NOTIFIER_HTTP_PORT`` (8082).
        """
        env = os.environ if environ is None else environ
        deploy_dir = _deploy_dir(env)
        state = env.get("CASEWAY_STATE_DIR")
        return cls(
            deploy_dir=deploy_dir,
            state_dir=Path(state).resolve() if state else deploy_dir / ".state",
            kafka_port=_port(env, "CASEWAY_KAFKA_PORT", DEFAULT_KAFKA_PORT),
            controller_port=_port(env, "CASEWAY_KAFKA_CONTROLLER_PORT", DEFAULT_CONTROLLER_PORT),
            postgres_port=_port(env, "CASEWAY_POSTGRES_PORT", DEFAULT_POSTGRES_PORT),
            external_bootstrap_servers=env.get("KAFKA_BOOTSTRAP_SERVERS") or None,
            external_database_url=env.get("DATABASE_URL") or None,
            postgres_bin_dir=Path(env["CASEWAY_PG_BIN"]) if env.get("CASEWAY_PG_BIN") else None,
            mail_sink_port=_port(env, "CASEWAY_MAIL_SINK_PORT", DEFAULT_MAIL_SINK_PORT),
            intake_port=_port(env, "CASEWAY_INTAKE_HTTP_PORT", DEFAULT_INTAKE_PORT),
            router_port=_port(env, "CASEWAY_ROUTER_HTTP_PORT", DEFAULT_ROUTER_PORT),
            notifier_port=_port(env, "CASEWAY_NOTIFIER_HTTP_PORT", DEFAULT_NOTIFIER_PORT),
            topic_replication_factor=_optional_int(env, "CASEWAY_KAFKA_REPLICATION_FACTOR"),
            kafka_single_broker=_flag(env, "CASEWAY_KAFKA_SINGLE_BROKER"),
            kafka_client_options=kafka_client_options(env),
        )

    # Addresses -------------------------------------------------------------------------------------

    @property
    def manages_kafka(self) -> bool:
        return self.external_bootstrap_servers is None

    @property
    def manages_postgres(self) -> bool:
        return self.external_database_url is None

    @property
    def bootstrap_servers(self) -> str:
        return self.external_bootstrap_servers or f"{self.host}:{self.kafka_port}"

    @property
    def database_url(self) -> str:
        if self.external_database_url:
            return self.external_database_url
        return f"postgresql://{DB_USER}:{DB_PASSWORD}@{self.host}:{self.postgres_port}/{DB_NAME}"

    # Paths -----------------------------------------------------------------------------------------

    @property
    def pom(self) -> Path:
        return self.deploy_dir / "kafka" / "pom.xml"

    @property
    def migrations_dir(self) -> Path:
        return self.deploy_dir / "migrations"

    @property
    def kafka_lib_dir(self) -> Path:
        return self.state_dir / "kafka-lib"

    @property
    def kafka_dir(self) -> Path:
        return self.state_dir / "kafka"

    @property
    def kafka_data_dir(self) -> Path:
        return self.kafka_dir / "data"

    @property
    def kafka_pid_file(self) -> Path:
        return self.kafka_dir / "kafka.pid"

    @property
    def postgres_dir(self) -> Path:
        """Where the cluster lives when the server's OS user can reach it; `postgres_server.server_dir`
        says where it really is (outside the state folder when run as root from a closed home)."""
        return self.state_dir / "postgres"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def lock_file(self) -> Path:
        return self.state_dir / "stack.lock"
