"""Measures the router's duplicate detection on real requests:
`python -m caseway_router.research.evaluate --corpus tests/data/nyc311/nyc311_2013-12-25.csv`.

The corpus is NYC 311's service requests of one day (CSV with Created Date, Complaint Type, Descriptor,
Location Type, Incident Address, Latitude, Longitude). Ground truth, weak but independent of the detector:
two requests are the same problem when they have the same non-empty Incident Address (as written) and the
same Complaint Type.

**The router's own code decides.** Each request becomes a `ReportReceived` event; the router's
`report_facts` turns it into what the detector knows, and the router's `plan_batch` decides, in arrival
order and in batches (`--batch`), which reports open a case and which join one, exactly as
`RouterService._route` does. What the database does between batches is played by `MemoryStore`: the
candidate search of `adapters.store.find_candidates` (same family, the cells of the report's box, within
the radius, at the same address or with the same exact key, inside the window) and the increments of
`grow_cases` (report and point counts, the mean point, the first address and exact keys). So the figures
are the shipped planning and detector, not a model of them. The corpus has no UPRNs, USRNs or asset ids, so
the exact keys never decide here.

**Measured pairwise** over all requests: a predicted pair is two requests the method puts together, a true
pair two requests the ground truth puts together; precision = |predicted and true| / |predicted|, recall =
|predicted and true| / |true|. A distance rule predicts every pair of the same complaint type within its
distance. The detector's predicted pairs are the pairs within each case. Possible duplicates (flagged for a
person) are not links, and are counted separately.

**Two versions of the corpus.** As it is (points geocoded from the address, so one address is one point,
and the address given), and as phone reports arrive: each point moved by normal noise of sigma metres per
axis (seeded), every address withheld. The detector is never told sigma. At each sigma it is compared with
the **oracle**: the distance-only rule whose radius (in 5 m steps) gives the best mean F1 over the seeds
of that sigma, chosen with hindsight, which no council could do.

**Staff's labels.** With `--labels-from DATABASE_URL` (a council's router database) it also prints the
live detector's precision on the pairs staff judged (router.duplicate_labels: see `research.labels`);
`--labels-from` alone prints only that.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import csv
import math
import random
import statistics
import sys
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import UUID
from zoneinfo import ZoneInfo

import asyncpg

from caseway_router.adapters.detector_records import StoredLabel, load_labels
from caseway_router.domain.areas import case_cell, cells_within
from caseway_router.domain.casework import Joined, Opened, Prepared, plan_batch, report_facts
from caseway_router.domain.duplicates import (
    CandidateCase,
    DuplicateRules,
    ReportFacts,
    distance_m,
    exact_keys,
    normalise_address,
    scatter_m2,
)
from caseway_router.domain.places import Placement
from caseway_router.domain.routing import Route
from caseway_router.research.labels import report_lines
from caseway_shared.events import Channel, GeoPoint, Place, Priority, ReportReceived

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

_NEW_YORK = ZoneInfo("America/New_York")
_METRES_PER_DEGREE = 111_195.0
SIGMAS_M: tuple[float, ...] = (5, 10, 15, 25, 35)
SEEDS: tuple[int, ...] = (1, 2, 3, 4, 5)
ORACLE_RADII_M: tuple[float, ...] = tuple(float(r) for r in range(5, 255, 5))
FIXMYSTREET_RADIUS_M = 250.0
# NYC's categories are not a council's: one rule for all of them, as a council would configure a category.
# The radius bounds the search only; the detector's score decides (it is not told the GPS error).
NYC_RULES = DuplicateRules(radius_m=120, window_hours=168)
DEFAULT_BATCH = 10
_NYC_LAND_TYPE_LENGTH = 32  # Place.land_type's limit

Pair = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Request:
    """One corpus row, as the detector and the ground truth see it."""

    index: int
    created: datetime
    complaint: str
    descriptor: str | None
    location_type: str | None
    address: str | None
    lat: float | None
    lon: float | None

    def event(self) -> ReportReceived:
        """The request as intake would publish it (no description: the export has none)."""
        point = (
            GeoPoint(lat=self.lat, lon=self.lon) if self.lat is not None and self.lon is not None else None
        )
        return ReportReceived(
            occurred_at=self.created,
            report_id=UUID(int=self.index + 1),
            source_system="nyc311",
            source_id=str(self.index),
            channel=Channel.PHONE,
            received_at=self.created,
            category=self.complaint,
            category_text=self.descriptor,
            place=Place(
                point=point,
                address=self.address,
                land_type=self.location_type[:_NYC_LAND_TYPE_LENGTH] if self.location_type else None,
            ),
            description="",
        )


@dataclass(frozen=True, slots=True)
class Quality:
    precision: float
    recall: float
    predicted: int
    correct: int

    @property
    def f1(self) -> float:
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0


def load_corpus(path: Path) -> list[Request]:
    """Read the NYC 311 CSV; empty fields become None."""
    with path.open(newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    return [
        Request(
            index=i,
            created=datetime.strptime(row["Created Date"], "%m/%d/%Y %I:%M:%S %p").replace(tzinfo=_NEW_YORK),
            complaint=row["Complaint Type"],
            descriptor=row["Descriptor"] or None,
            location_type=row["Location Type"] or None,
            address=row["Incident Address"].strip() or None,
            lat=float(row["Latitude"]) if row["Latitude"] else None,
            lon=float(row["Longitude"]) if row["Longitude"] else None,
        )
        for i, row in enumerate(rows)
    ]


def as_app_reports(requests: Sequence[Request], *, sigma_m: float, seed: int) -> list[Request]:
    """The requests as phones would send them: points moved by N(0, sigma) metres per axis, no address."""
    rng = random.Random(seed)  # noqa: S311 - reproducible noise, not security
    noisy = []
    for request in requests:
        lat, lon = request.lat, request.lon
        if lat is not None and lon is not None:
            north, east = rng.gauss(0, sigma_m), rng.gauss(0, sigma_m)
            lat += north / _METRES_PER_DEGREE
            lon += east / (_METRES_PER_DEGREE * math.cos(math.radians(lat)))
        noisy.append(replace(request, lat=lat, lon=lon, address=None))
    return noisy


def true_pairs(requests: Sequence[Request]) -> set[Pair]:
    """Pairs with the same non-empty Incident Address and Complaint Type (the ground truth)."""
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for request in requests:
        if request.address:
            groups[request.address, request.complaint].append(request.index)
    return {(a, b) for members in groups.values() for a in members for b in members if a < b}


# --- distance-only rules ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DistanceRules:
    """Every same-type pair's distance, sorted, with whether it is a true pair: any radius's quality by
    bisection."""

    distances: list[float]
    true_distances: list[float]
    truth: int

    def quality(self, radius_m: float) -> Quality:
        predicted = bisect.bisect_right(self.distances, radius_m)
        correct = bisect.bisect_right(self.true_distances, radius_m)
        return Quality(
            precision=correct / predicted if predicted else 1.0,
            recall=correct / self.truth if self.truth else 1.0,
            predicted=predicted,
            correct=correct,
        )


def distance_rules(requests: Sequence[Request], truth: set[Pair], *, max_radius_m: float) -> DistanceRules:
    """The distances of the located same-type pairs within `max_radius_m` (a grid keeps it near-linear)."""
    cell = max_radius_m / _METRES_PER_DEGREE
    grid: dict[tuple[str, int, int], list[tuple[int, float, float]]] = defaultdict(list)
    for r in requests:
        if r.lat is not None and r.lon is not None:
            grid[r.complaint, math.floor(r.lat / cell), math.floor(r.lon / cell)].append(
                (r.index, r.lat, r.lon)
            )
    distances: list[float] = []
    true_distances: list[float] = []
    for (complaint, row, column), members in grid.items():
        near = [
            other
            for dy in (-1, 0, 1)
            for dx in (-1, 0, 1)
            for other in grid.get((complaint, row + dy, column + dx), ())
        ]
        for a, alat, alon in members:
            for b, blat, blon in near:
                d = distance_m(alat, alon, blat, blon) if a < b else math.inf
                if d <= max_radius_m:
                    distances.append(d)
                    if (a, b) in truth:
                        true_distances.append(d)
    distances.sort()
    true_distances.sort()
    return DistanceRules(distances, true_distances, len(truth))


# --- the router's planning over a store held in memory ---------------------------------------------------


@dataclass(slots=True)
class _Row:
    """A router.cases row, as far as the candidate search and growth read and write it."""

    candidate: CandidateCase
    points_count: int
    address_key: str | None
    cell: int | None
    members: list[int] = field(default_factory=list)


class MemoryStore:
    """What `adapters.store` does for the routing of a batch, in memory: `find` is `find_candidates`
    (family; the cells of the report's box and the exact radius, the same address, or the same exact key;
    inside the window), `apply` is `insert_cases` + `grow_cases` (increments; the mean point and its cell
    follow; a case keeps its first address and exact keys)."""

    def __init__(self) -> None:
        self.rows: dict[UUID, _Row] = {}
        self._points: dict[int, tuple[float, float]] = {}
        self._by_cell: dict[tuple[str, int], set[UUID]] = defaultdict(set)
        self._by_address: dict[tuple[str, str], set[UUID]] = defaultdict(set)
        self._by_key: dict[tuple[str, str], set[UUID]] = defaultdict(set)

    def find(self, item: Prepared) -> list[tuple[CandidateCase, int]]:
        facts, rules = item.facts, item.rules
        if rules.window_hours <= 0:
            return []
        since = facts.received_at.timestamp() - rules.window_hours * 3600
        found = {case_id: self.rows[case_id] for case_id in self._near(facts, rules)}
        if item.address_key:
            for case_id in self._by_address.get((facts.family, item.address_key), ()):
                found[case_id] = self.rows[case_id]
        for key in exact_keys(facts):
            for case_id in self._by_key.get((facts.family, key), ()):
                found[case_id] = self.rows[case_id]
        # The scatter of a case's points comes from its reports' points, as `adapters.spreads` reads it.
        return [
            (
                replace(
                    row.candidate,
                    spread_m2=scatter_m2(self._points[i] for i in row.members if i in self._points),
                ),
                row.points_count,
            )
            for row in found.values()
            if row.candidate.last_report_at.timestamp() >= since
        ]

    def _near(self, facts: ReportFacts, rules: DuplicateRules) -> list[UUID]:
        """The cases of the family in the cells of the report's box and within the radius."""
        if facts.lat is None or facts.lon is None:
            return []
        near = []
        for cell in cells_within(facts.lat, facts.lon, rules.radius_m):
            for case_id in self._by_cell.get((facts.family, cell), ()):
                c = self.rows[case_id].candidate
                if (
                    c.lat is not None
                    and c.lon is not None
                    and distance_m(facts.lat, facts.lon, c.lat, c.lon) <= rules.radius_m
                ):
                    near.append(case_id)
        return near

    def route(self, items: Sequence[Prepared], *, cell_m: float) -> int:
        """One batch through `plan_batch`, applied; returns how many reports opened a case flagged as a
        possible duplicate."""
        stored = [self.find(item) for item in items]
        now = max(item.facts.received_at for item in items)
        # Case ids from the report ids, so a run is reproducible (the router draws random ones).
        new_ids = [UUID(int=(1 << 64) + item.report.report_id.int) for item in items]
        plan = plan_batch(items, stored, new_case_id=new_ids, cell_m=cell_m, now=now)
        for number, case in enumerate(plan.new_cases, start=len(self.rows) + 1):
            c = replace(case.candidate, reference=f"NYC-{number:07d}")
            self._put(
                _Row(c, points_count=case.points_count, address_key=normalise_address(c.address), cell=None)
            )
        for case in plan.grown:
            row = self.rows[case.candidate.case_id]
            c, points = row.candidate, row.points_count
            lat, lon = c.lat, c.lon
            if case.added_points:
                lat = ((c.lat or 0.0) * points + case.lat_sum) / (points + case.added_points)
                lon = ((c.lon or 0.0) * points + case.lon_sum) / (points + case.added_points)
            grown = replace(
                c,
                lat=lat,
                lon=lon,
                reports_count=c.reports_count + case.added_reports,
                last_report_at=max(c.last_report_at, case.candidate.last_report_at),
                address=c.address or case.candidate.address,
                uprn=c.uprn or case.candidate.uprn,
                usrn=c.usrn or case.candidate.usrn,
                asset_id=c.asset_id or case.candidate.asset_id,
            )
            self._drop(row)
            row.candidate, row.points_count = grown, points + case.added_points
            row.address_key = row.address_key or normalise_address(grown.address)
            self._put(row)
        reviews = 0
        for outcome in plan.outcomes:
            index = int(outcome.item.report.source_id)
            facts = outcome.item.facts
            if facts.lat is not None and facts.lon is not None:
                self._points[index] = (facts.lat, facts.lon)
            self.rows[outcome.case.candidate.case_id].members.append(index)
            if isinstance(outcome, Opened) and outcome.possible is not None:
                reviews += 1
            elif not isinstance(outcome, Joined | Opened):  # pragma: no cover - exhaustive
                raise TypeError(outcome)
        return reviews

    def _put(self, row: _Row) -> None:
        c = row.candidate
        self.rows[c.case_id] = row
        row.cell = case_cell(c.lat, c.lon) if c.lat is not None and c.lon is not None else None
        if row.cell is not None:
            self._by_cell[c.family, row.cell].add(c.case_id)
        if row.address_key:
            self._by_address[c.family, row.address_key].add(c.case_id)
        for key in exact_keys(c):
            self._by_key[c.family, key].add(c.case_id)

    def _drop(self, row: _Row) -> None:
        c = row.candidate
        if row.cell is not None:
            self._by_cell[c.family, row.cell].discard(c.case_id)
        if row.address_key:
            self._by_address[c.family, row.address_key].discard(c.case_id)
        for key in exact_keys(c):
            self._by_key[c.family, key].discard(c.case_id)


