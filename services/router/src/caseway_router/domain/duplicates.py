"""Is a new report another report of a problem that already has a case? (pure: plain data in, a decision out)

`score(report, candidate, rules, now=...)` says how likely one candidate case is the same problem, in [0, 1];
`decide(report, candidates, rules, now=...)` picks the best candidate and answers `Link` (join it),
`PossibleDuplicate` (open a new case, but a person should look) or `NewCase`.

**Exact keys first.** Before anything is scored, the keys that name a place exactly are compared
(`key_match`), most specific first:

- **asset**: two reports of one category naming a street asset (a street light, gully or bin, by the id
  of the council's asset register): the same asset is the same problem, another asset another problem;
- **property**: two reports naming a property (UPRN): the same property is the same problem, two
  properties are two problems, however close their points (two doors across a street);
- **street**: the same street (USRN) and category, where one of the two has no point: the street is then
  the best place known, and it agrees. Two points say more than the street they share, and two streets
  do not rule a problem out (a corner is on both).

A key that agrees links with certainty, at any distance: the score is then the time factor alone, and
`decide` prefers a certain candidate to any scored one. A key that differs scores 0. Time still applies:
a key says where, not when.

Otherwise the score is a product of agreement factors, each in (0, 1]:

- **place**: the chance that two reports of one spot lie at least this far apart, given that each point
  carries a location error of `location_sigma_m` per axis (phones' GPS). A case's point is the mean of its
  reports' points, so its own error shrinks as reports join: the expected spread is
  sigma^2 * (1 + 1/n) per axis, and the factor is exp(-d^2 / (2 * spread)) (a chi-square with two degrees of
  freedom). Beyond `radius_m` a case is never a candidate.
- **address**: the same normalised address is strong evidence, and two different addresses strong evidence
  against (the place factor then counts for little: geocoded addresses share points).
- **time**: halves with every `half_life_share` of the window since the case's last report (so an old open
  case needs more agreement from the other factors), and 0 beyond the window. A closed case takes reports
  only within `closed_window_hours` of closing, at 0.8 (a new report after closing is more often a
  recurrence), decaying from the later of its last report and its closing.
- **category**: the same category agrees fully; another category of the same family partly.
- **detail** (the sub-category, e.g. NYC's descriptor or the resident's own category text) and **place type**
  (land or location type): agreement when both are known, a penalty when they differ.
- **text**: token-set similarity of the descriptions (rapidfuzz), where both have one.

Factors for facts that are missing are neutral, so a report with less information is judged on what it has.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from rapidfuzz import fuzz

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime
    from uuid import UUID

_EARTH_RADIUS_M = 6_371_008.8
_WORDS = re.compile(r"[a-z0-9]+")
# Spelling variants that make one address look like two ("19 BEDFORD ST" and "19 BEDFORD STREET").
_ADDRESS_WORDS = {
    "st": "street",
    "rd": "road",
    "ave": "avenue",
    "av": "avenue",
    "ln": "lane",
    "dr": "drive",
    "pl": "place",
    "ct": "court",
    "blvd": "boulevard",
    "pkwy": "parkway",
    "sq": "square",
    "cres": "crescent",
    "tce": "terrace",
    "e": "east",
    "w": "west",
    "n": "north",
    "s": "south",
}


@dataclass(frozen=True, slots=True)
class DuplicateRules:
    """How duplicates are found for one category (from the council's configuration)."""

    radius_m: float
    window_hours: float
    link_threshold: float = 0.03
    review_threshold: float = 0.005
    # A first guess of the GPS error (metres per axis), held weakly: worth `location_prior_points` points'
    # scatter. The reports' own scatter near the place soon outweighs it (see `place_agreement`).
    location_sigma_m: float = 12.0
    closed_window_hours: float = 72.0
    location_prior_points: float = 1.5
    # Whether the scatter of the other candidate cases near a report counts as evidence of the error there.
    pool_nearby: bool = True
    # The time agreement halves each time this share of the window passes since the case's last report.
    half_life_share: float = 0.5


@dataclass(frozen=True, slots=True)
class RuleChanges:
    """Another detector configuration, as changes to each category's live rules (None keeps the live value):
    what a shadow runs beside the live detector. `radius_scale` multiplies each category's radius; it is at
    most 1 because a shadow scores only the candidates the live search found."""

    link_threshold: float | None = None
    review_threshold: float | None = None
    location_sigma_m: float | None = None
    location_prior_points: float | None = None
    half_life_share: float | None = None
    pool_nearby: bool | None = None
    radius_scale: float = 1.0

    def applied_to(self, rules: DuplicateRules) -> DuplicateRules:
        """`rules` with these changes."""
        return replace(
            rules,
            radius_m=rules.radius_m * min(1.0, self.radius_scale),
            link_threshold=_or(self.link_threshold, rules.link_threshold),
            review_threshold=_or(self.review_threshold, rules.review_threshold),
            location_sigma_m=_or(self.location_sigma_m, rules.location_sigma_m),
            location_prior_points=_or(self.location_prior_points, rules.location_prior_points),
            half_life_share=_or(self.half_life_share, rules.half_life_share),
            pool_nearby=rules.pool_nearby if self.pool_nearby is None else self.pool_nearby,
        )

    def describe(self) -> str:
        """The changes as `name=value` pairs, in field order ("live" when there are none): a shadow's name
        when its configuration gives none."""
        changed = [
            f"{name}={value:g}" if isinstance(value, float) else f"{name}={str(value).lower()}"
            for name, value in (
                ("link_threshold", self.link_threshold),
                ("review_threshold", self.review_threshold),
                ("location_sigma_m", self.location_sigma_m),
                ("location_prior_points", self.location_prior_points),
                ("half_life_share", self.half_life_share),
                ("pool_nearby", self.pool_nearby),
                ("radius_scale", None if self.radius_scale == 1 else self.radius_scale),
            )
            if value is not None
        ]
        return ",".join(changed) or "live"


@dataclass(frozen=True, slots=True)
class Shadow:
    """A detector configuration on trial beside the live one: the name its decisions are recorded under,
    and its changes to the live rules."""

    name: str
    changes: RuleChanges


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


@dataclass(frozen=True, slots=True)
class ReportFacts:
    """What the detector knows about a new report."""

    category: str
    family: str
    received_at: datetime
    lat: float | None = None
    lon: float | None = None
    address: str | None = None
    detail: str | None = None
    place_type: str | None = None
    text: str | None = None
    # How far off the point may be (metres, 68% confidence radius), when the sender said.
    accuracy_m: float | None = None
    # The exact keys, where the sender gave them (see `key_match`).
    uprn: str | None = None
    usrn: str | None = None
    asset_id: str | None = None


@dataclass(frozen=True, slots=True)
class CandidateCase:
    """An open (or recently closed) case that the new report might belong to."""

    case_id: UUID
    reference: str
    category: str
    family: str
    lat: float | None
    lon: float | None
    reports_count: int
    last_report_at: datetime
    address: str | None = None
    detail: str | None = None
    place_type: str | None = None
    text: str | None = None
    closed_at: datetime | None = None
    # How many of its reports had a point (None: take reports_count) and their scatter: the sum of squared
    # distances of those points from their mean, in m^2 (0 for one point). The scatter says how large the
    # GPS error of reports at this place is.
    points_count: int | None = None
    spread_m2: float = 0.0
    # The exact keys of the case: each the first one its reports gave.
    uprn: str | None = None
    usrn: str | None = None
    asset_id: str | None = None


@dataclass(frozen=True, slots=True)
class Link:
    """Join `case`: the report is another report of the same problem (`key`: the exact key that made it
    certain, `asset`, `uprn` or `usrn`; None when the score decided)."""

    case: CandidateCase
    score: float
    key: str | None = None


@dataclass(frozen=True, slots=True)
class PossibleDuplicate:
    """Open a new case, flagged so a person compares it with `case`."""

    case: CandidateCase
    score: float


@dataclass(frozen=True, slots=True)
class NewCase:
    """Open a new case: no candidate is close enough (`best` is the best score seen, 0 without candidates)."""

    best: float = 0.0


Decision = Link | PossibleDuplicate | NewCase


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * _EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def scatter_m2(points: Iterable[tuple[float, float]]) -> float:
    """The sum of squared distances (m^2) of (lat, lon) points from their mean: a case's `spread_m2`,
    from its reports' points as stored."""
    located = list(points)
    if len(located) < 2:  # noqa: PLR2004 - one point has no scatter
        return 0.0
    lat = sum(p[0] for p in located) / len(located)
    lon = sum(p[1] for p in located) / len(located)
    return sum(distance_m(lat, lon, p[0], p[1]) ** 2 for p in located)


def normalise_address(address: str | None) -> str | None:
    """Lower case, words only, common abbreviations spelled out; None when nothing is left."""
    if not address:
        return None
    words = [_ADDRESS_WORDS.get(word, word) for word in _WORDS.findall(address.lower())]
    return " ".join(words) or None


@dataclass(frozen=True, slots=True)
class KeyMatch:
    """The exact key that decides (`asset`, `uprn` or `usrn`) and whether the two sides agree on it."""

    key: str
    same: bool


def key_match(report: ReportFacts, candidate: CandidateCase) -> KeyMatch | None:
    """Whether an exact key decides that `report` is, or is not, `candidate`'s problem (see the module
    docstring): the asset within one category, then the property, then the street and category where one
    side has no point. None when no key decides, and the score does."""
    if report.asset_id and candidate.asset_id and report.category == candidate.category:
        return KeyMatch("asset", report.asset_id == candidate.asset_id)
    if report.uprn and candidate.uprn:
        return KeyMatch("uprn", report.uprn == candidate.uprn)
    if (
        report.usrn
        and report.usrn == candidate.usrn
        and report.category == candidate.category
        and (report.lat is None or report.lon is None or candidate.lat is None or candidate.lon is None)
    ):
        return KeyMatch("usrn", same=True)
    return None


def exact_keys(facts: ReportFacts | CandidateCase) -> tuple[str, ...]:
    """The keys under which reports of one family find each other exactly (the property; the asset and the
    street, each within the category): what the candidate search looks up, the area locks hold and a batch
    files its new cases under."""
    keys = []
    if facts.uprn:
        keys.append(f"uprn:{facts.uprn}")
    if facts.asset_id:
        keys.append(f"asset:{facts.category}:{facts.asset_id}")
    if facts.usrn:
        keys.append(f"usrn:{facts.category}:{facts.usrn}")
    return tuple(keys)


def _same(a: str | None, b: str | None, *, differ: float) -> float:
    if not a or not b:
        return 1.0
    return 1.0 if a.strip().lower() == b.strip().lower() else differ


def _place_factor(
    report: ReportFacts, candidate: CandidateCase, rules: DuplicateRules, nearby: Scatter | None
) -> float:
    mine, theirs = normalise_address(report.address), normalise_address(candidate.address)
    same_address = mine is not None and mine == theirs
    if (
        report.lat is not None
        and report.lon is not None
        and candidate.lat is not None
        and candidate.lon is not None
    ):
        d = distance_m(report.lat, report.lon, candidate.lat, candidate.lon)
        if d > rules.radius_m and not same_address:
            return 0.0
        if report.accuracy_m is not None:
            place = place_with_accuracy(d, report.accuracy_m, candidate, rules, nearby=nearby)
        else:
            place = place_agreement(d, candidate, rules, nearby=nearby)
    elif same_address:
        place = 1.0
    else:
        # Without two points and without a shared address there is nothing to say they are one place.
        return 0.0
    if same_address:
        return max(place, 0.95)
    if mine is not None and theirs is not None:
        # Two different addresses at one geocoded point are usually two doors of one street.
        return place * 0.02
    return place


@dataclass(frozen=True, slots=True)
class Scatter:
    """Evidence about the GPS error at a place: `joins` displacements of points from the mean of the
    points before them, whose squared lengths (scaled by n / (n + 1)) sum to `spread_m2`."""

    joins: float = 0.0
    spread_m2: float = 0.0

    def __add__(self, other: Scatter) -> Scatter:
        return Scatter(self.joins + other.joins, self.spread_m2 + other.spread_m2)


def case_scatter(candidate: CandidateCase) -> Scatter:
    points = candidate.points_count if candidate.points_count is not None else candidate.reports_count
    return Scatter(max(0, points - 1), candidate.spread_m2)


def place_agreement(
    distance: float, candidate: CandidateCase, rules: DuplicateRules, *, nearby: Scatter | None = None
) -> float:
    """The chance that a new report of this case's problem lies at least `distance` from the case's mean
    point, when the GPS error sigma is not known.

    For a known sigma it is the chi-square (2 degrees of freedom) tail exp(-d^2 / (2 sigma^2 (1 + 1/n)))
    (the report's error and that of the mean of n points). Sigma^2 is not known: it gets an inverse-gamma
    belief, a weak prior (`location_prior_points` points at `location_sigma_m`) updated by the scatter of
    the case's own points and, with `nearby`, of the other cases near it (Welford: each join of a point to n
    adds a Rayleigh displacement of scale sigma * sqrt(1 + 1/n)). Averaged over that belief the tail is
    (1 + d^2 / (2 (1 + 1/n) b))^-a, with a = prior points + joins and b = prior points * sigma0^2 +
    spread / 2: a heavy tail while little is known, as sharp as the data once a place has reports."""
    points = candidate.points_count if candidate.points_count is not None else candidate.reports_count
    n = max(1, points)
    evidence = case_scatter(candidate) + (nearby or Scatter())
    a = rules.location_prior_points + evidence.joins
    b = rules.location_prior_points * rules.location_sigma_m**2 + evidence.spread_m2 / 2
    return float((1 + distance * distance / (2 * (1 + 1 / n) * b)) ** -a)


# A 68% confidence radius is 1.515 standard deviations per axis (the Rayleigh quantile sqrt(-2 ln 0.32)).
_ACCURACY_PER_SIGMA = 1.515


def place_with_accuracy(
    distance: float,
    accuracy_m: float,
    candidate: CandidateCase,
    rules: DuplicateRules,
    *,
    nearby: Scatter | None = None,
) -> float:
    """`place_agreement` when the new report says how accurate its point is: its own error is then known
    (sigma_r = accuracy / 1.515 per axis) and only the case's mean carries the learned error, sigma^2 / n
    (sigma^2 taken at its belief's mean, b / a). A precise point near the case is strong evidence; a point
    whose sender says it may be 100 m off is judged with that error, so the distance at which it still
    links follows the accuracy (and a case is never a candidate beyond `radius_m`)."""
    points = candidate.points_count if candidate.points_count is not None else candidate.reports_count
    n = max(1, points)
    evidence = case_scatter(candidate) + (nearby or Scatter())
    a = rules.location_prior_points + evidence.joins
    b = rules.location_prior_points * rules.location_sigma_m**2 + evidence.spread_m2 / 2
    variance = (accuracy_m / _ACCURACY_PER_SIGMA) ** 2 + (b / a) / n
    return math.exp(-(distance * distance) / (2 * variance))


def time_agreement(report: ReportFacts, candidate: CandidateCase, rules: DuplicateRules) -> float:
    """The time factor: 1 for a report at the moment of the case's last one, halving with every
    `half_life_share` of the window since, 0 beyond the window; a closed case only within
    `closed_window_hours` of closing, at 0.8, decaying from the later of its last report and its closing."""
    window = rules.window_hours
    since_last = (report.received_at - candidate.last_report_at).total_seconds() / 3600
    if window <= 0 or since_last > window:
        return 0.0
    age, closed = since_last, 1.0
    if candidate.closed_at is not None:
        since_closed = (report.received_at - candidate.closed_at).total_seconds() / 3600
        if since_closed > min(window, rules.closed_window_hours):
            return 0.0
        # After closing, a new report is more often a recurrence than the same problem.
        age, closed = min(age, since_closed), 0.8
    # Repeats of one problem come close together: the longer a case has gone unreported, the likelier it
    # was dealt with or is another problem, so the other factors must agree more to link to it.
    return closed * math.exp(-math.log(2) * max(0.0, age) / (window * rules.half_life_share))


def score(
    report: ReportFacts,
    candidate: CandidateCase,
    rules: DuplicateRules,
    *,
    now: datetime,
    nearby: Scatter | None = None,
) -> float:
    """How likely `candidate` is the same problem as `report`, in [0, 1]; 0 when it cannot be. `nearby` is
    what the other cases around say about the GPS error there (see `place_agreement`).

    Times are the report's own (`received_at`), not `now`, so replaying old reports gives the same
    answers; `now` is kept in the signature for rules that will need the clock.
    """
    del now
    if report.family != candidate.family:
        return 0.0
    match = key_match(report, candidate)
    if match is not None and not match.same:
        return 0.0
    time = time_agreement(report, candidate, rules)
    if time <= 0:
        return 0.0
    if match is not None:
        return time  # certain of the place and the problem: only time can say it is over
    place = _place_factor(report, candidate, rules, nearby)
    if place <= 0:
        return 0.0
    category = 1.0 if report.category == candidate.category else 0.6
    detail = _same(report.detail, candidate.detail, differ=0.7)
    place_type = _same(report.place_type, candidate.place_type, differ=0.5)
    text = 1.0
    if report.text and candidate.text:
        text = 0.6 + 0.4 * fuzz.token_set_ratio(report.text.lower(), candidate.text.lower()) / 100
    return place * time * category * detail * place_type * text


def decide(
    report: ReportFacts, candidates: Iterable[CandidateCase], rules: DuplicateRules, *, now: datetime
) -> Decision:
    """Link to the best candidate when an exact key agrees with it (see `key_match`) or its score reaches
    `link_threshold`; in the band down to `review_threshold`, open a new case flagged as a possible
    duplicate of it; below, a new case.

    A candidate an exact key agrees with is certain and comes before every other. Among the rest (or among
    several certain ones), the best is the highest score weighted by the case's reports: a problem many
    residents already reported is likelier to be reported again than a neighbour reported once (the "rich
    get richer" prior of clustering). Ties go to the older reference, so replicas and replays agree.
    """
    found = list(candidates)
    # The scatter of every candidate's points: reports near here carry errors of one kind of phone and sky.
    pooled = Scatter()
    if rules.pool_nearby:
        for candidate in found:
            if candidate.family == report.family and candidate.lat is not None:
                pooled += case_scatter(candidate)
    best: CandidateCase | None = None
    best_score = 0.0
    best_match: KeyMatch | None = None
    best_key: tuple[bool, float, str] = (False, 0.0, "")
    for candidate in found:
        own = case_scatter(candidate)
        others = Scatter(pooled.joins - own.joins, pooled.spread_m2 - own.spread_m2)
        value = score(report, candidate, rules, now=now, nearby=others if rules.pool_nearby else None)
        if value <= 0:
            continue
        match = key_match(report, candidate)  # agrees when it is not None: a differing key scores 0
        key = (match is not None, value * max(1, candidate.reports_count), _reverse(candidate.reference))
        if key > best_key:
            best, best_score, best_match, best_key = candidate, value, match, key
    if best is not None and best_match is not None:
        return Link(case=best, score=best_score, key=best_match.key)
    if best is not None and best_score >= rules.link_threshold:
        return Link(case=best, score=best_score)
    if best is not None and best_score >= rules.review_threshold:
        return PossibleDuplicate(case=best, score=best_score)
    return NewCase(best=best_score)


def _reverse(reference: str) -> str:
    # Inverts the order of references of one length (LV-2026-000123): the older sorts as the larger.
    return "".join(chr(0x10FFFF - ord(c)) for c in reference)
