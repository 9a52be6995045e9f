"""Files of the council's configuration folder that only the router reads."""

from __future__ import annotations

import csv
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


def load_postcode_hints(directory: Path, *, code_column: str = "WD23CD") -> dict[str, tuple[str, ...]]:
    """Postcode district -> ward codes, from the council's `wards*_centroids.csv` (an approximate hint).

    Reads the column whose name starts with `approx_postcode_districts`; no file or no column gives {}.
    """
    found: dict[str, list[str]] = {}
    for path in sorted(directory.glob("wards*_centroids.csv")):
        with path.open(newline="", encoding="utf-8") as file:
            for row in csv.DictReader(file):
                column = next((key for key in row if key.startswith("approx_postcode_districts")), None)
                if column is None:
                    return {}
                for district in (row[column] or "").split():
                    found.setdefault(district.upper(), []).append(row[code_column])
    return {district: tuple(wards) for district, wards in found.items()}
