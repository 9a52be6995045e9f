"""Measures the duplicate detector on real requests: `python -m caseway_router.evaluate --corpus PATH`.

The corpus is NYC 311's service requests of one day (CSV with Created Date, Complaint Type, Descriptor,
Location Type, Incident Address, Latitude, Longitude). Ground truth, weak but independent of the detector:
two requests are the same problem when they have the same non-empty Incident Address (as written) and the
same Complaint Type.

Measured **pairwise** over all requests: a predicted pair is two requests the method puts together, a true
pair two requests the ground truth puts together; precision = |predicted and true| / |predicted|, recall =
|predicted and true| / |true|. A distance rule predicts every pair of the same complaint type within its
distance. The detector works as the router does: requests arrive in time order, each is scored against the
cases so far (a case's point is the mean of its reports' points) and joins the best above the link
threshold or opens a case; its predicted pairs are the pairs within each case. Possible duplicates (the
review band) are not links, and are counted separately.

Two modes, side by side: the corpus as it is (points geocoded from the address, so one address is one
point, and the address given), and as phone reports arrive: each point moved by normal noise of `sigma`
metres per axis (seeded) and every address field withheld.
"""

from __future__ import annotations

import argparse
import csv
import math
import random
import sys
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import UUID
from zoneinfo import ZoneInfo

