"""Running Caseway's own processes on a developer's machine: the three services and a loopback mail sink
(so the notifier's emails land in deploy/.state/mail instead of nowhere). Pid files and logs live in the
stack's state folder; `up` reuses what already runs.

Ports come from the stack's configuration (`StackConfig`: 1025 for the mail sink, 8080-8082 for the
services unless the environment says otherwise), and each process's port is recorded beside its pid, so
`status` and `down` find a process wherever it was started. The services are pointed at the stack's own
broker and database, so a stack on other ports (a second checkout, a test) never reaches another's."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import httpx

from caseway_ops.errors import StackError
from caseway_ops.processes import (
    is_alive,
    port_is_open,
    port_owner,
    read_pid,
    spawn_detached,
    stop_process_group,
    tail,
)

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from caseway_ops.stack_config import StackConfig


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
            config.mail_sink_port,
            (
                "aiosmtpd",
                "-n",
                "-l",
                f"127.0.0.1:{config.mail_sink_port}",
                "-c",
                "aiosmtpd.handlers.Mailbox",
                str(mail_dir),
            ),
            None,
        ),
        ManagedProcess("intake", config.intake_port, ("caseway_intake",), "/readyz"),
        ManagedProcess("router", config.router_port, ("caseway_router",), "/readyz"),
        ManagedProcess("notifier", config.notifier_port, ("caseway_notifier",), "/readyz"),
    )


def service_environment(config: StackConfig, base: Mapping[str, str]) -> dict[str, str]:
    """The environment the processes start with: ``base`` plus the stack's broker, database and ports.

    The stack's addresses win over the defaults the services would assume (127.0.0.1:9092, :5432), so
    services started for a stack on other ports talk to that stack; each service's HTTP port is the
    one `managed_processes` waits on.
    """
    env = {**base, "CASEWAY_LOG_FORMAT": base.get("CASEWAY_LOG_FORMAT", "json")}
    env["KAFKA_BOOTSTRAP_SERVERS"] = config.bootstrap_servers
    env["DATABASE_URL"] = config.database_url
    for process in managed_processes(config):
        if process.name != "mail-sink":
            env[f"CASEWAY_{process.name.upper()}_HTTP_PORT"] = str(process.port)
    # The notifier sends to the stack's mail sink unless told to use another SMTP server.
    env.setdefault("CASEWAY_NOTIFIER_SMTP_PORT", str(config.mail_sink_port))
    # On a developer's machine alerts go out at once, evenings too; a deployment keeps the teams' hours.
    env.setdefault("CASEWAY_NOTIFIER_IGNORE_HOURS", "true")
    return env


@dataclass(frozen=True, slots=True)
class ProcessStatus:
    name: str
    pid: int | None
    port: int
    ready: bool
    detail: str


def _pid_file(config: StackConfig, name: str) -> Path:
    return config.state_dir / "run" / f"{name}.pid"


def _port_file(config: StackConfig, name: str) -> Path:
    return config.state_dir / "run" / f"{name}.port"


def _log_file(config: StackConfig, name: str) -> Path:
    return config.state_dir / "logs" / f"{name}.log"


def _running(config: StackConfig, name: str) -> int | None:
    pid = read_pid(_pid_file(config, name))
    return pid if pid is not None and is_alive(pid) else None


def _as_started(config: StackConfig, process: ManagedProcess) -> ManagedProcess:
    """The process with the port it was started on (recorded beside its pid), if it runs."""
    recorded = read_pid(_port_file(config, process.name))
    if recorded is None or recorded == process.port or _running(config, process.name) is None:
        return process
    return replace(process, port=recorded)


async def _is_ready(process: ManagedProcess) -> bool:
    if process.ready_path is None:
        return port_is_open("127.0.0.1", process.port)
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            response = await client.get(f"http://127.0.0.1:{process.port}{process.ready_path}")
    except httpx.HTTPError:
        return False
    return response.status_code == 200  # noqa: PLR2004


def _port_taken(config: StackConfig, process: ManagedProcess) -> StackError:
    owner = port_owner(process.port)
    variable = (
        "CASEWAY_MAIL_SINK_PORT"
        if process.name == "mail-sink"
        else f"CASEWAY_{process.name.upper()}_HTTP_PORT"
    )
    return StackError(
        f"port {process.port} is taken by {owner or 'something else'}, which this stack (state in "
        f"{config.state_dir}) did not start; {process.name} cannot start there. Stop it, or choose another "
        f"port with {variable}."
    )


async def services_up(config: StackConfig, *, timeout: float = 90) -> list[ProcessStatus]:
    """Start whatever is not running yet and wait until every process is ready."""
    for maildir_part in ("tmp", "new", "cur"):  # a Maildir, as the sink's Mailbox handler writes it
        (config.state_dir / "mail" / maildir_part).mkdir(parents=True, exist_ok=True)
    (config.state_dir / "run").mkdir(parents=True, exist_ok=True)
    env = service_environment(config, os.environ)
    for process in managed_processes(config):
        if _running(config, process.name) is not None:
            continue
        if port_is_open("127.0.0.1", process.port):
            raise _port_taken(config, process)
        pid = spawn_detached(
            [sys.executable, "-m", *process.module_args], output=_log_file(config, process.name), env=env
        )
        _pid_file(config, process.name).write_text(str(pid), encoding="ascii")
        _port_file(config, process.name).write_text(str(process.port), encoding="ascii")
    deadline = time.monotonic() + timeout
    for process in (_as_started(config, p) for p in managed_processes(config)):
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
        _port_file(config, process.name).unlink(missing_ok=True)
        results.append((process.name, outcome))
    return results


async def services_status(config: StackConfig) -> list[ProcessStatus]:
    statuses = []
    for process in (_as_started(config, p) for p in managed_processes(config)):
        pid = _running(config, process.name)
        ready = pid is not None and await _is_ready(process)
        detail = "ready" if ready else ("starting or unhealthy" if pid else "stopped")
        statuses.append(ProcessStatus(process.name, pid, process.port, ready, detail))
    return statuses
