"""intake applies a batch of case events set-based (issue 11, the stall time per partition; issue 16 item 9):
a batch gives the same request statuses and updates as its events applied one at a time, in a few
statements per round instead of a few per event. On the real database.

After a backlog, intake took batches of up to 2,000 case events at two or three round trips each; on a
loaded machine a batch took minutes and its partition's committed offset stood still that long.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from caseway_intake.adapters.store import IntakeStore
from caseway_shared.council import load_council
from caseway_shared.events import (
    CaseAssigned,
    CaseClosed,
    CaseNoteAdded,
    CaseStatus,
    CaseStatusChanged,
    ReportLinked,
)
from factories import case_opened, report_linked

if TYPE_CHECKING:
    import uuid

    import asyncpg

    from caseway_shared.events import CaseEvent

pytestmark = pytest.mark.infra
COUNCIL = load_council()
START = datetime(2026, 11, 30, 9, tzinfo=UTC)


def event_stream(seed: int, *, cases: int = 100, steps: int = 400) -> list[CaseEvent]:
    """Events of `cases` cases interleaved at random, each case's in its own order: openings, reports
    joining (some moving from another case), acknowledgements, public and internal notes, a new lead,
    closes and reopenings, all within seconds of each other."""
    rng = random.Random(seed)
    clock = iter(START + timedelta(milliseconds=250 * i) for i in range(10 * steps))
    opened = [case_opened(at=next(clock)) for _ in range(cases)]
    events: list[CaseEvent] = list(opened)
    reports: dict[uuid.UUID, list[uuid.UUID]] = {case.case_id: [case.report_id] for case in opened}
    notes = 0
    for _ in range(steps):
        case = rng.choice(opened)
        at = next(clock)
        kind = rng.random()
        if kind < 0.35:
            joined = report_linked(case, len(reports[case.case_id]) + 1, at=at)
            reports[case.case_id].append(joined.report_id)
            events.append(joined)
        elif kind < 0.45:
            other = rng.choice(opened)
            if other is case or len(reports[other.case_id]) < 2:
                continue
            moved = reports[other.case_id].pop()
            reports[case.case_id].append(moved)
            events.append(
                ReportLinked(
                    occurred_at=at,
                    case_id=case.case_id,
                    reference=case.reference,
                    report_id=moved,
                    reports_count=len(reports[case.case_id]),
                    score=1.0,
                    from_case_id=other.case_id,
                )
            )
        elif kind < 0.6:
            status = rng.choice([CaseStatus.ACKNOWLEDGED, CaseStatus.OPEN])
            events.append(
                CaseStatusChanged(
                    occurred_at=at, case_id=case.case_id, reference=case.reference, status=status, note=None
                )
            )
        elif kind < 0.75:
            notes += 1
            visibility = rng.choice(["public", "internal"])
            events.append(
                CaseNoteAdded(
                    occurred_at=at,
                    case_id=case.case_id,
                    reference=case.reference,
                    note_id=notes,
                    visibility=visibility,
                    text=f"Crew visit {notes}" if visibility == "public" else None,
                )
            )
        elif kind < 0.85:
            events.append(
                CaseAssigned(
                    occurred_at=at,
                    case_id=case.case_id,
                    reference=case.reference,
                    department=rng.choice(["highways", "streetscene", "environmental-health"]),
                    role="lead",
                    neighbourhood=case.neighbourhood,
                )
            )
        else:
            note = rng.choice([None, "Cleared this morning."])
            events.append(
                CaseStatusChanged(
                    occurred_at=at,
                    case_id=case.case_id,
                    reference=case.reference,
                    status=CaseStatus.CLOSED,
                    note=note,
                )
            )
            events.append(
                CaseClosed(
                    occurred_at=at,
                    case_id=case.case_id,
                    reference=case.reference,
                    note=note,
                    resolution="fixed",
                )
            )
    return events


class CountingConnection:
    """A connection that counts the statements sent through it."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection
        self.statements = 0

    async def execute(self, query: str, *args: Any) -> str:
        self.statements += 1
        return str(await self._connection.execute(query, *args))

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        self.statements += 1
        return list(await self._connection.fetch(query, *args))


async def state(db: asyncpg.Connection) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    statuses = await db.fetch("SELECT * FROM intake.request_status ORDER BY report_id")
    updates = await db.fetch(
        "SELECT update_id, report_id, case_id, status, description, external_status_code, updated_at "
        "FROM intake.request_updates ORDER BY update_id"
    )
    return [tuple(row) for row in statuses], [tuple(row) for row in updates]


async def clear(db: asyncpg.Connection) -> None:
    await db.execute("TRUNCATE intake.request_status, intake.request_updates CASCADE")


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_a_batch_of_case_events_ends_as_its_events_applied_one_at_a_time(
    db: asyncpg.Connection, seed: int
) -> None:
    events = event_stream(seed)
    await clear(db)
    for event in events:
        async with db.transaction():
            await IntakeStore(db).apply_case_events([event], COUNCIL)
    one_at_a_time = await state(db)
    assert len(one_at_a_time[0]) > 50  # the stream did something
    assert len(one_at_a_time[1]) > 200

    await clear(db)
    counting = CountingConnection(db)
    async with db.transaction():
        await IntakeStore(counting).apply_case_events(events, COUNCIL)  # type: ignore[arg-type]
    in_one_batch = await state(db)

    assert in_one_batch == one_at_a_time
    # A few statements per round, not a few per event: the old code sent more than one per event.
    assert counting.statements < len(events) / 4, (counting.statements, len(events))

    # A replay of the whole batch changes nothing.
    async with db.transaction():
        await IntakeStore(db).apply_case_events(events, COUNCIL)
    assert await state(db) == one_at_a_time
