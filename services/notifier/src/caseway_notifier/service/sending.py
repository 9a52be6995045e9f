"""Delivering due notifications (the sender loops), each notification on its own.

A round claims due notifications (marked 'sending', with a lease, and committed before anything is
sent), then delivers each on its own and records each outcome in its own short unit of work: no
transaction is open while a message is on its way, one notification's failure is its own (it is
classified, see `domain.delivery`), and a commit that fails is retried rather than undoing the others.
What the domain says must not go any more (a closed case, an acknowledged case's escalation, a digest
left with nothing to say) is suppressed instead of sent; what is due but reached when its team is out of
hours (the sender fell behind, or a retry came due in the night) waits again for its hours. A
destination in an outage is paused by its circuit breaker; its claimed notifications go back to pending
without spending their retry budget.

On shutdown (the loops are cancelled) nothing new starts: what is on its way finishes and is recorded,
and what was claimed but not started goes back to pending, so a restart repeats nothing. Only a process
that dies mid-send (kill -9) leaves claims behind; their lease expires and they are sent again (at least
once: the key travels with the message so the receiver can drop the repeat).
"""

from __future__ import annotations

import asyncio
import contextlib
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
    suppression_reason,
)
from caseway_notifier.domain.hours import held_until
from caseway_notifier.domain.kinds import CLOSED, DIGEST_KINDS, NEW_CASES_DIGEST
from caseway_notifier.domain.wording import compose_digest
from caseway_notifier.service.ports import Message, Outcome

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from datetime import datetime
    from uuid import UUID

    from caseway_notifier.domain.directory import Directory
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
        # Deliveries in flight per channel, shared by the sender loops: more than a channel's connections
        # only queue inside its client, and an HTTP client's pool gets slower, not faster, with a queue.
        concurrency = concurrency or {}
        self._in_flight = {
            name: asyncio.Semaphore(concurrency.get(name, settings.send_concurrency)) for name in channels
        }
        self._no_channel = asyncio.Semaphore(1)

    def wake(self) -> None:
        """Deliver now: notifications were just recorded."""
        self._wake.set()

    async def run(self) -> None:
        """Deliver due notifications until cancelled, with `sender_workers` loops sharing the work."""
        async with asyncio.TaskGroup() as group:
            for _ in range(self._settings.sender_workers):
                group.create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            try:
                while await self.deliver_due():
                    pass
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("sender_failed", error=f"{type(error).__name__}: {error}"[:300])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._settings.send_poll_seconds)
            self._wake.clear()

    async def deliver_due(self) -> int:
        """Claim one batch of due notifications and deliver each; returns how many were claimed."""
        if self._stopping:
            return 0
        now = self._clock()
        async with self._unit_of_work() as work:
            claimed = await work.repositories.claim_due(
                now=now,
                limit=self._settings.send_batch_size,
                lease_until=now + timedelta(seconds=self._settings.claim_lease_seconds),
                paused=self._breakers.paused(now),
            )
            digests = await work.repositories.digest_entries(c.key for c in claimed if c.kind in DIGEST_KINDS)
        if not claimed:
            return 0
        tasks = [asyncio.create_task(self._deliver(c, digests.get(c.key))) for c in claimed]
        try:
            await asyncio.wait(tasks)
        except asyncio.CancelledError:
            # Shutting down: start nothing more, let what is on its way finish and be recorded.
            self._stopping = True
            _, unfinished = await asyncio.wait(tasks, timeout=self._settings.send_timeout_seconds + 5)
            for task in unfinished:
                task.cancel()
            raise
        return len(claimed)

    async def _deliver(self, claimed: Claimed, entries: Sequence[FoldedEntry] | None) -> None:
        if (later := self._held_until(claimed)) is not None:
            log.info("notification_held_for_hours", notification_key=claimed.key, until=later.isoformat())
            await self._release(claimed, until=later)
            return
        try:
            outcome, cases = await self._attempt(claimed, entries)
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
        await self._record(claimed, outcome, cases)

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
            if claimed.kind == NEW_CASES_DIGEST:
                cases = list(dict.fromkeys(e.case_id for e in entries if e.case_status != CLOSED))
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

    async def _record(self, claimed: Claimed, outcome: Outcome, cases: Sequence[UUID]) -> None:
        """Record the outcome and publish what it says, in one unit of work; a failed commit is retried
        (the message went: recording it is what stops it going again)."""
        for attempt in range(_RECORD_TRIES):
            try:
                async with self._unit_of_work() as work:
                    await work.repositories.record_outcome(outcome)
                    work.publish(*self._messages.outcome(claimed, outcome, cases=cases))
            except Exception as error:
                log.warning(
                    "outcome_not_recorded", notification_key=claimed.key, error=f"{type(error).__name__}"
                )
                await asyncio.sleep(min(10.0, 0.2 * 2**attempt))
            else:
                return
        log.error("outcome_lost", notification_key=claimed.key)  # its lease will make it due again

    async def _release(self, claimed: Claimed, *, until: datetime) -> None:
        with contextlib.suppress(Exception):  # if this fails too, the lease releases it
            async with self._unit_of_work() as work:
                await work.repositories.release([claimed.key], not_before=until)
