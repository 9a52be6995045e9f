"""The notifier's tables: a row per notification key, recorded before anything is sent, and every
delivery attempt."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    import asyncpg

    from caseway_notifier.planning import PlannedNotification
    from caseway_shared.db import DbConnection


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


async def record_outcomes(connection: DbConnection, outcomes: Sequence[dict[str, Any]]) -> None:
    """Store each attempt and the notification's new state."""
    await connection.executemany(
        """
        UPDATE notifier.notifications
        SET status = $2, attempts = attempts + 1, sent_at = $3, last_error = $4, not_before = $5
        WHERE notification_key = $1
        """,
        [(o["key"], o["status"], o["sent_at"], o["error"], o["not_before"]) for o in outcomes],
    )
    await connection.executemany(
        "INSERT INTO notifier.attempts (notification_key, at, outcome, error) VALUES ($1, $2, $3, $4)",
        [(o["key"], o["at"], o["outcome"], o["error"]) for o in outcomes],
    )
