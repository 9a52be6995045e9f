"""The fault suite: steady load while services are killed (-9) and stopped (SIGTERM) mid-batch, the
broker is killed (-9) and restarted, PostgreSQL is restarted, the SMTP server is down for a while and the
webhook server answers 500 for a while; then the invariants, counted where the alerts land (the mail
sink and the webhook server, per notification key); then a full replay, after every team's address
changed, that must change nothing and alert nobody again.

The run's council is a copy of the default one (see `caseway_ops.loadtest.run_council`): some teams get a
webhook channel besides their email; with `digest_every` some want their new cases in digests; every
digest (a team's, and each case's of further reports) covers `digest_minutes`, so that all go within the
run, and the wait for quiet waits for them; with `hours_every` some teams start work during the run and
some have quiet hours in it, and the notifier honours hours (otherwise it is told to ignore them). With
`close_every_s` the harness closes cases during the run through the router's staff API, choosing cases
with an alert or a digest line still waiting, so that what waits must not go. With `address_only_share`
that share of reports give an address and no coordinates, mixed with those that do. With `replicas` every
service runs that many processes, and each of `rebalances` starts one more replica of each service and
stops it again under load (two rebalances of its consumer group); kills and SIGTERMs then hit a replica
chosen at random. With `tracing` the services export spans (to the webhook server, which answers and
ignores them).

Poison: one input in every ``poison_every`` is bytes nobody can read, sent in turn to
contact-centre.reports.v1 (intake rejects it to reports.rejected.v1), reports.received.v1 and cases.v1
(the router, intake and notifier dead-letter it to ops.deadletter.v1).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx
import structlog

from caseway_ops.loadtest import invariants
from caseway_ops.loadtest.generator import GeneratedReport, LoadGenerator
from caseway_ops.loadtest.harness import ProgressWatch, Publisher, Sent, Stall, reset_groups, wait_quiet
from caseway_ops.loadtest.preload import preload_cases
from caseway_ops.loadtest.run_council import council_for_run, move_addresses, plan_hours
from caseway_ops.loadtest.runs import open_run
from caseway_ops.loadtest.services import CLAIM_LEASE_SECONDS, SERVICES, replica_name
from caseway_shared.council import load_council
from caseway_shared.topics import Topic

if TYPE_CHECKING:
    from collections.abc import Callable

    from caseway_ops.loadtest.services import ServiceSet
    from caseway_ops.loadtest.stack import LoadtestStack

log = structlog.get_logger(__name__)
POISON_TOPICS = (Topic.CONTACT_CENTRE_REPORTS, Topic.REPORTS_RECEIVED, Topic.CASES)


@dataclass(frozen=True, slots=True)
class FaultPlan:
    rate: float = 100.0  # reports per second, steady
    service_kills: int = 5  # per service
    kafka_kills: int = 3
    postgres_restarts: int = 2
    gap_seconds: float = 8.0  # steady load between faults
    poison_every: int = 1000
    http_share: float = 0.1
    quiet_timeout: float = 600.0
    seed: int = 11
    # Cases stored before the load starts: a router whose search grows with the table shows it here.
    preload_cases: int = 0
    service_terms: int = 0  # SIGTERM (graceful stop) and restart of each service, mid-batch
    smtp_outage_seconds: float = 0.0  # the SMTP server down this long, once (0: never)
    webhook_500_seconds: float = 0.0  # the webhook server answering 500 this long, once (0: never)
    tracing: bool = False  # OTEL_EXPORTER_OTLP_ENDPOINT set for every service
    webhook_every: int = 3  # one team in this many gets a webhook channel besides its email (0: none)
    move_addresses_before_replay: bool = True  # every team's address changes before the replay
    digest_every: int = 0  # one team in this many wants digests (0: none)
    # Every team's digest period, minutes: short, so that every digest goes within the run (the quiet wait
    # waits for them) and the digests' invariants can be counted.
    digest_minutes: int = 1
    hours_every: int = 0  # one team in this many starts work during the run, one more has quiet hours in it
    hours_open_after_s: float = 600.0  # late starters open this long after the council is written
    close_every_s: float = 0.0  # the harness closes cases with something still waiting, this often (0: never)
    closes_per_round: int = 3
    address_only_share: float = 0.0  # reports with an address and no coordinates
    replicas: int = 1  # processes of each service
    rebalances: int = 0  # per service: one more replica started, then stopped, under load
    # What one kill -9 of the notifier may repeat at the receivers: the sends in flight at that instant,
    # recorded as sending but not yet as sent. The notifier keeps up to `send_concurrency` (32) deliveries in
    # flight per channel kind, and the run's teams use two kinds (email, webhook); and the outcomes sent
    # and waiting up to `outcome_wait_seconds` (50 ms) to be recorded together: at the run's 100 reports
    # (about 200 alerts) a second, about 10, so 16. Every other fault (SIGTERM, outages, restarts, the
    # replay) may repeat nothing.
    sends_in_flight: int = 32 * 2 + 16


@dataclass
class FaultRun:
    counts: invariants.Counts
    replay_new_cases: int
    replay_new_alerts: int
    faults: list[dict[str, Any]] = field(default_factory=list)
    offered: int = 0
    seconds: float = 0.0
    publish_retries: int = 0
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    preloaded_cases: int = 0
    # From the load stopping to every report routed and every alert that was due sent: how long the
    # services took to catch up with what the faults left behind.
    caught_up_after_load_s: float = 0.0
    # ... and to every alert sent, those held for later too. With digests this mostly measures the wait for
    # the last digest period to end (5 minutes by default, plus its grace): it varies by up to a period with
    # the minute the load happens to stop, whatever the services do.
    quiet_after_load_s: float = 0.0
    repeats_allowed: int = 0  # notifier kill -9s x sends in flight: what each kill may repeat
    replay_new_deliveries: int = 0  # alerts that reached a receiver during the replay
    stalls: list[Stall] = field(default_factory=list)
    replicas: int = 1
    brokers: int = 1
    replication_factor: int = 1  # of the run's topics (min.insync.replicas: one less, at least 1, at most 2)
    closes_refused: int = 0  # closes the router refused (already closed, or the router was down)
    hours: dict[str, str] = field(default_factory=dict)  # the out-of-hours windows, local times

    @property
    def longest_stall_s(self) -> dict[str, float]:
        """Per service:topic:partition, its longest stall, whatever caused it."""
        longest: dict[str, float] = {}
        for stall in self.stalls:
            longest[stall.partition] = round(max(longest.get(stall.partition, 0.0), stall.seconds), 1)
        return dict(sorted(longest.items()))

    @property
    def stall_beyond_faults_s(self) -> dict[str, float]:
        """Per service:topic:partition, the longest stall time no fault explains (`beyond_faults`)."""
        longest: dict[str, float] = {}
        for stall in self.stalls:
            longest[stall.partition] = max(
                longest.get(stall.partition, 0.0), beyond_faults(stall, self.faults)
            )
        return dict(sorted(longest.items()))

    def as_dict(self) -> dict[str, Any]:
        longest, beyond = self.longest_stall_s, self.stall_beyond_faults_s
        return {
            **self.counts.as_dict(),
            "replay_new_cases": self.replay_new_cases,
            "replay_new_alerts": self.replay_new_alerts,
            "offered": self.offered,
            "load_seconds": round(self.seconds, 1),
            "offered_rps": round(self.offered / self.seconds, 1) if self.seconds else 0,
            "publish_retries": self.publish_retries,
            "faults": self.faults,
            "peak_rss_mb": {k: round(v, 1) for k, v in self.peak_rss_mb.items()},
            "preloaded_cases": self.preloaded_cases,
            "caught_up_after_load_s": round(self.caught_up_after_load_s, 1),
            "quiet_after_load_s": round(self.quiet_after_load_s, 1),
            "repeats_allowed": self.repeats_allowed,
            "replay_new_deliveries": self.replay_new_deliveries,
            "stall_s_per_partition": longest,
            "longest_stall_s": max(longest.values(), default=0.0),
            "stall_beyond_faults_s_per_partition": beyond,
            "longest_stall_beyond_faults_s": max(beyond.values(), default=0.0),
            "stall_tail_allowed_s": STALL_TAIL_S,
            "stalls": [
                {
                    "partition": stall.partition,
                    "from_s": stall.start_s,
                    "to_s": stall.end_s,
                    "beyond_faults_s": beyond_faults(stall, self.faults),
                    "faults": [fault["fault"] for fault in self.faults if _overlaps(stall, fault)],
                }
                for stall in self.stalls
                if stall.seconds >= STALL_LISTED_S
            ],
            "replicas": self.replicas,
            "brokers": self.brokers,
            "replication_factor": self.replication_factor,
            "closes_refused": self.closes_refused,
            "hours": self.hours,
        }

    def problems(self) -> list[str]:
        found = self.counts.problems()
        if self.replay_new_cases:
            found.append(f"replay opened {self.replay_new_cases} new cases")
        if self.replay_new_alerts:
            found.append(f"replay created {self.replay_new_alerts} new notifications")
        if self.replay_new_deliveries:
            found.append(f"replay delivered {self.replay_new_deliveries} alerts again")
        if self.counts.alerts_delivered_twice > self.repeats_allowed:
            found.append(
                f"{self.counts.alerts_delivered_twice} alerts delivered twice at the receivers"
                f" (kill -9 windows allow {self.repeats_allowed})"
            )
        return found


def schedule(plan: FaultPlan, rng: random.Random) -> list[str]:
    """The faults in a shuffled order, each service's kills spread over the run."""
    faults = [s for s in SERVICES for _ in range(plan.service_kills)]
    faults += [f"term:{s}" for s in SERVICES for _ in range(plan.service_terms)]
    faults += ["kafka"] * plan.kafka_kills + ["postgres"] * plan.postgres_restarts
    faults += ["smtp-outage"] * (plan.smtp_outage_seconds > 0) + ["webhook-500"] * (
        plan.webhook_500_seconds > 0
    )
    faults += [f"scale:{s}" for s in SERVICES for _ in range(plan.rebalances)]
    rng.shuffle(faults)
    return faults


