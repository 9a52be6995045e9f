"""Timing of the stack's steps, so that "time from nothing to a ready stack" is measured, not guessed."""

from __future__ import annotations

import asyncio
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Iterator


@dataclass(frozen=True, slots=True)
class StepTiming:
    """One finished step: its name, how long it took and what it did (``"skipped: cached"`` and so on)."""

    name: str
    seconds: float
    detail: str


class StepReporter(Protocol):
    """Called once per finished step (the command line prints it; tests may pass nothing)."""

    def __call__(self, timing: StepTiming, /) -> None: ...


@dataclass(slots=True)
class Step:
    """The step in progress; its body sets ``detail`` to say what it did."""

    name: str
    detail: str = ""


@dataclass(slots=True)
class Steps:
    """Collects the timings of steps, which may run concurrently, and reports each one as it ends."""

    reporter: StepReporter | None = None
    timings: list[StepTiming] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    @contextmanager
    def step(self, name: str) -> Iterator[Step]:
        current = Step(name)
        began = time.monotonic()
        try:
            yield current
        except asyncio.CancelledError:
            current.detail = "cancelled (another step failed)"
            raise
        except BaseException:
            current.detail = f"failed{': ' + current.detail if current.detail else ''}"
            raise
        finally:
            timing = StepTiming(name, time.monotonic() - began, current.detail)
            self.timings.append(timing)
            if self.reporter is not None:
                self.reporter(timing)

    def elapsed(self) -> float:
        return time.monotonic() - self.started