def prepared(request: Request, rules: DuplicateRules) -> Prepared:
    """A request as the router's `_prepare` makes it: routed to its complaint type (one family each)."""
    report = request.event()
    return Prepared(
        report=report,
        correlation_id=str(report.report_id),
        placement=Placement(ward_code=None, ward_name=None, neighbourhood=None),
        route=Route(
            category=request.complaint,
            family=request.complaint,
            lead_department="nyc",
            departments=("nyc",),
            priority=Priority.NORMAL,
            due_at=None,
        ),
        facts=report_facts(report, category=request.complaint, family=request.complaint),
        rules=rules,
        address_key=normalise_address(report.place.address),
    )


def detector_clusters(
    requests: Sequence[Request], rules: DuplicateRules, *, batch: int = DEFAULT_BATCH
) -> tuple[list[list[int]], int]:
    """Route the requests in arrival order, `batch` at a time, through the router's planning; returns the
    cases' members and how many reports were flagged as possible duplicates."""
    store = MemoryStore()
    ordered = sorted(requests, key=lambda r: (r.created, r.index))
    reviews = 0
    for start in range(0, len(ordered), batch):
        items = [prepared(request, rules) for request in ordered[start : start + batch]]
        reviews += store.route(items, cell_m=rules.radius_m)
    return [row.members for row in store.rows.values()], reviews


