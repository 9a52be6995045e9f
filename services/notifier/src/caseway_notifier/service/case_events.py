"""Handling case events (the consumer of cases.v1): decide what they call for (pure, in
`domain.batch`), then apply the decision in one unit of work — the cases' state, the notifications and
digest entries recorded, and what was suppressed published through the outbox. The alerts the sender
takes at once (`Dispatch.lease_for`) are recorded already claimed for it, and handed to it once committed:
no sweep of the database stands between an alert and its sending. Should the process die in between,
their lease runs out and the sender's sweep sends them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from caseway_notifier.domain.batch import plan_case_events
from caseway_notifier.domain.delivery import left_due

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import datetime

    from caseway_notifier.domain.directory import Directory
    from caseway_notifier.service.messages import Messages
    from caseway_notifier.service.ports import Dispatch, NotifierRepositories
    from caseway_shared.events import CaseEvent
    from caseway_shared.unit_of_work import UnitOfWork

log = structlog.get_logger(__name__)


class CaseEvents:
    def __init__(
        self,
        *,
        unit_of_work: UnitOfWork[NotifierRepositories],
        directory: Directory,
        messages: Messages,
        clock: Callable[[], datetime],
        ignore_hours: bool = False,
        dispatch: Dispatch | None = None,
    ) -> None:
        self._unit_of_work = unit_of_work
        self._directory = directory
        self._messages = messages
        self._clock = clock
        self._ignore_hours = ignore_hours
        self._dispatch = dispatch  # the sender; without one, what is recorded waits for a sweep

    async def handle(self, events: Sequence[tuple[CaseEvent, str]]) -> None:
        """`events` with their correlation ids, in the order consumed."""
        now = self._clock()
        async with self._unit_of_work() as work:
            store = work.repositories
            known = await store.load_cases({event.case_id for event, _ in events})
            plan = plan_case_events(events, known, self._directory, now=now, ignore_hours=self._ignore_hours)
            await store.save_cases(plan.cases)
            lease = (
                self._dispatch.lease_for([n.item for n in plan.notifications], now=now)
                if self._dispatch is not None
                else None
            )
            recorded = await store.record_planned(plan.notifications, lease=lease)
            new_entries = await store.record_entries([entry.item for entry in plan.entries])
            opened = plan.digests_for(new_entries)
            new_digests = (await store.record_planned(opened)).new
            suppressed = plan.suppressions(new_keys=recorded.new, new_entry_keys=new_entries)
            work.publish(*(self._messages.suppressed(s, at=now) for s in suppressed))
        if self._dispatch is not None:
            waiting = left_due(
                (p.item for p in (*plan.notifications, *opened)),
                new=recorded.new | new_digests,
                claimed={c.key for c in recorded.claimed},
                now=now,
            )
            self._dispatch.hand_off(recorded.claimed, left_due=waiting)
        log.info(
            "notifications_planned",
            new=len(recorded.new),
            handed_off=len(recorded.claimed),
            digests_opened=len(new_digests),
            folded=len(new_entries),
            suppressed=len(suppressed),
            events=len(events),
        )
