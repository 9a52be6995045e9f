"""The notifier's tables in memory: `NotifierRepositories` for unit tests of the service layer (with
`caseway_shared.unit_of_work.InMemoryUnitOfWork`). Same keys, same rules, no database; it also keeps the
order rows were written in, so tests can check it."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from caseway_notifier.domain.delivery import destination
from caseway_notifier.service.ports import Claimed, FoldedEntry, Recorded

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from datetime import datetime
    from uuid import UUID

    from caseway_notifier.domain.batch import Correlated
    from caseway_notifier.domain.cases import CaseState
    from caseway_notifier.domain.planning import DigestEntry, PlannedNotification
    from caseway_notifier.service.ports import Lease, Outcome


@dataclass
class StoredNotification:
    planned: PlannedNotification
    correlation_id: str
    status: str = "pending"
    attempts: int = 0
    failures: int = 0
    not_before: datetime | None = None
    claimed_until: datetime | None = None
    last_error: str | None = None


@dataclass
class InMemoryNotifierStore:
    cases: dict[UUID, CaseState] = field(default_factory=dict)
    escalated: set[UUID] = field(default_factory=set)
    notifications: dict[str, StoredNotification] = field(default_factory=dict)
    entries: dict[str, DigestEntry] = field(default_factory=dict)
    attempts: list[Outcome] = field(default_factory=list)  # the outcomes kept in history, as written
    writes: list[tuple[str, list[str]]] = field(default_factory=list)  # (table, keys in the order written)

    async def load_cases(self, case_ids: Iterable[UUID]) -> dict[UUID, CaseState]:
        return {case_id: self.cases[case_id] for case_id in set(case_ids) if case_id in self.cases}

    async def save_cases(self, cases: Sequence[Correlated[CaseState]]) -> None:
        self.writes.append(("cases", [str(c.item.case_id) for c in cases]))
        for case in cases:
            self.cases[case.item.case_id] = case.item

    async def record_planned(
        self, planned: Sequence[Correlated[PlannedNotification]], *, lease: Lease | None = None
    ) -> Recorded:
        self.writes.append(("notifications", [p.item.key for p in planned]))
        new, claimed = set(), []
        for p in planned:
            if p.item.key not in self.notifications:
                n = StoredNotification(p.item, p.correlation_id, not_before=p.item.not_before)
                self.notifications[p.item.key] = n
                new.add(p.item.key)
                if lease is not None and p.item.key in lease.keys:
                    n.status, n.claimed_until = "sending", lease.until
                    claimed.append(self._claimed(p.item.key, n))
        return Recorded(new=new, claimed=claimed)

    async def record_entries(self, entries: Sequence[DigestEntry]) -> set[str]:
        self.writes.append(("digest_entries", [e.entry_key for e in entries]))
        new = {e.entry_key for e in entries if e.entry_key not in self.entries}
        self.entries.update({e.entry_key: e for e in entries if e.entry_key in new})
        return new

    async def claim_due(
        self, *, now: datetime, limit: int, lease_until: datetime, paused: Sequence[str]
    ) -> list[Claimed]:
        claimed: list[Claimed] = []
        for key, n in sorted(self.notifications.items(), key=lambda item: str(item[1].not_before)):
            if n.status == "sending" and n.claimed_until is not None and n.claimed_until < now:
                n.status = "pending"
            due = n.status == "pending" and n.not_before is not None and n.not_before <= now
            if not due or destination(n.planned.channel, n.planned.address) in paused:
                continue
            if len(claimed) == limit:
                break
            n.status, n.claimed_until = "sending", lease_until
            claimed.append(self._claimed(key, n))
        return claimed

    def _claimed(self, key: str, n: StoredNotification) -> Claimed:
        p = n.planned
        case = self.cases.get(p.case_id) if p.case_id else None
        return Claimed(
            key=key,
            case_id=p.case_id,
            reference=p.reference,
            team=p.team,
            channel=p.channel,
            address=p.address,
            kind=p.kind,
            subject=p.subject,
            body=p.body,
            attempts=n.attempts,
            failures=n.failures,
            correlation_id=n.correlation_id,
            case_status=case.status if case else None,
            case_urgent=bool(case and case.urgent),
            claimed_until=n.claimed_until,
        )

    async def digest_entries(self, digest_keys: Iterable[str]) -> dict[str, list[FoldedEntry]]:
        grouped: dict[str, list[FoldedEntry]] = {key: [] for key in set(digest_keys)}
        for entry in self.entries.values():
            if entry.digest_key in grouped:
                case = self.cases.get(entry.case_id)
                grouped[entry.digest_key].append(
                    FoldedEntry(entry.case_id, entry.line, case.status if case else None)
                )
        return grouped

    async def record_outcomes(self, outcomes: Sequence[Outcome]) -> None:
        ordered = sorted(outcomes, key=lambda o: o.key)
        self.writes.append(("outcomes", [o.key for o in ordered]))
        for outcome in ordered:
            n = self.notifications.get(outcome.key)
            if n is None:  # as an UPDATE that finds no row: nothing to record
                continue
            n.status, n.failures, n.claimed_until, n.last_error = (
                outcome.status,
                outcome.failures,
                None,
                outcome.error,
            )
            n.attempts += 1 if outcome.tried else 0
            n.not_before = outcome.not_before or n.not_before
        self.attempts.extend(o for o in ordered if o.kept_in_history and o.key in self.notifications)

    async def release(self, keys: Sequence[str], *, not_before: datetime) -> None:
        for key in keys:
            n = self.notifications[key]
            if n.status == "sending":
                n.status, n.claimed_until = "pending", None
                n.not_before = max(not_before, n.not_before) if n.not_before else not_before

    async def claim_escalations(self, *, now: datetime, limit: int) -> list[tuple[CaseState, str]]:
        due = sorted(
            (
                c
                for c in self.cases.values()
                if c.status == "open"
                and c.case_id not in self.escalated
                and c.escalate_at is not None
                and c.escalate_at <= now
            ),
            key=lambda c: c.escalate_at or now,
        )[:limit]
        self.escalated.update(c.case_id for c in due)
        return [(c, "") for c in due]

    def status(self, key: str) -> str:
        return self.notifications[key].status

    def set_case(self, case: CaseState, **changes: object) -> None:
        """For tests: change what the store knows of a case, as later events would."""
        self.cases[case.case_id] = replace(case, **changes)  # type: ignore[arg-type]
