"""The one backoff rule for every retry in Caseway (the batch consumer's, a notification's, a lost
commit's): exponential from a base, capped, and jittered so that many failures at once do not retry in
step. Pure: the caller supplies the jitter (random in services, fixed in tests)."""

from __future__ import annotations


def backoff_delay(attempt: int, *, base: float, cap: float, jitter: float) -> float:
    """Seconds to wait after failed attempt `attempt` (1 for the first): `base` doubled per attempt since,
    at most `cap`, scaled by `jitter` in [0, 1] to between half and all of that."""
    return min(cap, base * 2.0 ** max(0, attempt - 1)) * (0.5 + 0.5 * min(1.0, max(0.0, jitter)))
