"""The notifier's tables on PostgreSQL: a row per notification key, recorded before anything is sent;
the delivery attempts its own row cannot tell (all but a success at the first try); the entries folded
into digests; and the notifier's view of each case.

Every write is keyed (`ON CONFLICT DO NOTHING` on the notification key, the entry key, the case id), so a
redelivered or replayed event changes nothing; every batch is one statement per table, its rows in key
order (so that replicas lock them in the same order). A notification moves pending -> sending (claimed,
with a lease, committed before the send: as it is recorded, when the sender takes it at once, or by the
sender's sweep) -> sent, failed, suppressed, or pending again; a lease that expires (a sender that died
mid-send) makes it due again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from caseway_notifier.domain.cases import CaseState
from caseway_notifier.service.ports import Claimed, FoldedEntry, Recorded
from caseway_shared.events import CaseStatus, Priority

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from datetime import datetime
    from uuid import UUID

    import asyncpg

    from caseway_notifier.domain.batch import Correlated
    from caseway_notifier.domain.planning import DigestEntry, PlannedNotification
    from caseway_notifier.service.ports import Lease, Outcome
    from caseway_shared.db import DbConnection

# The SQL twin of `caseway_notifier.domain.delivery.destination` (what one circuit breaker covers).
_DESTINATION = "CASE WHEN channel = 'webhook' THEN 'webhook:' || address ELSE channel END"


class NotifierStore:
    """`NotifierRepositories` on one connection (inside the unit of work's transaction)."""

    def __init__(self, connection: DbConnection) -> None:
        self._db = connection

    # --- planning -------------------------------------------------------------------------------------

    async def record_planned(
        self, planned: Sequence[Correlated[PlannedNotification]], *, lease: Lease | None = None
    ) -> Recorded:
        if not planned:
            return Recorded(new=set(), claimed=[])
        keys = lease.keys if lease is not None else frozenset()
        rows = await self._db.fetch(
            """
            INSERT INTO notifier.notifications (notification_key, case_id, reference, team, channel, address,
                kind, status, subject, body, not_before, correlation_id, claimed_until)
            SELECT k, c, r, t, ch, a, kd, CASE WHEN cl THEN 'sending' ELSE 'pending' END, s, b, nb, cid,
                   CASE WHEN cl THEN $13::timestamptz END
            FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                        $8::text[], $9::text[], $10::timestamptz[], $11::text[], $12::boolean[])
                 AS u(k, c, r, t, ch, a, kd, s, b, nb, cid, cl)
            ORDER BY k
            ON CONFLICT (notification_key) DO NOTHING
            RETURNING notification_key, status = 'sending' AS claimed,
                CASE WHEN status = 'sending' THEN
                    (SELECT c.status FROM notifier.cases c WHERE c.case_id = notifications.case_id)
                END AS case_status,
                CASE WHEN status = 'sending' THEN
                    (SELECT c.priority FROM notifier.cases c WHERE c.case_id = notifications.case_id)
                END AS case_priority
            """,
            *_columns(
                [p.item for p in planned],
                "key case_id reference team channel address kind subject body not_before",
            ),
            [p.correlation_id for p in planned],
            [p.item.key in keys for p in planned],
            lease.until if lease is not None else None,
        )
        new = {row["notification_key"]: row for row in rows}
        claimed = [
            Claimed(
                key=p.item.key,
                case_id=p.item.case_id,
                reference=p.item.reference,
                team=p.item.team,
                channel=p.item.channel,
                address=p.item.address,
                kind=p.item.kind,
                subject=p.item.subject,
                body=p.item.body,
                attempts=0,
                failures=0,
                correlation_id=p.correlation_id,
                case_status=_status(new[p.item.key]["case_status"]),
                case_urgent=new[p.item.key]["case_priority"] == Priority.URGENT,
                claimed_until=lease.until if lease is not None else None,
            )
            for p in planned
            if p.item.key in new and new[p.item.key]["claimed"]
        ]
        return Recorded(new=set(new), claimed=claimed)

    async def record_entries(self, entries: Sequence[DigestEntry]) -> set[str]:
        if not entries:
            return set()
        rows = await self._db.fetch(
            """
            INSERT INTO notifier.digest_entries (entry_key, digest_key, case_id, reference, team, channel,
                kind, line)
            SELECT * FROM unnest($1::text[], $2::text[], $3::uuid[], $4::text[], $5::text[], $6::text[],
                                 $7::text[], $8::text[]) AS u(k, d, c, r, t, ch, kd, l)
            ORDER BY k
            ON CONFLICT (entry_key) DO NOTHING
            RETURNING entry_key
            """,
            *_columns(entries, "entry_key digest_key case_id reference team channel kind line"),
        )
        return {row["entry_key"] for row in rows}

    # --- sending --------------------------------------------------------------------------------------

    async def claim_due(
        self, *, now: datetime, limit: int, lease_until: datetime, paused: Sequence[str]
    ) -> list[Claimed]:
        # A sender that died mid-send left its claims behind: once their lease is over they are due.
        await self._db.execute(
            "UPDATE notifier.notifications SET status = 'pending', claimed_until = NULL"
            " WHERE status = 'sending' AND claimed_until < $1",
            now,
        )
        rows = await self._db.fetch(
            f"""
            WITH due AS (
                SELECT notification_key FROM notifier.notifications
                WHERE status = 'pending' AND not_before <= $1 AND NOT ({_DESTINATION}) = ANY($4::text[])
                ORDER BY not_before
                LIMIT $2
                FOR UPDATE SKIP LOCKED
            )
            UPDATE notifier.notifications AS n SET status = 'sending', claimed_until = $3
            FROM due WHERE n.notification_key = due.notification_key
            RETURNING n.notification_key, n.case_id, n.reference, n.team, n.channel, n.address, n.kind,
                n.subject, n.body, n.attempts, n.failures, n.correlation_id,
                (SELECT c.status FROM notifier.cases c WHERE c.case_id = n.case_id) AS case_status,
                (SELECT c.priority FROM notifier.cases c WHERE c.case_id = n.case_id) AS case_priority
            """,
            now,
            limit,
            lease_until,
            list(paused),
        )
        return [
            Claimed(
                key=row["notification_key"],
                case_id=row["case_id"],
                reference=row["reference"],
                team=row["team"],
                channel=row["channel"],
                address=row["address"],
                kind=row["kind"],
                subject=row["subject"],
                body=row["body"],
                attempts=row["attempts"],
                failures=row["failures"],
                correlation_id=row["correlation_id"],
                case_status=_status(row["case_status"]),
                case_urgent=row["case_priority"] == Priority.URGENT,
                claimed_until=lease_until,
            )
            for row in rows
        ]

    async def digest_entries(self, digest_keys: Iterable[str]) -> dict[str, list[FoldedEntry]]:
        """The entries of each digest, oldest first, with their cases' status now."""
        keys = sorted(set(digest_keys))
        if not keys:
            return {}
        rows = await self._db.fetch(
            """
            SELECT e.digest_key, e.case_id, e.line, c.status
            FROM notifier.digest_entries e LEFT JOIN notifier.cases c USING (case_id)
            WHERE e.digest_key = ANY($1::text[]) ORDER BY e.created_at, e.entry_key
            """,
            keys,
        )
        grouped: dict[str, list[FoldedEntry]] = {key: [] for key in keys}
        for row in rows:
            grouped[row["digest_key"]].append(
                FoldedEntry(
                    row["case_id"], row["line"], None if row["status"] is None else CaseStatus(row["status"])
                )
            )
        return grouped

    async def record_outcomes(self, outcomes: Sequence[Outcome]) -> None:
        if not outcomes:
            return
        ordered = sorted(outcomes, key=lambda o: o.key)
        # One statement: every notification's new state, and the attempts kept in history (a data-modifying
        # WITH runs whole whatever the outer statement reads of it).
        await self._db.execute(
            """
            WITH o AS (
                SELECT * FROM unnest($1::text[], $2::text[], $3::integer[], $4::integer[], $5::timestamptz[],
                                     $6::text[], $7::timestamptz[], $8::integer[], $9::text[], $10::boolean[])
                     AS u(k, status, tried, failures, at, error, not_before, attempt, outcome, kept)
            ), updated AS (
                UPDATE notifier.notifications n
                SET status = o.status, attempts = n.attempts + o.tried, failures = o.failures,
                    claimed_until = NULL, sent_at = CASE WHEN o.status = 'sent' THEN o.at ELSE n.sent_at END,
                    last_error = o.error, not_before = coalesce(o.not_before, n.not_before)
                FROM o WHERE n.notification_key = o.k
                RETURNING n.notification_key
            )
            INSERT INTO notifier.attempts (notification_key, at, attempt, outcome, error)
            SELECT o.k, o.at, o.attempt, o.outcome, o.error
            FROM o JOIN updated u ON u.notification_key = o.k
            WHERE o.kept
            ORDER BY o.k
            """,
            [o.key for o in ordered],
            [o.status for o in ordered],
            [1 if o.tried else 0 for o in ordered],
            [o.failures for o in ordered],
            [o.at for o in ordered],
            [o.error for o in ordered],
            [o.not_before for o in ordered],
            [o.attempt for o in ordered],
            [o.outcome for o in ordered],
            [o.kept_in_history for o in ordered],
        )

    async def release(self, keys: Sequence[str], *, not_before: datetime) -> None:
        if not keys:
            return
        await self._db.execute(
            "UPDATE notifier.notifications SET status = 'pending', claimed_until = NULL,"
            " not_before = greatest(not_before, $2)"
            " WHERE notification_key = ANY($1::text[]) AND status = 'sending'",
            sorted(keys),
            not_before,
        )

    # --- the notifier's view of cases -----------------------------------------------------------------

    async def load_cases(self, case_ids: Iterable[UUID]) -> dict[UUID, CaseState]:
        ids = list(set(case_ids))
        if not ids:
            return {}
        rows = await self._db.fetch(
            f"SELECT {_CASE_COLUMNS} FROM notifier.cases WHERE case_id = ANY($1::uuid[])", ids
        )
        return {row["case_id"]: _state(row) for row in rows}

    async def save_cases(self, cases: Sequence[Correlated[CaseState]]) -> None:
        """Insert or update the cases' state (escalation bookkeeping is kept)."""
        if not cases:
            return
        await self._db.execute(
            """
            INSERT INTO notifier.cases (case_id, reference, category, priority, neighbourhood, ward_code,
                departments, opened_at, due_at, status, escalate_at, correlation_id)
            SELECT u.case_id, u.reference, u.category, u.priority, u.neighbourhood, u.ward_code,
                   string_to_array(u.departments, '|'), u.opened_at, u.due_at, u.status, u.escalate_at, u.cid
            FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                        $8::timestamptz[], $9::timestamptz[], $10::text[], $11::timestamptz[], $12::text[])
                 AS u(case_id, reference, category, priority, neighbourhood, ward_code, departments,
                      opened_at, due_at, status, escalate_at, cid)
            ORDER BY u.case_id
            ON CONFLICT (case_id) DO UPDATE SET
                departments = excluded.departments, status = excluded.status, updated_at = now()
            """,
            *_columns(
                [c.item for c in cases],
                "case_id reference category priority neighbourhood ward_code",
            ),
            # Department codes never hold '|': it carries a text[] per row through unnest, which has no 2-D.
            ["|".join(c.item.departments) for c in cases],
            *_columns([c.item for c in cases], "opened_at due_at status escalate_at"),
            [c.correlation_id for c in cases],
        )

    async def claim_escalations(self, *, now: datetime, limit: int) -> list[tuple[CaseState, str]]:
        """Open cases whose escalation time has come and that were not escalated yet, locked for this
        caller and marked escalated (in the caller's transaction: a rollback undoes the mark)."""
        rows = await self._db.fetch(
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
            RETURNING {", ".join(f"c.{column.strip()}" for column in _CASE_COLUMNS.split(","))},
                c.correlation_id
            """,
            now,
            limit,
        )
        return [(_state(row), row["correlation_id"]) for row in rows]


def _columns(items: Sequence[object], names: str) -> list[list[object]]:
    """One list per attribute named in `names`, for unnest."""
    return [[getattr(item, name) for item in items] for name in names.split()]


def _status(value: str | None) -> CaseStatus | None:
    return None if value is None else CaseStatus(value)


def _state(row: asyncpg.Record) -> CaseState:
    return CaseState(
        case_id=row["case_id"],
        reference=row["reference"],
        category=row["category"],
        priority=Priority(row["priority"]),
        neighbourhood=row["neighbourhood"],
        ward_code=row["ward_code"],
        departments=tuple(row["departments"]),
        opened_at=row["opened_at"],
        due_at=row["due_at"],
        status=CaseStatus(row["status"]),
        escalate_at=row["escalate_at"],
    )


_CASE_COLUMNS = (
    "case_id, reference, category, priority, neighbourhood, ward_code, departments, opened_at, due_at, "
    "status, escalate_at"
)
