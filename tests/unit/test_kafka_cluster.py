"""The load test's Kafka can be a cluster of KRaft nodes (issue 13 item 3): each node's configuration names
every controller and replicates the internal topics as production would; a single node is as it was."""

from __future__ import annotations

from pathlib import Path

from caseway_ops.kafka_broker import render_server_properties
from caseway_ops.kafka_cluster import node_configs
from caseway_ops.stack_config import StackConfig


def _properties(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


def test_each_node_of_three_names_every_controller_and_replicates_internal_topics_three_times() -> None:
    base = StackConfig(deploy_dir=Path("/deploy"), state_dir=Path("/state"))
    nodes = node_configs(base, [(31001, 31002), (31003, 31004), (31005, 31006)])
    second = _properties(render_server_properties(nodes[1]))
    assert second["node.id"] == "2"
    assert second["controller.quorum.voters"] == "1@127.0.0.1:31002,2@127.0.0.1:31004,3@127.0.0.1:31006"
    assert second["listeners"] == "PLAINTEXT://127.0.0.1:31003,CONTROLLER://127.0.0.1:31004"
    assert second["log.dirs"] == "/state/kafka-node-2/kafka/data"
    assert second["offsets.topic.replication.factor"] == "3"
    assert second["transaction.state.log.min.isr"] == "2"
    assert second["default.replication.factor"] == "3"
    assert second["min.insync.replicas"] == "2"
    assert {n.kafka_dir for n in nodes} == {Path(f"/state/kafka-node-{i}/kafka") for i in (1, 2, 3)}


def test_the_single_node_is_configured_as_before() -> None:
    single = _properties(
        render_server_properties(StackConfig(deploy_dir=Path("/deploy"), state_dir=Path("/state")))
    )
    assert single["node.id"] == "1"
    assert single["controller.quorum.voters"] == "1@127.0.0.1:9093"
    assert single["offsets.topic.replication.factor"] == "1"
    assert single["min.insync.replicas"] == "1"
    assert single["transaction.state.log.min.isr"] == "1"
