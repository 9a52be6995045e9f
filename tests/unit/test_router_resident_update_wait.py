"""An update whose report the router never routes stalls its partition for one wait, not for retries x
records x the wait (a fuzz run sent ~200 such updates and the router's lag never drained)."""

import time
import uuid
from datetime import UTC, datetime

from caseway_router.entrypoints.resident_updates import ResidentUpdates
from caseway_router.staff import NotYetRouted
from caseway_shared.consuming import BatchConsumer, DeadLetters, RetryPolicy
from caseway_shared.events import ResidentUpdateReceived
from caseway_shared.kafka import Record


class _NeverRouted:
    async def resident_update(self, update):
        raise NotYetRouted(str(update.report_id))


class _Collected(DeadLetters):
    def __init__(self) -> None:
        self.published: list[tuple[Record, BaseException]] = []

    async def publish(self, record, *, error, attempts):
        self.published.append((record, error))


def _record(offset: int) -> Record:
    update = ResidentUpdateReceived.model_validate(
        {
            "occurred_at": datetime.now(UTC).isoformat(),
            "update_id": f"u-{offset}",
            "report_id": str(uuid.uuid4()),
            "case_id": None,
            "action": "note",
            "description": "still there",
        }
    )
    value = update.model_dump_json().encode()
    return Record(
        topic="reports.updates.v1",
        partition=0,
        offset=offset,
        key=b"k",
        value=value,
        headers={},
        timestamp_ms=0,
    )


async def test_updates_of_a_report_never_routed_wait_once_then_are_dead_lettered():
    updates = ResidentUpdates(desk=_NeverRouted(), wait_for_routing=0.5)  # type: ignore[arg-type]
    dead = _Collected()
    consumer = BatchConsumer(handle=updates.handle_batch, dead_letters=dead, retry=RetryPolicy(attempts=3))
    started = time.monotonic()
    await consumer([_record(n) for n in range(3)])
    took = time.monotonic() - started
    assert [record.offset for record, _ in dead.published] == [0, 1, 2]
    assert all("not routed" in str(error) for _, error in dead.published)
    assert took < 2.0, f"{took:.1f} s: each record waited again"