from caseway_router.domain.duplicates import (
    CandidateCase,
    DuplicateRules,
    Link,
    PossibleDuplicate,
    ReportFacts,
    decide,
    distance_m,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

_NEW_YORK = ZoneInfo("America/New_York")
_METRES_PER_DEGREE = 111_195.0
DISTANCE_SWEEP_M: tuple[float, ...] = (5, 10, 15, 20, 25, 30, 40, 50, 60, 75, 100, 150, 250)
# NYC's categories are not a council's: one rule for all of them, as a council would configure a category.
NYC_RULES = DuplicateRules(radius_m=75, window_hours=168)

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

    def facts(self) -> ReportFacts:
        return ReportFacts(
            category=self.complaint,
            family=self.complaint,
            received_at=self.created,
            lat=self.lat,
            lon=self.lon,
            address=self.address,
            detail=self.descriptor,
            place_type=self.location_type,
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


def same_type_distances(requests: Sequence[Request]) -> dict[Pair, float]:
    """The distance of every pair of located requests of the same complaint type."""
    by_type: dict[str, list[tuple[int, float, float]]] = defaultdict(list)
    for request in requests:
        if request.lat is not None and request.lon is not None:
            by_type[request.complaint].append((request.index, request.lat, request.lon))
    return {
        (min(a, b), max(a, b)): distance_m(alat, alon, blat, blon)
        for members in by_type.values()
        for i, (a, alat, alon) in enumerate(members)
        for b, blat, blon in members[i + 1 :]
    }


def distance_rule_pairs(distances: dict[Pair, float], radius_m: float) -> set[Pair]:
    """Every pair of the same complaint type whose points are within `radius_m`."""
    return {pair for pair, distance in distances.items() if distance <= radius_m}


@dataclass
class _Case:
    candidate: CandidateCase
    members: list[int]
    lat_sum: float
    lon_sum: float
    located: int


class _Grid:
    """Cases by family and grid cell, so each request is scored only against cases near it."""

    def __init__(self, cell_m: float) -> None:
        self._cell_m = max(cell_m, 1.0)
        self._cells: dict[tuple[str, int, int], list[_Case]] = defaultdict(list)
        self._unlocated: dict[str, list[_Case]] = defaultdict(list)

    def _cell(self, lat: float, lon: float) -> tuple[int, int]:
        y = lat * _METRES_PER_DEGREE
        x = lon * _METRES_PER_DEGREE * math.cos(math.radians(40.7))
        return int(y // self._cell_m), int(x // self._cell_m)

    def near(self, family: str, lat: float | None, lon: float | None) -> list[_Case]:
        found = list(self._unlocated[family])
        if lat is None or lon is None:
            # Without a point only an address can match: every case of the family is a candidate.
            return found + [case for key, cases in self._cells.items() if key[0] == family for case in cases]
        row, column = self._cell(lat, lon)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                found.extend(self._cells.get((family, row + dy, column + dx), ()))
        return found

    def add(self, case: _Case) -> None:
        self._bucket(case).append(case)

    def remove(self, case: _Case) -> None:
        self._bucket(case).remove(case)

    def _bucket(self, case: _Case) -> list[_Case]:
        c = case.candidate
        if c.lat is None or c.lon is None:
            return self._unlocated[c.family]
        return self._cells[(c.family, *self._cell(c.lat, c.lon))]


def detector_clusters(requests: Sequence[Request], rules: DuplicateRules) -> tuple[list[list[int]], int]:
    """Run the detector over the requests in time order; returns the cases' members and the review count."""
    cases: list[_Case] = []
    by_id: dict[UUID, _Case] = {}
    grid = _Grid(rules.radius_m)
    reviews = 0
    for request in sorted(requests, key=lambda r: (r.created, r.index)):
        facts = request.facts()
        nearby = grid.near(facts.family, request.lat, request.lon)
        decision = decide(facts, [case.candidate for case in nearby], rules, now=request.created)
        if isinstance(decision, Link):
            case = by_id[decision.case.case_id]
            grid.remove(case)
            case.members.append(request.index)
            if request.lat is not None and request.lon is not None:
                case.lat_sum += request.lat
                case.lon_sum += request.lon
                case.located += 1
            old = case.candidate
            case.candidate = replace(
                old,
                lat=case.lat_sum / case.located if case.located else None,
                lon=case.lon_sum / case.located if case.located else None,
                reports_count=old.reports_count + 1,
                last_report_at=request.created,
                address=old.address or request.address,
            )
            grid.add(case)
            continue
        if isinstance(decision, PossibleDuplicate):
            reviews += 1
        located = int(request.lat is not None and request.lon is not None)
        case = _Case(
            candidate=CandidateCase(
                case_id=UUID(int=len(cases) + 1),
                reference=f"NYC-{len(cases) + 1:07d}",
                category=facts.category,
                family=facts.family,
                lat=request.lat,
                lon=request.lon,
                reports_count=1,
                last_report_at=request.created,
                address=request.address,
                detail=request.descriptor,
                place_type=request.location_type,
            ),
            members=[request.index],
            lat_sum=request.lat or 0.0,
            lon_sum=request.lon or 0.0,
            located=located,
        )
        cases.append(case)
        by_id[case.candidate.case_id] = case
        grid.add(case)
    return [case.members for case in cases], reviews


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


@dataclass(frozen=True, slots=True)
class ModeResult:
    detector: Quality
    reviews: int
    fixmystreet: Quality
    best_distance_m: float
    best_distance: Quality
    sweep: dict[float, Quality]


def evaluate(requests: Sequence[Request], truth: set[Pair], rules: DuplicateRules) -> ModeResult:
    """The detector and the distance baselines on one version of the corpus."""
    clusters, reviews = detector_clusters(requests, rules)
    distances = same_type_distances(requests)
    sweep = {radius: quality(distance_rule_pairs(distances, radius), truth) for radius in DISTANCE_SWEEP_M}
    best = max(sweep, key=lambda radius: (sweep[radius].f1, -radius))
    return ModeResult(
        detector=quality(cluster_pairs(clusters), truth),
        reviews=reviews,
        fixmystreet=sweep[250],
        best_distance_m=best,
        best_distance=sweep[best],
        sweep=sweep,
    )


def _row(name: str, *results: Quality) -> str:
    cells = "".join(f" | {q.precision:9.3f} {q.recall:6.3f}" for q in results)
    return f"{name:<40}{cells}"


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--corpus", type=Path, required=True, help="the NYC 311 CSV")
    parser.add_argument("--sigma", type=float, default=15.0, help="GPS-like noise, metres per axis")
    parser.add_argument("--seed", type=int, default=7, help="seed of the noise")
    parser.add_argument("--sweep", action="store_true", help="also print every distance rule")
    args = parser.parse_args(argv)

    requests = load_corpus(args.corpus)
    truth = true_pairs(requests)
    noisy = as_app_reports(requests, sigma_m=args.sigma, seed=args.seed)
    as_is = evaluate(requests, truth, NYC_RULES)
    phones = evaluate(noisy, truth, NYC_RULES)
    _out(
        f"corpus {args.corpus.name}: {len(requests)} requests, {len(truth)} true pairs (same address + type)"
    )
    _out(f"noise: sigma {args.sigma:g} m per axis, seed {args.seed}; pairwise precision and recall")
    _out(f"{'':<40} | {'as-is: precision':>16} | {f'noisy {args.sigma:g} m: precision':>16}")
    _out(_row("caseway detector (auto-link only)", as_is.detector, phones.detector))
    _out(_row("FixMyStreet: same category within 250 m", as_is.fixmystreet, phones.fixmystreet))
    _out(
        _row(
            f"best distance-only (as-is {as_is.best_distance_m:g} m, noisy {phones.best_distance_m:g} m)",
            as_is.best_distance,
            phones.best_distance,
        )
    )
    _out(f"possible duplicates flagged for review: as-is {as_is.reviews}, noisy {phones.reviews}")
    if args.sweep:
        for radius in DISTANCE_SWEEP_M:
            _out(_row(f"same category within {radius} m", as_is.sweep[radius], phones.sweep[radius]))


if __name__ == "__main__":
    main()
