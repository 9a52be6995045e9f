"""Which ward and neighbourhood a report is in (pure: built once from configuration, then no I/O).

Point-in-polygon over the configured ward boundaries with a spatial index (shapely's STRtree). A point
within `boundary_flag_metres` of another neighbourhood is flagged: staff near a boundary should know the
case may belong next door. Reports without coordinates are placed by the ward the caller named; otherwise
they go to triage with the reason, never dropped.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import shapely
from shapely import STRtree
from shapely.geometry import Point, shape

if TYPE_CHECKING:
    from collections.abc import Mapping

    from shapely.geometry.base import BaseGeometry

    from caseway_shared.council import Council
    from caseway_shared.events import Place

# Boundaries are projected once into a local equirectangular frame in metres around the council's centre:
# over a city the distortion is far below the 25 m boundary margin, and every test becomes plain geometry.
_EARTH_RADIUS_M = 6_371_008.8
_POSTCODE_DISTRICT = re.compile(r"^([A-Z]{1,2}[0-9][0-9A-Z]?)")


def postcode_district(postcode: str) -> str | None:
    """The outward code of a UK postcode ("L17 8XY" -> "L17", "L178XY" -> "L17"); None if it is not one."""
    compact = postcode.upper().replace(" ", "")
    outward = compact[:-3] if len(compact) >= 5 else compact  # noqa: PLR2004 - the inward code is 3 long
    match = _POSTCODE_DISTRICT.fullmatch(outward)
    return match.group(1) if match else None


class _LocalFrame:
    def __init__(self, lat0: float) -> None:
        self._kx = math.radians(1) * _EARTH_RADIUS_M * math.cos(math.radians(lat0))
        self._ky = math.radians(1) * _EARTH_RADIUS_M

    def point(self, lat: float, lon: float) -> Point:
        return Point(lon * self._kx, lat * self._ky)

    def geometry(self, geometry: BaseGeometry) -> BaseGeometry:
        return shapely.transform(geometry, lambda coords: coords * (self._kx, self._ky))


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a report was placed, and anything staff should know about that."""

    ward_code: str | None
    ward_name: str | None
    neighbourhood: str | None
    near_neighbourhoods: tuple[str, ...] = ()
    triage_reason: str | None = None
    approximate: str | None = None

    @property
    def near_boundary(self) -> bool:
        return bool(self.near_neighbourhoods)


@dataclass(frozen=True, slots=True)
class _Ward:
    code: str
    name: str
    neighbourhood: str
    geometry: BaseGeometry


class PlaceFinder:
    """Finds wards and neighbourhoods for points and ward codes of one council."""

    def __init__(self, council: Council, postcode_hints: Mapping[str, tuple[str, ...]] | None = None) -> None:
        self._boundary_m = council.boundary_flag_metres
        self._postcode_hints = dict(postcode_hints or {})
        hood_of = council.neighbourhood_of_ward
        features = council.wards_geojson["features"]
        lats = [float(f["properties"]["centroid_lat"]) for f in features if "centroid_lat" in f["properties"]]
        self._frame = _LocalFrame(
            sum(lats) / len(lats) if lats else shape(features[0]["geometry"]).centroid.y
        )
        self._wards = [
            _Ward(
                code=council.ward_code_of(feature),
                name=council.ward_name_of(feature),
                neighbourhood=hood_of[council.ward_name_of(feature)],
                geometry=self._frame.geometry(shape(feature["geometry"])),
            )
            for feature in features
        ]
        self._by_code = {ward.code: ward for ward in self._wards}
        self._tree = STRtree([ward.geometry for ward in self._wards])

    def locate(self, place: Place) -> Placement:
        if place.point is not None:
            return self.locate_point(place.point.lat, place.point.lon)
        if place.ward_code:
            ward = self._by_code.get(place.ward_code)
            if ward is not None:
                return Placement(ward.code, ward.name, ward.neighbourhood)
            return Placement(None, None, None, triage_reason=f"ward {place.ward_code} is not in this council")
        if place.postcode:
            return self._by_postcode(place.postcode)
        if place.address or place.uprn or place.usrn:
            # No address gazetteer is configured yet: a person in the triage queue places it.
            return Placement(
                None, None, None, triage_reason="no coordinates: staff place it from the address"
            )
        return Placement(None, None, None, triage_reason="no location given")

    def _by_postcode(self, postcode: str) -> Placement:
        """A postcode district that lies in one ward places the report there (approximately); a district
        spread over several wards, or outside the council, goes to triage with the reason."""
        district = postcode_district(postcode)
        if district is None:
            return Placement(None, None, None, triage_reason=f"postcode {postcode!r} is not a UK postcode")
        wards = [
            self._by_code[code] for code in self._postcode_hints.get(district, ()) if code in self._by_code
        ]
        if not wards:
            return Placement(
                None, None, None, triage_reason=f"postcode district {district} is not in this council"
            )
        if len(wards) > 1:
            names = ", ".join(sorted(ward.name for ward in wards))
            return Placement(
                None,
                None,
                None,
                triage_reason=f"postcode district {district} spans {len(wards)} wards ({names})",
            )
        ward = wards[0]
        return Placement(
            ward.code,
            ward.name,
            ward.neighbourhood,
            approximate=f"placed from postcode district {district} only",
        )

    def locate_point(self, lat: float, lon: float) -> Placement:
        point = self._frame.point(lat, lon)
        nearby = [
            self._wards[int(i)]
            for i in self._tree.query(point, predicate="dwithin", distance=self._boundary_m)
        ]
        containing = [ward for ward in nearby if ward.geometry.covers(point)]
        if not containing:
            return Placement(None, None, None, triage_reason="the point is outside the council's wards")
        ward = containing[0]
        near = sorted({other.neighbourhood for other in nearby if other.neighbourhood != ward.neighbourhood})
        return Placement(ward.code, ward.name, ward.neighbourhood, near_neighbourhoods=tuple(near))