def cluster_pairs(clusters: Iterable[Sequence[int]]) -> set[Pair]:
    return {
        (min(a, b), max(a, b))
        for members in clusters
        for i, a in enumerate(members)
        for b in members[i + 1 :]
    }


def quality(predicted: set[Pair], truth: set[Pair]) -> Quality:
    correct = len(predicted & truth)
    return Quality(
        precision=correct / len(predicted) if predicted else 1.0,
        recall=correct / len(truth) if truth else 1.0,
        predicted=len(predicted),
        correct=correct,
    )


# --- one version of the corpus, and the table over sigmas -------------------------------------------------


@dataclass(frozen=True, slots=True)
class Run:
    """The detector and every distance rule on one version of the corpus."""

    detector: Quality
    reviews: int
    distances: DistanceRules


def run(
    requests: Sequence[Request], truth: set[Pair], rules: DuplicateRules, *, batch: int = DEFAULT_BATCH
) -> Run:
    clusters, reviews = detector_clusters(requests, rules, batch=batch)
    return Run(
        detector=quality(cluster_pairs(clusters), truth),
        reviews=reviews,
        distances=distance_rules(requests, truth, max_radius_m=max(ORACLE_RADII_M)),
    )


@dataclass(frozen=True, slots=True)
class Mean:
    """Means over seeds."""

    precision: float
    recall: float
    f1: float

    @staticmethod
    def of(qualities: Sequence[Quality]) -> Mean:
        return Mean(
            precision=statistics.fmean(q.precision for q in qualities),
            recall=statistics.fmean(q.recall for q in qualities),
            f1=statistics.fmean(q.f1 for q in qualities),
        )


