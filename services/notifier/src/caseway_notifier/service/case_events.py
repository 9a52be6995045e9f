"""Handling case events (the consumer of cases.v1): decide what they call for (pure, in
`domain.batch`), then apply the decision in one unit of work — the cases' state, the notifications and
digest entries recorded as pending, and what was suppressed published through the outbox."""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from caseway_notifier.domain.batch import plan_case_events

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import datetime

    from caseway_notifier.domain.directory import Directory
    from caseway_notifier.service.messages import Messages
    from caseway_notifier.service.ports import NotifierRepositories
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
        on_planned: Callable[[], object] = lambda: None,
    ) -> None:
        self._unit_of_work = unit_of_work
        self._directory = directory
        self._messages = messages
        self._clock = clock
        self._ignore_hours = ignore_hours
        self._on_planned = on_planned  # wakes the sender

    async def handle(self, events: Sequence[tuple[CaseEvent, str]]) -> None:
        """`events` with their correlation ids, in the order consumed."""
        now = self._clock()
        async with self._unit_of_work() as work:
            store = work.repositories
            known = await store.load_cases({event.case_id for event, _ in events})
            plan = plan_case_events(events, known, self._directory, now=now, ignore_hours=self._ignore_hours)
            await store.save_cases(plan.cases)
            new = await store.record_planned(plan.notifications)
            new_entries = await store.record_entries([entry.item for entry in plan.entries])
            new_digests = await store.record_planned(plan.digests_for(new_entries))
            suppressed = plan.suppressions(new_keys=new, new_entry_keys=new_entries)
            work.publish(*(self._messages.suppressed(s, at=now) for s in suppressed))
        if new or new_digests:
            self._on_planned()
        log.info(
            "notifications_planned",
            new=len(new),
            digests_opened=len(new_digests),
            folded=len(new_entries),
            suppressed=len(suppressed),
            events=len(events),
        )
