"""Points inside Liverpool's wards, clustered where problems cluster (pure: randomness is an argument).

Each ward gets a few hotspots (a back entry, a park gate, a high street); reports fall around a hotspot
with a few metres' scatter, and busy wards get more of them, so the router sees realistic neighbours.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import random
    from collections.abc import Sequence

    from caseway_shared.council import Council

Ring = tuple[tuple[float, float], ...]  # (lon, lat) pairs, as GeoJSON has them

_METRES_PER_DEGREE_LAT = 111_320.0
_MAX_TRIES = 200


def _inside_ring(lon: float, lat: float, ring: Ring) -> bool:
    """Even-odd ray casting; good enough for ward polygons a few km across."""
    inside = False
    j = len(ring) - 1
    for i, (xi, yi) in enumerate(ring):
        xj, yj = ring[j]
        if (yi > lat) != (yj > lat) and lon < (xj - xi) * (lat - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


@dataclass(frozen=True, slots=True)
class Ward:
    code: str
    name: str
    polygons: tuple[tuple[Ring, ...], ...]  # each polygon: outer ring, then holes
    centre: tuple[float, float]  # (lat, lon)
    bounds: tuple[float, float, float, float]  # min lat, min lon, max lat, max lon

    def contains(self, lat: float, lon: float) -> bool:
        for rings in self.polygons:
            if _inside_ring(lon, lat, rings[0]) and not any(_inside_ring(lon, lat, h) for h in rings[1:]):
                return True
        return False

    def random_point(self, rng: random.Random) -> tuple[float, float]:
        """A uniformly random point inside the ward (rejection sampling over its bounding box)."""
        min_lat, min_lon, max_lat, max_lon = self.bounds
        for _ in range(_MAX_TRIES):
            lat, lon = rng.uniform(min_lat, max_lat), rng.uniform(min_lon, max_lon)
            if self.contains(lat, lon):
                return lat, lon
        return self.centre


def _polygons(geometry: dict[str, Any]) -> tuple[tuple[Ring, ...], ...]:
    coordinates = geometry["coordinates"]
    polygons = [coordinates] if geometry["type"] == "Polygon" else coordinates
    return tuple(
        tuple(tuple((float(x), float(y)) for x, y, *_ in ring) for ring in polygon) for polygon in polygons
    )


def wards_from_geojson(
    collection: dict[str, Any], *, code_property: str = "WD23CD", name_property: str = "WD23NM"
) -> tuple[Ward, ...]:
    """The wards of a GeoJSON FeatureCollection whose features carry `code_property` / `name_property`
    (the council's `ward_code_property` / `ward_name_property`; ONS's 2023 names by default)."""
    wards = []
    for feature in collection["features"]:
        polygons = _polygons(feature["geometry"])
        lons = [x for rings in polygons for x, _ in rings[0]]
        lats = [y for rings in polygons for _, y in rings[0]]
        props = feature["properties"]
        centre = (
            float(props.get("centroid_lat", sum(lats) / len(lats))),
            float(props.get("centroid_lon", sum(lons) / len(lons))),
        )
        wards.append(
            Ward(
                code=props[code_property],
                name=props[name_property],
                polygons=polygons,
                centre=centre,
                bounds=(min(lats), min(lons), max(lats), max(lons)),
            )
        )
    return tuple(wards)


def offset_metres(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    """The point `north_m` metres north and `east_m` metres east of (lat, lon)."""
    dlat = north_m / _METRES_PER_DEGREE_LAT
    dlon = east_m / (_METRES_PER_DEGREE_LAT * math.cos(math.radians(lat)))
    return lat + dlat, lon + dlon


@dataclass(frozen=True, slots=True)
class Hotspot:
    ward: Ward
    lat: float
    lon: float


class HotspotMap:
    """Hotspots in every ward, weighted so that a few wards and a few spots in each get most reports."""

    def __init__(self, wards: Sequence[Ward], rng: random.Random, *, per_ward: int = 6) -> None:
        self._rng = rng
        self.hotspots: list[Hotspot] = []
        self.weights: list[float] = []
        ward_weights = [1.0 / (rank + 1) ** 0.7 for rank in range(len(wards))]
        rng.shuffle(ward_weights)
        for ward, ward_weight in zip(wards, ward_weights, strict=True):
            for rank in range(per_ward):
                lat, lon = ward.random_point(rng)
                self.hotspots.append(Hotspot(ward, lat, lon))
                self.weights.append(ward_weight / (rank + 1))

    def point(self, *, scatter_m: float = 40.0) -> tuple[Ward, float, float]:
        """A point near a hotspot, kept inside the hotspot's ward."""
        spot = self._rng.choices(self.hotspots, weights=self.weights)[0]
        for _ in range(20):
            lat, lon = offset_metres(
                spot.lat, spot.lon, self._rng.gauss(0, scatter_m), self._rng.gauss(0, scatter_m)
            )
            if spot.ward.contains(lat, lon):
                return spot.ward, lat, lon
        return spot.ward, spot.lat, spot.lon


def council_wards(council: Council) -> tuple[Ward, ...]:
    """A council's wards, read with its own boundary property names."""
    return wards_from_geojson(
        council.wards_geojson,
        code_property=council.ward_code_property,
        name_property=council.ward_name_property,
    )
