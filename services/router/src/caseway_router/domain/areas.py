"""Where cases are on the map, as keys an index can search, and which advisory locks a report takes so
that replicas never split one problem into two cases (pure).

**Stored cells (candidate search).** Every case with a point stores the key of the grid cell it lies in
(`case_cell`): a fixed grid of `CELL_DEGREES` in latitude and longitude (about 56 m north-south and 33 m
east-west at Liverpool's latitude). A report looking for cases within `radius_m` asks for each cell of the
box around its circle (`cells_within`: about 16 for a 60 m radius), and a btree index on (family, cell,
last report time) answers each with one descent and a range over the cases of that cell still inside the
report's window: the cost depends on the log of the table's size and on the live cases near the point,
never on how many cases the table holds (closed years ago or not). The exact distance is then computed in
Python. The grid is fixed, not derived from the configured radii, so a change of configuration never makes
stored keys stale.

**Area locks.**

Two reports can only be duplicates when they are of one family and within its radius of each other (or at
one address, or sharing an exact key). The map is cut into cells at least as large as the largest
duplicate radius; a report locks its own cell and the eight around it, per family. Two reports within a
radius of each other then always share at least one locked cell, so the second waits until the first's
transaction has committed its case, and its candidate search finds it. A report with an address also locks
that address, and one with exact keys (property, asset, street: `duplicates.exact_keys`) each of them, so
two reports of one street light whose points lie far apart still wait for each other.

Cells are in degrees: `cell_m` north-south, and east-west `cell_m` measured at latitude 70 degrees, so that
everywhere nearer the equator (any UK council) a cell is at least `cell_m` wide.
"""

from __future__ import annotations

import hashlib
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

_METRES_PER_DEGREE = 111_195.0
_WIDEST_LATITUDE = 70.0
CELL_DEGREES = 0.0005
# A key is row * _ROW_STRIDE + column + _COLUMN_OFFSET: columns (longitude -180..180 in CELL_DEGREES steps,
# at most 360,000 either side) always fit below the stride, so keys are unique and neighbours adjacent.
_COLUMN_OFFSET = 1 << 20
_ROW_STRIDE = 1 << 21
# Further north than this, a degree of longitude is too short for the box arithmetic below to be sensible.
_POLAR_LATITUDE = 85.0


def _cell_row(lat: float) -> int:
    return math.floor(lat / CELL_DEGREES)


def _cell_column(lon: float) -> int:
    return math.floor(lon / CELL_DEGREES)


def cell_key(row: int, column: int) -> int:
    return row * _ROW_STRIDE + column + _COLUMN_OFFSET


def case_cell(lat: float, lon: float) -> int:
    """The key of the grid cell a point lies in (stored with a case, indexed with its family)."""
    return cell_key(_cell_row(lat), _cell_column(lon))


def cells_within(lat: float, lon: float, radius_m: float) -> list[int]:
    """The keys of every cell that can hold a point within `radius_m` of (lat, lon): the box around the
    circle, its east-west half-width taken at the box's latitude furthest from the equator, where a degree
    of longitude is shortest."""
    half_lat = radius_m / _METRES_PER_DEGREE
    widest = min(abs(lat) + half_lat, _POLAR_LATITUDE)
    half_lon = radius_m / (_METRES_PER_DEGREE * math.cos(math.radians(widest)))
    columns = range(_cell_column(lon - half_lon), _cell_column(lon + half_lon) + 1)
    return [
        cell_key(row, column)
        for row in range(_cell_row(lat - half_lat), _cell_row(lat + half_lat) + 1)
        for column in columns
    ]


def _key(text: str) -> int:
    # A stable signed 64-bit number (pg_advisory_xact_lock takes a bigint); Python's hash() is salted.
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big", signed=True)


def area_lock_keys(family: str, lat: float, lon: float, *, cell_m: float) -> list[int]:
    """The lock keys of a point's cell and its eight neighbours, for one family."""
    cell_lat = cell_m / _METRES_PER_DEGREE
    cell_lon = cell_m / (_METRES_PER_DEGREE * math.cos(math.radians(_WIDEST_LATITUDE)))
    row, column = math.floor(lat / cell_lat), math.floor(lon / cell_lon)
    return [_key(f"area:{family}:{row + dy}:{column + dx}") for dy in (-1, 0, 1) for dx in (-1, 0, 1)]


def address_lock_key(family: str, address_key: str) -> int:
    """The lock key of one normalised address, for one family."""
    return _key(f"address:{family}:{address_key}")


def exact_key_lock_key(family: str, key: str) -> int:
    """The lock key of one exact key (`duplicates.exact_keys`), for one family."""
    return _key(f"exact:{family}:{key}")


def lock_chunks(keys_per_item: Sequence[Sequence[int]], *, most_locks: int) -> list[range]:
    """Consecutive runs of items whose distinct lock keys number at most `most_locks` (an item with more
    keys than that still gets a run of its own), in order. A batch is routed one run per transaction, so
    no transaction holds more advisory locks than PostgreSQL's lock table can give every replica."""
    chunks: list[range] = []
    start, held = 0, set[int]()
    for index, keys in enumerate(keys_per_item):
        wanted = held.union(keys)
        if index > start and len(wanted) > most_locks:
            chunks.append(range(start, index))
            start, wanted = index, set(keys)
        held = wanted
    if start < len(keys_per_item):
        chunks.append(range(start, len(keys_per_item)))
    return chunks
