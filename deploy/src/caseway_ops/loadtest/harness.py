"""What the benchmark and the fault suite share: publishing the load (with retries that cannot duplicate:
intake is idempotent on the source id, and the HTTP path on the Idempotency-Key), waiting for the system
to go quiet, and reading back what happened (database rows and topics)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError, MessageSizeTooLargeError

from caseway_shared.topics import Topic

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from caseway_ops.loadtest.generator import GeneratedReport

log = structlog.get_logger(__name__)
OPEN311_PATH = "/open311/v2/requests.json"
# What each service's consumer group reads.
SUBSCRIBED = {
    "intake": (Topic.CONTACT_CENTRE_REPORTS, Topic.CASES),
    "router": (Topic.REPORTS_RECEIVED,),
    "notifier": (Topic.CASES,),
}


@dataclass
class Sent:
    """One input as it left the harness: when, and under which id and Kafka position it landed."""

    report: GeneratedReport
    at: float  # wall clock (time.time()), comparable with the database's timestamps
    report_id: uuid.UUID | None
    topic: str = ""
    partition: int = -1
    offset: int = -1
    http_status: int | None = None
    http_reasons: list[str] = field(default_factory=list)
    attempts: int = 1


class Publisher:
    """Sends generated reports through Kafka (contact-centre.reports.v1) or Open311 HTTP, retrying each
    until it is known to have arrived."""

    def __init__(self, *, bootstrap: str, prefix: str, intake_port: int, api_key: str) -> None:
        self._bootstrap = bootstrap
        self._prefix = prefix
        self._url = f"http://127.0.0.1:{intake_port}{OPEN311_PATH}"
        self._api_key = api_key
        self._producer: AIOKafkaProducer | None = None
        self._http: httpx.AsyncClient | None = None
        self.sent: list[Sent] = []
        self.failures = 0

    def topic(self, topic: Topic | str) -> str:
        return f"{self._prefix}{topic}"

    async def start(self) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            max_batch_size=256 * 1024,
            request_timeout_ms=15_000,
        )
        await self._producer.start()
        self._http = httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=64))

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
        if self._http is not None:
            await self._http.aclose()

    async def send(
        self, report: GeneratedReport, *, topic: Topic | str = Topic.CONTACT_CENTRE_REPORTS
    ) -> Sent:
        if report.path == "http":
            return await self._post(report)
        return await self._produce(report, self.topic(topic))

    async def _produce(self, report: GeneratedReport, topic: str) -> Sent:
        if self._producer is None:
            raise RuntimeError("Publisher.start() first")
        at = time.time()
        attempts = 0
        while True:
            attempts += 1
            try:
                future = await self._producer.send(topic, report.value, key=report.key)
                metadata = await future
                break
            except MessageSizeTooLargeError:
                raise  # no retry makes it fit: the caller sent something Kafka never takes
            except Exception as error:  # the broker is down or restarting: send the same record again
                self.failures += 1
                log.debug("publish_retry", error=type(error).__name__)
                await asyncio.sleep(min(2.0, 0.2 * attempts))
        sent = Sent(
            report, at, report.report_id, topic, metadata.partition, metadata.offset, attempts=attempts
        )
        self.sent.append(sent)
        return sent

    async def _post(self, report: GeneratedReport) -> Sent:
        if self._http is None:
            raise RuntimeError("Publisher.start() first")
        at = time.time()
        attempts = 0
        # The same Idempotency-Key on every try: a retry after a lost answer is the same request.
        headers = {"Idempotency-Key": report.source_id}
        while True:
            attempts += 1
            try:
                response = await self._http.post(
                    self._url, data={**report.fields, "api_key": self._api_key}, headers=headers
                )
            except httpx.HTTPError:
                self.failures += 1
                await asyncio.sleep(min(2.0, 0.2 * attempts))
                continue
            if response.status_code >= 500:  # noqa: PLR2004 - a restart in progress: try again
                self.failures += 1
                await asyncio.sleep(min(2.0, 0.2 * attempts))
                continue
            break
        report_id = None
        reasons: list[str] = []
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code == 200 and isinstance(body, list) and body:  # noqa: PLR2004
            report_id = uuid.UUID(body[0]["service_request_id"])
        elif isinstance(body, list):
            reasons = [str(item.get("description", item)) for item in body if isinstance(item, dict)]
        sent = Sent(
            report, at, report_id, http_status=response.status_code, http_reasons=reasons, attempts=attempts
        )
        self.sent.append(sent)
        return sent


async def paced(
    publisher: Publisher,
    reports: Sequence[GeneratedReport],
    *,
    rate: float | None,
    concurrency: int = 256,
    on_send: Callable[[GeneratedReport], Any] | None = None,
) -> float:
    """Send `reports` at `rate` per second (None: as fast as possible); returns the seconds it took.

    Each report is sent on schedule whatever the others are doing (an open loop), so a slow system shows
    up as latency rather than as a slower offered rate; at most `concurrency` sends wait at once.
    """
    limit = asyncio.Semaphore(concurrency)
    tasks: set[asyncio.Task[Sent]] = set()
    start = time.monotonic()

    async def one(report: GeneratedReport) -> Sent:
        try:
            return await publisher.send(report)
        finally:
            limit.release()

    for index, report in enumerate(reports):
        if rate is not None:
            delay = start + index / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        await limit.acquire()
        if on_send is not None:
            on_send(report)
        task = asyncio.create_task(one(report))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)
    return time.monotonic() - start


# Reading back ---------------------------------------------------------------------------------------


async def consumer_lag(bootstrap: str, prefix: str) -> int:
    """Messages the three services' consumer groups have not committed yet (a group not there counts all)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await admin.start()
    await consumer.start()
    try:
        total = 0
        for service, topics in SUBSCRIBED.items():
            committed = await admin.list_consumer_group_offsets(f"{prefix}caseway-{service}")
            partitions = [
                TopicPartition(f"{prefix}{topic}", p)
                for topic in topics
                for p in await _partitions(consumer, f"{prefix}{topic}")
            ]
            ends = await consumer.end_offsets(partitions)
            for tp in partitions:
                done = committed.get(tp)
                total += ends[tp] - (done.offset if done is not None and done.offset >= 0 else 0)
        return total
    finally:
        await consumer.stop()
        await admin.close()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()  # noqa: SLF001 - aiokafka has no public refresh
    return consumer.partitions_for_topic(topic) or set()


