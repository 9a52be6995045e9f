"""What every Caseway service process is made of, wired once: a FastStream broker with its subscribers, an
asyncpg pool, an outbox relay, dead letters, and the operational HTTP endpoints.

A service's `create_app(settings)` builds a `ServiceRuntime` (no I/O), registers its handlers with
`subscribe`, and returns an ASGI app whose lifespan connects and disconnects everything. Tests build the
same app and run it in-process; `__main__` serves it with uvicorn.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
from aiokafka import AIOKafkaProducer, TopicPartition
from faststream.kafka import KafkaMessage  # noqa: TC002 - FastStream reads the annotation at run time
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from caseway_shared import headers as h
from caseway_shared import tracing
from caseway_shared.asyncapi import build_asyncapi
from caseway_shared.consuming import BatchConsumer, BatchHandler, DeadLetters, RetryPolicy
from caseway_shared.db import create_pool
from caseway_shared.events import Heartbeat
from caseway_shared.kafka import Record, consumer_group, make_broker, producer_options, topic_name
from caseway_shared.logging import configure_logging
from caseway_shared.metrics import ServiceMetrics
from caseway_shared.outbox import OutboxRelay, publish_now
from caseway_shared.topics import Topic
from caseway_shared.unit_of_work import PostgresUnitOfWork
from caseway_shared.version import caseway_version

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence

    import asyncpg
    from aiokafka import AIOKafkaConsumer, ConsumerRecord
    from faststream.kafka.subscriber.usecase import BatchSubscriber
    from starlette.requests import Request

    from caseway_shared.db import DbConnection
    from caseway_shared.outbox import OutboxMessage
    from caseway_shared.settings import ServiceSettings

log = structlog.get_logger(__name__)
R = TypeVar("R")


class ServiceRuntime:
    """The long-lived clients of one service process, created without I/O and connected by `lifespan`."""

    def __init__(self, *, settings: ServiceSettings, service: str, schema: str) -> None:
        self.settings = settings
        self.service = service
        self.schema = schema
        self.instance_id = settings.instance_id or f"{service}-{os.getpid()}"
        self.metrics = CollectorRegistry()
        self.figures = ServiceMetrics(self.metrics, service=service)
        self.broker = make_broker(settings, service=service)
        self.broker.add_middleware(KafkaPrometheusMiddleware(registry=self.metrics, app_name=service))
        self.dead_letters = DeadLetters(
            broker=self.broker,
            topic=topic_name(settings, Topic.DEADLETTER),
            service=service,
            metrics=self.figures,
        )
        self.retry = RetryPolicy(
            attempts=settings.retry_attempts, backoff_seconds=settings.retry_backoff_seconds
        )
        self._pool: asyncpg.Pool | None = None
        self._relay: OutboxRelay | None = None
        self._outbox_producer: AIOKafkaProducer | None = None
        self._subscribers: list[BatchSubscriber] = []
        self._consumers: list[BatchConsumer] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._background: list[Callable[[], Any]] = []
        self._started_at = datetime.now(UTC)

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("the service is not started: no database pool yet")
        return self._pool

    @property
    def relay(self) -> OutboxRelay:
        if self._relay is None:
            raise RuntimeError("the service is not started: no outbox relay yet")
        return self._relay

    def topic(self, topic: Topic) -> str:
        return topic_name(self.settings, topic)

    def unit_of_work(self, repositories: Callable[[DbConnection], R]) -> PostgresUnitOfWork[R]:
        """Units of work on this service's schema, with `repositories` built on each transaction; the
        relay is woken when one commits events (usable once the service has started)."""
        return PostgresUnitOfWork(
            pool=lambda: self.pool,
            schema=self.schema,
            repositories=repositories,
            wake=lambda: self.relay.wake(),  # noqa: PLW0108 - no relay until started,
            send=self.publish_now,
        )

    async def publish_now(self, messages: Sequence[OutboxMessage]) -> None:
        """Publish `messages` with the outbox relay's producer and wait for the broker to take them all
        (`outbox.publish_now`): for a consumer's events after its commit."""
        if self._outbox_producer is None:
            raise RuntimeError("the service is not started: no producer yet")
        await publish_now(self._outbox_producer, messages)

    def subscribe(
        self,
        topic: Topic,
        handle: BatchHandler,
        *,
        title: str,
        description: str,
        correlate: Callable[[Record], str | None] | None = None,
    ) -> None:
        """Consume `topic` in batches with the shared retry and dead-letter rules (see `consuming`).

        `correlate` gives the correlation id of records that arrive without the header (for tracing).
        """
        topic_name_ = self.topic(topic)
        subscriber: BatchSubscriber | None = None

        @contextlib.contextmanager
        def batch_context(batch: Sequence[Record]) -> Iterator[None]:
            with (
                self.figures.batch_seconds.labels(self.service, topic_name_).time(),
                tracing.processing(batch, service=self.service, correlate=correlate),
            ):
                yield

        consumer = BatchConsumer(
            handle=handle,
            dead_letters=self.dead_letters,
            retry=self.retry,
            metrics=self.figures,
            partitions=_SubscriberPartitions(lambda: subscriber),
            context=batch_context,
        )
        self._consumers.append(consumer)
        subscriber = self.broker.subscriber(
            self.topic(topic),
            batch=True,
            group_id=consumer_group(self.settings, self.service),
            auto_offset_reset="earliest",
            max_records=self.settings.consumer_max_records,
            batch_timeout_ms=50,
            parser=tolerant_parser,
            decoder=keep_bytes,
            title=title,
            description=description,
        )

        async def consume(message: KafkaMessage) -> None:
            # Everything from the poll to the commit is inside the consumer's guard (`consuming`): the
            # batch's timing and spans too. Nothing may escape to FastStream, which would redeliver the
            # batch at once, for ever.
            records = raw_records(message)
            await consumer([Record.from_consumer_record(record) for record in records])
            try:
                self._record_lag(subscriber, records)
            except Exception as error:  # a figure, never a reason to redeliver
                log.warning("lag_not_recorded", error_type=type(error).__name__)

        subscriber(consume)
        self._subscribers.append(subscriber)

    def _record_lag(self, subscriber: BatchSubscriber, records: Sequence[Any]) -> None:
        kafka_consumer = getattr(subscriber, "consumer", None)
        if kafka_consumer is None:
            return
        last: dict[tuple[str, int], int] = {}
        for record in records:
            last[(record.topic, record.partition)] = max(
                last.get((record.topic, record.partition), -1), record.offset
            )
        for (topic, partition), offset in last.items():
            highwater = kafka_consumer.highwater(TopicPartition(topic, partition))
            if highwater is not None:
                self.figures.lag(topic, partition, highwater - offset - 1)

    def run_in_background(self, job: Callable[[], Any]) -> None:
        """Run `job()` (a coroutine function) for the life of the service, e.g. a scheduler."""
        self._background.append(job)

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: object = None) -> AsyncIterator[None]:
        configure_logging(
            service=self.service, log_format=self.settings.log_format, level=self.settings.log_level
        )
        structlog.contextvars.bind_contextvars(instance=self.instance_id)
        tracing.install_otlp_exporter(
            service=self.service, endpoint=self.settings.otel_exporter_otlp_endpoint
        )
        self._pool = await create_pool(
            self.settings, application_name=f"caseway-{self.service}", schema=self.schema
        )
        # One producer for the outbox relay and for what consumers publish after their commits.
        producer = self._outbox_producer = AIOKafkaProducer(
            **producer_options(self.settings, client_id=f"caseway-{self.service}-outbox")
        )
        self._relay = OutboxRelay(
            pool=self._pool,
            producer=producer,
            schema=self.schema,
            on_published=self.figures.outbox_published.labels(self.service).inc,
        )
        relay_task: asyncio.Task[None] | None = None
        try:
            await self.broker.start()
            await producer.start()
            relay_task = asyncio.create_task(self._relay.run(), name=f"{self.service}-outbox")
            self._tasks.extend(asyncio.create_task(job()) for job in self._background)
            self._tasks.append(asyncio.create_task(self._heartbeats(), name=f"{self.service}-heartbeat"))
            log.info("service_started", kafka=self.settings.kafka_bootstrap_servers)
            yield
        finally:
            log.info("service_stopping")
            # Stop taking work first, then publish what is committed, then close the producer and pool.
            for subscriber in self._subscribers:
                with contextlib.suppress(Exception):
                    await subscriber.stop()
            for consumer in self._consumers:
                consumer.close()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks.clear()
            # The relay publishes what is pending and returns between two passes; it is never cancelled
            # (a pass cut short after the broker took its rows would publish them again on restart).
            if relay_task is not None:
                with contextlib.suppress(Exception):
                    await self._relay.finish(relay_task)
            await producer.stop()
            await self.broker.stop()
            await self._pool.close()

    def heartbeat(self) -> Heartbeat:
        """This instance's identity and progress, as published to ops.heartbeat.v1."""
        assigned = sorted(
            (tp.topic, tp.partition)
            for subscriber in self._subscribers
            if (kafka_consumer := getattr(subscriber, "consumer", None)) is not None
            for tp in kafka_consumer.assignment()
        )
        return Heartbeat(
            service=self.service,
            instance=self.instance_id,
            version=caseway_version(),
            host=socket.gethostname(),
            pid=os.getpid(),
            started_at=self._started_at,
            at=datetime.now(UTC),
            assigned=tuple({"topic": topic, "partition": partition} for topic, partition in assigned),
            progress=dict(self.figures.totals),
            outbox_published=self._relay.published if self._relay else 0,
        )

    async def measure_outbox(self) -> None:
        """The outbox gauges (backlog, oldest row's age, rows set aside), read now; never raises."""
        if self._relay is None:
            return
        try:
            async with asyncio.timeout(2):
                backlog = await self._relay.measure()
        except Exception as error:
            log.info("outbox_not_measured", error_type=type(error).__name__)
            return
        self.figures.outbox(
            pending=backlog.pending,
            oldest_age_seconds=backlog.oldest_age_seconds,
            set_aside=backlog.set_aside,
        )

    async def _heartbeats(self) -> None:
        topic = self.topic(Topic.HEARTBEAT)
        while True:
            await self.measure_outbox()
            try:
                await self.broker.publish(
                    self.heartbeat().model_dump_json().encode(),
                    topic,
                    key=self.instance_id.encode(),
                    headers=h.EventHeaders.new(
                        event_type="Heartbeat", correlation_id=self.instance_id, producer=self.service
                    ).as_dict(),
                )
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("heartbeat_failed", error=f"{type(error).__name__}: {error}"[:300])
            await asyncio.sleep(self.settings.heartbeat_seconds)

    async def readiness(self) -> dict[str, bool]:
        """What /readyz answers: whether this instance can serve its HTTP API (Open311, staff pages,
        metrics): the broker answers (what it publishes can go out) and so does the database.

        Owning partitions is not part of it (see `consumer_assignment`): a replica owns none until its
        consumer group has assigned them (every replica at once when the group starts over), and one
        beyond the partition count never owns any, yet each serves HTTP as well as the others. Tied to
        partitions, readiness took every replica out of the load balancer together while the group
        formed, and kept the spare replicas out for good.
        """
        checks: dict[str, bool] = {}
        checks["kafka"] = await self.broker.ping(timeout=2)
        try:
            async with asyncio.timeout(2):
                checks["database"] = await self.pool.fetchval("SELECT 1") == 1
        except Exception:
            checks["database"] = False
        return checks

    def consumer_assignment(self) -> dict[str, list[int]]:
        """The partitions this instance consumes now, for each topic it subscribes to (none until its
        consumer group has assigned them, and none for good on a replica beyond the partition count)."""
        assignment: dict[str, list[int]] = {}
        for subscriber in self._subscribers:
            kafka_consumer = getattr(subscriber, "consumer", None)
            owned = kafka_consumer.assignment() if kafka_consumer is not None else set()
            for topic in subscriber.topic_names:
                assignment[topic] = sorted(tp.partition for tp in owned if tp.topic == topic)
        return assignment

    def consuming(self) -> bool:
        """Whether this instance owns at least one partition of every topic it subscribes to."""
        return all(self.consumer_assignment().values())

    def ops_routes(self) -> Sequence[Route]:
        """/healthz (the process answers), /readyz (it can serve HTTP), /consumerz (the partitions it
        consumes: 503 while it owns none of a topic, which is no reason to take it out of rotation),
        /metrics (Prometheus) and /asyncapi.json."""

        async def healthz(_request: Request) -> Response:
            return JSONResponse({"status": "ok", "service": self.service, "instance": self.instance_id})

        async def readyz(_request: Request) -> Response:
            checks = await self.readiness()
            ready = all(checks.values())
            return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

        async def consumerz(_request: Request) -> Response:
            assignment = self.consumer_assignment()
            consuming = all(assignment.values())
            return JSONResponse(
                {"consuming": consuming, "assigned": assignment}, status_code=200 if consuming else 503
            )

        async def metrics(_request: Request) -> Response:
            if self._pool is not None:
                self.figures.pool(size=self._pool.get_size(), idle=self._pool.get_idle_size())
            for topic, partitions in self.consumer_assignment().items():
                self.figures.assigned(topic, len(partitions))
            await self.measure_outbox()
            return Response(generate_latest(self.metrics), media_type=CONTENT_TYPE_LATEST)

        async def asyncapi(_request: Request) -> Response:
            return JSONResponse(build_asyncapi())

        return [
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/consumerz", consumerz),
            Route("/metrics", metrics),
            Route("/asyncapi.json", asyncapi),
        ]


