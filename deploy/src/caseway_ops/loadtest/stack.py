"""The load test's own stack: a second Kafka broker and PostgreSQL server, on other ports, with their own
state folder, so that killing and restarting them never touches the shared development stack.

Defaults: Kafka 127.0.0.1:29092 (controller 29093), PostgreSQL 127.0.0.1:25432, state in
``deploy/.state/faults``. ``CASEWAY_LOADTEST_KAFKA_PORT``, ``..._CONTROLLER_PORT``, ``..._POSTGRES_PORT``
and ``CASEWAY_LOADTEST_STATE_DIR`` choose others. ``KAFKA_BOOTSTRAP_SERVERS`` / ``DATABASE_URL`` of the
calling environment are deliberately ignored: they name the shared stack.

With ``brokers`` above 1 the stack's Kafka is a cluster of that many KRaft nodes on free ports
(`caseway_ops.kafka_cluster`), its topics created as production would have them (replication factor 3,
``min.insync.replicas`` 2, for three brokers), and `kill_kafka` kills -9 one node at a time: the node
leading the most partitions, so that the leaders must move.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from collections import Counter
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from caseway_ops import kafka_broker, postgres_server
from caseway_ops.database import create_database, drop_database
from caseway_ops.errors import StackError
from caseway_ops.kafka_cluster import KafkaCluster
from caseway_ops.kafka_topics import TopicsReport, create_topics, delete_topics
from caseway_ops.processes import is_alive
from caseway_ops.stack import ensure_stack, stop_stack
from caseway_ops.stack_config import StackConfig

if TYPE_CHECKING:
    from collections.abc import Mapping

DEFAULT_KAFKA_PORT = 29092
DEFAULT_CONTROLLER_PORT = 29093
DEFAULT_POSTGRES_PORT = 25432
SHARED_PORTS = frozenset({9092, 9093, 5432})


def loadtest_config(environ: Mapping[str, str] | None = None) -> StackConfig:
    """The separate stack's configuration (never the shared stack's ports)."""
    env = os.environ if environ is None else environ
    base = StackConfig.from_env(
        {k: v for k, v in env.items() if k in ("CASEWAY_DEPLOY_DIR", "CASEWAY_PG_BIN")}
    )
    state = env.get("CASEWAY_LOADTEST_STATE_DIR")
    config = replace(
        base,
        state_dir=base.deploy_dir / ".state" / "faults"
        if not state
        else type(base.deploy_dir)(state).resolve(),
        kafka_port=int(env.get("CASEWAY_LOADTEST_KAFKA_PORT", DEFAULT_KAFKA_PORT)),
        controller_port=int(env.get("CASEWAY_LOADTEST_CONTROLLER_PORT", DEFAULT_CONTROLLER_PORT)),
        postgres_port=int(env.get("CASEWAY_LOADTEST_POSTGRES_PORT", DEFAULT_POSTGRES_PORT)),
        external_bootstrap_servers=None,
        external_database_url=None,
    )
    taken = {config.kafka_port, config.controller_port, config.postgres_port} & SHARED_PORTS
    if taken or config.state_dir == base.deploy_dir / ".state":
        raise StackError(f"the load test's stack must not use the shared stack's ports or state ({taken})")
    return config


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _share_jars(config: StackConfig) -> None:
    """Reuse the shared stack's Kafka jars (a link) instead of fetching them again with Maven."""
    shared = config.deploy_dir / ".state" / "kafka-lib"
    config.state_dir.mkdir(parents=True, exist_ok=True)
    if shared.is_dir() and not config.kafka_lib_dir.exists():
        config.kafka_lib_dir.symlink_to(shared, target_is_directory=True)


@dataclass(frozen=True, slots=True)
class RunEnvironment:
    """One run's own topics and database on the load test's stack."""

    config: StackConfig
    bootstrap_servers: str
    database_url: str
    database_name: str
    topic_prefix: str

    def env(self) -> dict[str, str]:
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "DATABASE_URL": self.database_url,
            "CASEWAY_TOPIC_PREFIX": self.topic_prefix,
        }


