"""The load: residents' reports as the contact centre and Open311 clients send them (pure; seeded).

A realistic mix: Liverpool's categories (weighted towards the common ones: fly-tipping, litter, missed
bins, potholes), places clustered at hotspots inside the wards, about one report in five a repeat of a
problem already reported (a new report, by another resident, of the same category within a few metres of
an open one), and a little malformed input. Each report goes through the Kafka path
(contact-centre.reports.v1) or the Open311 HTTP path.

With ``address_only_share``, that share of new problems is reported with an address and no coordinates
(on the Kafka path half of them name the ward, as a contact centre's adviser may), and that share of
repeats crosses over: a problem first reported with coordinates is reported again by its address alone,
and one first reported by its address alone is reported again with coordinates and the same address.
"""

from __future__ import annotations

import json
import random
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from caseway_ops.loadtest.places import HotspotMap, council_wards, offset_metres
from caseway_shared.events import report_id_for

if TYPE_CHECKING:
    from uuid import UUID

    from caseway_shared.council import Council

Path_ = Literal["kafka", "http"]
Kind = Literal["new", "repeat", "malformed", "poison"]

SOURCE_SYSTEM = "liverpool-direct"
CHANNELS = ("phone", "web", "email", "app", "walk-in")
# How often each category is reported, roughly as a city's contact centre sees them.
CATEGORY_WEIGHTS = {
    "fly-tipping": 20,
    "litter": 14,
    "missed-bin": 14,
    "pothole": 10,
    "street-lighting": 6,
    "graffiti": 5,
    "abandoned-vehicle": 4,
    "dog-fouling": 5,
    "noise": 5,
    "pests": 3,
    "trees-parks": 3,
    "asb": 2,
    "social-housing": 2,
    "private-housing": 1,
    "planning-breach": 1,
}
_WORDS = {
    "fly-tipping": "someone has dumped a mattress and bin bags",
    "litter": "overflowing bin and litter everywhere",
    "missed-bin": "my bin was not emptied this week",
    "pothole": "deep pothole in the road",
}
_DESCRIPTIONS = (
    "Reported by a resident on the way to work.",
    "It has been like this for a few days now.",
    "Near the bus stop, easy to see from the road.",
    "By the back entry behind the shops.",
    "Outside the school gates, children walk past it.",
)


@dataclass(frozen=True, slots=True)
class GeneratedReport:
    """One input: for Kafka the record's key and bytes, for HTTP the form fields and Idempotency-Key.

    ``report_id`` is what intake will call it if it accepts it (known in advance on the Kafka path, where
    it derives from the source system and id; on the HTTP path it comes back in the answer).
    """

    seq: int
    path: Path_
    kind: Kind
    source_id: str
    key: bytes = b""
    value: bytes = b""
    fields: dict[str, str] = field(default_factory=dict)
    report_id: UUID | None = None
    address_only: bool = False  # an address (and perhaps a ward) but no coordinates

    @property
    def valid(self) -> bool:
        return self.kind in ("new", "repeat")


@dataclass(frozen=True, slots=True)
class _Problem:
    category: str
    lat: float
    lon: float
    address: str
    ward_code: str = ""
    address_only: bool = False  # reported without its coordinates


