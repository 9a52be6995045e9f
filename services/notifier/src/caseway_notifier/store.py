"""The notifier's tables: a row per notification key, recorded before anything is sent; every delivery
attempt; the entries folded into digests; and the notifier's view of each case (for escalation).

Every write is keyed (`ON CONFLICT DO NOTHING` on the notification key, the entry key, the case id), so a
redelivered or replayed event changes nothing, and every batch is one statement per table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from caseway_notifier.planning import CaseState

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from datetime import datetime
    from uuid import UUID

    import asyncpg

    from caseway_notifier.planning import DigestEntry, PlannedNotification
    from caseway_shared.db import DbConnection


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one delivery attempt, and the notification's state after it."""

    key: str
    status: str  # pending (to retry), sent, failed, suppressed
    at: datetime
    attempt: int
    outcome: str  # sent, retry, failed, suppressed
    error: str | None = None
    not_before: datetime | None = None


async def record_planned(
    connection: DbConnection, planned: Sequence[PlannedNotification], *, correlation_ids: Sequence[str]
) -> set[str]:
    """Record notifications as pending; returns the keys that are new (the others exist already)."""
    if not planned:
        return set()
    rows = await connection.fetch(
        """
        INSERT INTO notifier.notifications (notification_key, case_id, reference, team, channel, address,
            kind, status, subject, body, not_before, correlation_id)
        SELECT k, c, r, t, ch, a, kd, 'pending', s, b, nb, cid
        FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                    $8::text[], $9::text[], $10::timestamptz[], $11::text[])
             AS u(k, c, r, t, ch, a, kd, s, b, nb, cid)
        ON CONFLICT (notification_key) DO NOTHING
        RETURNING notification_key
        """,
        [p.key for p in planned],
        [p.case_id for p in planned],
        [p.reference for p in planned],
        [p.team for p in planned],
        [p.channel for p in planned],
        [p.address for p in planned],
        [p.kind for p in planned],
        [p.subject for p in planned],
        [p.body for p in planned],
        [p.not_before for p in planned],
        list(correlation_ids),
    )
    return {row["notification_key"] for row in rows}


async def record_entries(connection: DbConnection, entries: Sequence[DigestEntry]) -> set[str]:
    """Fold entries into their digests; returns the entry keys that are new."""
    if not entries:
        return set()
    rows = await connection.fetch(
        """
        INSERT INTO notifier.digest_entries (entry_key, digest_key, case_id, reference, team, channel, kind,
            line)
        SELECT * FROM unnest($1::text[], $2::text[], $3::uuid[], $4::text[], $5::text[], $6::text[],
                             $7::text[], $8::text[])
        ON CONFLICT (entry_key) DO NOTHING
        RETURNING entry_key
        """,
        [e.entry_key for e in entries],
        [e.digest_key for e in entries],
        [e.case_id for e in entries],
        [e.reference for e in entries],
        [e.team for e in entries],
        [e.channel for e in entries],
        [e.kind for e in entries],
        [e.line for e in entries],
    )
    return {row["entry_key"] for row in rows}


async def digest_entries(
    connection: DbConnection, digest_keys: Iterable[str]
) -> dict[str, list[asyncpg.Record]]:
    """The entries of each digest, oldest first."""
    keys = list(digest_keys)
    if not keys:
        return {}
    rows = await connection.fetch(
        """
        SELECT digest_key, case_id, reference, line FROM notifier.digest_entries
        WHERE digest_key = ANY($1::text[]) ORDER BY created_at, entry_key
        """,
        keys,
    )
    grouped: dict[str, list[asyncpg.Record]] = {key: [] for key in keys}
    for row in rows:
        grouped[row["digest_key"]].append(row)
    return grouped


async def claim_due(connection: DbConnection, *, now: datetime, limit: int) -> list[asyncpg.Record]:
    """Pending notifications that are due, locked for this sender (others skip them)."""
    return await connection.fetch(
        """
        SELECT notification_key, case_id, reference, team, channel, address, kind, subject, body, attempts,
               correlation_id
        FROM notifier.notifications
        WHERE status = 'pending' AND not_before <= $1
        ORDER BY not_before
        LIMIT $2
        FOR UPDATE SKIP LOCKED
        """,
        now,
        limit,
    )


