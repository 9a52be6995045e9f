"""Which advisory locks a report takes so that replicas never split one problem into two cases (pure).

Two reports can only be duplicates when they are of one family and within its radius of each other (or at
one address). The map is cut into cells at least as large as the largest duplicate radius; a report locks
its own cell and the eight around it, per family. Two reports within a radius of each other then always
share at least one locked cell, so the second waits until the first's transaction has committed its case,
and its candidate search finds it. A report with an address also locks that address.

Cells are in degrees: `cell_m` north-south, and east-west `cell_m` measured at latitude 70 degrees, so that
everywhere nearer the equator (any UK council) a cell is at least `cell_m` wide.
"""

from __future__ import annotations

import hashlib
import math

_METRES_PER_DEGREE = 111_195.0
_WIDEST_LATITUDE = 70.0


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
