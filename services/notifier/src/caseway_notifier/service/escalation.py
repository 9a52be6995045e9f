"""Escalating cases nearing their due time unacknowledged (a scheduler): claim the due cases, plan the
manager's alert (pure, `domain.planning.plan_escalation`) and record it, in one unit of work; what is due
at once is recorded claimed for the sender and handed to it (see `service.case_events`)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import structlog

from caseway_notifier.domain.batch import Correlated
from caseway_notifier.domain.delivery import left_due
from caseway_notifier.domain.planning import plan_escalation

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from caseway_notifier.domain.directory import Directory
    from caseway_notifier.service.ports import Dispatch, NotifierRepositories
    from caseway_notifier.settings import NotifierSettings
    from caseway_shared.unit_of_work import UnitOfWork

log = structlog.get_logger(__name__)


class Escalations:
    def __init__(
        self,
        *,
        unit_of_work: UnitOfWork[NotifierRepositories],
        directory: Directory,
        settings: NotifierSettings,
        clock: Callable[[], datetime],
        dispatch: Dispatch | None = None,
    ) -> None:
        self._unit_of_work = unit_of_work
        self._directory = directory
        self._settings = settings
        self._clock = clock
        self._dispatch = dispatch

    async def run(self) -> None:
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
        now = now or self._clock()
        async with self._unit_of_work() as work:
            due = await work.repositories.claim_escalations(
                now=now, limit=self._settings.escalation_batch_size
            )
            planned = [
                Correlated(notification, correlation_id)
                for case, correlation_id in due
                for notification in plan_escalation(
                    case, self._directory, now=now, ignore_hours=self._settings.ignore_hours
                )
            ]
            planned.sort(key=lambda p: p.item.key)
            lease = (
                self._dispatch.lease_for([p.item for p in planned], now=now)
                if self._dispatch is not None and planned
                else None
            )
            recorded = await work.repositories.record_planned(planned, lease=lease)
        if self._dispatch is not None and recorded.new:
            claimed = {c.key for c in recorded.claimed}
            waiting = left_due((p.item for p in planned), new=recorded.new, claimed=claimed, now=now)
            self._dispatch.hand_off(recorded.claimed, left_due=waiting)
        if due:
            log.info("cases_escalated", cases=len(due), notifications=len(recorded.new))
        return len(due)
