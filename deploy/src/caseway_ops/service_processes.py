"""Running Caseway's own processes on a developer's machine: the three services and a loopback mail sink
(so the notifier's emails land in deploy/.state/mail instead of nowhere). Pid files and logs live in the
stack's state folder; `up` reuses what already runs."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from caseway_ops.errors import StackError
from caseway_ops.processes import is_alive, port_is_open, read_pid, spawn_detached, stop_process_group, tail

if TYPE_CHECKING:
    from pathlib import Path

    from caseway_ops.stack_config import StackConfig

MAIL_SINK_PORT = 1025


@dataclass(frozen=True, slots=True)
class ManagedProcess:
    name: str
    port: int
    module_args: tuple[str, ...]
    ready_path: str | None  # HTTP path that answers 200 when ready; None: the port being open is enough


def managed_processes(config: StackConfig) -> tuple[ManagedProcess, ...]:
    mail_dir = config.state_dir / "mail"
    return (
        ManagedProcess(
            "mail-sink",
            MAIL_SINK_PORT,
            (
                "aiosmtpd",
                "-n",
                "-l",
                f"127.0.0.1:{MAIL_SINK_PORT}",
                "-c",
                "aiosmtpd.handlers.Mailbox",
                str(mail_dir),
            ),
            None,
        ),
        ManagedProcess("intake", 8080, ("caseway_intake",), "/readyz"),
        ManagedProcess("router", 8081, ("caseway_router",), "/readyz"),
        ManagedProcess("notifier", 8082, ("caseway_notifier",), "/readyz"),
    )


@dataclass(frozen=True, slots=True)
class ProcessStatus:
    name: str
    pid: int | None
    port: int
    ready: bool
    detail: str


def _pid_file(config: StackConfig, name: str) -> Path:
    return config.state_dir / "run" / f"{name}.pid"


def _log_file(config: StackConfig, name: str) -> Path:
    return config.state_dir / "logs" / f"{name}.log"


def _running(config: StackConfig, name: str) -> int | None:
    pid = read_pid(_pid_file(config, name))
    return pid if pid is not None and is_alive(pid) else None


async def _is_ready(process: ManagedProcess) -> bool:
    if process.ready_path is None:
        return port_is_open("127.0.0.1", process.port)
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            response = await client.get(f"http://127.0.0.1:{process.port}{process.ready_path}")
    except httpx.HTTPError:
        return False
    return response.status_code == 200  # noqa: PLR2004


async def services_up(config: StackConfig, *, timeout: float = 90) -> list[ProcessStatus]:
    """Start whatever is not running yet and wait until every process is ready."""
    for maildir_part in ("tmp", "new", "cur"):  # a Maildir, as the sink's Mailbox handler writes it
        (config.state_dir / "mail" / maildir_part).mkdir(parents=True, exist_ok=True)
    (config.state_dir / "run").mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CASEWAY_LOG_FORMAT": os.environ.get("CASEWAY_LOG_FORMAT", "json")}
    env.setdefault("CASEWAY_NOTIFIER_SMTP_PORT", str(MAIL_SINK_PORT))
    # On a developer's machine alerts go out at once, evenings too; a deployment keeps the teams' hours.
    env.setdefault("CASEWAY_NOTIFIER_IGNORE_HOURS", "true")
    for process in managed_processes(config):
        if _running(config, process.name) is not None:
            continue
        if port_is_open("127.0.0.1", process.port):
            raise StackError(
                f"port {process.port} is taken by something else; {process.name} cannot start there"
            )
        pid = spawn_detached(
            [sys.executable, "-m", *process.module_args], output=_log_file(config, process.name), env=env
        )
        _pid_file(config, process.name).write_text(str(pid), encoding="ascii")
    deadline = time.monotonic() + timeout
    for process in managed_processes(config):
        while not await _is_ready(process):
            if _running(config, process.name) is None:
                raise StackError(
                    f"{process.name} exited while starting; last lines of its log:\n"
                    + tail(_log_file(config, process.name))
                )
            if time.monotonic() > deadline:
                log_file = _log_file(config, process.name)
                raise StackError(f"{process.name} was not ready after {timeout:.0f} s; see {log_file}")
            await asyncio.sleep(0.3)
    return await services_status(config)


async def services_down(config: StackConfig) -> list[tuple[str, str]]:
    """Stop every managed process this machine's stack started (services first, then the mail sink)."""
    results = []
    for process in reversed(managed_processes(config)):
        pid = _running(config, process.name)
        outcome = await stop_process_group(pid, grace=20) if pid is not None else "was not running"
        _pid_file(config, process.name).unlink(missing_ok=True)
        results.append((process.name, outcome))
    return results


async def services_status(config: StackConfig) -> list[ProcessStatus]:
    statuses = []
    for process in managed_processes(config):
        pid = _running(config, process.name)
        ready = pid is not None and await _is_ready(process)
        detail = "ready" if ready else ("starting or unhealthy" if pid else "stopped")
        statuses.append(ProcessStatus(process.name, pid, process.port, ready, detail))
    return statuses