async def _apply(
    fault: str, plan: FaultPlan, stack: LoadtestStack, services: ServiceSet, rng: random.Random
) -> None:
    if fault in SERVICES:
        name = rng.choice(services.replicas_of(fault))
        await services.kill9(name)
        await asyncio.sleep(rng.uniform(0.5, 2.0))  # the rest of the flow carries on meanwhile
        await services.start(name)
    elif fault.startswith("term:"):
        name = rng.choice(services.replicas_of(fault.removeprefix("term:")))
        await services.stop(name)  # SIGTERM mid-batch: finishes what it holds, commits, publishes
        await services.start(name)
    elif fault.startswith("scale:"):
        # One more replica joins the consumer group (a rebalance) and, after a while under load, leaves it
        # (another).
        name = replica_name(fault.removeprefix("scale:"), plan.replicas + 1)
        await services.start(name)
        await asyncio.sleep(plan.gap_seconds / 2)
        await services.stop(name)
    elif fault == "kafka":
        await stack.kill_kafka()
        await asyncio.sleep(rng.uniform(1.0, 3.0))
        await stack.start_kafka()
        await services.wait_ready(*services.running_services(), timeout=180)
    elif fault == "smtp-outage":
        await services.stop("smtp")
        await asyncio.sleep(plan.smtp_outage_seconds)
        await services.start_sink("smtp")
    elif fault == "webhook-500":
        services.webhook_fail_file.touch()
        await asyncio.sleep(plan.webhook_500_seconds)
        services.webhook_fail_file.unlink(missing_ok=True)
    else:
        await stack.restart_postgres()
        await services.wait_ready(*services.running_services(), timeout=180)