async def read_topic(bootstrap: str, topic: str) -> list[Any]:
    """Every record of `topic`, from the beginning to the end offsets as they are now."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, max_poll_records=5000)
    await consumer.start()
    try:
        partitions = await _partitions(consumer, topic)
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: list[Any] = []
        remaining = {tp for tp in tps if ends[tp] > 0}
        while remaining:
            batch = await consumer.getmany(timeout_ms=1000)
            for tp, items in batch.items():
                records.extend(items)
                if items and items[-1].offset >= ends[tp] - 1:
                    remaining.discard(tp)
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        return records
    finally:
        await consumer.stop()


@dataclass(frozen=True, slots=True)
class Quiet:
    intake_reports: int
    router_reports: int
    cases: int
    notifier_cases: int
    outbox: int
    pending_due: int
    sending: int  # claimed by a sender: a send may be under way (or its sender died: due after the lease)
    lag: int
    held: int = 0  # pending and not due yet: waiting for a team's hours, a digest's period or a retry


async def snapshot(db: asyncpg.Connection, bootstrap: str, prefix: str) -> Quiet:
    row = await db.fetchrow(
        """
        SELECT (SELECT count(*) FROM intake.reports) AS intake_reports,
               (SELECT count(*) FROM router.reports WHERE source_system <> 'preload') AS router_reports,
               (SELECT count(*) FROM router.cases WHERE reference NOT LIKE 'PRE-%') AS cases,
               (SELECT count(*) FROM notifier.cases) AS notifier_cases,
               (SELECT count(*) FROM intake.outbox WHERE NOT headers ? 'caseway-set-aside')
                 + (SELECT count(*) FROM router.outbox WHERE NOT headers ? 'caseway-set-aside')
                 + (SELECT count(*) FROM notifier.outbox WHERE NOT headers ? 'caseway-set-aside') AS outbox,
               (SELECT count(*) FROM notifier.notifications
                 WHERE status = 'pending' AND not_before <= now()) AS pending_due,
               (SELECT count(*) FROM notifier.notifications WHERE status = 'sending') AS sending,
               (SELECT count(*) FROM notifier.notifications
                 WHERE status = 'pending' AND not_before > now()) AS held
        """
    )
    if row is None:
        raise RuntimeError("no row")
    return Quiet(**dict(row), lag=await consumer_lag(bootstrap, prefix))


async def wait_quiet(
    database_url: str,
    bootstrap: str,
    prefix: str,
    *,
    expect_reports: int | None,
    timeout: float,
    held_too: bool = False,
) -> Quiet:
    """Until nothing moves: every expected report in intake and routed, no lag, no outbox rows, no
    notification due and unsent nor being sent, and the same figures twice in a row. With `held_too`,
    also until no notification waits for later (a team's hours, a digest's period, a retry): a run whose
    teams have hours or digests waits for them to go.

    Each condition is a positive signal (offsets committed, rows gone, claims resolved), never a fixed
    sleep: what a caller asserts did not happen afterwards cannot still be on its way."""
    deadline = time.monotonic() + timeout
    last: Quiet | None = None
    while True:
        try:
            db = await asyncpg.connect(database_url, timeout=10)
            try:
                now = await snapshot(db, bootstrap, prefix)
            finally:
                await db.close()
        except (TimeoutError, OSError, asyncpg.PostgresError) as error:
            log.info("quiet_check_failed", error=type(error).__name__)
            now = None
        if now is not None:
            settled = (
                (expect_reports is None or now.intake_reports >= expect_reports)
                and now.router_reports == now.intake_reports
                and now.notifier_cases == now.cases
                and now.outbox == 0
                and now.pending_due == 0
                and now.sending == 0
                and now.lag == 0
                and (not held_too or now.held == 0)
            )
            if settled and now == last:
                return now
            last = now
        if time.monotonic() > deadline:
            raise TimeoutError(f"the system did not go quiet within {timeout:.0f} s: {last}")
        await asyncio.sleep(1.0)


async def reset_groups(bootstrap: str, prefix: str) -> None:
    """Rewind the services' consumer groups to offset 0 of every topic they read (the services must be
    stopped: an empty group accepts commits from outside), so that started again they replay it all."""
    for service, topics in SUBSCRIBED.items():
        for attempt in range(10):
            try:
                await _rewind(bootstrap, prefix, service, topics)
                break
            except KafkaError:
                if attempt == 9:  # noqa: PLR2004
                    raise
                await asyncio.sleep(1.0)


async def _rewind(bootstrap: str, prefix: str, service: str, topics: Sequence[Topic]) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=f"{prefix}caseway-{service}", enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = [
            TopicPartition(f"{prefix}{topic}", p)
            for topic in topics
            for p in await _partitions(consumer, f"{prefix}{topic}")
        ]
        consumer.assign(tps)
        await consumer.commit(dict.fromkeys(tps, 0))
    finally:
        await consumer.stop()


def provenance(records: Iterable[Any]) -> dict[tuple[str, int, int], str]:
    """(original topic, partition, offset) -> error, from dead letters' or rejections' headers."""
    found = {}
    for record in records:
        headers = {k: v.decode("utf-8", "replace") for k, v in record.headers or ()}
        try:
            where = (
                headers["original-topic"],
                int(headers["original-partition"]),
                int(headers["original-offset"]),
            )
        except (KeyError, ValueError):
            continue
        reason = headers.get("error", "")
        if not reason and record.value:
            try:
                reason = "; ".join(json.loads(record.value).get("reasons", []))
            except (ValueError, AttributeError):
                reason = ""
        found[where] = reason
    return found


@dataclass(frozen=True)
class Stall:
    """A partition (`service:topic:partition`) had records waiting while its committed offset stood still,
    from `start_s` to `end_s` (seconds since the watch started)."""

    partition: str
    start_s: float
    end_s: float

    @property
    def seconds(self) -> float:
        return self.end_s - self.start_s


class ProgressWatch:
    """Samples the services' committed offsets against the partitions' ends while a run goes on, and keeps
    per partition each time it had records waiting while its committed offset did not move: the stalls, as
    a reader of the topics sees them (a kill -9 window shows here too), to within one sampling period."""

    def __init__(self, bootstrap: str, prefix: str, *, every: float = 2.0) -> None:
        self._bootstrap = bootstrap
        self._prefix = prefix
        self._every = every
        self._since: dict[str, tuple[int, float]] = {}
        self._seen_until: dict[str, float] = {}  # the last sample that saw the partition still stalled
        self._origin = time.monotonic()
        self.stalls: list[Stall] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._origin = time.monotonic()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> list[Stall]:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        for name in list(self._seen_until):
            self._end(name, self._seen_until[name])
        return sorted(self.stalls, key=lambda stall: (stall.partition, stall.start_s))

    def _end(self, name: str, at: float) -> None:
        """The stall of `name`, if one was seen, ended by `at` (monotonic)."""
        since = self._since.pop(name, None)
        seen = self._seen_until.pop(name, None)
        if since is not None and seen is not None:
            self.stalls.append(Stall(name, round(since[1] - self._origin, 1), round(at - self._origin, 1)))

    async def _run(self) -> None:
        while True:
            try:
                await self._sample()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the broker is down on purpose at times
                log.debug("progress_sample_failed", error=type(error).__name__)
            await asyncio.sleep(self._every)

    async def _sample(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap, request_timeout_ms=5_000)
        consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, enable_auto_commit=False)
        try:
            # Started inside: when the broker is down on purpose, what did start is still stopped.
            await admin.start()
            await consumer.start()
            now = time.monotonic()
            for service, topics in SUBSCRIBED.items():
                committed = await admin.list_consumer_group_offsets(f"{self._prefix}caseway-{service}")
                partitions = [
                    TopicPartition(f"{self._prefix}{topic}", p)
                    for topic in topics
                    for p in await _partitions(consumer, f"{self._prefix}{topic}")
                ]
                ends = await consumer.end_offsets(partitions)
                for tp in partitions:
                    done = committed.get(tp)
                    offset = done.offset if done is not None and done.offset >= 0 else 0
                    name = f"{service}:{tp.topic.removeprefix(self._prefix)}:{tp.partition}"
                    last = self._since.get(name)
                    if ends[tp] <= offset or last is None or last[0] != offset:
                        self._end(name, now)  # nothing waiting, or it moved: a stall seen ends here
                        if ends[tp] > offset:
                            self._since[name] = (offset, now)
                        continue
                    self._seen_until[name] = now
        finally:
            await consumer.stop()
            await admin.close()