async def tolerant_parser(
    raw: tuple[ConsumerRecord[Any, Any], ...],
    parse: Callable[[tuple[ConsumerRecord[Any, Any], ...]], Awaitable[KafkaMessage]],
) -> KafkaMessage:
    """FastStream's parser, but a header that is not UTF-8 cannot make a record unreadable.

    FastStream decodes every header value strictly; one bad byte would raise before our handler runs,
    and the batch would be redelivered for ever. Such values are read with replacement characters.
    """
    try:
        return await parse(raw)
    except UnicodeDecodeError:
        sanitised = tuple(
            replace(
                record,
                headers=[(name, value.decode("utf-8", "replace").encode()) for name, value in record.headers],
            )
            for record in raw
        )
        return await parse(sanitised)


async def keep_bytes(message: KafkaMessage) -> list[bytes]:
    """The records' values as they are: handlers parse them, and turn what is unreadable into a rejection
    or a dead letter. (FastStream's own decoding tries JSON and lets RecursionError and bad content-types
    escape, which would block the partition.)"""
    return [record.value or b"" for record in raw_records(message)]


def raw_records(message: KafkaMessage) -> tuple[ConsumerRecord[Any, Any], ...]:
    """The Kafka records of a batch message: aiokafka's consumer gives a tuple, FastStream's test broker a
    list, and a single record may come on its own."""
    raw: Any = message.raw_message
    return tuple(raw) if isinstance(raw, (tuple, list)) else (raw,)


class _SubscriberPartitions:
    """The batch consumer's hold on its subscriber's Kafka consumer: rewind, pause and resume partitions."""

    def __init__(self, subscriber: Callable[[], BatchSubscriber | None]) -> None:
        self._subscriber = subscriber

    def _consumer(self) -> AIOKafkaConsumer:
        consumer: AIOKafkaConsumer | None = getattr(self._subscriber(), "consumer", None)
        if consumer is None:
            raise RuntimeError("the subscriber has no consumer (stopping)")
        return consumer

    def seek(self, topic: str, partition: int, offset: int) -> None:
        self._consumer().seek(TopicPartition(topic, partition), offset)

    def pause(self, topic: str, partition: int) -> None:
        self._consumer().pause(TopicPartition(topic, partition))

    def resume(self, topic: str, partition: int) -> None:
        self._consumer().resume(TopicPartition(topic, partition))