# After a fault is over (the service restarted and ready, the broker or database back), a partition may
# still wait: for the broker to notice a killed member (the consumer's session timeout, aiokafka's 10 s
# default), for the group to rebalance, and for the watch's next sample (every 2 s).
STALL_TAIL_S = 10.0 + 5.0 + 2.0
STALL_LISTED_S = 5.0  # stalls shorter than this are not listed one by one (they are in the figures)


def _stalls_with(fault: str, service: str) -> bool:
    """Whether `fault` stops `service`'s consumers for a while: its own restarts and rebalances, and the
    broker's and the database's. An SMTP or webhook outage must not stall any partition."""
    return fault in {service, f"term:{service}", f"scale:{service}", "kafka", "postgres"}


def _window(fault: dict[str, Any]) -> tuple[float, float]:
    return float(fault["at_s"]), float(fault["at_s"]) + float(fault["recovered_s"]) + STALL_TAIL_S


def _overlaps(stall: Stall, fault: dict[str, Any]) -> bool:
    start, end = _window(fault)
    service = stall.partition.split(":", 1)[0]
    return _stalls_with(fault["fault"], service) and stall.start_s < end and start < stall.end_s


def beyond_faults(stall: Stall, faults: list[dict[str, Any]]) -> float:
    """The longest stretch of `stall` outside every window of a fault that may stall its service (from the
    fault's start to its recovery plus `STALL_TAIL_S`): what the fault does not explain, 0 when all is."""
    windows = sorted(_window(fault) for fault in faults if _overlaps(stall, fault))
    longest, cursor = 0.0, stall.start_s
    for start, end in windows:
        longest = max(longest, min(start, stall.end_s) - cursor)
        cursor = max(cursor, end)
    longest = max(longest, stall.end_s - cursor)
    return round(max(longest, 0.0), 1)


