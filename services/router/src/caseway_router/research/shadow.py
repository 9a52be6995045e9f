"""Compares a shadow detector configuration with the live one on the decisions the router recorded:
`python -m caseway_router.research.shadow --database-url postgresql://... [--shadow NAME] [--since DATE]`.

While `CASEWAY_ROUTER_DUPLICATE_SHADOW` names a configuration, the router decides each report by it too,
over the same candidates, and records what it would have decided (router.shadow_decisions) beside what the
live detector decided (router.reports.decision); see docs/duplicates.md, shadow mode. For each shadow this
prints:

- **agreement**: the reports both decided alike (both linked to the same case, both flagged the same case
  as a possible duplicate, or both opened a new case), overall and by category, and a table of the live
  outcome against the shadow's;
- **against staff's labels**, where staff judged a pair one of these reports is in (router.duplicate_labels,
  the latest judgement of each pair; see `research.labels`): how many pairs each linked, flagged or kept
  apart, and how staff judged them — the precision of each one's links on the same pairs.

Each report is decided by the shadow as the live router saw it: the cases the live rules made before it,
not the cases the shadow's own decisions would have made. So a shadow's differences do not compound (a
report it would have linked elsewhere does not move later reports), and the comparison is per report.
Labels exist mostly where the live detector did something staff looked at (its links and flags), so they
say more about the live detector's mistakes than about the shadow's: a shadow that links where the live
rules opened a case is judged only where staff later linked those reports by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import asyncpg

from caseway_router.adapters.detector_records import (
    ShadowRecord,
    StoredLabel,
    load_labels,
    load_shadow_decisions,
)
from caseway_router.domain.casefile import APART, FLAGGED, LINKED, detector_verdict
from caseway_router.domain.casework import LINK, NEW, REVIEW
from caseway_router.research.labels import Judged, latest

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from caseway_router.domain.casefile import Label
    from caseway_router.domain.casework import Verdict

OUTCOMES = (LINK, REVIEW, NEW)
_CORNER = "live \\ shadow"


def agree(live: Verdict, shadow: Verdict) -> bool:
    """Whether two verdicts on one report decide alike: the same outcome about the same case."""
    return live.outcome == shadow.outcome and live.case_id == shadow.case_id


@dataclass
class Comparison:
    """One shadow against the live detector on the reports it decided."""

    shadow: str
    reports: int = 0
    agreed: int = 0
    first: datetime | None = None
    last: datetime | None = None
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)  # (live, shadow) -> reports
    other_case: int = 0  # the same outcome (link or review) about another case
    by_category: dict[str, Judged] = field(default_factory=dict)  # same: agreed, different: not
    labelled: int = 0  # labelled pairs whose report the shadow decided
    live_on_labels: dict[str, Judged] = field(default_factory=dict)
    shadow_on_labels: dict[str, Judged] = field(default_factory=dict)

    @property
    def agreement(self) -> float | None:
        return self.agreed / self.reports if self.reports else None


def _judged(counts: dict[str, Judged], kind: str, *, same: bool) -> None:
    was = counts.get(kind, Judged())
    counts[kind] = Judged(was.same + same, was.different + (not same))


def compare(records: Iterable[ShadowRecord], labels: Sequence[Label]) -> list[Comparison]:
    """Each shadow's comparison with the live detector, by shadow name; `labels` are the latest judgement
    of each pair (`research.labels.latest`)."""
    found: dict[str, Comparison] = {}
    decided: dict[str, dict[object, ShadowRecord]] = {}
    for record in records:
        c = found.setdefault(record.shadow, Comparison(record.shadow))
        decided.setdefault(record.shadow, {})[record.report_id] = record
        same = agree(record.live, record.verdict)
        c.reports += 1
        c.agreed += same
        c.first = min(c.first or record.routed_at, record.routed_at)
        c.last = max(c.last or record.routed_at, record.routed_at)
        c.outcomes[record.live.outcome, record.verdict.outcome] += 1
        c.other_case += record.live.outcome == record.verdict.outcome != NEW and not same
        _judged(c.by_category, record.category, same=same)
    for name, c in found.items():
        for each in labels:
            judged = decided[name].get(each.report_id)
            if judged is None:
                continue
            c.labelled += 1
            for counts, verdict in ((c.live_on_labels, judged.live), (c.shadow_on_labels, judged.verdict)):
                kind, _, _ = detector_verdict(verdict, each.case_id)
                _judged(counts, kind, same=each.same_problem)
    return list(found.values())


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def report_lines(comparison: Comparison) -> list[str]:
    """One shadow's comparison, as the command prints it."""
    c = comparison
    when = f" routed {c.first:%Y-%m-%d %H:%M} to {c.last:%Y-%m-%d %H:%M}" if c.first and c.last else ""
    lines = [
        f'shadow "{c.shadow}": {c.reports} reports{when}',
        (
            f"  agreement: {c.agreed} of {c.reports} ({_share(c.agreement)});"
            f" the same outcome about another case: {c.other_case}"
        ),
        f"  {_CORNER:<14} | " + " ".join(f"{o:>7}" for o in OUTCOMES),
    ]
    lines.extend(
        f"  {live:<14} | " + " ".join(f"{c.outcomes[live, shadow]:7d}" for shadow in OUTCOMES)
        for live in OUTCOMES
    )
    lines.append(
        "  by category (agreed of reports): "
        + ", ".join(f"{name} {j.same} of {j.total}" for name, j in sorted(c.by_category.items()))
    )
    lines.append(f"  on staff's labels: {c.labelled} judged pairs of these reports")
    if c.labelled:
        lines.append(
            f"  {'decided':<10} | {'live: same':>10} {'different':>9} | {'shadow: same':>12} {'different':>9}"
        )
        for kind in (LINKED, FLAGGED, APART):
            live, shadow = c.live_on_labels.get(kind, Judged()), c.shadow_on_labels.get(kind, Judged())
            lines.append(
                f"  {kind:<10} | {live.same:10d} {live.different:9d} |"
                f" {shadow.same:12d} {shadow.different:9d}"
            )
        live_links = c.live_on_labels.get(LINKED, Judged()).share(same=True)
        shadow_links = c.shadow_on_labels.get(LINKED, Judged()).share(same=True)
        lines.append(
            f"  precision of links on these pairs: live {_share(live_links)}, shadow {_share(shadow_links)}"
        )
    return lines


