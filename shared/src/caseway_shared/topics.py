"""The topic catalogue: Caseway's contract with upstream systems and with operations staff.

Every topic Caseway reads or writes is listed here once, with its key, partition count and production
settings (retention, clean-up policy; replication factor 3 and ``min.insync.replicas`` 2 wherever the
cluster has three brokers). Services and the local stack derive topic names from this catalogue, never
from string literals of their own; `caseway stack up` creates the topics with these settings, and
docs/security.md explains each retention.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Literal

# A production topic survives the loss of one broker without refusing writes: three copies, and a write
# with acks=all waits for two of them.
PRODUCTION_REPLICATION_FACTOR = 3
PRODUCTION_MIN_INSYNC_REPLICAS = 2


def min_insync_replicas(replication_factor: int) -> int:
    """2 for three copies or more; a smaller cluster gets one fewer than its copies (at least 1), so that
    losing one broker never stops writes."""
    return max(1, min(PRODUCTION_MIN_INSYNC_REPLICAS, replication_factor - 1))


class Topic(StrEnum):
    """The base names of Caseway's topics (a deployment may add a prefix, see `topic_name`)."""

    CONTACT_CENTRE_REPORTS = "contact-centre.reports.v1"
    REPORTS_RECEIVED = "reports.received.v1"
    REPORTS_REJECTED = "reports.rejected.v1"
    REPORT_UPDATES = "reports.updates.v1"
    CASES = "cases.v1"
    NOTIFICATIONS = "notifications.v1"
    DEADLETTER = "ops.deadletter.v1"
    HEARTBEAT = "ops.heartbeat.v1"


def topic_name(topic: Topic | str, prefix: str = "") -> str:
    """The one rule for a topic's name on the broker: the deployment's prefix (tests and load runs use one
    of their own) and the catalogue's base name. `topic` may be a base name read from a command line."""
    return f"{prefix}{Topic(topic).value}"


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic of the catalogue: what it carries, how it is keyed and how many partitions it has."""

    topic: Topic
    key: str
    producer: str
    consumer: str
    description: str
    partitions: int
    retention: timedelta = timedelta(days=7)
    cleanup_policy: Literal["delete", "compact", "compact,delete"] = "delete"
    # Segments roll at least this often, so data past its retention is deleted within about a segment.
    segment: timedelta = timedelta(days=1)
    retention_reason: str = ""

    def full_name(self, prefix: str = "") -> str:
        """The topic's name on the broker for a deployment that uses `prefix` (tests use one per run)."""
        return topic_name(self.topic, prefix)

    def configs(self, replication_factor: int = PRODUCTION_REPLICATION_FACTOR) -> dict[str, str]:
        """The topic-level configuration Kafka is given when the topic is created."""
        return {
            "cleanup.policy": self.cleanup_policy,
            "retention.ms": str(int(self.retention.total_seconds() * 1000)),
            "segment.ms": str(int(self.segment.total_seconds() * 1000)),
            "min.insync.replicas": str(min_insync_replicas(replication_factor)),
            "unclean.leader.election.enable": "false",
        }