_FAULT_WORDS = {"kafka": "kill -9", "postgres": "restart", "smtp-outage": "down", "webhook-500": "HTTP 500"}


def _word(fault: str) -> str:
    if fault.startswith("term:"):
        return "SIGTERM"
    if fault.startswith("scale:"):
        return "a replica more, then less"
    return _FAULT_WORDS.get(fault, "kill -9")


async def run_faults(  # noqa: PLR0915 - one run's steps, in order, read best in one place
    plan: FaultPlan, *, stack: LoadtestStack, say: Callable[[str], None] = print, keep_stack: bool = False
) -> FaultRun:
    rng = random.Random(plan.seed)  # noqa: S311 - a reproducible schedule, not a secret
    run_id = f"f{uuid.uuid4().hex[:8]}"
    say(f"fault suite {run_id}: starting the load test's own stack ({stack.config.bootstrap_servers})")
    run = await open_run(stack, run_id)
    env, services, publisher = run.env, run.services, run.publisher
    generator = LoadGenerator(
        load_council(),
        seed=plan.seed,
        run_id=run_id,
        http_share=plan.http_share,
        poison_every=plan.poison_every,
        address_only_share=plan.address_only_share,
    )
    faults_done: list[dict[str, Any]] = []
    poison: list[Sent] = []
    if plan.tracing:
        services.env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{services.ports['webhook']}"
    watch = ProgressWatch(env.bootstrap_servers, env.topic_prefix)
    closer = _Closer(env.database_url, services, plan=plan, rng=random.Random(plan.seed + 1))  # noqa: S311
    hours = plan_hours(datetime.now(UTC), opens_after_s=plan.hours_open_after_s) if plan.hours_every else None
    try:
        if plan.preload_cases:
            db = await asyncpg.connect(env.database_url)
            try:
                await preload_cases(db, load_council(), plan.preload_cases)
            finally:
                await db.close()
            say(f"  {plan.preload_cases:,} cases already stored before the load")
        council = council_for_run(
            stack.config.logs_dir / f"{run_id}-council",
            webhook_url=services.webhook_url,
            webhook_every=plan.webhook_every,
            digest_every=plan.digest_every,
            digest_minutes=plan.digest_minutes,
            hours_every=plan.hours_every,
            hours=hours,
        )
        services.env["CASEWAY_COUNCIL_DIR"] = str(council)
        if hours is not None:
            services.env["CASEWAY_NOTIFIER_IGNORE_HOURS"] = "false"
            say(
                f"  teams' time zone {hours.timezone}: late starters open at {hours.local(hours.opens_at)},"
                f" quiet hours {hours.local(hours.quiet_from)}-{hours.local(hours.quiet_until)}"
            )
        await services.start_all(replicas=plan.replicas)
        await publisher.start()
        stop_load = asyncio.Event()
        load_task = asyncio.create_task(_steady_load(publisher, generator, plan.rate, stop_load, poison))
        closing = asyncio.create_task(closer.run(stop_load))
        started = time.monotonic()
        watch.start()
        await asyncio.sleep(plan.gap_seconds)
        for index, fault in enumerate(schedule(plan, rng), start=1):
            t0 = time.monotonic()
            await _apply(fault, plan, stack, services, rng)
            took = time.monotonic() - t0
            done: dict[str, Any] = {
                "fault": fault,
                "at_s": round(t0 - started, 1),
                "recovered_s": round(took, 1),
            }
            if fault == "kafka" and stack.cluster is not None and stack.kafka_kills:
                done |= stack.kafka_kills[-1]  # which node, how many leaders it had, how soon they moved
            faults_done.append(done)
            say(f"  fault {index}: {fault} ({_word(fault)}), back in {took:.1f} s")
            await asyncio.sleep(plan.gap_seconds)
        stop_load.set()
        await load_task
        await closing
        seconds = time.monotonic() - started
        say(f"load stopped: {len(publisher.sent)} inputs in {seconds:.0f} s; waiting for quiet")
        expect = len({s.report_id for s in publisher.sent if s.report.valid and s.report_id})

        async def quiet(*, expect_reports: int | None, held_too: bool) -> None:
            await wait_quiet(
                env.database_url,
                env.bootstrap_servers,
                env.topic_prefix,
                expect_reports=expect_reports,
                timeout=plan.quiet_timeout,
                held_too=held_too,
            )

        load_stopped = time.monotonic()
        await quiet(expect_reports=expect, held_too=False)
        caught_up_after_load = time.monotonic() - load_stopped
        say(f"caught up {caught_up_after_load:.0f} s after the load stopped (every alert due sent)")
        await quiet(expect_reports=expect, held_too=True)
        quiet_after_load = time.monotonic() - load_stopped
        say(f"quiet {quiet_after_load:.0f} s after the load stopped (the alerts held for later sent too)")
        stalls = await watch.stop()
        counts = await invariants.count(
            env.database_url,
            env.bootstrap_servers,
            env.topic_prefix,
            publisher.sent,
            services.mail_file,
            poison=poison,
            webhook_file=services.webhook_file,
            council_dir=council,
            hours_honoured=hours is not None,
            # A notification claimed just before its case's close was recorded may go within its lease.
            close_grace_s=CLAIM_LEASE_SECONDS + invariants.CLOSE_GRACE_S,
        )
        say("replaying every topic from the beginning (consumer groups deleted, services restarted)")
        before = await invariants.totals(env.database_url)
        delivered_before = len(invariants.Receipts.read(services.mail_file, services.webhook_file).all())
        names = services.running_services()
        await asyncio.gather(*(services.stop(name) for name in names))
        if plan.move_addresses_before_replay:
            move_addresses(council)
        await reset_groups(env.bootstrap_servers, env.topic_prefix)
        await services.start(*names)
        await quiet(expect_reports=None, held_too=True)
        after = await invariants.totals(env.database_url)
        delivered_after = len(invariants.Receipts.read(services.mail_file, services.webhook_file).all())
        notifier_kills = sum(1 for f in faults_done if f["fault"] == "notifier")
        result = FaultRun(
            counts=counts,
            replay_new_cases=after[0] - before[0],
            replay_new_alerts=after[1] - before[1],
            faults=faults_done,
            offered=len(publisher.sent),
            seconds=seconds,
            publish_retries=publisher.failures,
            peak_rss_mb=services.record_rss(),
            preloaded_cases=plan.preload_cases,
            caught_up_after_load_s=caught_up_after_load,
            quiet_after_load_s=quiet_after_load,
            repeats_allowed=notifier_kills * plan.sends_in_flight,
            replay_new_deliveries=delivered_after - delivered_before,
            stalls=stalls,
            replicas=plan.replicas,
            brokers=len(stack.cluster.nodes) if stack.cluster is not None else 1,
            replication_factor=stack.topics.replication_factor if stack.topics is not None else 1,
            closes_refused=closer.refused,
            hours={}
            if hours is None
            else {
                "timezone": hours.timezone,
                "late_starters_open": hours.local(hours.opens_at),
                "quiet_from": hours.local(hours.quiet_from),
                "quiet_until": hours.local(hours.quiet_until),
            },
        )
    finally:
        await watch.stop()
        await publisher.stop()
        await services.stop_all()
        if not keep_stack:
            await stack.drop_run(env)
            await stack.down()
    return result


