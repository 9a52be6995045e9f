"""The local Apache Kafka broker: one KRaft node (broker and controller) run from Maven Central's jars.

No Docker and no Kafka distribution: ``deploy/kafka/pom.xml`` names ``org.apache.kafka:kafka_2.13`` and
a log4j2 binding for slf4j 1.7; Maven copies their runtime jars into ``.state/kafka-lib`` (again only
when pom.xml changes), and ``java -cp 'kafka-lib/*' kafka.Kafka server.properties`` runs the broker.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiokafka.admin import AIOKafkaAdminClient

from caseway_ops.errors import StackError
from caseway_ops.processes import (
    command_line,
    describe_error,
    find_executable,
    is_alive,
    port_is_open,
    port_owner,
    read_pid,
    run_command,
    spawn_detached,
    stop_process_group,
    tail,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from caseway_ops.stack_config import StackConfig

_STAMP = ".pom-sha256"
_INSTALL_HINT = "run deploy/bootstrap.sh (it installs OpenJDK 17 and Maven)"
_READINESS_GROUP = "caseway-stack-readiness"
MAVEN_TIMEOUT = 900.0
READY_TIMEOUT = 120.0
STOP_GRACE = 60.0


def _server_properties(config: StackConfig) -> Path:
    return config.kafka_dir / "server.properties"


def _log4j_properties(config: StackConfig) -> Path:
    return config.kafka_dir / "log4j2.properties"


def _classpath(config: StackConfig) -> str:
    # The JVM expands the trailing * itself (every jar of the folder); no shell is involved.
    return f"{config.kafka_lib_dir}/*"


# Jars ----------------------------------------------------------------------------------------------


def _pom_digest(config: StackConfig) -> str:
    return hashlib.sha256(config.pom.read_bytes()).hexdigest()


def jars_are_current(config: StackConfig) -> bool:
    stamp = config.kafka_lib_dir / _STAMP
    try:
        current = stamp.read_text(encoding="ascii").strip() == _pom_digest(config)
    except OSError:
        return False
    return current and any(config.kafka_lib_dir.glob("kafka_2.13-*.jar"))


async def ensure_jars(config: StackConfig) -> str:
    """Fetch the broker's jars with Maven unless the cache matches pom.xml; says what it did.

    ``MAVEN_OPTS`` passes through, so ``MAVEN_OPTS=-Dmaven.repo.local=/tmp/m2`` measures a cold fetch.
    """
    if jars_are_current(config):
        return "cached (pom.xml unchanged)"
    mvn = find_executable("mvn", _INSTALL_HINT)
    staging = config.state_dir / f"kafka-lib.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    config.logs_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(config.pom),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={staging}",
    ]
    result = await run_command(argv, time_limit=MAVEN_TIMEOUT)
    log = config.logs_dir / "maven.log"
    log.write_text(f"$ {' '.join(argv)}\n{result.output}", encoding="utf-8")
    jars = sorted(staging.glob("*.jar"))
    if result.returncode != 0 or not any(j.name.startswith("kafka_2.13-") for j in jars):
        shutil.rmtree(staging, ignore_errors=True)
        raise StackError(
            f"Maven could not fetch the Kafka broker's jars (exit {result.returncode}); see {log}:\n"
            f"{tail(log)}"
        )
    (staging / _STAMP).write_text(_pom_digest(config) + "\n", encoding="ascii")
    had_old = config.kafka_lib_dir.exists()
    shutil.rmtree(config.kafka_lib_dir, ignore_errors=True)
    staging.rename(config.kafka_lib_dir)
    return f"fetched {len(jars)} jars with Maven" + (" (pom.xml changed)" if had_old else "")


# Configuration -------------------------------------------------------------------------------------


def render_server_properties(config: StackConfig) -> str:
    """A KRaft node, broker and controller at once: the single node of the local stack, or one node of a
    local cluster (`StackConfig.kafka_voters`). On a single node the replication factor and min ISR of
    every internal topic are 1, or the group coordinator never becomes available; on a cluster they are
    `kafka_internal_replication` and one less (at least 1), as production would have them. One partition
    each and no initial rebalance delay make it start fast. Topics are created from the catalogue only,
    never by a typo in a client."""
    host = config.host
    voters = config.kafka_voters or ((config.kafka_node_id, config.controller_port),)
    replication = max(1, config.kafka_internal_replication)
    min_isr = max(1, min(2, replication - 1))
    return "\n".join(
        [
            "# Written by caseway_ops.kafka_broker on every `caseway stack up`; edits are overwritten.",
            "process.roles=broker,controller",
            f"node.id={config.kafka_node_id}",
            "controller.quorum.voters=" + ",".join(f"{node}@{host}:{port}" for node, port in voters),
            f"listeners=PLAINTEXT://{host}:{config.kafka_port},CONTROLLER://{host}:{config.controller_port}",
            f"advertised.listeners=PLAINTEXT://{host}:{config.kafka_port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={config.kafka_data_dir}",
            "num.partitions=1",
            f"default.replication.factor={replication}",
            f"min.insync.replicas={min_isr}",
            f"offsets.topic.replication.factor={replication}",
            "offsets.topic.num.partitions=1",
            f"transaction.state.log.replication.factor={replication}",
            f"transaction.state.log.min.isr={min_isr}",
            "transaction.state.log.num.partitions=1",
            f"share.coordinator.state.topic.replication.factor={replication}",
            f"share.coordinator.state.topic.min.isr={min_isr}",
            "share.coordinator.state.topic.num.partitions=1",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=false",
            "delete.topic.enable=true",
            # A developer's machine: keep a week of data, in small segments.
            "log.retention.hours=168",
            "log.segment.bytes=104857600",
            "",
        ]
    )


def render_log4j_properties(config: StackConfig) -> str:
    log = config.logs_dir / "kafka.log"
    return "\n".join(
        [
            "# Written by caseway_ops.kafka_broker; the broker logs to a rolling file, never the terminal.",
            "name=caseway-kafka",
            "appender.file.type=RollingFile",
            "appender.file.name=file",
            f"appender.file.fileName={log}",
            f"appender.file.filePattern={log}.%i",
            "appender.file.layout.type=PatternLayout",
            "appender.file.layout.pattern=[%d] %p %m (%c)%n",
            "appender.file.policies.type=Policies",
            "appender.file.policies.size.type=SizeBasedTriggeringPolicy",
            "appender.file.policies.size.size=20MB",
            "appender.file.strategy.type=DefaultRolloverStrategy",
            "appender.file.strategy.max=5",
            "rootLogger.level=INFO",
            "rootLogger.appenderRef.file.ref=file",
            "logger.request.name=kafka.request.logger",
            "logger.request.level=WARN",
            "logger.statechange.name=state.change.logger",
            "logger.statechange.level=WARN",
            "",
        ]
    )


def write_configuration(config: StackConfig) -> None:
    config.kafka_dir.mkdir(parents=True, exist_ok=True)
    config.logs_dir.mkdir(parents=True, exist_ok=True)
    _server_properties(config).write_text(render_server_properties(config), encoding="utf-8")
    _log4j_properties(config).write_text(render_log4j_properties(config), encoding="utf-8")


def new_cluster_id() -> str:
    """What ``StorageTool random-uuid`` prints (Kafka's ``Uuid.randomUuid``), without starting a JVM."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not text.startswith("-"):
            return text


def _java() -> str:
    return find_executable("java", _INSTALL_HINT)


async def format_storage(config: StackConfig, *, extra_arguments: Sequence[str] = ()) -> str:
    """Format the log directory once, with the cluster id kept in ``kafka/cluster-id``;
    ``extra_arguments`` go to the storage tool (the secured broker's ``--add-scram`` credentials)."""
    if (config.kafka_data_dir / "meta.properties").is_file():
        return "already formatted"
    id_file = config.kafka_dir / "cluster-id"
    if id_file.is_file():
        cluster_id = id_file.read_text(encoding="ascii").strip()
    else:
        cluster_id = new_cluster_id()
        id_file.write_text(cluster_id + "\n", encoding="ascii")
    argv = [
        _java(),
        "-Xmx256m",
        f"-Dlog4j2.configurationFile={_log4j_properties(config)}",
        "-cp",
        _classpath(config),
        "kafka.tools.StorageTool",
        "format",
        "-t",
        cluster_id,
        "-c",
        str(_server_properties(config)),
        "--ignore-formatted",
        *extra_arguments,
    ]
    result = await run_command(argv, time_limit=120)
    log = config.logs_dir / "kafka-format.log"
    shown = argv[: len(argv) - len(extra_arguments)] + (["(credentials)"] if extra_arguments else [])
    log.write_text(f"$ {' '.join(shown)}\n{result.output}", encoding="utf-8")
    if result.returncode != 0:
        raise StackError(
            f"formatting Kafka's storage failed (exit {result.returncode}); see {log}:\n{tail(log)}"
        )
    return f"formatted, cluster id {cluster_id}"


# Process -------------------------------------------------------------------------------------------


def running_pid(config: StackConfig) -> int | None:
    """The pid of the broker this stack started, if it still runs (a stale pid file is ignored)."""
    pid = read_pid(config.kafka_pid_file)
    if pid is None or not is_alive(pid):
        return None
    cmd = command_line(pid)
    if "kafka.Kafka" not in cmd or str(_server_properties(config)) not in cmd:
        return None  # the pid was reused by an unrelated process
    return pid


def _assert_ports_free(config: StackConfig) -> None:
    for port in (config.kafka_port, config.controller_port):
        if port_is_open(config.host, port):
            owner = port_owner(port)
            raise StackError(
                f"{config.host}:{port} is already taken by {owner or 'another process'}, which this stack "
                "did not start. Stop it, or set KAFKA_BOOTSTRAP_SERVERS to use a broker that is already "
                "running (the stack then starts no broker of its own), or choose other ports with "
                "CASEWAY_KAFKA_PORT / CASEWAY_KAFKA_CONTROLLER_PORT."
            )


def start(config: StackConfig) -> int:
    """Start the broker detached (own session and process group) and record its pid."""
    _assert_ports_free(config)
    argv = [
        _java(),
        "-Xms256m",
        "-Xmx768m",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:+ExitOnOutOfMemoryError",
        f"-XX:ErrorFile={config.logs_dir}/kafka-hs_err_pid%p.log",
        "-Djava.awt.headless=true",
        f"-Dkafka.logs.dir={config.logs_dir}",
        f"-Dlog4j2.configurationFile={_log4j_properties(config)}",
        "-cp",
        _classpath(config),
        "kafka.Kafka",
        str(_server_properties(config)),
    ]
    out = config.logs_dir / "kafka.out"
    with out.open("a", encoding="utf-8") as handle:
        handle.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting: {' '.join(argv)}\n")
    pid = spawn_detached(argv, output=out, env=os.environ)
    config.kafka_pid_file.write_text(f"{pid}\n", encoding="ascii")
    return pid


async def stop(config: StackConfig) -> str:
    pid = running_pid(config)
    if pid is None:
        config.kafka_pid_file.unlink(missing_ok=True)
        return "not running"
    outcome = await stop_process_group(pid, grace=STOP_GRACE)
    config.kafka_pid_file.unlink(missing_ok=True)
    return f"pid {pid} {outcome}"


# Readiness -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Probe:
    ready: bool
    detail: str


async def probe(
    bootstrap_servers: str, *, time_limit: float = 5.0, client_options: Mapping[str, Any] | None = None
) -> Probe:
    """Ready means a client can describe the cluster and find a group coordinator (an open port is not
    enough: the coordinator answers a few seconds after the listener). ``client_options`` carry the
    security arguments of a secured cluster."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers,
        client_id="caseway-stack",
        request_timeout_ms=int(time_limit * 1000),
        **dict(client_options or {}),
    )
    try:
        async with asyncio.timeout(time_limit):
            await admin.start()
            cluster = await admin.describe_cluster()
            await admin.find_coordinator(_READINESS_GROUP)
    except Exception as exc:  # any failure means "not ready yet", reported as such
        return Probe(ready=False, detail=describe_error(exc))
    finally:
        await admin.close()
    brokers = len(cluster.get("brokers", []))
    return Probe(ready=True, detail=f"cluster {cluster.get('cluster_id')}, {brokers} broker(s)")


async def wait_ready(
    bootstrap_servers: str,
    *,
    time_limit: float = READY_TIMEOUT,
    config: StackConfig | None = None,
    pid: int | None = None,
    client_options: Mapping[str, Any] | None = None,
) -> str:
    """Poll `probe` until ready; fail early, with the log's tail, if our own broker process exits."""
    deadline = time.monotonic() + time_limit
    last = Probe(ready=False, detail="not probed")
    while time.monotonic() < deadline:
        if pid is not None and config is not None and not is_alive(pid):
            config.kafka_pid_file.unlink(missing_ok=True)
            out, log = config.logs_dir / "kafka.out", config.logs_dir / "kafka.log"
            raise StackError(
                f"the Kafka broker (pid {pid}) exited while starting; its output ({out}):\n"
                f"{tail(out, 15, after='--- ')}\nthe end of {log}:\n{tail(log, 8)}"
            )
        last = await probe(
            bootstrap_servers,
            time_limit=min(5.0, max(0.5, deadline - time.monotonic())),
            client_options=client_options,
        )
        if last.ready:
            return last.detail
        await asyncio.sleep(0.25)
    where = f"; see {config.logs_dir}/kafka.log" if config is not None and pid is not None else ""
    raise StackError(
        f"Kafka at {bootstrap_servers} was not ready within {time_limit:.0f} s ({last.detail}){where}"
    )