@dataclass(frozen=True, slots=True)
class SigmaResult:
    """One sigma over its seeds: the detector, the oracle (its radius chosen with hindsight) and
    FixMyStreet's 250 m rule, as means; the detector's worst seed; possible duplicates per run."""

    sigma_m: float
    seeds: tuple[int, ...]
    detector: Mean
    detector_worst_f1: float
    oracle_radius_m: float
    oracle: Mean
    fixmystreet: Mean
    reviews: float


def sigma_result(
    requests: Sequence[Request],
    truth: set[Pair],
    rules: DuplicateRules,
    *,
    sigma_m: float,
    seeds: Sequence[int],
    batch: int = DEFAULT_BATCH,
) -> SigmaResult:
    runs = [
        run(as_app_reports(requests, sigma_m=sigma_m, seed=seed), truth, rules, batch=batch) for seed in seeds
    ]
    by_radius = {r: Mean.of([one.distances.quality(r) for one in runs]) for r in ORACLE_RADII_M}
    best = max(ORACLE_RADII_M, key=lambda r: (by_radius[r].f1, -r))
    return SigmaResult(
        sigma_m=sigma_m,
        seeds=tuple(seeds),
        detector=Mean.of([one.detector for one in runs]),
        detector_worst_f1=min(one.detector.f1 for one in runs),
        oracle_radius_m=best,
        oracle=by_radius[best],
        fixmystreet=Mean.of([one.distances.quality(FIXMYSTREET_RADIUS_M) for one in runs]),
        reviews=statistics.fmean(one.reviews for one in runs),
    )


