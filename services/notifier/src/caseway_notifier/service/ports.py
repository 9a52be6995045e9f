"""What the service layer needs from storage, channels and rate limits (implemented by the adapters:
`adapters.store` on PostgreSQL, `adapters.memory` in memory for unit tests), what those who record
notifications need from the sender (`Dispatch`), and the records that cross those lines."""

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
    from caseway_shared.events import CaseStatus, NotificationKind


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
    kind: NotificationKind
    subject: str
    body: str
    attempts: int
    failures: int
    correlation_id: str
    case_status: CaseStatus | None  # the case's status now (None for a team's digest or an unknown case)
    case_urgent: bool = False  # the case is urgent (its alerts ignore hours)
    claimed_until: datetime | None = None  # its lease: after it, another sender may claim it


@dataclass(frozen=True, slots=True)
class Lease:
    """Which notifications to claim for the sender as they are recorded (marked 'sending' in the same
    transaction), and until when: if the sender dies before recording their outcome, they fall due again
    then, for any sender's sweep."""

    keys: frozenset[str]
    until: datetime


@dataclass(frozen=True, slots=True)
class Recorded:
    """What `record_planned` did: the keys that were new, and those of them claimed under the lease."""

    new: set[str]
    claimed: list[Claimed]


@dataclass(frozen=True, slots=True)
class FoldedEntry:
    case_id: UUID
    line: str
    case_status: CaseStatus | None


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

    @property
    def kept_in_history(self) -> bool:
        """Whether it gets a row of its own in the notification's attempts: everything but a success at
        the first try, which the notification's own row says whole (sent, one attempt, `sent_at`)."""
        return not (self.outcome == "sent" and self.attempt == 1)


class NotifierRepositories(Protocol):
    """The notifier's tables, within one unit of work."""

    async def load_cases(self, case_ids: Iterable[UUID]) -> dict[UUID, CaseState]: ...

    async def save_cases(self, cases: Sequence[Correlated[CaseState]]) -> None: ...

    async def record_planned(
        self, planned: Sequence[Correlated[PlannedNotification]], *, lease: Lease | None = None
    ) -> Recorded:
        """Record notifications as pending, those new ones that `lease` names as claimed ('sending'
        until its end, each with its case's status now); returns the keys that are new, and the claimed."""
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

    async def record_outcomes(self, outcomes: Sequence[Outcome]) -> None:
        """Record what became of claimed notifications, all at once (their lease ends); the attempts
        keep those `kept_in_history`."""
        ...

    async def release(self, keys: Sequence[str], *, not_before: datetime) -> None:
        """Put claimed notifications that were not tried back to 'pending'."""
        ...

    async def claim_escalations(self, *, now: datetime, limit: int) -> list[tuple[CaseState, str]]: ...


class Dispatch(Protocol):
    """The sender, as those who record notifications see it: it says which of them it takes at once, and
    is handed them, claimed, once they are committed."""

    def lease_for(self, planned: Sequence[PlannedNotification], *, now: datetime) -> Lease:
        """Which of `planned` to claim for it as they are recorded (due now, not a digest, not to a paused
        destination, as many as it has room for), and until when."""
        ...

    def hand_off(self, claimed: Sequence[Claimed], *, left_due: bool) -> None:
        """Deliver `claimed` (committed as claimed). `left_due`: new notifications that are due were left
        for the sweep (no room, a paused destination), so it should look now."""
        ...
