"""Where the benchmark's time goes: PostgreSQL's top statements (pg_stat_statements) and a sampling profile
of each service (py-spy, as SVG flame graphs), taken during the peak phase."""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg

if TYPE_CHECKING:
    from collections.abc import Mapping


async def reset_statements(database_url: str) -> bool:
    """Start counting statements afresh; False when pg_stat_statements cannot be used here (not preloaded,
    or the run's role may not create or reset it)."""
    db = await asyncpg.connect(database_url)
    try:
        # The run's role is no superuser: reading shared_preload_libraries, creating the (untrusted)
        # extension or resetting its counts may each be refused. Then the benchmark runs without it.
        await db.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        await db.execute("SELECT pg_stat_statements_reset()")
    except asyncpg.PostgresError:
        return False
    finally:
        await db.close()
    return True


async def top_statements(database_url: str, *, limit: int = 15) -> list[dict[str, Any]]:
    """The statements that took the most time since the reset, with calls, rows and mean time."""
    db = await asyncpg.connect(database_url)
    try:
        rows = await db.fetch(
            """
            SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 160) AS query, calls, rows,
                   round(total_exec_time::numeric, 1) AS total_ms,
                   round(mean_exec_time::numeric, 3) AS mean_ms
            FROM pg_stat_statements
            WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
            ORDER BY total_exec_time DESC LIMIT $1
            """,
            limit,
        )
    finally:
        await db.close()
    return [
        {**dict(row), "total_ms": float(row["total_ms"]), "mean_ms": float(row["mean_ms"])} for row in rows
    ]


def py_spy() -> str | None:
    """The py-spy executable installed with the workspace (a dev dependency), if any."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


async def flame_graphs(pids: Mapping[str, int], out_dir: Path, *, seconds: float) -> dict[str, str]:
    """Sample each process for `seconds` at once; returns the SVG written for each (or why not)."""
    executable = py_spy()
    if executable is None:
        return dict.fromkeys(pids, "py-spy is not installed")
    await asyncio.to_thread(out_dir.mkdir, parents=True, exist_ok=True)

    async def one(name: str, pid: int) -> tuple[str, str]:
        svg = out_dir / f"flame-{name}.svg"
        process = await asyncio.create_subprocess_exec(
            executable,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(1, round(seconds))),
            "--rate",
            "50",
            "--nonblocking",
            "--format",
            "flamegraph",
            "--output",
            str(svg),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await process.communicate()
        if process.returncode != 0:
            return name, f"py-spy failed: {err.decode(errors='replace').strip()[-200:]}"
        return name, str(svg)

    return dict(await asyncio.gather(*(one(name, pid) for name, pid in pids.items())))
