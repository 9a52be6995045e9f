"""Writing the figures: bench/results.json, bench/faults.json, bench/fuzz.json and bench/latency.png."""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

GOALS = {
    "end_to_end_rps_at_least": 2000,
    "ratio_chain_at_least": 0.5,
    "p99_ms_at_200_rps_at_most": 250,
    "peak_rss_mb_per_service_at_most": 200,
}


def bench_dir() -> Path:
    """The repository's bench/ folder (the workspace root is three levels above deploy/src/caseway_ops)."""
    return Path(__file__).resolve().parents[4] / "bench"


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def goals_met(results: dict[str, Any]) -> dict[str, bool]:
    latency_200 = results.get("latency_ms", {}).get("200", {}).get("to_notification_recorded", {})
    return {
        "end_to_end_rps": results.get("end_to_end_rps", 0) >= GOALS["end_to_end_rps_at_least"],
        "ratio_chain": results.get("ratio_chain", 0) >= GOALS["ratio_chain_at_least"],
        "p99_at_200": latency_200.get("p99", float("inf")) <= GOALS["p99_ms_at_200_rps_at_most"],
        "peak_rss": all(
            v <= GOALS["peak_rss_mb_per_service_at_most"] for v in results.get("peak_rss_mb", {}).values()
        ),
    }


def write_json(name: str, data: dict[str, Any], folder: Path | None = None) -> Path:
    folder = folder or bench_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path


def plot_latency(results: dict[str, Any], path: Path) -> Path:
    """Latency percentiles against offered load (log-log)."""
    import matplotlib as mpl  # noqa: PLC0415 - a dev dependency, needed only here

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    rates = sorted(results["latency_ms"], key=float)
    x = [float(r) for r in rates]
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for q, style in (("p50", "o-"), ("p95", "s--"), ("p99", "^-.")):
        axes.plot(x, [results["latency_ms"][r]["to_notification_recorded"][q] for r in rates], style, label=q)
    axes.axhline(
        GOALS["p99_ms_at_200_rps_at_most"], color="grey", linewidth=0.8, linestyle=":", label="p99 goal"
    )
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("offered load (reports/s)")
    axes.set_ylabel("report to notification recorded (ms)")
    axes.set_title(
        f"Caseway: {results['end_to_end_rps']:,.0f} reports/s sustained; "
        f"3-hop Kafka chain {results['ceiling_chain_rps']:,.0f}/s"
    )
    axes.grid(visible=True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
