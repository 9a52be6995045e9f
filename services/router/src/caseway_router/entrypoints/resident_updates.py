"""The handler of reports.updates.v1: residents' comments and reopenings, sent on by intake from Open311
front ends (FixMyStreet's service-request-updates), applied to cases by the staff desk
(`StaffDesk.resident_update`): once per update id, whatever redelivers.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from pydantic import ValidationError

from caseway_router.staff import NotYetRouted
from caseway_shared.consuming import MalformedMessage
from caseway_shared.events import ResidentUpdateReceived

if TYPE_CHECKING:
    from collections.abc import Sequence

    from caseway_router.staff import StaffDesk
    from caseway_shared.kafka import Record


def parse_update(record: Record) -> ResidentUpdateReceived:
    try:
        return ResidentUpdateReceived.model_validate_json(record.value)
    except ValidationError as error:
        raise MalformedMessage.from_validation_error(error) from error


_OVERDUE_REMEMBERED = 10_000


class ResidentUpdates:
    """`wait_for_routing`: how long one batch waits for a report the router has not routed yet (the update
    and its report travel on different topics, so an update can overtake its report while the router is
    behind). Past it the update fails like any other record (retried, then dead-lettered: `caseway dlq
    replay` applies it later, once)."""

    def __init__(self, *, desk: StaffDesk, wait_for_routing: float = 30.0) -> None:
        self._desk = desk
        self._wait = wait_for_routing
        self._overdue: dict[str, None] = {}  # updates that waited their full time, oldest first

    async def handle_batch(self, records: Sequence[Record]) -> None:
        """Each update in its own unit of work, in the order they came (one report's updates share a
        partition); an update delivered twice in one batch is applied once."""
        updates: dict[str, ResidentUpdateReceived] = {}
        for record in records:
            update = parse_update(record)
            updates.setdefault(update.update_id, update)
        deadline = time.monotonic() + self._wait
        for update in updates.values():
            while True:
                try:
                    await self._desk.resident_update(update)
                    break
                except NotYetRouted as error:
                    if update.update_id in self._overdue:
                        # It already waited its full time once: when the consumer retries it alone it is
                        # dead-lettered at once (replayable), instead of every retry waiting again and
                        # stalling its partition for retries x records x the wait.
                        raise MalformedMessage(
                            [f"report not routed within {self._wait:.0f} s of its update: {error}"]
                        ) from error
                    if time.monotonic() >= deadline:
                        self._remember_overdue(update.update_id)
                        raise
                    await asyncio.sleep(0.5)

    def _remember_overdue(self, update_id: str) -> None:
        self._overdue[update_id] = None
        while len(self._overdue) > _OVERDUE_REMEMBERED:
            self._overdue.pop(next(iter(self._overdue)))
