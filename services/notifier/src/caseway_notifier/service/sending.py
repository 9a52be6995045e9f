"""Delivering notifications (the sender), each notification on its own.

Alerts reach the sender two ways. Those just recorded and due now are handed to it in memory, already
claimed (marked 'sending', with a lease) in the transaction that recorded them (`lease_for`, then
`hand_off`), so nothing waits for a poll of the database. The rest — alerts held for working hours,
digests, retries, what a hand-off had no room for, and what a dead sender left behind once its lease ran
out — are claimed by a periodic sweep (`deliver_due`), in batches, with the same lease.

Each is then delivered on its own, with no transaction open while a message is on its way; one
notification's failure is its own (it is classified, see `domain.delivery`). Outcomes are recorded
together: the first to finish waits `outcome_wait_seconds` for others to join it, and while one unit of
work writes them, those that finish meanwhile wait and go in the next (one statement for all of them:
hundreds of sends a second otherwise cost a transaction per handful). A write that fails is retried;
one that fails for something other than an outage is split, so one outcome that cannot be recorded holds
back no other.
An outcome that could not be recorded leaves its notification claimed: nobody sends it again until its
lease has run out. What the domain says must not go any more (a closed case, an acknowledged case's
escalation, a digest left with nothing to say) is suppressed instead of sent. A destination in an
outage is paused by its circuit breaker; its claimed notifications go back to pending without spending
their retry budget. What is due but reached when its team is out of hours (the sender fell behind, or a
retry came due in the night) waits again for its hours; the hours are checked once more when its turn to
be sent comes (a free connection, the rate limit), which under load can be seconds later. A notification
whose lease would run out before it could be sent is left alone for the sweep (another sender may have it
by then).

On shutdown (the sender is cancelled) nothing new starts: what is on its way finishes and is recorded,
and what was claimed but not started goes back to pending, so a restart repeats nothing. Only a process
that dies (kill -9) leaves claims behind: what it had sent but not yet recorded is sent again when their
lease expires (at least once: the key travels with the message so the receiver can drop the repeat), and
what it had not sent yet is sent then.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import structlog

from caseway_notifier.domain.delivery import (
    CircuitBreakers,
    PermanentDeliveryError,
    after_failure,
    classify,
    describe,
    destination,
    digest_lines,
    hand_off_keys,
    suppression_reason,
)
from caseway_notifier.domain.hours import held_until
from caseway_notifier.domain.kinds import DIGEST_KINDS
from caseway_notifier.domain.wording import compose_digest
from caseway_notifier.service.ports import Lease, Message, Outcome
from caseway_shared.backoff import backoff_delay
from caseway_shared.consuming import is_infrastructure_error, is_transient_error
from caseway_shared.events import CaseStatus, NotificationKind

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from datetime import datetime
    from uuid import UUID

    from caseway_notifier.domain.directory import Directory
    from caseway_notifier.domain.planning import PlannedNotification
    from caseway_notifier.service.messages import Messages
    from caseway_notifier.service.ports import (
        Claimed,
        FoldedEntry,
        NotificationChannel,
        NotifierRepositories,
        RateLimit,
    )
    from caseway_notifier.settings import NotifierSettings
    from caseway_shared.unit_of_work import UnitOfWork

log = structlog.get_logger(__name__)

_RECORD_TRIES = 8  # recording an outcome is retried for about a minute before the lease decides


class _HeldForHours(Exception):
    """The team went out of hours while the notification waited for a free connection or the rate limit."""

    def __init__(self, until: datetime) -> None:
        super().__init__(until.isoformat())
        self.until = until


class _LeaseRunningOut(Exception):
    """Too late to send: the notification's lease ends before a send could, and then it is the sweep's."""


@dataclass(frozen=True, slots=True)
class _Done:
    """A notification's outcome, to record (and publish) with the others that are ready."""

    claimed: Claimed
    outcome: Outcome
    cases: Sequence[UUID]