# Six partitions on the main flow lets up to six replicas of a service share the load; ops topics are
# small and ordered, so they get fewer.
CATALOGUE: tuple[TopicSpec, ...] = (
    TopicSpec(
        Topic.CONTACT_CENTRE_REPORTS,
        key="source id",
        producer="upstream contact-centre systems",
        consumer="intake",
        description="Raw reports from contact-centre systems (JSON; schema published).",
        partitions=6,
        retention=timedelta(days=7),
        retention_reason=(
            "upstream input, residents' words and contact details included: long enough to re-read a week's "
            "input after an outage or a bad release, no longer"
        ),
    ),
    TopicSpec(
        Topic.REPORTS_RECEIVED,
        key="report id",
        producer="intake",
        consumer="router",
        description="Canonical, validated reports.",
        partitions=6,
        retention=timedelta(days=7),
        retention_reason="a week to replay into the router; the report itself is kept in PostgreSQL",
    ),
    TopicSpec(
        Topic.REPORTS_REJECTED,
        key="source id",
        producer="intake",
        consumer="ops",
        description="What could not be accepted: original payload, every reason, and where it came from.",
        partitions=3,
        retention=timedelta(days=30),
        retention_reason="a month for the sending system's owners to read why and send again",
    ),
    TopicSpec(
        Topic.REPORT_UPDATES,
        key="report id",
        producer="intake",
        consumer="router",
        description="Residents' notes on and reopenings of their reports, from Open311 front ends.",
        partitions=6,
        retention=timedelta(days=7),
        retention_reason="as reports.received.v1: a week to replay into the router",
    ),
    TopicSpec(
        Topic.CASES,
        key="case id",
        producer="router",
        consumer="notifier, ops, upstream",
        description="Case opened, report linked, assigned, flagged, status changed, closed.",
        partitions=6,
        retention=timedelta(days=14),
        retention_reason=(
            "read by the notifier and by upstream systems that may poll weekly: two weeks; cases live on "
            "in PostgreSQL"
        ),
    ),
    TopicSpec(
        Topic.NOTIFICATIONS,
        key="case id",
        producer="notifier",
        consumer="ops",
        description="Notification sent, failed, or suppressed as a duplicate.",
        partitions=3,
        retention=timedelta(days=14),
        retention_reason="two weeks of delivery outcomes for operations; the record is in PostgreSQL",
    ),
    TopicSpec(
        Topic.DEADLETTER,
        key="original key",
        producer="every service",
        consumer="ops",
        description="Messages that failed after retries; provenance, error and attempts in headers.",
        partitions=1,
        retention=timedelta(days=35),
        retention_reason=(
            "at least 30 days (a month and a long weekend) to find the cause, fix it and replay the "
            "original bytes"
        ),
    ),
    TopicSpec(
        Topic.HEARTBEAT,
        key="service instance",
        producer="every service",
        consumer="ops",
        description="Liveness and progress figures of every running instance.",
        partitions=1,
        retention=timedelta(days=1),
        cleanup_policy="compact,delete",
        segment=timedelta(hours=1),
        retention_reason=(
            "compacted: only each instance's latest heartbeat matters; a day, so gone instances fade away"
        ),
    ),
)


def spec(topic: Topic) -> TopicSpec:
    """The catalogue entry of `topic`."""
    return next(entry for entry in CATALOGUE if entry.topic is topic)


@dataclass(frozen=True, slots=True)
class ServiceAccess:
    """What one service may do on the broker: the topics it reads (with its one consumer group) and the
    topics it writes. A secured cluster grants exactly this to the service's principal, nothing more."""

    service: str
    reads: tuple[Topic, ...]
    writes: tuple[Topic, ...]

    @property
    def principal(self) -> str:
        """The service's Kafka user name (one per service, shared by its replicas)."""
        return f"caseway-{self.service}"


ACCESS: tuple[ServiceAccess, ...] = (
    ServiceAccess(
        "intake",
        reads=(Topic.CONTACT_CENTRE_REPORTS, Topic.CASES),
        writes=(
            Topic.REPORTS_RECEIVED,
            Topic.REPORTS_REJECTED,
            Topic.REPORT_UPDATES,
            Topic.DEADLETTER,
            Topic.HEARTBEAT,
        ),
    ),
    ServiceAccess(
        "router",
        reads=(Topic.REPORTS_RECEIVED, Topic.REPORT_UPDATES),
        writes=(Topic.CASES, Topic.DEADLETTER, Topic.HEARTBEAT),
    ),
    ServiceAccess(
        "notifier",
        reads=(Topic.CASES,),
        writes=(Topic.NOTIFICATIONS, Topic.DEADLETTER, Topic.HEARTBEAT),
    ),
)


def access(service: str) -> ServiceAccess:
    """The access of `service` (intake, router or notifier)."""
    return next(entry for entry in ACCESS if entry.service == service)