def as_is_result(requests: Sequence[Request], truth: set[Pair], rules: DuplicateRules, *, batch: int) -> Run:
    return run(requests, truth, rules, batch=batch)


# --- what each signal adds (--ablation) -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Signal:
    """One piece of evidence the detector uses, and how to take it away: from the requests (the data a
    council's system would not send) or from the rules (a learning the detector would not do)."""

    name: str
    without_requests: Callable[[Request], Request] | None = None
    without_rules: Callable[[DuplicateRules], DuplicateRules] | None = None


SIGNALS: tuple[Signal, ...] = (
    Signal("detail (descriptor)", without_requests=lambda r: replace(r, descriptor=None)),
    Signal("place type", without_requests=lambda r: replace(r, location_type=None)),
    Signal("nearby cases' scatter", without_rules=lambda rules: replace(rules, pool_nearby=False)),
    Signal(
        "learned GPS error (12 m fixed)",
        without_rules=lambda rules: replace(rules, pool_nearby=False, location_prior_points=1e9),
    ),
    Signal("time decay", without_rules=lambda rules: replace(rules, half_life_share=1e9)),
)
ABLATION_SIGMAS_M: tuple[float, ...] = (5, 15, 35)


def ablation_f1(
    requests: Sequence[Request], truth: set[Pair], rules: DuplicateRules, *, seeds: Sequence[int], batch: int
) -> list[float]:
    """The detector's mean F1 at each of `ABLATION_SIGMAS_M`, then as-is."""
    at_sigma = [
        Mean.of(
            [
                run(as_app_reports(requests, sigma_m=sigma, seed=seed), truth, rules, batch=batch).detector
                for seed in seeds
            ]
        ).f1
        for sigma in ABLATION_SIGMAS_M
    ]
    return [*at_sigma, as_is_result(requests, truth, rules, batch=batch).detector.f1]


def evaluate_ablation(corpus: Path, *, seeds: int, batch: int) -> None:
    """Print what each signal adds: the F1 with everything, and with each signal taken away."""
    requests = load_corpus(corpus)
    truth = true_pairs(requests)
    seed_list = tuple(range(1, seeds + 1))
    columns = " ".join(f"{f'{sigma:g} m':>7}" for sigma in ABLATION_SIGMAS_M)
    _out(f"what each signal adds (F1, means over seeds {seed_list}; the corpus has no text to compare)")
    _out(f"{'':38} {columns}   as-is")
    full = ablation_f1(requests, truth, NYC_RULES, seeds=seed_list, batch=batch)
    _out(f"{'everything':38} " + " ".join(f"{f1:7.3f}" for f1 in full))
    for signal in SIGNALS:
        changed = [signal.without_requests(r) for r in requests] if signal.without_requests else requests
        rules = signal.without_rules(NYC_RULES) if signal.without_rules else NYC_RULES
        f1s = ablation_f1(changed, truth, rules, seeds=seed_list, batch=batch)
        _out(
            f"{'without ' + signal.name:38} "
            + " ".join(f"{f1 - base:+7.3f}" for f1, base in zip(f1s, full, strict=True))
        )


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")


def _cells(m: Mean) -> str:
    return f"{m.precision:6.3f} {m.recall:6.3f} {m.f1:6.3f}"


