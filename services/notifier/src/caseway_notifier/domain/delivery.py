"""Deciding about a delivery (pure): which notifications just recorded go straight to the sender, whether
a claimed notification is still to be sent, what an error means, what a notification's state is after an
attempt, and when a destination is paused.

Every exception a channel raises is classified: a `TransientDeliveryError`, a timeout or a connection
error may work later; a `PermanentDeliveryError` or an error in the message itself (an address or header
that cannot be encoded, an invalid URL) never will; anything else is unexpected and retried within the
notification's budget, so one bad notification can never be tried for ever nor hold back the others.

A destination (the SMTP relay, GOV.UK Notify, one webhook) that fails `threshold` times in a row is in
an outage: its circuit breaker opens and nothing is sent there until a cooldown has passed (doubling to a
bound); then one probe is let through, and its success closes the breaker. Failures during an outage do
not spend a notification's retry budget, so an outage of any length fails nothing that would have
succeeded once the destination is back.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from caseway_notifier.domain.kinds import DIGEST_KINDS
from caseway_shared.backoff import backoff_delay
from caseway_shared.events import CaseStatus, NotificationKind

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Sequence

    from caseway_notifier.domain.planning import PlannedNotification

Verdict = Literal["transient", "permanent", "unexpected"]


class DeliveryError(Exception):
    """A notification could not be delivered."""


class TransientDeliveryError(DeliveryError):
    """Worth retrying later."""


class PermanentDeliveryError(DeliveryError):
    """Retrying will not help."""


# Errors in the message itself: the same message fails the same way every time.
_PERMANENT = (PermanentDeliveryError, UnicodeError, ValueError, TypeError, LookupError)
_TRANSIENT = (TransientDeliveryError, TimeoutError, ConnectionError, OSError)


def classify(error: BaseException) -> Verdict:
    if isinstance(error, _TRANSIENT):
        return "transient"
    if isinstance(error, _PERMANENT):
        return "permanent"
    return "unexpected"


def describe(error: BaseException, *secrets: str) -> str:
    """`Type: message` for logs, events and dead letters, with the address (a webhook URL is a secret, an
    email address or phone number is personal to staff) taken out."""
    text = f"{type(error).__name__}: {error}"
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<address>")
    return text[:1000]


def destination(channel: str, address: str) -> str:
    """What one circuit breaker covers: a webhook is its own destination; email and SMS go through one
    relay or API each."""
    return f"webhook:{address}" if channel == "webhook" else channel


# --- as it is recorded: straight to the sender? ------------------------------------------------------


def hand_off_keys(
    planned: Sequence[PlannedNotification], *, now: datetime, paused: Collection[str], room: int
) -> frozenset[str]:
    """The notifications just planned that the sender takes at once, claimed as they are recorded: those
    due now, but not a digest (what it says is read when it goes) nor one to a paused destination, and no
    more than the sender has `room` for, first in key order. The others wait for its sweep."""
    due = [
        p.key
        for p in planned
        if p.not_before <= now
        and p.kind not in DIGEST_KINDS
        and destination(p.channel, p.address) not in paused
    ]
    return frozenset(sorted(due)[: max(room, 0)])


def left_due(
    planned: Iterable[PlannedNotification], *, new: Collection[str], claimed: Collection[str], now: datetime
) -> bool:
    """Whether a notification just recorded (`new`) is due now but was not taken at once (no room, a
    paused destination, a digest due already): then the sweep should look now rather than at its time."""
    return any(p.key in new and p.key not in claimed and p.not_before <= now for p in planned)


# --- before sending: is it still wanted? --------------------------------------------------------------


def suppression_reason(kind: str, case_status: str | None) -> str | None:
    """Why a claimed notification must not go after all (None: send it). A closed case is sent nothing
    more; an escalation is for a case nobody has acknowledged, so it is dropped once one has."""
    if case_status == CaseStatus.CLOSED:
        return "case closed"
    if kind == NotificationKind.ESCALATION and case_status not in {None, CaseStatus.OPEN}:
        return "case acknowledged"
    return None


def digest_lines(kind: str, entries: list[tuple[str, str | None]]) -> list[str]:
    """The lines a digest still has to say, from its entries as (line, case status): a team's digest of
    new cases leaves out the cases closed since."""
    if kind == NotificationKind.NEW_CASES_DIGEST:
        return [line for line, status in entries if status != CaseStatus.CLOSED]
    return [line for line, _ in entries]


# --- after an attempt --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Decision:
    status: Literal["sent", "pending", "failed"]
    outcome: Literal["sent", "retry", "paused", "failed"]
    failures: int  # the retry budget spent after this attempt
    retry_at: datetime | None = None


def after_failure(
    verdict: Verdict,
    *,
    failures: int,
    max_attempts: int,
    outage_until: datetime | None,
    now: datetime,
    base: float,
    cap: float,
    jitter: float | None = None,
) -> Decision:
    """The notification's state after a failed attempt. `failures` is the budget spent before it;
    `outage_until` is set when its destination's breaker is open (the failure is the outage's, not the
    notification's)."""
    if verdict == "permanent":
        return Decision("failed", "failed", failures + 1)
    if outage_until is not None:
        return Decision("pending", "paused", failures, retry_at=max(now, outage_until))
    spent = failures + 1
    if spent >= max_attempts:
        return Decision("failed", "failed", spent)
    jitter = random.random() if jitter is None else jitter  # noqa: S311 - jitter, not security
    delay = backoff_delay(spent, base=base, cap=cap, jitter=jitter)
    return Decision("pending", "retry", spent, retry_at=now + timedelta(seconds=delay))


