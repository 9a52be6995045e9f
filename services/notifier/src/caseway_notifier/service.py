"""The notifier's work: plan and record notifications for case events (consumer), and deliver the due
ones (sender loop), each exactly once per key."""

from __future__ import annotations

import asyncio
import contextlib
import random
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from pydantic import ValidationError

from caseway_notifier import store
from caseway_notifier.channels import (
    DeliveryError,
    Message,
    NotificationChannel,
    PermanentDeliveryError,
)
from caseway_notifier.planning import plan_notifications
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
    from caseway_notifier.settings import NotifierSettings
    from caseway_shared.db import DbConnection
    from caseway_shared.kafka import Record
    from caseway_shared.runtime import ServiceRuntime

log = structlog.get_logger(__name__)
SERVICE = "notifier"
MAX_ATTEMPTS = 5


class NotifierService:
    def __init__(
        self,
        *,
        runtime: ServiceRuntime,
        directory: Directory,
        channels: Mapping[str, NotificationChannel],
        settings: NotifierSettings,
    ) -> None:
        self._runtime = runtime
        self._directory = directory
        self._channels = channels
        self._settings = settings
        self._wake = asyncio.Event()

    async def handle_case_events_batch(self, records: Sequence[Record]) -> None:
        """The handler of cases.v1: record every notification the events call for, as pending."""
        now = datetime.now(UTC)
        planned, correlation_ids, openings = [], [], {}
        for record in records:
            try:
                event = CASE_EVENT.validate_json(record.value)
            except ValidationError as error:
                raise MalformedMessage(
                    [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()]
                ) from error
            plans = plan_notifications(
                event, self._directory, now=now, ignore_hours=self._settings.ignore_hours
            )
            correlation_id = record.headers.get(h.CORRELATION_ID, "")
            planned.extend(plans)
            correlation_ids.extend([correlation_id] * len(plans))
            if isinstance(event, CaseOpened):
                openings.update({plan.key: (plan, correlation_id) for plan in plans})
        unique = {plan.key: i for i, plan in enumerate(planned)}
        planned = [planned[i] for i in unique.values()]
        correlation_ids = [correlation_ids[i] for i in unique.values()]
        async with self._runtime.pool.acquire() as connection, connection.transaction():
            new = await store.record_planned(connection, planned, correlation_ids=correlation_ids)
            # A CaseOpened whose notifications exist already is a redelivery or a replay: say so.
            repeats = [
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
                if key not in new
            ]
            await enqueue(connection, "notifier", repeats)
        if new:
            self._wake.set()
        if repeats:
            self._runtime.relay.wake()
        log.info("notifications_planned", new=len(new), suppressed=len(repeats), events=len(records))

    async def run_sender(self) -> None:
        """Deliver due notifications until cancelled."""
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
            outcomes = await asyncio.gather(*(self._deliver(row) for row in rows))
            await store.record_outcomes(connection, outcomes)
            await self._publish_outcomes(connection, rows, outcomes)
        self._runtime.relay.wake()
        return len(rows)

    async def _deliver(self, row: asyncpg.Record) -> dict[str, Any]:
        attempt = row["attempts"] + 1
        now = datetime.now(UTC)
        channel = self._channels.get(row["channel"])
        try:
            if channel is None:
                raise PermanentDeliveryError(f"no adapter configured for channel {row['channel']!r}")
            message = Message(
                key=row["notification_key"], address=row["address"], subject=row["subject"], body=row["body"]
            )
            async with asyncio.timeout(self._settings.send_timeout_seconds):
                await channel.send(message)
        except (DeliveryError, TimeoutError) as error:
            permanent = isinstance(error, PermanentDeliveryError) or attempt >= MAX_ATTEMPTS
            delay = min(300.0, 2.0**attempt) * random.uniform(0.5, 1.0)  # noqa: S311 - jitter
            log.warning(
                "notification_failed" if permanent else "notification_retrying",
                notification_key=row["notification_key"],
                attempt=attempt,
                error=str(error)[:300],
                correlation_id=row["correlation_id"],
            )
            return {
                "key": row["notification_key"],
                "status": "failed" if permanent else "pending",
                "sent_at": None,
                "error": f"{type(error).__name__}: {error}"[:1000],
                "at": now,
                "outcome": "failed" if permanent else "retry",
                "not_before": now + timedelta(seconds=delay),
                "attempt": attempt,
            }
        log.info(
            "notification_sent",
            notification_key=row["notification_key"],
            reference=row["reference"],
            team=row["team"],
            channel=row["channel"],
            correlation_id=row["correlation_id"],
        )
        return {
            "key": row["notification_key"],
            "status": "sent",
            "sent_at": now,
            "error": None,
            "at": now,
            "outcome": "sent",
            "not_before": now,
            "attempt": attempt,
        }

    async def _publish_outcomes(
        self,
        connection: DbConnection,
        rows: Sequence[asyncpg.Record],
        outcomes: Sequence[dict[str, Any]],
    ) -> None:
        messages = []
        for row, outcome in zip(rows, outcomes, strict=True):
            common = {
                "occurred_at": outcome["at"],
                "notification_key": row["notification_key"],
                "case_id": row["case_id"],
                "team": row["team"],
                "channel": row["channel"],
                "kind": row["kind"],
                "attempts": outcome["attempt"],
            }
            event: BaseModel
            if outcome["status"] == "sent":
                event = NotificationSent(**common)
            elif outcome["status"] == "failed":
                event = NotificationFailed(**common, error=outcome["error"])
            else:
                continue
            messages.append(self._message(row["case_id"], event, row["correlation_id"]))
        await enqueue(connection, "notifier", messages)

    def _message(self, case_id: UUID, event: BaseModel, correlation_id: str) -> OutboxMessage:
        return OutboxMessage.for_event(
            topic=self._runtime.topic(Topic.NOTIFICATIONS),
            key=str(case_id),
            event=event,
            correlation_id=correlation_id,
            producer=SERVICE,
        )