async def read_labels(database_url: str) -> list[StoredLabel]:
    """Staff's labels from a router database (`DATABASE_URL`'s form, postgresql://...)."""
    connection = await asyncpg.connect(database_url)
    try:
        return await load_labels(connection)
    finally:
        await connection.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--corpus", type=Path, help="the NYC 311 CSV")
    parser.add_argument(
        "--labels-from",
        metavar="DATABASE_URL",
        help="a router database whose staff labels (router.duplicate_labels) to measure the detector on",
    )
    parser.add_argument("--sigmas", type=float, nargs="+", default=SIGMAS_M, help="GPS error, m per axis")
    parser.add_argument("--seeds", type=int, default=len(SEEDS), help="seeds per sigma (1, 2, ...)")
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH, help="reports per routed batch")
    parser.add_argument(
        "--ablation", action="store_true", help="also print what each signal adds (F1 without each one)"
    )
    args = parser.parse_args(argv)
    if args.corpus is None and args.labels_from is None:
        parser.error("give --corpus (the NYC 311 CSV), --labels-from (a router database), or both")
    if args.corpus is not None:
        evaluate_corpus(args.corpus, sigmas=args.sigmas, seeds=args.seeds, batch=args.batch)
        if args.ablation:
            evaluate_ablation(args.corpus, seeds=args.seeds, batch=args.batch)
    if args.labels_from is not None:
        try:
            labels = asyncio.run(read_labels(args.labels_from))
        except asyncpg.UndefinedTableError as error:
            parser.exit(
                2, f"{error}: that database is not migrated to 0015 (staff labels); migrate it first\n"
            )
        for line in report_lines(labels):
            _out(line)


def evaluate_corpus(corpus: Path, *, sigmas: Sequence[float], seeds: int, batch: int) -> None:
    """Print the corpus table (see the module docstring)."""
    requests = load_corpus(corpus)
    truth = true_pairs(requests)
    seed_list = tuple(range(1, seeds + 1))
    rules = NYC_RULES
    _out(
        f"corpus {corpus.name}: {len(requests)} requests, {len(truth)} true pairs (same address + type);"
        " "
        f"router's plan_batch in batches of {batch}; search radius {rules.radius_m:g} m"
    )
    _out(
        "phones: every address withheld, points moved by N(0, sigma) per axis;"
        f" seeds {seed_list}; means over seeds"
    )
    keyed = sum(1 for request in requests if exact_keys(prepared(request, rules).facts))
    _out(
        f"exact keys (UPRN, USRN, asset id): {keyed} requests carry one, so they decide nothing here;"
        f" time decay: half-life {rules.window_hours * rules.half_life_share:g} h"
    )
    _out(
        f"{'sigma':>7} | {'detector  P      R      F1':>26} {'worst F1':>8} | "
        f"{'oracle radius  P      R      F1':>31} | {'F1 gap':>6} | {'FixMyStreet 250 m P/R':>21} | reviews"
    )
    for sigma in sigmas:
        result = sigma_result(requests, truth, rules, sigma_m=sigma, seeds=seed_list, batch=batch)
        fms = result.fixmystreet
        _out(
            f"{sigma:5g} m | {_cells(result.detector):>26} {result.detector_worst_f1:8.3f} | "
            f"{result.oracle_radius_m:9g} m {_cells(result.oracle):>20} | "
            f"{result.detector.f1 - result.oracle.f1:+6.3f} | {fms.precision:10.3f} {fms.recall:6.3f}    | "
            f"{result.reviews:7.1f}"
        )
    as_is = as_is_result(requests, truth, rules, batch=batch)
    best = max(ORACLE_RADII_M, key=lambda r: (as_is.distances.quality(r).f1, -r))
    oracle = as_is.distances.quality(best)
    fms_q = as_is.distances.quality(FIXMYSTREET_RADIUS_M)
    d = as_is.detector
    _out(
        f"  as-is | {d.precision:6.3f} {d.recall:6.3f} {d.f1:6.3f}          | "
        f"{best:9g} m {oracle.precision:6.3f} {oracle.recall:6.3f} {oracle.f1:6.3f} | "
        f"{d.f1 - oracle.f1:+6.3f} | {fms_q.precision:10.3f} {fms_q.recall:6.3f}    | {as_is.reviews:7d}"
    )


if __name__ == "__main__":
    main()