class LoadGenerator:
    """Reports one after another; ``repeat_share`` of the valid ones re-report a recent problem."""

    def __init__(
        self,
        council: Council,
        *,
        seed: int = 7,
        run_id: str = "run",
        http_share: float = 0.1,
        repeat_share: float = 0.2,
        malformed_share: float = 0.01,
        poison_every: int = 0,
        hotspot_share: float = 0.3,
        address_only_share: float = 0.0,
    ) -> None:
        self._rng = random.Random(seed)  # noqa: S311 - a reproducible load, not a secret
        self._run = run_id
        self._http_share = http_share
        self._repeat_share = repeat_share
        self._malformed_share = malformed_share
        self._poison_every = poison_every
        self._hotspot_share = hotspot_share
        self._address_only_share = address_only_share
        self._categories = [c for c in CATEGORY_WEIGHTS if c in council.categories] or sorted(
            c for c in council.categories if c != "triage"
        )
        self._weights = [CATEGORY_WEIGHTS.get(c, 1) for c in self._categories]
        self._hotspots = HotspotMap(council_wards(council), self._rng, per_ward=10)
        self._recent: deque[_Problem] = deque(maxlen=500)
        self._seq = 0

    def next(self) -> GeneratedReport:
        self._seq += 1
        seq = self._seq
        source_id = f"{self._run}-{seq}"
        if self._poison_every and seq % self._poison_every == 0:
            return self._poison(seq, source_id)
        path: Path_ = "http" if self._rng.random() < self._http_share else "kafka"
        if self._rng.random() < self._malformed_share:
            return self._malformed(seq, path, source_id)
        if self._recent and self._rng.random() < self._repeat_share:
            original = self._rng.choice(self._recent)
            lat, lon = offset_metres(original.lat, original.lon, self._rng.gauss(0, 5), self._rng.gauss(0, 5))
            # Crossing over: the same problem, told the other way (by its address alone, or with a point).
            crossed = self._address_only_share > 0 and self._rng.random() < self._address_only_share
            problem = _Problem(
                original.category,
                lat,
                lon,
                original.address,
                original.ward_code,
                address_only=original.address_only != crossed,
            )
            kind: Kind = "repeat"
        else:
            category = self._rng.choices(self._categories, weights=self._weights)[0]
            # Most problems are anywhere in a ward; some gather at its hotspots (a back entry, a park).
            if self._rng.random() < self._hotspot_share:
                ward, lat, lon = self._hotspots.point(scatter_m=150.0)
            else:
                ward = self._rng.choice(self._hotspots.hotspots).ward
                lat, lon = ward.random_point(self._rng)
            # An address of its own: the router counts the same address as strong evidence of the same
            # problem, so one shared address per ward would make nearly every report a repeat.
            problem = _Problem(
                category,
                lat,
                lon,
                f"{seq} {ward.name} Road, Liverpool",
                ward.code,
                address_only=self._address_only_share > 0 and self._rng.random() < self._address_only_share,
            )
            self._recent.append(problem)
            kind = "new"
        if path == "http":
            return GeneratedReport(
                seq, "http", kind, source_id, fields=self._form(problem), address_only=problem.address_only
            )
        event = self._event(source_id, problem)
        return GeneratedReport(
            seq,
            "kafka",
            kind,
            source_id,
            key=source_id.encode(),
            value=json.dumps(event).encode(),
            report_id=report_id_for(SOURCE_SYSTEM, source_id),
            address_only=problem.address_only,
        )

    def _event(self, source_id: str, problem: _Problem) -> dict[str, object]:
        location: dict[str, object] = {"address": problem.address}
        if not problem.address_only:
            location |= {"lat": round(problem.lat, 6), "lon": round(problem.lon, 6)}
        elif problem.ward_code and self._rng.random() < 0.5:  # noqa: PLR2004 - half name the ward
            location["ward_code"] = problem.ward_code
        event: dict[str, object] = {
            "source_system": SOURCE_SYSTEM,
            "source_id": source_id,
            "channel": self._rng.choice(CHANNELS),
            "received_at": datetime.now(UTC).isoformat(),
            "location": location,
            "description": self._rng.choice(_DESCRIPTIONS),
            "reporter": {"name": "A Resident", "email": "resident@example.net"},
        }
        # Some callers' words are mapped by intake; most events carry the code.
        if problem.category in _WORDS and self._rng.random() < 0.3:  # noqa: PLR2004
            event["category_text"] = _WORDS[problem.category]
        else:
            event["category"] = problem.category
        return event

    def _form(self, problem: _Problem) -> dict[str, str]:
        point = {} if problem.address_only else {"lat": f"{problem.lat:.6f}", "long": f"{problem.lon:.6f}"}
        return {
            "service_code": problem.category,
            **point,
            "address_string": problem.address,
            "description": self._rng.choice(_DESCRIPTIONS),
            "email": "resident@example.net",
        }

    def _malformed(self, seq: int, path: Path_, source_id: str) -> GeneratedReport:
        ward, lat, lon = self._hotspots.point()
        problem = _Problem(self._rng.choice(self._categories), lat, lon, ward.name)
        flaw = self._rng.randrange(4)
        if path == "http":
            fields = self._form(problem)
            if flaw == 0:
                fields["lat"] = "95.5"
            elif flaw == 1:
                fields["service_code"] = "no-such-service"
            elif flaw == 2:  # noqa: PLR2004
                del fields["lat"]
                del fields["address_string"]
            else:
                fields["email"] = "not an address"
            return GeneratedReport(seq, "http", "malformed", source_id, fields=fields)
        event = self._event(source_id, problem)
        if flaw == 0:
            event["location"] = {"lat": 95.5, "lon": lon}
        elif flaw == 1:
            del event["description"]
        elif flaw == 2:  # noqa: PLR2004
            event["channel"] = "carrier-pigeon"
        else:
            value = json.dumps(event).encode()[:-7]  # cut off: not JSON
            return GeneratedReport(seq, "kafka", "malformed", source_id, key=source_id.encode(), value=value)
        return GeneratedReport(
            seq, "kafka", "malformed", source_id, key=source_id.encode(), value=json.dumps(event).encode()
        )

    def _poison(self, seq: int, source_id: str) -> GeneratedReport:
        """Bytes no service can read, on the contact-centre topic (the harness may send them elsewhere)."""
        junk = bytes(self._rng.randrange(256) for _ in range(self._rng.randrange(1, 64)))
        return GeneratedReport(
            seq, "kafka", "poison", source_id, key=source_id.encode(), value=b"\xff\xfe" + junk
        )