class LoadtestStack:
    """Start, kill -9 and restart the separate broker; restart the separate PostgreSQL."""

    def __init__(self, config: StackConfig | None = None, *, brokers: int = 1) -> None:
        base = config or loadtest_config()
        self.cluster: KafkaCluster | None = None
        if brokers > 1:
            self.cluster = KafkaCluster(base, [(free_port(), free_port()) for _ in range(brokers)])
            # The stack's own tooling then treats Kafka as a cluster it does not start (see `up`).
            base = replace(base, external_bootstrap_servers=self.cluster.bootstrap_servers)
        self.config = base
        self.kafka_kills: list[dict[str, Any]] = []  # on a cluster: which node, and how its leaders moved
        self.topics: TopicsReport | None = None  # the last run's topics, with their replication factor
        self._killed: int | None = None

    @classmethod
    def isolated(cls, name: str, *, brokers: int = 1) -> LoadtestStack:
        """A stack of its own on free ports, in ``<state>/<name>``: for tests, so that two test sessions
        running at once (two people, or two CI jobs on one machine) never stop each other's broker."""
        base = loadtest_config()
        return cls(
            replace(
                base,
                state_dir=base.state_dir / name,
                kafka_port=free_port(),
                controller_port=free_port(),
                postgres_port=free_port(),
            ),
            brokers=brokers,
        )

    async def up(self) -> None:
        _share_jars(self.config)
        if self.cluster is not None:
            await self.cluster.up()
        await ensure_stack(config=self.config, migrate_database=False)

    async def down(self) -> None:
        if self.cluster is not None:
            await self.cluster.stop()
        await stop_stack(config=self.config)

    async def new_run(self, run_id: str) -> RunEnvironment:
        """Fresh topics (prefix ``<run_id>.``) and a fresh migrated database ``caseway_lt_<run_id>``; on a
        cluster the topics are created as production would have them."""
        prefix = f"{run_id}."
        self.topics = await create_topics(
            self.config.bootstrap_servers,
            prefix,
            production=self.cluster is not None,
            replication_factor=None if self.cluster is not None else 1,
        )
        name = f"caseway_lt_{run_id}".replace("-", "_")
        url = await create_database(self.config.database_url, name, replace=True)
        return RunEnvironment(self.config, self.config.bootstrap_servers, url, name, prefix)

    async def drop_run(self, run: RunEnvironment) -> None:
        """Drop the run's database and every topic it made (the catalogue's and the raw chain's): the
        stack's state folder is kept between runs, and each run's topics held hundreds of megabytes."""
        await drop_database(self.config.database_url, run.database_name)
        await delete_topics(run.bootstrap_servers, run.topic_prefix, catalogue_only=False)

    # Faults ----------------------------------------------------------------------------------------

    async def kill_kafka(self) -> int:
        """kill -9 the broker (on a cluster, the node leading the most partitions); returns its pid once it
        is gone."""
        if self.cluster is not None:
            return await self._kill_node(self.cluster)
        pid = kafka_broker.running_pid(self.config)
        if pid is None:
            raise StackError("the load test's Kafka broker is not running")
        os.kill(pid, signal.SIGKILL)
        for _ in range(200):
            if not is_alive(pid):
                break
            await asyncio.sleep(0.05)
        self.config.kafka_pid_file.unlink(missing_ok=True)
        return pid

    async def _kill_node(self, cluster: KafkaCluster) -> int:
        """kill -9 the node leading the most partitions and wait until another leads each of them (the
        times are recorded in `kafka_kills`)."""
        before = await cluster.leaders()
        counts = Counter(before.values())
        number = max(range(1, len(cluster.nodes) + 1), key=lambda n: counts.get(n, 0))
        led = {where for where, leader in before.items() if leader == number}
        pid = await cluster.kill9(number)
        killed_at = time.monotonic()
        moved_s: float | None = None
        while time.monotonic() - killed_at < 60:  # noqa: PLR2004 - far beyond any election
            try:
                now = await cluster.leaders()
            except Exception:  # the cluster answers slowly during the election: ask again
                now = {}
            if now and all(now.get(where, -1) not in (-1, number) for where in led):
                moved_s = time.monotonic() - killed_at
                break
            await asyncio.sleep(0.2)
        self._killed = number
        self.kafka_kills.append(
            {"node": number, "partitions_led": len(led), "leaders_moved_s": moved_s and round(moved_s, 1)}
        )
        return pid

    async def start_kafka(self) -> None:
        if self.cluster is not None:
            if self._killed is not None:
                await self.cluster.start(self._killed)
                self._killed = None
            return
        # After a kill -9 the port may linger a moment in the kernel; starting refuses while it is taken.
        for _ in range(100):
            try:
                pid = kafka_broker.start(self.config)
                break
            except StackError:
                await asyncio.sleep(0.2)
        else:
            pid = kafka_broker.start(self.config)
        await kafka_broker.wait_ready(self.config.bootstrap_servers, config=self.config, pid=pid)

    async def restart_postgres(self) -> None:
        """pg_ctl stop -m fast, then start: every connection is cut, open transactions roll back."""
        await postgres_server.stop(self.config)
        await postgres_server.start(self.config)
        await postgres_server.wait_ready(self.config.database_url)

    def kafka_pid(self) -> int | None:
        return kafka_broker.running_pid(self.config)

    def postgres_pid(self) -> int | None:
        return postgres_server.running_pid(self.config)