@dataclass
class _Breaker:
    failures: int = 0
    open_until: datetime | None = None
    cooldown: float = 0.0
    probing: bool = False


@dataclass
class CircuitBreakers:
    """One breaker per destination (see `destination`); times are arguments, so tests drive them."""

    threshold: int = 5
    cooldown_seconds: float = 5.0
    max_cooldown_seconds: float = 300.0
    _state: dict[str, _Breaker] = field(default_factory=dict)

    def paused(self, now: datetime) -> list[str]:
        """Destinations to claim nothing for: open, or with a probe in flight."""
        return sorted(
            name
            for name, b in self._state.items()
            if b.probing or (b.open_until is not None and now < b.open_until)
        )

    def admit(self, name: str, now: datetime) -> bool:
        """Whether a delivery to `name` may go now (after a cooldown, the first is the probe)."""
        breaker = self._state.get(name)
        if breaker is None or breaker.open_until is None:
            return True
        if breaker.probing or now < breaker.open_until:
            return False
        breaker.probing = True
        return True

    def not_sent(self, name: str) -> None:
        """A delivery admitted to `name` did not go after all (its lease or its team's hours ran out while
        it waited): if it was the probe, the next delivery may probe instead. Left probing, the destination
        would be paused for good, and for email that is every email."""
        breaker = self._state.get(name)
        if breaker is not None:
            breaker.probing = False

    def succeeded(self, name: str) -> None:
        self._state.pop(name, None)

    def failed(self, name: str, now: datetime) -> datetime | None:
        """Count a transient failure; returns until when `name` is paused if it is now in an outage."""
        breaker = self._state.setdefault(name, _Breaker())
        breaker.failures += 1
        if breaker.open_until is None and breaker.failures < self.threshold:
            return None
        breaker.cooldown = min(
            self.max_cooldown_seconds, breaker.cooldown * 2 if breaker.cooldown else self.cooldown_seconds
        )
        breaker.open_until = now + timedelta(seconds=breaker.cooldown)
        breaker.probing = False
        return breaker.open_until

    def outage_until(self, name: str) -> datetime | None:
        breaker = self._state.get(name)
        return breaker.open_until if breaker is not None else None