class Sender:
    def __init__(
        self,
        *,
        unit_of_work: UnitOfWork[NotifierRepositories],
        channels: Mapping[str, NotificationChannel],
        messages: Messages,
        settings: NotifierSettings,
        clock: Callable[[], datetime],
        limits: Mapping[str, RateLimit] | None = None,
        concurrency: Mapping[str, int] | None = None,
        breakers: CircuitBreakers | None = None,
        directory: Directory | None = None,
    ) -> None:
        self._unit_of_work = unit_of_work
        self._directory = directory  # the teams' hours, checked again when a notification is reached
        self._channels = channels
        self._messages = messages
        self._settings = settings
        self._clock = clock
        self._limits = dict(limits or {})
        self._breakers = breakers or CircuitBreakers(
            threshold=settings.breaker_threshold,
            cooldown_seconds=settings.breaker_cooldown_seconds,
            max_cooldown_seconds=settings.breaker_max_cooldown_seconds,
        )
        self._wake = asyncio.Event()
        self._stopping = False
        # Deliveries in flight per channel, shared by everything the sender delivers: more than a channel's
        # connections only queue inside its client, and an HTTP client's pool gets slower, not faster,
        # with a queue.
        concurrency = concurrency or {}
        self._in_flight = {
            name: asyncio.Semaphore(concurrency.get(name, settings.send_concurrency)) for name in channels
        }
        self._no_channel = asyncio.Semaphore(1)
        # Handed-off deliveries not finished yet: no more than a sweep of every loop would claim at once,
        # so that none waits in memory anywhere near its lease (the rest wait in the table for the sweep).
        self._handed: set[asyncio.Task[None]] = set()
        self._room = settings.send_batch_size * settings.sender_workers
        # The sweep: at start (what a stopped or dead sender left), then every `send_poll_seconds`, or
        # at once when asked (new due notifications were left to it, or its last batch was full).
        self._sweep_asked = True
        self._next_sweep: datetime | None = None
        # Outcomes waiting for the unit of work that records them, and the task writing them.
        self._unrecorded: list[tuple[_Done, asyncio.Future[None]]] = []
        self._recorder: asyncio.Task[None] | None = None

    # --- what those who record notifications call (`ports.Dispatch`) --------------------------------------

    def lease_for(self, planned: Sequence[PlannedNotification], *, now: datetime) -> Lease:
        """Which of `planned` to claim for this sender as they are recorded, and until when."""
        room = 0 if self._stopping else self._room - len(self._handed)
        keys = hand_off_keys(planned, now=now, paused=self._breakers.paused(now), room=room)
        return Lease(keys=keys, until=now + timedelta(seconds=self._settings.claim_lease_seconds))

    def hand_off(self, claimed: Sequence[Claimed], *, left_due: bool) -> None:
        """Deliver `claimed` (recorded as claimed for this sender, and committed) each on its own."""
        for notification in claimed:
            task = asyncio.create_task(self._deliver(notification, None))
            self._handed.add(task)
            task.add_done_callback(self._handed.discard)
        if left_due:
            self.wake()

    def wake(self) -> None:
        """Sweep now: due notifications are waiting in the table."""
        self._sweep_asked = True
        self._wake.set()

    async def delivered(self) -> None:
        """Wait until everything handed off so far is delivered and its outcome recorded."""
        while self._handed:
            await asyncio.wait(set(self._handed))

    # --- running ----------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Sweep with `sender_workers` loops, and deliver what is handed off, until cancelled; then
        finish what is on its way and put back what has not started."""
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(self._settings.sender_workers):
                    group.create_task(self._loop())
        finally:
            self._stopping = True
            await self._finish(self._handed)

    async def _loop(self) -> None:
        while True:
            try:
                while self._sweep_wanted() and await self.deliver_due():
                    pass
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("sender_failed", error=f"{type(error).__name__}: {error}"[:300])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._settings.send_poll_seconds)
            self._wake.clear()

    def _sweep_wanted(self) -> bool:
        return self._sweep_asked or self._next_sweep is None or self._clock() >= self._next_sweep

    async def deliver_due(self) -> int:
        """Sweep: claim one batch of due notifications (held until now, retries, those a hand-off had no
        room for, and those whose sender's lease ran out) and deliver each; returns how many were claimed."""
        if self._stopping:
            return 0
        now = self._clock()
        self._sweep_asked = False
        self._next_sweep = now + timedelta(seconds=self._settings.send_poll_seconds)
        async with self._unit_of_work() as work:
            claimed = await work.repositories.claim_due(
                now=now,
                limit=self._settings.send_batch_size,
                lease_until=now + timedelta(seconds=self._settings.claim_lease_seconds),
                paused=self._breakers.paused(now),
            )
            digests = await work.repositories.digest_entries(c.key for c in claimed if c.kind in DIGEST_KINDS)
        if len(claimed) >= self._settings.send_batch_size:
            self._sweep_asked = True  # a full batch: there may be more
        if not claimed:
            return 0
        tasks = {asyncio.create_task(self._deliver(c, digests.get(c.key))) for c in claimed}
        try:
            await asyncio.wait(tasks)
        except asyncio.CancelledError:
            self._stopping = True
            await self._finish(tasks)
            raise
        return len(claimed)

    async def _finish(self, tasks: Iterable[asyncio.Task[None]]) -> None:
        """Shutting down: start nothing more, let what is on its way finish and be recorded."""
        tasks = set(tasks)
        if not tasks:
            return
        _, unfinished = await asyncio.wait(tasks, timeout=self._settings.send_timeout_seconds + 5)
        for task in unfinished:
            task.cancel()

    # --- one notification -------------------------------------------------------------------------------

    async def _deliver(self, claimed: Claimed, entries: Sequence[FoldedEntry] | None) -> None:
        if (later := self._held_until(claimed)) is not None:
            log.info("notification_held_for_hours", notification_key=claimed.key, until=later.isoformat())
            await self._release(claimed, until=later)
            return
        try:
            outcome, cases = await self._attempt(claimed, entries)
        except _HeldForHours as held:
            log.info(
                "notification_held_for_hours", notification_key=claimed.key, until=held.until.isoformat()
            )
            await self._release(claimed, until=held.until)
            return
        except _LeaseRunningOut:
            # Not released either: by the time a release ran, another sender might have claimed it.
            log.warning("delivery_left_to_sweep", notification_key=claimed.key, reason="lease running out")
            return
        except Exception as error:  # not the message's fault (a rate limit's database, say): try again
            log.warning(
                "delivery_not_started", notification_key=claimed.key, error=describe(error, claimed.address)
            )
            await self._release(claimed, until=self._clock())
            return
        if outcome is None:
            paused = self._breakers.outage_until(destination(claimed.channel, claimed.address))
            await self._release(claimed, until=paused or self._clock())
            return
        await self._record(_Done(claimed, outcome, cases))

    def _held_until(self, claimed: Claimed) -> datetime | None:
        """When `claimed` may go, if not now: its team is out of hours (a closed case is suppressed
        instead, at once)."""
        if self._directory is None or suppression_reason(claimed.kind, claimed.case_status) is not None:
            return None
        return held_until(
            claimed.kind,
            self._directory.team(claimed.team),
            self._directory,
            urgent=claimed.case_urgent,
            now=self._clock(),
            ignore_hours=self._settings.ignore_hours,
        )

    async def _attempt(
        self, claimed: Claimed, entries: Sequence[FoldedEntry] | None
    ) -> tuple[Outcome | None, list[UUID]]:
        """Send `claimed` unless it is no longer wanted; None when it was not tried (paused, stopping)."""
        cases = [claimed.case_id] if claimed.case_id is not None else []
        subject, body = claimed.subject, claimed.body
        reason = suppression_reason(claimed.kind, claimed.case_status)
        if reason is None and entries is not None:
            lines = digest_lines(claimed.kind, [(e.line, e.case_status) for e in entries])
            if not lines:
                reason = "nothing left to say (its cases were closed)" if entries else "nothing was folded in"
            else:
                subject, body = compose_digest(claimed.kind, subject, body, lines)
            if claimed.kind == NotificationKind.NEW_CASES_DIGEST:
                cases = list(dict.fromkeys(e.case_id for e in entries if e.case_status != CaseStatus.CLOSED))
        if reason is not None:
            return self._suppressed(claimed, reason), cases
        name = destination(claimed.channel, claimed.address)
        async with self._in_flight.get(claimed.channel, self._no_channel):
            if self._stopping or not self._breakers.admit(name, self._clock()):
                return None, cases
            limit = self._limits.get(claimed.channel)
            if limit is not None:
                await limit.acquire()
                if self._stopping:
                    return None, cases
            self._check_turn(claimed, name)
            channel = self._channels.get(claimed.channel)
            if channel is None:
                error = PermanentDeliveryError(f"no adapter configured for channel {claimed.channel!r}")
                return self._failed(claimed, name, error), cases
            try:
                message = Message(key=claimed.key, address=claimed.address, subject=subject, body=body)
                async with asyncio.timeout(self._settings.send_timeout_seconds):
                    await channel.send(message)
            except Exception as error:
                return self._failed(claimed, name, error), cases
        self._breakers.succeeded(name)
        log.debug(
            "notification_sent",
            notification_key=claimed.key,
            team=claimed.team,
            channel=claimed.channel,
            correlation_id=claimed.correlation_id,
        )
        return (
            Outcome(
                key=claimed.key,
                status="sent",
                at=self._clock(),
                outcome="sent",
                attempt=claimed.attempts + 1,
                failures=claimed.failures,
            ),
            cases,
        )

    def _check_turn(self, claimed: Claimed, name: str) -> None:
        """Its turn to be sent to `name` has come: raise unless it may go now. The team's hours are checked
        again here: waiting for a connection or the rate limit under load can take seconds, and the team's
        quiet hours may have begun meanwhile. One that may not go gives up its place as the destination's
        probe, if it was admitted as that."""
        try:
            self._check_lease(claimed)
            self._check_hours(claimed)
        except (_HeldForHours, _LeaseRunningOut):
            self._breakers.not_sent(name)
            raise

    def _check_hours(self, claimed: Claimed) -> None:
        """Raise `_HeldForHours` if the team is out of hours now."""
        if (later := self._held_until(claimed)) is not None:
            raise _HeldForHours(later)

    def _check_lease(self, claimed: Claimed) -> None:
        """Raise `_LeaseRunningOut` unless a send started now ends (or times out) within the lease."""
        until = claimed.claimed_until
        if (
            until is not None
            and self._clock() + timedelta(seconds=self._settings.send_timeout_seconds) >= until
        ):
            raise _LeaseRunningOut

    def _suppressed(self, claimed: Claimed, reason: str) -> Outcome:
        log.info("notification_suppressed", notification_key=claimed.key, reason=reason)
        return Outcome(
            key=claimed.key,
            status="suppressed",
            at=self._clock(),
            outcome="suppressed",
            attempt=claimed.attempts,
            tried=False,
            failures=claimed.failures,
            error=reason,
        )

    def _failed(self, claimed: Claimed, name: str, error: Exception) -> Outcome:
        verdict = classify(error)
        now = self._clock()
        if verdict == "permanent":
            self._breakers.succeeded(name)  # the destination answered: it is the message that is wrong
            outage = None
        else:
            until = self._breakers.failed(name, now)
            # An unexpected error is not an outage: it spends the budget, so it cannot go on for ever.
            outage = until if verdict == "transient" else None
        decision = after_failure(
            verdict,
            failures=claimed.failures,
            max_attempts=self._settings.max_attempts,
            outage_until=outage,
            now=now,
            base=self._settings.retry_base_seconds,
            cap=self._settings.retry_max_seconds,
        )
        text = describe(error, claimed.address)
        log.warning(
            "notification_failed" if decision.status == "failed" else "notification_retrying",
            outcome=decision.outcome,
            notification_key=claimed.key,
            attempt=claimed.attempts + 1,
            error=text[:300],
            correlation_id=claimed.correlation_id,
        )
        return Outcome(
            key=claimed.key,
            status=decision.status,
            at=now,
            outcome=decision.outcome,
            attempt=claimed.attempts + 1,
            failures=decision.failures,
            error=text,
            not_before=decision.retry_at,
        )

    async def _record(self, done: _Done) -> None:
        """Record `done` with the other outcomes that are ready: while one unit of work is being written,
        outcomes wait and go together in the next. Returns once it is recorded (or given up: its lease
        then decides)."""
        future = asyncio.get_running_loop().create_future()
        self._unrecorded.append((done, future))
        if self._recorder is None or self._recorder.done():
            self._recorder = asyncio.create_task(self._record_waiting())
        # A delivery cancelled on shutdown stops waiting; the write it is part of goes on.
        await asyncio.shield(future)

    async def _record_waiting(self) -> None:
        most = self._settings.outcome_group_size
        while self._unrecorded:
            if len(self._unrecorded) < most and not self._stopping:
                await asyncio.sleep(self._settings.outcome_wait_seconds)  # let others join this write
            group, self._unrecorded = self._unrecorded[:most], self._unrecorded[most:]
            try:
                await self._write([done for done, _ in group])
            finally:
                for _, future in group:
                    if not future.done():
                        future.set_result(None)

    async def _write(self, group: Sequence[_Done]) -> None:
        """Record `group`'s outcomes and publish what they say, in one unit of work. A failed commit is
        retried (the messages went: recording them is what stops them going again); a group that fails for
        anything but an outage or a conflict is split, so that one outcome that cannot be recorded fails
        alone."""
        for attempt in range(_RECORD_TRIES):
            try:
                async with self._unit_of_work() as work:
                    await work.repositories.record_outcomes([done.outcome for done in group])
                    for done in group:
                        work.publish(*self._messages.outcome(done.claimed, done.outcome, cases=done.cases))
            except Exception as error:
                log.warning(
                    "outcomes_not_recorded",
                    notification_keys=[done.claimed.key for done in group][:10],
                    outcomes=len(group),
                    error=type(error).__name__,
                )
                if len(group) > 1 and not (is_infrastructure_error(error) or is_transient_error(error)):
                    await asyncio.gather(*(self._write([done]) for done in group))
                    return
                if attempt + 1 < _RECORD_TRIES:
                    jitter = random.random()  # noqa: S311 - jitter, not security
                    await asyncio.sleep(backoff_delay(attempt + 1, base=0.2, cap=10.0, jitter=jitter))
            else:
                return
        for done in group:  # still claimed: nobody sends it again before its lease runs out
            log.error("outcome_lost", notification_key=done.claimed.key)

    async def _release(self, claimed: Claimed, *, until: datetime) -> None:
        with contextlib.suppress(Exception):  # if this fails too, the lease releases it
            async with self._unit_of_work() as work:
                await work.repositories.release([claimed.key], not_before=until)