# Cases of this run with an alert, a digest of theirs or a line in a team's digest still waiting to go.
_WAITING = """
SELECT reference FROM (
    SELECT n.reference FROM notifier.notifications n
    WHERE n.status = 'pending' AND n.case_id IS NOT NULL AND n.not_before > now() + interval '5 seconds'
    UNION
    SELECT e.reference FROM notifier.digest_entries e
    JOIN notifier.notifications d ON d.notification_key = e.digest_key
    WHERE d.status = 'pending' AND d.not_before > now() + interval '5 seconds'
) AS waiting
WHERE reference NOT LIKE 'PRE-%'
ORDER BY random() LIMIT $1
"""
_OPEN = """
SELECT reference FROM router.cases
WHERE status <> 'closed' AND reference NOT LIKE 'PRE-%'
ORDER BY random() LIMIT $1
"""


class _Closer:
    """Closes cases during the load through the router's staff API (as its development user, from this
    machine), cases with something still waiting first: what waits for a closed case must never go."""

    def __init__(
        self, database_url: str, services: ServiceSet, *, plan: FaultPlan, rng: random.Random
    ) -> None:
        self._database_url = database_url
        self._services = services
        self._plan = plan
        self._rng = rng
        self.closed = 0
        self.refused = 0

    async def run(self, stop: asyncio.Event) -> None:
        if self._plan.close_every_s <= 0:
            return
        async with httpx.AsyncClient(timeout=15) as client:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self._plan.close_every_s)
                if stop.is_set():
                    return
                try:
                    references = await self._choose(self._plan.closes_per_round)
                except (OSError, asyncpg.PostgresError) as error:  # PostgreSQL restarting on purpose
                    log.debug("close_choice_failed", error=type(error).__name__)
                    continue
                for reference in references:
                    await self._close(client, reference)

    async def _choose(self, wanted: int) -> list[str]:
        db = await asyncpg.connect(self._database_url, timeout=10)
        try:
            found = [r["reference"] for r in await db.fetch(_WAITING, wanted)]
            if len(found) < wanted:
                found += [r["reference"] for r in await db.fetch(_OPEN, wanted - len(found))]
        finally:
            await db.close()
        return list(dict.fromkeys(found))

    async def _close(self, client: httpx.AsyncClient, reference: str) -> None:
        routers = self._services.replicas_of("router")
        if not routers:
            self.refused += 1
            return
        port = self._services.port(self._rng.choice(routers))
        try:
            response = await client.post(
                f"http://127.0.0.1:{port}/api/cases/{reference}/close",
                json={"resolution": "fixed", "note": "Closed by the fault suite"},
            )
        except httpx.HTTPError:
            self.refused += 1
            return
        if response.status_code == 200:  # noqa: PLR2004
            self.closed += 1
        else:
            self.refused += 1


