"""Small maps drawn as SVG by the project itself: ward outlines from the council's GeoJSON and case points
over them (pure: text in, text out). No tiles, scripts or fonts from anywhere else.

Coordinates are projected equirectangularly around the map's centre (longitude scaled by the cosine of
its latitude), which is exact enough for a city. Points are marks of two shapes — a circle for a case on
time, a square for an overdue one — so the map does not rely on colour alone; each mark has a title and
links to its case when it has a link.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape
from typing import Any

Ring = list[tuple[float, float]]  # (lon, lat) pairs
_LEAST_SPAN_LON = 0.004  # degrees: a lone point still gets a few hundred metres around it
_LEAST_SPAN_LAT = 0.003


@dataclass(frozen=True, slots=True)
class Area:
    """A ward outline to draw: its name, its rings (outer and holes, every polygon) and emphasis."""

    name: str
    rings: tuple[Ring, ...]
    emphasis: bool = False


@dataclass(frozen=True, slots=True)
class Mark:
    lat: float
    lon: float
    title: str
    href: str | None = None
    overdue: bool = False
    emphasis: bool = False


def rings_of(geometry: dict[str, Any]) -> tuple[Ring, ...]:
    """Every ring of a GeoJSON Polygon or MultiPolygon, as (lon, lat) lists."""
    kind = geometry.get("type")
    polygons = [geometry["coordinates"]] if kind == "Polygon" else geometry.get("coordinates", [])
    if kind not in ("Polygon", "MultiPolygon"):
        return ()
    return tuple([(float(p[0]), float(p[1])) for p in ring] for polygon in polygons for ring in polygon)


def ward_areas(
    wards_geojson: dict[str, Any], names: set[str] | None = None, *, name_property: str = "WD23NM"
) -> dict[str, Area]:
    """Ward name -> its outline, for the wards named (all when `names` is None)."""
    found: dict[str, Area] = {}
    for feature in wards_geojson.get("features", []):
        name = feature["properties"].get(name_property) or feature["properties"].get("name", "")
        if names is None or name in names:
            found[name] = Area(name=name, rings=rings_of(feature["geometry"]))
    return found


@dataclass(frozen=True, slots=True)
class _Projection:
    west: float
    north: float
    scale_x: float
    scale_y: float
    pad: float

    def __call__(self, lon: float, lat: float) -> tuple[float, float]:
        return (
            round(self.pad + (lon - self.west) * self.scale_x, 1),
            round(self.pad + (self.north - lat) * self.scale_y, 1),
        )


def _projection(lons: list[float], lats: list[float], width: int, pad: float) -> tuple[_Projection, int]:
    west, east, south, north = min(lons), max(lons), min(lats), max(lats)
    # A single point (or a tiny area) still gets a few hundred metres around it.
    if east - west < _LEAST_SPAN_LON:
        mid = (east + west) / 2
        west, east = mid - 0.002 / math.cos(math.radians(north)), mid + 0.002 / math.cos(math.radians(north))
    if north - south < _LEAST_SPAN_LAT:
        mid = (north + south) / 2
        south, north = mid - 0.0015, mid + 0.0015
    squash = math.cos(math.radians((north + south) / 2))
    span_x = (east - west) * squash
    span_y = north - south
    scale = (width - 2 * pad) / span_x
    height = round(span_y * scale + 2 * pad)
    return _Projection(west, north, scale * squash, scale, pad), height


def _path(ring: Ring, project: _Projection) -> str:
    points = [project(lon, lat) for lon, lat in ring]
    return "M" + "L".join(f"{x},{y}" for x, y in points) + "Z"


def draw_map(
    areas: list[Area], marks: list[Mark], *, title: str, width: int = 480, label_areas: bool = True
) -> str:
    """An accessible SVG (role img, a title and a description) of `areas` with `marks` over them, framed
    on the areas (or on the marks when there are no areas)."""
    lons = [lon for area in areas for ring in area.rings for lon, _ in ring] or [m.lon for m in marks]
    lats = [lat for area in areas for ring in area.rings for _, lat in ring] or [m.lat for m in marks]
    if not lons:
        return ""
    project, height = _projection(lons, lats, width, pad=12)
    # Labels and marks keep their size on the screen when a wide map is shown scaled down to its column.
    unit = max(1.0, width / 480)
    overdue = sum(1 for m in marks if m.overdue)
    description = (
        f"{len(areas)} ward{'s' if len(areas) != 1 else ''} outlined; {len(marks)} "
        f"case{'s' if len(marks) != 1 else ''} marked ({overdue} overdue, drawn as squares)."
    )
    parts = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
            f'height="{height}" role="img" aria-labelledby="map-title map-desc" class="map">'
        ),
        f'<title id="map-title">{escape(title)}</title><desc id="map-desc">{escape(description)}</desc>',
        f'<rect width="{width}" height="{height}" fill="#f4f7f4"/>',
    ]
    for area in areas:
        fill = "#dbe8f5" if area.emphasis else "#ffffff"
        stroke = "#1d4f91" if area.emphasis else "#6b7b8c"
        d = "".join(_path(ring, project) for ring in area.rings)
        parts.append(
            f'<path d="{d}" fill="{fill}" stroke="{stroke}" stroke-width="{2 if area.emphasis else 1}" '
            f'fill-rule="evenodd"><title>{escape(area.name)}</title></path>'
        )
    if label_areas:
        for area in areas:
            outer = max(area.rings, key=len)
            x = sum(project(lon, lat)[0] for lon, lat in outer) / len(outer)
            y = sum(project(lon, lat)[1] for lon, lat in outer) / len(outer)
            parts.append(
                f'<text x="{x:.1f}" y="{y:.1f}" font-size="{round(13 * unit)}" text-anchor="middle" '
                f'fill="#26323d" '
                f'stroke="#ffffff" stroke-width="3" paint-order="stroke" stroke-linejoin="round" '
                f'font-family="sans-serif" aria-hidden="true">{escape(area.name)}</text>'
            )
    for mark in sorted(marks, key=lambda m: (m.emphasis, m.overdue)):
        x, y = project(mark.lon, mark.lat)
        size = round((8 if mark.emphasis else 6) * unit)
        if mark.overdue:
            shape = (
                f'<rect x="{x - size}" y="{y - size}" width="{2 * size}" height="{2 * size}" '
                f'fill="#b00020" stroke="#ffffff" stroke-width="1.5"/>'
            )
        else:
            shape = (
                f'<circle cx="{x}" cy="{y}" r="{size}" fill="#1d4f91" stroke="#ffffff" stroke-width="1.5"/>'
            )
        inner = f"<title>{escape(mark.title)}</title>{shape}"
        if mark.href:
            # A target a finger or an unsteady hand can hit (24 px across at least), drawn invisibly.
            inner += f'<circle cx="{x}" cy="{y}" r="{round(14 * unit)}" fill="transparent"/>'
            parts.append(f'<a href="{escape(mark.href)}" aria-label="{escape(mark.title)}">{inner}</a>')
        else:
            parts.append(f"<g>{inner}</g>")
    parts.append("</svg>")
    return "".join(parts)
