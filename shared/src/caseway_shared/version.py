"""The running Caseway version, from the installed package metadata."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def caseway_version() -> str:
    try:
        return version("caseway-shared")
    except PackageNotFoundError:  # pragma: no cover - a source tree without metadata
        return "unknown"
