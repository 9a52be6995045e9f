"""The catalogue's production settings and the replication plan (pure)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from caseway_ops.errors import StackError
from caseway_ops.kafka_topics import plan_replication
from caseway_shared.topics import CATALOGUE, Topic, min_insync_replicas, spec


def test_three_brokers_get_three_copies_and_two_in_sync():
    assert plan_replication(3) == 3
    assert plan_replication(5) == 3
    assert min_insync_replicas(3) == 2
    assert spec(Topic.CASES).configs(3)["min.insync.replicas"] == "2"


def test_a_smaller_cluster_gets_what_it_can_hold_and_losing_a_broker_never_stops_writes():
    assert plan_replication(2) == 2
    assert min_insync_replicas(2) == 1
    assert min_insync_replicas(1) == 1


def test_replication_factor_one_is_refused_unless_the_cluster_is_meant_to_have_one_broker():
    with pytest.raises(StackError, match="refusing to create production topics with replication factor 1"):
        plan_replication(1)
    with pytest.raises(StackError, match="--single-broker"):
        plan_replication(3, requested=1)
    assert plan_replication(1, single_broker=True) == 1


def test_a_factor_the_cluster_cannot_hold_is_refused():
    with pytest.raises(StackError, match="needs 3 brokers; the cluster has 2"):
        plan_replication(2, requested=3)


def test_every_topic_has_a_written_retention_and_dead_letters_keep_at_least_30_days():
    for entry in CATALOGUE:
        assert entry.retention_reason, entry.topic
        assert entry.retention >= timedelta(days=1)
        assert entry.segment <= entry.retention
    assert spec(Topic.DEADLETTER).retention >= timedelta(days=30)
    assert int(spec(Topic.DEADLETTER).configs()["retention.ms"]) >= 30 * 24 * 3600 * 1000


def test_only_the_heartbeat_is_compacted():
    compacted = {entry.topic for entry in CATALOGUE if "compact" in entry.cleanup_policy}
    assert compacted == {Topic.HEARTBEAT}
    assert spec(Topic.CASES).configs()["cleanup.policy"] == "delete"
    assert spec(Topic.CASES).configs()["unclean.leader.election.enable"] == "false"
