"""What the service layer needs from storage, channels and rate limits (implemented by the adapters:
`adapters.store` on PostgreSQL, `adapters.memory` in memory for unit tests), and the records that cross
that line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from datetime import datetime
    from uuid import UUID

    from caseway_notifier.domain.batch import Correlated
    from caseway_notifier.domain.cases import CaseState
    from caseway_notifier.domain.planning import DigestEntry, PlannedNotification


@dataclass(frozen=True, slots=True)
class Message:
    """What a channel delivers: the key travels with it so a receiver can drop a repeat."""

    key: str
    address: str
    subject: str
    body: str


class NotificationChannel(Protocol):
    """Delivers one message to its address, or raises (see `domain.delivery.classify`)."""

    async def send(self, message: Message) -> None: ...


class RateLimit(Protocol):
    async def acquire(self) -> None:
        """Wait until one more delivery is allowed."""


@dataclass(frozen=True, slots=True)
class Claimed:
    """A notification claimed for sending (its state is 'sending' until its outcome is recorded)."""

    key: str
    case_id: UUID | None
    reference: str
    team: str
    channel: str
    address: str
    kind: str
    subject: str
    body: str
    attempts: int
    failures: int
    correlation_id: str
    case_status: str | None  # the case's status now (None for a team's digest or an unknown case)
    case_urgent: bool = False  # the case is urgent (its alerts ignore hours)


@dataclass(frozen=True, slots=True)
class FoldedEntry:
    case_id: UUID
    line: str
    case_status: str | None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one claimed notification."""

    key: str
    status: str  # its state now: sent, pending (to retry), failed, suppressed
    at: datetime
    outcome: str  # what happened: sent, retry, paused, failed, suppressed
    attempt: int  # the attempt's number (the attempts before it, plus one if it was tried)
    tried: bool = True  # False when nothing was sent (suppressed before sending)
    failures: int = 0  # the retry budget spent
    error: str | None = None
    not_before: datetime | None = None


class NotifierRepositories(Protocol):
    """The notifier's tables, within one unit of work."""

    async def load_cases(self, case_ids: Iterable[UUID]) -> dict[UUID, CaseState]: ...

    async def save_cases(self, cases: Sequence[Correlated[CaseState]]) -> None: ...

    async def record_planned(self, planned: Sequence[Correlated[PlannedNotification]]) -> set[str]:
        """Record notifications as pending; returns the keys that are new."""
        ...

    async def record_entries(self, entries: Sequence[DigestEntry]) -> set[str]:
        """Fold entries into their digests; returns the entry keys that are new."""
        ...

    async def claim_due(
        self, *, now: datetime, limit: int, lease_until: datetime, paused: Sequence[str]
    ) -> list[Claimed]:
        """Due notifications, marked 'sending' until `lease_until`; none for a paused destination."""
        ...

    async def digest_entries(self, digest_keys: Iterable[str]) -> Mapping[str, list[FoldedEntry]]: ...

    async def record_outcome(self, outcome: Outcome) -> None: ...

    async def release(self, keys: Sequence[str], *, not_before: datetime) -> None:
        """Put claimed notifications that were not tried back to 'pending'."""
        ...

    async def claim_escalations(self, *, now: datetime, limit: int) -> list[tuple[CaseState, str]]: ...
