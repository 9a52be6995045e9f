"""The figures operators watch, in Prometheus form, per service instance.

FastStream's Prometheus middleware already counts messages received and published per topic and times
their processing; these add what it cannot know: what Caseway retried, dead-lettered and rejected, the
consumer lag per partition, the outbox backlog and the database pool.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

if TYPE_CHECKING:
    from collections.abc import Sequence

    from caseway_shared.kafka import Record


class ServiceMetrics:
    """One service instance's own metrics, registered on its own registry (no process-wide globals)."""

    def __init__(self, registry: CollectorRegistry, *, service: str) -> None:
        labels = ["service", "topic"]
        self._service = service
        # Plain running totals as well, for the heartbeat (Prometheus counters are not meant to be read).
        self.totals: dict[str, int] = {}
        self.records_processed = Counter(
            "caseway_records_processed", "Records handled successfully.", labels, registry=registry
        )
        self.records_retried = Counter(
            "caseway_records_retried", "Retries of records that failed.", labels, registry=registry
        )
        self.records_dead_lettered = Counter(
            "caseway_records_dead_lettered", "Records sent to ops.deadletter.v1.", labels, registry=registry
        )
        self.records_rejected = Counter(
            "caseway_records_rejected",
            "Records rejected with their reasons (to reports.rejected.v1), by the topic they came from and "
            "the kind of reason (never anything of the record's content).",
            [*labels, "reason"],
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "caseway_batch_processing_seconds",
            "Time to process one consumed batch, retries included.",
            labels,
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.consumer_lag = Gauge(
            "caseway_consumer_lag",
            "Records behind the end of the partition, as of the last batch.",
            [*labels, "partition"],
            registry=registry,
        )
        self.consumer_stalls = Counter(
            "caseway_consumer_stalls",
            "Times a partition was paused because a dependency stayed down past the stall budget.",
            [*labels, "partition"],
            registry=registry,
        )
        self.consumer_stalled_seconds = Counter(
            "caseway_consumer_stalled_seconds",
            "Seconds a partition made no progress waiting on a dependency (waiting, then paused).",
            [*labels, "partition"],
            registry=registry,
        )
        self.consumer_paused = Gauge(
            "caseway_consumer_paused",
            "1 while a partition is paused after a stall: an alert (its dependency is down).",
            [*labels, "partition"],
            registry=registry,
        )
        self.consumer_assigned = Gauge(
            "caseway_consumer_assigned_partitions",
            "Partitions of the topic this instance consumes, as of the last scrape: 0 until its consumer "
            "group has assigned them, and for good on a replica beyond the partition count.",
            labels,
            registry=registry,
        )
        self.outbox_published = Counter(
            "caseway_outbox_published", "Events published from the outbox.", ["service"], registry=registry
        )
        self.outbox_backlog = Gauge(
            "caseway_outbox_backlog", "Outbox rows not yet published.", ["service"], registry=registry
        )
        self.outbox_oldest_age = Gauge(
            "caseway_outbox_oldest_age_seconds",
            "Age of the oldest outbox row not yet published (0 when none): growing means the relay is stuck.",
            ["service"],
            registry=registry,
        )
        self.outbox_set_aside = Gauge(
            "caseway_outbox_set_aside",
            "Outbox rows set aside because the broker refused them (the reason is in the row).",
            ["service"],
            registry=registry,
        )
        self.db_pool_size = Gauge(
            "caseway_db_pool_size", "Connections in the pool.", ["service"], registry=registry
        )
        self.db_pool_idle = Gauge("caseway_db_pool_idle", "Idle connections.", ["service"], registry=registry)

    def processed(self, records: Sequence[Record]) -> None:
        for topic, count in _count_by_topic(records).items():
            self.records_processed.labels(self._service, topic).inc(count)
            self.totals[f"processed:{topic}"] = self.totals.get(f"processed:{topic}", 0) + count

    def retried(self, record: Record) -> None:
        self.records_retried.labels(self._service, record.topic).inc()

    def dead_lettered(self, record: Record) -> None:
        self.records_dead_lettered.labels(self._service, record.topic).inc()
        self.totals["dead_lettered"] = self.totals.get("dead_lettered", 0) + 1

    def rejected(self, topic: str, *, reason: str, count: int = 1) -> None:
        """`count` records of `topic` rejected; `reason` is a short kind (e.g. `invalid`), not the reasons."""
        self.records_rejected.labels(self._service, topic, reason).inc(count)
        self.totals["rejected"] = self.totals.get("rejected", 0) + count

    def stalled(self, topic: str, partition: int, *, seconds: float, paused: bool) -> None:
        """A partition stalled `seconds` more; `paused` says whether it is paused now (else resumed)."""
        labels = (self._service, topic, str(partition))
        self.consumer_stalled_seconds.labels(*labels).inc(max(seconds, 0.0))
        self.consumer_paused.labels(*labels).set(1 if paused else 0)
        name = f"stalled_seconds:{topic}:{partition}"
        self.totals[name] = self.totals.get(name, 0) + round(max(seconds, 0.0))
        self.totals[f"paused:{topic}:{partition}"] = 1 if paused else 0
        if paused:
            self.consumer_stalls.labels(*labels).inc()
            self.totals["stalls"] = self.totals.get("stalls", 0) + 1

    def lag(self, topic: str, partition: int, behind: int) -> None:
        self.consumer_lag.labels(self._service, topic, str(partition)).set(max(behind, 0))

    def assigned(self, topic: str, partitions: int) -> None:
        self.consumer_assigned.labels(self._service, topic).set(partitions)

    def outbox(self, *, pending: int, oldest_age_seconds: float, set_aside: int) -> None:
        self.outbox_backlog.labels(self._service).set(pending)
        self.outbox_oldest_age.labels(self._service).set(oldest_age_seconds)
        self.outbox_set_aside.labels(self._service).set(set_aside)
        self.totals["outbox_backlog"] = pending
        self.totals["outbox_oldest_age_seconds"] = round(oldest_age_seconds)
        self.totals["outbox_set_aside"] = set_aside

    def pool(self, *, size: int, idle: int) -> None:
        self.db_pool_size.labels(self._service).set(size)
        self.db_pool_idle.labels(self._service).set(idle)


def _count_by_topic(records: Sequence[Record]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in records:
        counts[record.topic] = counts.get(record.topic, 0) + 1
    return counts