async def read(
    database_url: str, *, shadow: str | None, since: datetime | None
) -> tuple[list[ShadowRecord], list[StoredLabel]]:
    connection = await asyncpg.connect(database_url)
    try:
        return (
            await load_shadow_decisions(connection, shadow=shadow, since=since),
            await load_labels(connection),
        )
    finally:
        await connection.close()


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL"),
        help="the router's database (postgresql://...; default: DATABASE_URL)",
    )
    parser.add_argument("--shadow", help="one shadow's name (default: every shadow recorded)")
    parser.add_argument("--since", type=_moment, help="only reports routed since (ISO date or time, UTC)")
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("give --database-url (or set DATABASE_URL): the router's database")
    try:
        records, stored = asyncio.run(read(args.database_url, shadow=args.shadow, since=args.since))
    except asyncpg.UndefinedTableError as error:
        parser.exit(2, f"{error}: that database is not migrated to 0016 (shadow mode); migrate it first\n")
    comparisons = compare(records, latest(stored))
    if not comparisons:
        sys.stdout.write("no shadow decisions recorded (is CASEWAY_ROUTER_DUPLICATE_SHADOW set?)\n")
    for comparison in comparisons:
        for line in report_lines(comparison):
            sys.stdout.write(line + "\n")


if __name__ == "__main__":
    main()
