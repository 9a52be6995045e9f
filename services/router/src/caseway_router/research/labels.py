"""The live detector measured on staff's labels (router.duplicate_labels, issue 17 item 5): read by
`python -m caseway_router.research.evaluate --labels-from DATABASE_URL` and by the shadow comparison.

A label is a person's judgement of one pair — is this report the same problem as this case? — made by a
staff action (a possible duplicate confirmed or rejected, a case closed as a duplicate, a report linked
or unlinked by hand, a case closed with the reports the router linked to it), with what routing's detector
had decided about the pair: `linked`, `flagged` (a possible duplicate), `apart`, or `unknown` (routed
before routing recorded its decisions; left out). Only the latest judgement of each pair counts: staff
may change their minds.

**What it measures.** The precision of the router's automatic links (the share of linked pairs staff kept),
the share of possible duplicates that were, and the pairs kept apart that staff put together (misses). From
the scores recorded with the links and flags it also shows what other link thresholds would have done to
those pairs. Pairs kept apart carry no score (the detector scored them below the review threshold, or
chose another case, or never saw them), so at every threshold they stay apart: the recall shown is a
bound. The labels are not a sample of all pairs — staff see the flags and the links they happen to
undo — so these are the detector's figures on what people looked at, beside the corpus evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from caseway_router.domain.casefile import APART, FLAGGED, LINKED, UNKNOWN

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from caseway_router.adapters.detector_records import StoredLabel
    from caseway_router.domain.casefile import Label

THRESHOLDS: tuple[float, ...] = (0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2)


def latest(labels: Iterable[StoredLabel]) -> list[Label]:
    """The latest judgement of each (report, case) pair, from labels oldest first."""
    pairs: dict[tuple[object, object], Label] = {}
    for stored in labels:
        pairs[stored.label.report_id, stored.label.case_id] = stored.label
    return list(pairs.values())


@dataclass(frozen=True, slots=True)
class Judged:
    """How many pairs staff judged the same problem, and how many different."""

    same: int = 0
    different: int = 0

    @property
    def total(self) -> int:
        return self.same + self.different

    def share(self, *, same: bool) -> float | None:
        if not self.total:
            return None
        return (self.same if same else self.different) / self.total


def by_detector(labels: Iterable[Label]) -> dict[str, Judged]:
    """For each thing the detector had decided (linked, flagged, apart, unknown), how staff judged it."""
    counts = {kind: Judged() for kind in (LINKED, FLAGGED, APART, UNKNOWN)}
    for each in labels:
        was = counts[each.detector]
        counts[each.detector] = Judged(was.same + each.same_problem, was.different + (not each.same_problem))
    return counts


@dataclass(frozen=True, slots=True)
class AtThreshold:
    """The labelled pairs a link threshold would have linked (those with a score; certain links always)."""

    threshold: float
    linked: Judged
    same_pairs: int  # every pair judged the same problem (recorded decisions only)

    @property
    def precision(self) -> float | None:
        return self.linked.share(same=True)

    @property
    def recall(self) -> float | None:
        return self.linked.same / self.same_pairs if self.same_pairs else None


def by_threshold(labels: Sequence[Label], thresholds: Iterable[float] = THRESHOLDS) -> list[AtThreshold]:
    """What each link threshold would have done to the labelled pairs the detector scored."""
    known = [each for each in labels if each.detector != UNKNOWN]
    scored = [each for each in known if each.detector in (LINKED, FLAGGED)]
    same_pairs = sum(each.same_problem for each in known)
    rows = []
    for threshold in thresholds:
        linked = [each for each in scored if each.key is not None or (each.score or 0.0) >= threshold]
        same = sum(each.same_problem for each in linked)
        rows.append(AtThreshold(threshold, Judged(same, len(linked) - same), same_pairs))
    return rows


def _share(value: float | None) -> str:
    return "     -" if value is None else f"{value:6.3f}"


def report_lines(stored: Sequence[StoredLabel], *, thresholds: Iterable[float] = THRESHOLDS) -> list[str]:
    """The labels' table, as the evaluation prints it."""
    labels = latest(stored)
    counts = by_detector(labels)
    lines = [
        (
            f"staff labels: {len(stored)} judgements of {len(labels)} pairs (the latest of each counts);"
            f" {counts[UNKNOWN].total} on reports routed before decisions were recorded, left out"
        ),
        f"  {'the detector had':<16} | {'same':>5} {'different':>9} | staff agreed",
    ]
    for kind, agreed, meaning in (
        (LINKED, True, "precision of automatic links"),
        (FLAGGED, True, "possible duplicates that were"),
        (APART, False, "kept apart rightly; the others were misses"),
    ):
        c = counts[kind]
        lines.append(
            f"  {kind:<16} | {c.same:5d} {c.different:9d} | {_share(c.share(same=agreed))}  ({meaning})"
        )
    lines.append(f"  {'link threshold':>14} | {'links':>5} {'same':>5} {'different':>9} | precision | recall")
    lines.extend(
        f"  {row.threshold:14g} | {row.linked.total:5d} {row.linked.same:5d} {row.linked.different:9d} |"
        f"    {_share(row.precision)} | {_share(row.recall)}"
        for row in by_threshold(labels, thresholds)
    )
    return lines