async def record_outcomes(connection: DbConnection, outcomes: Sequence[Outcome]) -> None:
    """Store each attempt and the notification's new state (two statements whatever the batch size)."""
    if not outcomes:
        return
    await connection.execute(
        """
        UPDATE notifier.notifications AS n
        SET status = u.status, attempts = n.attempts + 1,
            sent_at = CASE WHEN u.status = 'sent' THEN u.at ELSE n.sent_at END,
            last_error = u.error, not_before = coalesce(u.not_before, n.not_before)
        FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::timestamptz[])
             AS u(key, status, at, error, not_before)
        WHERE n.notification_key = u.key
        """,
        [o.key for o in outcomes],
        [o.status for o in outcomes],
        [o.at for o in outcomes],
        [o.error for o in outcomes],
        [o.not_before for o in outcomes],
    )
    await connection.execute(
        """
        INSERT INTO notifier.attempts (notification_key, at, attempt, outcome, error)
        SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::int[], $4::text[], $5::text[])
        """,
        [o.key for o in outcomes],
        [o.at for o in outcomes],
        [o.attempt for o in outcomes],
        [o.outcome for o in outcomes],
        [o.error for o in outcomes],
    )


# --- the notifier's view of cases -----------------------------------------------------------------------


def _state(row: asyncpg.Record) -> CaseState:
    return CaseState(
        case_id=row["case_id"],
        reference=row["reference"],
        category=row["category"],
        priority=row["priority"],
        neighbourhood=row["neighbourhood"],
        ward_code=row["ward_code"],
        departments=tuple(row["departments"]),
        opened_at=row["opened_at"],
        due_at=row["due_at"],
        status=row["status"],
        escalate_at=row["escalate_at"],
    )


_CASE_COLUMNS = (
    "case_id, reference, category, priority, neighbourhood, ward_code, departments, opened_at, due_at, "
    "status, escalate_at"
)


async def load_cases(connection: DbConnection, case_ids: Iterable[UUID]) -> dict[UUID, CaseState]:
    """The known cases among `case_ids`."""
    ids = list(set(case_ids))
    if not ids:
        return {}
    rows = await connection.fetch(
        f"SELECT {_CASE_COLUMNS} FROM notifier.cases WHERE case_id = ANY($1::uuid[])",
        ids,
    )
    return {row["case_id"]: _state(row) for row in rows}


async def save_cases(
    connection: DbConnection, cases: Sequence[CaseState], *, correlation_ids: Mapping[UUID, str]
) -> None:
    """Insert or update the cases' state (escalation bookkeeping is kept)."""
    if not cases:
        return
    await connection.execute(
        """
        INSERT INTO notifier.cases (case_id, reference, category, priority, neighbourhood, ward_code,
            departments, opened_at, due_at, status, escalate_at, correlation_id)
        SELECT u.case_id, u.reference, u.category, u.priority, u.neighbourhood, u.ward_code,
               string_to_array(u.departments, '|'), u.opened_at, u.due_at, u.status, u.escalate_at, u.cid
        FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                    $8::timestamptz[], $9::timestamptz[], $10::text[], $11::timestamptz[], $12::text[])
             AS u(case_id, reference, category, priority, neighbourhood, ward_code, departments, opened_at,
                  due_at, status, escalate_at, cid)
        ON CONFLICT (case_id) DO UPDATE SET
            departments = excluded.departments, status = excluded.status, updated_at = now()
        """,
        [c.case_id for c in cases],
        [c.reference for c in cases],
        [c.category for c in cases],
        [c.priority for c in cases],
        [c.neighbourhood for c in cases],
        [c.ward_code for c in cases],
        # Department codes never hold '|': it carries a text[] per row through unnest, which has no 2-D.
        ["|".join(c.departments) for c in cases],
        [c.opened_at for c in cases],
        [c.due_at for c in cases],
        [c.status for c in cases],
        [c.escalate_at for c in cases],
        [correlation_ids.get(c.case_id, "") for c in cases],
    )


async def claim_escalations(
    connection: DbConnection, *, now: datetime, limit: int
) -> list[tuple[CaseState, str]]:
    """Open cases whose escalation time has come and that were not escalated yet, locked for this caller
    and marked escalated (in the caller's transaction: a rollback undoes the mark)."""
    rows = await connection.fetch(
        f"""
        WITH due AS (
            SELECT case_id FROM notifier.cases
            WHERE status = 'open' AND escalated_at IS NULL AND escalate_at <= $1
            ORDER BY escalate_at
            LIMIT $2
            FOR UPDATE SKIP LOCKED
        )
        UPDATE notifier.cases AS c SET escalated_at = $1
        FROM due WHERE c.case_id = due.case_id
        RETURNING {", ".join(f"c.{column.strip()}" for column in _CASE_COLUMNS.split(","))}, c.correlation_id
        """,
        now,
        limit,
    )
    return [(_state(row), row["correlation_id"]) for row in rows]
