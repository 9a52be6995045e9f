"""The events the notifier publishes, as outbox messages: outcomes on notifications.v1 and, for a
notification that failed for good, a dead letter on ops.deadletter.v1.

A notification's dead letter is its own record, not a consumed record's: it names no original topic
(`caseway dlq replay` has nowhere to send it; replaying it into cases.v1 would inject a non-event), and
it says how to send it again (`caseway notifications resend KEY`). It holds no address: a webhook URL is
a secret and a staff address is nobody's business on a shared topic."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from caseway_shared import headers as h
from caseway_shared.events import NotificationFailed, NotificationSent, NotificationSuppressed
from caseway_shared.outbox import OutboxMessage
from caseway_shared.topics import Topic

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import datetime
    from uuid import UUID

    from pydantic import BaseModel

    from caseway_notifier.domain.batch import Suppression
    from caseway_notifier.service.ports import Claimed, Outcome

SERVICE = "notifier"
RESEND_HEADER = "resend-with"


@dataclass(frozen=True, slots=True)
class Messages:
    """Builds the notifier's outbox messages; `topic` names a topic with this deployment's prefix."""

    topic: Callable[[Topic], str]

    def event(self, case_id: UUID, event: BaseModel, correlation_id: str) -> OutboxMessage:
        return OutboxMessage.for_event(
            topic=self.topic(Topic.NOTIFICATIONS),
            key=str(case_id),
            event=event,
            correlation_id=correlation_id,
            producer=SERVICE,
        )

    def suppressed(self, suppression: Suppression, *, at: datetime) -> OutboxMessage:
        return self.event(
            suppression.case_id,
            NotificationSuppressed(
                occurred_at=at,
                notification_key=suppression.notification_key,
                case_id=suppression.case_id,
                team=suppression.team,
                channel=suppression.channel,
                kind=suppression.kind,
                reason=suppression.reason,
            ),
            suppression.correlation_id,
        )

    def outcome(self, claimed: Claimed, outcome: Outcome, *, cases: Sequence[UUID]) -> list[OutboxMessage]:
        """NotificationSent or NotificationFailed for each case the notification spoke of (a team's
        digest covers several), and a dead letter when it failed for good; nothing while it is pending."""
        if outcome.status not in {"sent", "failed", "suppressed"}:
            return []
        messages = []
        for case_id in cases:
            common = {
                "occurred_at": outcome.at,
                "notification_key": claimed.key,
                "case_id": case_id,
                "team": claimed.team,
                "channel": claimed.channel,
                "kind": claimed.kind,
            }
            event: BaseModel
            if outcome.status == "sent":
                event = NotificationSent(**common, attempts=outcome.attempt)
            elif outcome.status == "failed":
                event = NotificationFailed(**common, attempts=outcome.attempt, error=outcome.error or "")
            else:
                event = NotificationSuppressed(**common, reason=outcome.error or "")
            messages.append(self.event(case_id, event, claimed.correlation_id))
        if outcome.status == "failed":
            messages.append(self.dead_letter(claimed, outcome))
        return messages

    def dead_letter(self, claimed: Claimed, outcome: Outcome) -> OutboxMessage:
        payload = {
            "notification_key": claimed.key,
            "case_id": str(claimed.case_id) if claimed.case_id else None,
            "reference": claimed.reference,
            "team": claimed.team,
            "channel": claimed.channel,
            "kind": claimed.kind,
            "subject": claimed.subject,
        }
        headers = h.EventHeaders.new(
            event_type="NotificationFailed", correlation_id=claimed.correlation_id, producer=SERVICE
        ).as_dict()
        headers.update(
            {
                h.ERROR: (outcome.error or "")[:2000],
                h.ATTEMPTS: str(outcome.attempt),
                "notification-key": claimed.key,
                RESEND_HEADER: f"caseway notifications resend {claimed.key}",
            }
        )
        return OutboxMessage(
            topic=self.topic(Topic.DEADLETTER),
            key=str(claimed.case_id or claimed.key),
            payload=json.dumps(payload).encode(),
            headers=headers,
        )
