"""The topic catalogue: Caseway's contract with upstream systems and with operations staff.

Every topic Caseway reads or writes is listed here once, with its key and partition count. Services and
the local stack derive topic names from this catalogue, never from string literals of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Topic(StrEnum):
    """The base names of Caseway's topics (a deployment may add a prefix, see `TopicSpec.full_name`)."""

    CONTACT_CENTRE_REPORTS = "contact-centre.reports.v1"
    REPORTS_RECEIVED = "reports.received.v1"
    REPORTS_REJECTED = "reports.rejected.v1"
    REPORT_UPDATES = "reports.updates.v1"
    CASES = "cases.v1"
    NOTIFICATIONS = "notifications.v1"
    DEADLETTER = "ops.deadletter.v1"
    HEARTBEAT = "ops.heartbeat.v1"


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic of the catalogue: what it carries, how it is keyed and how many partitions it has."""

    topic: Topic
    key: str
    producer: str
    consumer: str
    description: str
    partitions: int

    def full_name(self, prefix: str = "") -> str:
        """The topic's name on the broker for a deployment that uses `prefix` (tests use one per run)."""
        return f"{prefix}{self.topic.value}"


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
    ),
    TopicSpec(
        Topic.REPORTS_RECEIVED,
        key="report id",
        producer="intake",
        consumer="router",
        description="Canonical, validated reports.",
        partitions=6,
    ),
    TopicSpec(
        Topic.REPORTS_REJECTED,
        key="source id",
        producer="intake",
        consumer="ops",
        description="What could not be accepted: original payload, every reason, and where it came from.",
        partitions=3,
    ),
    TopicSpec(
        Topic.REPORT_UPDATES,
        key="report id",
        producer="intake",
        consumer="router",
        description="Residents' notes on and reopenings of their reports, from Open311 front ends.",
        partitions=6,
    ),
    TopicSpec(
        Topic.CASES,
        key="case id",
        producer="router",
        consumer="notifier, ops, upstream",
        description="Case opened, report linked, assigned, flagged, status changed, closed.",
        partitions=6,
    ),
    TopicSpec(
        Topic.NOTIFICATIONS,
        key="case id",
        producer="notifier",
        consumer="ops",
        description="Notification sent, failed, or suppressed as a duplicate.",
        partitions=3,
    ),
    TopicSpec(
        Topic.DEADLETTER,
        key="original key",
        producer="every service",
        consumer="ops",
        description="Messages that failed after retries; provenance, error and attempts in headers.",
        partitions=1,
    ),
    TopicSpec(
        Topic.HEARTBEAT,
        key="service instance",
        producer="every service",
        consumer="ops",
        description="Liveness and progress figures of every running instance.",
        partitions=1,
    ),
)


def spec(topic: Topic) -> TopicSpec:
    """The catalogue entry of `topic`."""
    return next(entry for entry in CATALOGUE if entry.topic is topic)
