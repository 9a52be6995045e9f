"""A local Apache Kafka cluster of several KRaft nodes (each broker and controller at once), run from the
same Maven-fetched jars as the single broker of `caseway_ops.kafka_broker`: for the fault suite, which
kills one node -9 under load and shows that, with replication factor 3 and ``min.insync.replicas`` 2,
partition leaders move to the others and nothing is lost.

Each node is a `StackConfig` of its own (``<state>/kafka-node-<n>``: configuration, data, pid and logs)
on its own two ports; they share one cluster id, the jars (a link), and the list of controllers. A cluster
is made fresh by `up` (its nodes' folders are wiped first: the ports may differ from last time).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from aiokafka.admin import AIOKafkaAdminClient

from caseway_ops import kafka_broker
from caseway_ops.errors import StackError
from caseway_ops.processes import is_alive

if TYPE_CHECKING:
    from collections.abc import Sequence

    from caseway_ops.stack_config import StackConfig

READY_TIMEOUT = 180.0


def node_configs(base: StackConfig, ports: Sequence[tuple[int, int]]) -> list[StackConfig]:
    """One configuration per node, from `base` and each node's (broker port, controller port)."""
    voters = tuple((number, controller) for number, (_, controller) in enumerate(ports, start=1))
    return [
        replace(
            base,
            state_dir=base.state_dir / f"kafka-node-{number}",
            kafka_port=broker,
            controller_port=controller,
            kafka_node_id=number,
            kafka_voters=voters,
            kafka_internal_replication=min(3, len(ports)),
            external_bootstrap_servers=None,
        )
        for number, (broker, controller) in enumerate(ports, start=1)
    ]


class KafkaCluster:
    """Start, kill -9, restart and stop the nodes of a local cluster."""

    def __init__(self, base: StackConfig, ports: Sequence[tuple[int, int]]) -> None:
        self.base = base
        self.nodes = node_configs(base, ports)

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(f"{node.host}:{node.kafka_port}" for node in self.nodes)

    def pid(self, number: int) -> int | None:
        return kafka_broker.running_pid(self.nodes[number - 1])

    async def up(self) -> str:
        """Start every node that is not running (a cluster none of whose nodes runs is made afresh) and
        wait until all of them are in the cluster and a group coordinator answers."""
        await kafka_broker.ensure_jars(self.base)
        fresh = all(self.pid(n) is None for n in range(1, len(self.nodes) + 1))
        cluster_id = kafka_broker.new_cluster_id()
        for node in self.nodes:
            if not fresh:
                break
            shutil.rmtree(node.kafka_dir, ignore_errors=True)
            node.kafka_dir.mkdir(parents=True, exist_ok=True)
            (node.kafka_dir / "cluster-id").write_text(cluster_id + "\n", encoding="ascii")
            if not node.kafka_lib_dir.exists():
                node.kafka_lib_dir.symlink_to(self.base.kafka_lib_dir.resolve(), target_is_directory=True)
            kafka_broker.write_configuration(node)
            await kafka_broker.format_storage(node)
        for number, node in enumerate(self.nodes, start=1):
            if self.pid(number) is None:
                kafka_broker.start(node)
        return await self.wait_complete()

    async def wait_complete(self, *, time_limit: float = READY_TIMEOUT) -> str:
        """Until every node is registered in the cluster and a group coordinator answers."""
        deadline = time.monotonic() + time_limit
        detail = await kafka_broker.wait_ready(self.bootstrap_servers, time_limit=time_limit)
        while (brokers := await self._brokers()) < len(self.nodes):
            if time.monotonic() > deadline:
                raise StackError(
                    f"the Kafka cluster at {self.bootstrap_servers} has {brokers} of {len(self.nodes)} "
                    f"brokers after {time_limit:.0f} s; see {self.base.state_dir}/kafka-node-*/logs"
                )
            await asyncio.sleep(0.5)
        return detail

    async def _brokers(self) -> int:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap_servers, request_timeout_ms=5_000)
        try:
            await admin.start()
            return len((await admin.describe_cluster()).get("brokers", []))
        except Exception:  # a node is starting or stopping: not all there yet
            return 0
        finally:
            await admin.close()

    async def leaders(self) -> dict[tuple[str, int], int]:
        """(topic, partition) -> the node leading it (-1: none), for every topic of the cluster."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap_servers, request_timeout_ms=10_000)
        try:
            await admin.start()
            described = await admin.describe_topics(await admin.list_topics())
        finally:
            await admin.close()
        return {
            (topic["topic"], partition["partition"]): partition["leader"]
            for topic in described
            if topic["error_code"] == 0
            for partition in topic["partitions"]
        }

    async def kill9(self, number: int) -> int:
        """kill -9 node `number`; returns its pid once it is gone."""
        node = self.nodes[number - 1]
        pid = kafka_broker.running_pid(node)
        if pid is None:
            raise StackError(f"Kafka node {number} is not running")
        os.kill(pid, signal.SIGKILL)
        for _ in range(200):
            if not is_alive(pid):
                break
            await asyncio.sleep(0.05)
        node.kafka_pid_file.unlink(missing_ok=True)
        return pid

    async def start(self, number: int) -> None:
        """Start node `number` again and wait until the cluster is whole."""
        node = self.nodes[number - 1]
        # After a kill -9 the port may linger a moment in the kernel; starting refuses while it is taken.
        for _ in range(100):
            try:
                kafka_broker.start(node)
                break
            except StackError:
                await asyncio.sleep(0.2)
        else:
            kafka_broker.start(node)
        await self.wait_complete()

    async def stop(self) -> list[str]:
        return list(await asyncio.gather(*(kafka_broker.stop(node) for node in self.nodes)))
