"""Topics created with their production settings on the project's own broker, and `caseway stack up`
against an external cluster refusing replication factor 1 unless told the cluster has one broker."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from caseway_ops.errors import StackError
from caseway_ops.kafka_topics import create_topics, delete_topics, existing_topics
from caseway_shared.topics import CATALOGUE, Topic, spec

pytestmark = pytest.mark.infra


async def _topic_configs(bootstrap: str, name: str) -> dict[str, str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
    finally:
        await admin.close()
    [resource] = response.to_object()["resources"]
    return {entry["config_names"]: entry["config_value"] for entry in resource["config_entries"]}


async def test_production_topics_are_refused_replication_factor_one_on_a_one_broker_cluster(infra):
    prefix = f"prod-{uuid.uuid4().hex[:8]}."
    with pytest.raises(StackError, match="--single-broker"):
        await create_topics(infra.bootstrap_servers, prefix, production=True, replication_factor=None)
    assert await existing_topics(infra.bootstrap_servers, prefix) == ()
    with pytest.raises(StackError, match="needs 3 brokers; the cluster has 1"):
        await create_topics(infra.bootstrap_servers, prefix, production=True, replication_factor=3)


async def test_topics_carry_their_retention_and_clean_up_policy(infra):
    prefix = f"prod-{uuid.uuid4().hex[:8]}."
    try:
        report = await create_topics(
            infra.bootstrap_servers, prefix, production=True, replication_factor=None, single_broker=True
        )
        assert report.replication_factor == 1
        assert len(report.created) == len(CATALOGUE)
        dead = await _topic_configs(infra.bootstrap_servers, spec(Topic.DEADLETTER).full_name(prefix))
        assert int(dead["retention.ms"]) >= 30 * 24 * 3600 * 1000
        assert dead["cleanup.policy"] == "delete"
        beat = await _topic_configs(infra.bootstrap_servers, spec(Topic.HEARTBEAT).full_name(prefix))
        assert beat["cleanup.policy"] == "compact,delete"
        for entry in CATALOGUE:
            configs = await _topic_configs(infra.bootstrap_servers, entry.full_name(prefix))
            assert configs["retention.ms"] == entry.configs(1)["retention.ms"], entry.topic
            assert configs["min.insync.replicas"] == "1"  # one copy: two in sync could never be met
    finally:
        await delete_topics(infra.bootstrap_servers, prefix)


def _stack_up(infra, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CASEWAY_", "KAFKA_"))}
    env |= {
        "KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap_servers,
        "DATABASE_URL": infra.database_url,
        "CASEWAY_STATE_DIR": str(tmp_path / "state"),
    }
    caseway = str(Path(sys.executable).parent / "caseway")
    return subprocess.run(
        [caseway, "stack", "up", "--no-migrate", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


async def test_stack_up_against_an_external_cluster_refuses_one_copy_unless_told(infra, tmp_path):
    prefix = f"prod-{uuid.uuid4().hex[:8]}."
    try:
        refused = _stack_up(infra, tmp_path, "--topic-prefix", prefix)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "refusing to create production topics with replication factor 1" in refused.stderr
        assert await existing_topics(infra.bootstrap_servers, prefix) == ()
        accepted = _stack_up(infra, tmp_path, "--topic-prefix", prefix, "--single-broker")
        assert accepted.returncode == 0, accepted.stdout + accepted.stderr
        assert "replication factor 1" in accepted.stdout
        assert len(await existing_topics(infra.bootstrap_servers, prefix)) == len(CATALOGUE)
    finally:
        await delete_topics(infra.bootstrap_servers, prefix)
