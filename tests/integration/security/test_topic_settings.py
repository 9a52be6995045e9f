"""Topics created with their production settings on the project's own broker, and `caseway stack up`
against an external cluster refusing replication factor 1 unless told the cluster has one broker."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from caseway_ops.errors import StackError
from caseway_ops.kafka_topics import create_topics, delete_topics, existing_topics
from caseway_shared.topics import CATALOGUE, Topic, spec

if TYPE_CHECKING:
    from collections.abc import Callable

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


async def _listed_once(admin: AIOKafkaAdminClient, settled: Callable[[set[str]], bool]) -> set[str]:
    """The broker's topics once ``settled`` holds (creation and deletion are asynchronous), or after 30 s."""
    deadline = time.monotonic() + 30
    while not settled(names := set(await admin.list_topics())) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return names


async def test_a_runs_topics_are_deleted_with_those_it_made_beyond_the_catalogue_and_no_others(infra):
    prefix = f"run-{uuid.uuid4().hex[:8]}."
    neighbour = f"run-{uuid.uuid4().hex[:8]}."
    extra, other = f"{prefix}chain-1", f"{neighbour}chain-1"
    await create_topics(infra.bootstrap_servers, prefix, replication_factor=1)
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, num_partitions=1, replication_factor=1) for name in (extra, other)]
        )
        await _listed_once(admin, lambda names: {extra, other} <= names)
        catalogue = await delete_topics(infra.bootstrap_servers, prefix)
        assert len(catalogue) == len(CATALOGUE)
        left = await _listed_once(admin, lambda names: not set(catalogue) & names)
        assert not set(catalogue) & left
        assert extra in left  # deleting the catalogue's topics leaves a run's others

        await create_topics(infra.bootstrap_servers, prefix, replication_factor=1)
        every = await delete_topics(infra.bootstrap_servers, prefix, catalogue_only=False)
        assert set(every) == {*catalogue, extra}
        left = await _listed_once(admin, lambda names: not any(name.startswith(prefix) for name in names))
        assert not {name for name in left if name.startswith(prefix)}
        assert other in left  # another run's topics are not touched
    finally:
        await delete_topics(infra.bootstrap_servers, prefix, catalogue_only=False)
        await admin.delete_topics([other])
        await admin.close()
