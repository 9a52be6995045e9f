"""The notifier's work: plan and record notifications for case events (consumer), deliver the due ones
(sender loops), and escalate cases nearing their due time unacknowledged (scheduler) — each notification
exactly once per key.

Delivery is at-least-once towards a channel only across a crash between sending and recording (the key
travels with the message so a receiver can drop the repeat); redeliveries, restarts and replays of events
never re-alert, because the key is recorded before anything is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import structlog
from pydantic import ValidationError

from caseway_notifier import store
from caseway_notifier.channels import (
    DeliveryError,
    Message,
    NotificationChannel,
    PermanentDeliveryError,
)
from caseway_notifier.planning import (
    DIGEST_KINDS,
    NEW_CASES_DIGEST,
    CaseState,
    DigestEntry,
    PlannedNotification,
    apply_event,
    compose_digest,
    plan_escalation,
    plan_notifications,
)
from caseway_notifier.ratelimit import backoff_delay
from caseway_notifier.store import Outcome
from caseway_shared import headers as h
from caseway_shared.consuming import MalformedMessage
from caseway_shared.events import (
    CASE_EVENT,
    CaseOpened,
    NotificationFailed,
    NotificationSent,
    NotificationSuppressed,
)
from caseway_shared.outbox import OutboxMessage, enqueue
from caseway_shared.topics import Topic

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from uuid import UUID

    import asyncpg
    from pydantic import BaseModel

    from caseway_notifier.directory import Directory
    from caseway_notifier.ratelimit import TokenBucket
    from caseway_notifier.settings import NotifierSettings
    from caseway_shared.db import DbConnection
    from caseway_shared.events import CaseEvent
    from caseway_shared.kafka import Record
    from caseway_shared.runtime import ServiceRuntime

log = structlog.get_logger(__name__)
SERVICE = "notifier"


class NotifierService:
    def __init__(
        self,
        *,
        runtime: ServiceRuntime,
        directory: Directory,
        channels: Mapping[str, NotificationChannel],
        settings: NotifierSettings,
        limits: Mapping[str, TokenBucket] | None = None,
        concurrency: Mapping[str, int] | None = None,
    ) -> None:
        self._runtime = runtime
        self._directory = directory
        self._channels = channels
        self._limits = dict(limits or {})
        self._settings = settings
        self._wake = asyncio.Event()
        # Deliveries in flight per channel, shared by the sender loops: more than a channel's connections
        # only queue inside its client, and an HTTP client's pool gets slower, not faster, with a queue.
        concurrency = concurrency or {}
        self._in_flight = {
            name: asyncio.Semaphore(concurrency.get(name, settings.send_concurrency)) for name in channels
        }

    # --- consuming cases.v1 -------------------------------------------------------------------------------

    async def handle_case_events_batch(self, records: Sequence[Record]) -> None:
        """The handler of cases.v1: keep the case state, and record every notification and digest entry
        the events call for (as pending), in one transaction."""
        now = datetime.now(UTC)
        events = [(record, _parse(record)) for record in records]
        planned: dict[str, tuple[PlannedNotification, str]] = {}
        digests: dict[str, tuple[PlannedNotification, str]] = {}
        entries: dict[str, tuple[DigestEntry, str]] = {}
        openings: dict[str, tuple[PlannedNotification, str]] = {}
        async with self._runtime.pool.acquire() as connection, connection.transaction():
            cases = await store.load_cases(connection, (event.case_id for _, event in events))
            changed: dict[UUID, CaseState] = {}
            correlation_of_case: dict[UUID, str] = {}
            for record, event in events:
                correlation_id = record.headers.get(h.CORRELATION_ID, "")
                state = apply_event(cases.get(event.case_id), event, self._directory)
                if state is not None and state != cases.get(event.case_id):
                    cases[event.case_id] = changed[event.case_id] = state
                    correlation_of_case.setdefault(event.case_id, correlation_id)
                plan = plan_notifications(
                    event, self._directory, now=now, case=state, ignore_hours=self._settings.ignore_hours
                )
                for notification in plan.notifications:
                    planned.setdefault(notification.key, (notification, correlation_id))
                    if isinstance(event, CaseOpened):
                        openings.setdefault(notification.key, (notification, correlation_id))
                for digest in plan.digests:
                    digests.setdefault(digest.key, (digest, correlation_id))
                for entry in plan.entries:
                    entries.setdefault(entry.entry_key, (entry, correlation_id))
            await store.save_cases(connection, list(changed.values()), correlation_ids=correlation_of_case)
            new = await store.record_planned(
                connection, [p for p, _ in planned.values()], correlation_ids=[c for _, c in planned.values()]
            )
            new_entries = await store.record_entries(connection, [e for e, _ in entries.values()])
            # A digest is opened only for entries that are new, so a replayed event opens no empty digest.
            wanted = {entries[key][0].digest_key for key in new_entries}
            opened = [digests[key] for key in wanted]
            new_digests = await store.record_planned(
                connection, [d for d, _ in opened], correlation_ids=[c for _, c in opened]
            )
            suppressed = [
                # A CaseOpened whose notifications exist already is a redelivery or a replay: say so.
                self._message(
                    plan.case_id,
                    NotificationSuppressed(
                        occurred_at=now,
                        notification_key=key,
                        case_id=plan.case_id,
                        team=plan.team,
                        channel=plan.channel,
                        kind=plan.kind,
                        reason="already notified (redelivered event)",
                    ),
                    correlation_id,
                )
                for key, (plan, correlation_id) in openings.items()
                if key not in new and plan.case_id is not None
            ]
            suppressed.extend(
                self._message(
                    entry.case_id,
                    NotificationSuppressed(
                        occurred_at=now,
                        notification_key=entry.entry_key,
                        case_id=entry.case_id,
                        team=entry.team,
                        channel=entry.channel,
                        kind=entry.kind,
                        reason=f"folded into digest {entry.digest_key}",
                    ),
                    correlation_id,
                )
                for key, (entry, correlation_id) in entries.items()
                if key in new_entries
            )
            await enqueue(connection, SERVICE, suppressed)
        if new or new_digests:
            self._wake.set()
        if suppressed:
            self._runtime.relay.wake()
        log.info(
            "notifications_planned",
            new=len(new),
            digests_opened=len(new_digests),
            folded=len(new_entries),
            suppressed=len(suppressed),
            events=len(records),
        )

    # --- sending ----------------------------------------------------------------------------------------

    async def run_sender(self) -> None:
        """Deliver due notifications until cancelled, with `sender_workers` loops sharing the work."""
        async with asyncio.TaskGroup() as group:
            for _ in range(self._settings.sender_workers):
                group.create_task(self._sender_loop())

    async def _sender_loop(self) -> None:
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
        """Send one batch of due notifications and record the outcomes; returns how many were tried."""
        now = datetime.now(UTC)
        async with self._runtime.pool.acquire() as connection, connection.transaction():
            rows = await store.claim_due(connection, now=now, limit=self._settings.send_batch_size)
            if not rows:
                return 0
            entries = await store.digest_entries(
                connection, (row["notification_key"] for row in rows if row["kind"] in DIGEST_KINDS)
            )
            outcomes = await asyncio.gather(
                *(self._deliver(row, entries.get(row["notification_key"])) for row in rows)
            )
            await store.record_outcomes(connection, outcomes)
            await self._publish_outcomes(connection, rows, outcomes, entries)
        self._runtime.relay.wake()
        return len(rows)

    async def _deliver(self, row: asyncpg.Record, entries: list[asyncpg.Record] | None) -> Outcome:
        attempt = row["attempts"] + 1
        key = row["notification_key"]
        subject, body = row["subject"], row["body"]
        if entries is not None:
            if not entries:  # nothing was folded in after all: there is nothing to say
                return Outcome(
                    key=key, status="suppressed", at=datetime.now(UTC), attempt=attempt, outcome="suppressed"
                )
            subject, body = compose_digest(row["kind"], subject, body, [entry["line"] for entry in entries])
        channel = self._channels.get(row["channel"])
        try:
            if channel is None:
                raise PermanentDeliveryError(f"no adapter configured for channel {row['channel']!r}")
            message = Message(key=key, address=row["address"], subject=subject, body=body)
            async with self._in_flight[row["channel"]]:
                limit = self._limits.get(row["channel"])
                if limit is not None:
                    await limit.acquire()
                async with asyncio.timeout(self._settings.send_timeout_seconds):
                    await channel.send(message)
        except (DeliveryError, TimeoutError) as error:
            now = datetime.now(UTC)
            permanent = isinstance(error, PermanentDeliveryError) or attempt >= self._settings.max_attempts
            delay = backoff_delay(
                attempt,
                base=self._settings.retry_base_seconds,
                cap=self._settings.retry_max_seconds,
                jitter=random.random(),  # noqa: S311 - jitter, not security
            )
            log.warning(
                "notification_failed" if permanent else "notification_retrying",
                notification_key=key,
                attempt=attempt,
                error=str(error)[:300],
                correlation_id=row["correlation_id"],
            )
            return Outcome(
                key=key,
                status="failed" if permanent else "pending",
                at=now,
                attempt=attempt,
                outcome="failed" if permanent else "retry",
                error=f"{type(error).__name__}: {error}"[:1000],
                not_before=None if permanent else now + timedelta(seconds=delay),
            )
        log.debug(
            "notification_sent",
            notification_key=key,
            reference=row["reference"],
            team=row["team"],
            channel=row["channel"],
            correlation_id=row["correlation_id"],
        )
        return Outcome(key=key, status="sent", at=datetime.now(UTC), attempt=attempt, outcome="sent")

    async def _publish_outcomes(
        self,
        connection: DbConnection,
        rows: Sequence[asyncpg.Record],
        outcomes: Sequence[Outcome],
        entries: Mapping[str, list[asyncpg.Record]],
    ) -> None:
        messages = []
        for row, outcome in zip(rows, outcomes, strict=True):
            if outcome.status not in {"sent", "failed"}:
                continue
            # A team's digest covers several cases: each of them hears that its team was told.
            cases: list[UUID] = (
                list(dict.fromkeys(entry["case_id"] for entry in entries.get(row["notification_key"], [])))
                if row["kind"] == NEW_CASES_DIGEST
                else [row["case_id"]]
            )
            for case_id in cases:
                common = {
                    "occurred_at": outcome.at,
                    "notification_key": row["notification_key"],
                    "case_id": case_id,
                    "team": row["team"],
                    "channel": row["channel"],
                    "kind": row["kind"],
                    "attempts": outcome.attempt,
                }
                event: BaseModel
                if outcome.status == "sent":
                    event = NotificationSent(**common)
                else:
                    event = NotificationFailed(**common, error=outcome.error or "")
                messages.append(self._message(case_id, event, row["correlation_id"]))
            if outcome.status == "failed":
                messages.append(self._dead_letter(row, outcome))
        await enqueue(connection, SERVICE, messages)

    def _dead_letter(self, row: asyncpg.Record, outcome: Outcome) -> OutboxMessage:
        """A notification that failed for good, for ops.deadletter.v1: what it was, where it was going,
        the error and the attempts (staff addresses only; residents' data never reaches a notification)."""
        payload = {
            "notification_key": row["notification_key"],
            "case_id": str(row["case_id"]) if row["case_id"] else None,
            "reference": row["reference"],
            "team": row["team"],
            "channel": row["channel"],
            "address": row["address"],
            "kind": row["kind"],
            "subject": row["subject"],
        }
        headers = h.EventHeaders.new(
            event_type="NotificationFailed", correlation_id=row["correlation_id"], producer=SERVICE
        ).as_dict()
        headers.update(
            {
                h.ORIGINAL_TOPIC: self._runtime.topic(Topic.CASES),
                h.ERROR: (outcome.error or "")[:2000],
                h.ATTEMPTS: str(outcome.attempt),
                "notification-key": row["notification_key"],
            }
        )
        return OutboxMessage(
            topic=self._runtime.topic(Topic.DEADLETTER),
            key=str(row["case_id"] or row["notification_key"]),
            payload=json.dumps(payload).encode(),
            headers=headers,
        )

    # --- escalation -------------------------------------------------------------------------------------

    async def run_escalations(self) -> None:
        """Escalate due cases until cancelled, every `escalation_poll_seconds`."""
        while True:
            try:
                while await self.escalate_due():
                    pass
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("escalation_failed", error=f"{type(error).__name__}: {error}"[:300])
            await asyncio.sleep(self._settings.escalation_poll_seconds)

    async def escalate_due(self, *, now: datetime | None = None) -> int:
        """Tell the managers of open, unacknowledged cases whose escalation time has come (once per case:
        the case is marked and the notification keyed); returns how many cases were escalated."""
        now = now or datetime.now(UTC)
        async with self._runtime.pool.acquire() as connection, connection.transaction():
            due = await store.claim_escalations(
                connection, now=now, limit=self._settings.escalation_batch_size
            )
            if not due:
                return 0
            planned, correlation_ids = [], []
            for case, correlation_id in due:
                plans = plan_escalation(
                    case, self._directory, now=now, ignore_hours=self._settings.ignore_hours
                )
                planned.extend(plans)
                correlation_ids.extend([correlation_id] * len(plans))
            new = await store.record_planned(connection, planned, correlation_ids=correlation_ids)
        if new:
            self._wake.set()
        log.info("cases_escalated", cases=len(due), notifications=len(new))
        return len(due)

    def _message(self, case_id: UUID, event: BaseModel, correlation_id: str) -> OutboxMessage:
        return OutboxMessage.for_event(
            topic=self._runtime.topic(Topic.NOTIFICATIONS),
            key=str(case_id),
            event=event,
            correlation_id=correlation_id,
            producer=SERVICE,
        )


def _parse(record: Record) -> CaseEvent:
    try:
        return CASE_EVENT.validate_json(record.value)
    except ValidationError as error:
        raise MalformedMessage.from_validation_error(error) from error