async def _steady_load(
    publisher: Publisher, generator: LoadGenerator, rate: float, stop: asyncio.Event, poison: list[Sent]
) -> None:
    """Open-loop load at `rate` until `stop`; each input is sent on its own task, retried until it lands."""
    pending: set[asyncio.Task[None]] = set()
    start = time.monotonic()
    index = 0
    poison_index = 0

    async def one(report: GeneratedReport) -> None:
        nonlocal poison_index
        if report.kind == "poison":
            topic = POISON_TOPICS[poison_index % len(POISON_TOPICS)]
            poison_index += 1
            poison.append(await publisher.send(report, topic=topic))
        else:
            await publisher.send(report)

    # While a fault holds sends up, the loop falls behind schedule; it must still yield to the rest of the
    # harness (a loop that never awaits starves it), and the sends waiting at once stay bounded.
    in_flight = asyncio.Semaphore(max(64, int(rate * 30)))

    async def bounded(report: GeneratedReport) -> None:
        try:
            await one(report)
        finally:
            in_flight.release()

    while not stop.is_set():
        delay = start + index / rate - time.monotonic()
        await asyncio.sleep(max(delay, 0))
        await in_flight.acquire()
        index += 1
        task = asyncio.create_task(bounded(generator.next()))
        pending.add(task)
        task.add_done_callback(pending.discard)
    if pending:
        await asyncio.gather(*pending)
