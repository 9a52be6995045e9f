"""The three services as separate processes, started, killed (-9) and restarted by the harness; any number
of replicas of each (``router`` is the first replica, ``router-2`` the second, and so on), each with its own
HTTP port and log."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from caseway_ops.errors import StackError

SERVICES = ("intake", "router", "notifier")
READY_TIMEOUT = 120.0
# A sender killed -9 leaves its claims; they are due again this long after (the default is 120 s).
CLAIM_LEASE_SECONDS = 15


def replica_name(service: str, number: int) -> str:
    """The process name of `service`'s replica `number` (1 is the service's own name)."""
    return service if number == 1 else f"{service}-{number}"


def service_of(name: str) -> str:
    """The service a process name runs (``router-2`` -> ``router``)."""
    return name.split("-", 1)[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident set (VmHWM), in MB; None once it is gone."""
    try:
        with Path(f"/proc/{pid}/status").open(encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@dataclass
class _Running:
    process: subprocess.Popen[bytes]
    log: IO[bytes]


@dataclass
class ServiceSet:
    """intake, router and notifier (and the counting mail and webhook sinks) with this run's environment."""

    env: dict[str, str]
    logs_dir: Path
    run_id: str
    mail_file: Path
    webhook_file: Path | None = None
    ports: dict[str, int] = field(default_factory=dict)
    peak_rss: dict[str, float] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)
    _running: dict[str, _Running] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.ports = {name: free_port() for name in (*SERVICES, "smtp", "webhook")}
        if self.webhook_file is None:
            self.webhook_file = self.logs_dir / f"{self.run_id}-webhook.tsv"

    @property
    def webhook_fail_file(self) -> Path:
        """While this file exists the webhook sink answers 500."""
        return self.logs_dir / f"{self.run_id}-webhook.fail"

    def webhook_url(self, team: str) -> str:
        return f"http://127.0.0.1:{self.ports['webhook']}/hook/{team}"

    def port(self, name: str) -> int:
        """The HTTP port of process `name` (a replica gets one of its own the first time it is asked)."""
        if name not in self.ports:
            self.ports[name] = free_port()
        return self.ports[name]

    def running_services(self) -> list[str]:
        """The service processes (every replica) started and not stopped, in start order."""
        return [name for name in self._running if service_of(name) in SERVICES]

    def replicas_of(self, service: str) -> list[str]:
        return [name for name in self.running_services() if service_of(name) == service]

    def _service_env(self, name: str) -> dict[str, str]:
        return {
            **os.environ,
            **self.env,
            f"CASEWAY_{service_of(name).upper()}_HTTP_PORT": str(self.port(name)),
            "CASEWAY_NOTIFIER_SMTP_HOST": "127.0.0.1",
            "CASEWAY_NOTIFIER_SMTP_PORT": str(self.ports["smtp"]),
            "CASEWAY_NOTIFIER_IGNORE_HOURS": "true",
            "CASEWAY_NOTIFIER_CLAIM_LEASE_SECONDS": str(CLAIM_LEASE_SECONDS),
            "CASEWAY_LOG_FORMAT": "json",
            **self.env,
            "CASEWAY_LOG_LEVEL": os.environ.get("CASEWAY_LOADTEST_LOG_LEVEL", "warning"),
        }

    def _spawn(self, name: str) -> None:
        log = (self.logs_dir / f"{self.run_id}-{name}.log").open("ab")
        if name == "webhook":
            argv = [
                sys.executable,
                "-m",
                "caseway_ops.loadtest.webhooksink",
                str(self.ports["webhook"]),
                str(self.webhook_file),
                str(self.webhook_fail_file),
            ]
        elif name == "smtp":
            argv = [
                sys.executable,
                "-m",
                "caseway_ops.loadtest.mailsink",
                str(self.ports["smtp"]),
                str(self.mail_file),
            ]
        else:
            argv = [sys.executable, "-m", f"caseway_{service_of(name)}"]
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and modules
            argv, env=self._service_env(name), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self._running[name] = _Running(process, log)

    def alive(self, name: str) -> bool:
        running = self._running.get(name)
        return running is not None and running.process.poll() is None

    def pid(self, name: str) -> int:
        return self._running[name].process.pid

    async def start_all(self, *, replicas: int = 1) -> None:
        """The sinks, then `replicas` processes of each service, ready."""
        self._spawn("smtp")
        self._spawn("webhook")
        names = [replica_name(service, n) for n in range(1, replicas + 1) for service in SERVICES]
        for name in names:
            self._spawn(name)
        await self.wait_ready(*names)

    async def wait_ready(self, *names: str, timeout: float = READY_TIMEOUT) -> None:
        """Until each named service answers 200 on /readyz (it serves HTTP) and on /consumerz (it owns
        partitions of every topic it reads), so that no load is timed while a consumer group forms;
        fails early if its process exits."""
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=2) as client:
            for name in names:
                while True:
                    running = self._running[name]
                    if running.process.poll() is not None:
                        raise StackError(
                            f"{name} exited ({running.process.returncode}); see {running.log.name}"
                        )
                    try:
                        base = f"http://127.0.0.1:{self.port(name)}"
                        answers = [await client.get(base + path) for path in ("/readyz", "/consumerz")]
                        if all(answer.status_code == 200 for answer in answers):  # noqa: PLR2004
                            break
                    except httpx.HTTPError:
                        pass
                    if time.monotonic() > deadline:
                        raise StackError(
                            f"{name} was not ready within {timeout:.0f} s; see {running.log.name}"
                        )
                    await asyncio.sleep(0.2)

    def _record_rss(self, name: str) -> None:
        running = self._running.get(name)
        if running is None:
            return
        rss = peak_rss_mb(running.process.pid)
        if rss is not None:
            self.peak_rss[name] = max(self.peak_rss.get(name, 0.0), rss)

    def record_rss(self) -> dict[str, float]:
        for name in self.running_services():
            self._record_rss(name)
        return dict(self.peak_rss)

    async def kill9(self, name: str) -> None:
        """SIGKILL the service: no shutdown code runs, nothing is committed or flushed."""
        self._record_rss(name)
        running = self._running.pop(name)
        running.process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(running.process.wait)
        running.log.close()

    async def start(self, *names: str) -> None:
        """Start the named services together and wait until each is ready."""
        for name in names:
            self._spawn(name)
            self.restarts[name] = self.restarts.get(name, 0) + 1
        await self.wait_ready(*names)

    async def stop(self, name: str, *, grace: float = 30.0) -> None:
        self._record_rss(name)
        running = self._running.pop(name, None)
        if running is None:
            return
        running.process.terminate()
        try:
            await asyncio.wait_for(asyncio.to_thread(running.process.wait), grace)
        except TimeoutError:
            running.process.kill()
            await asyncio.to_thread(running.process.wait)
        running.log.close()

    async def start_sink(self, name: str) -> None:
        """Start the mail or webhook sink again (after an outage) and wait until it takes connections."""
        self._spawn(name)
        deadline = time.monotonic() + 30
        while True:
            try:
                _reader, writer = await asyncio.open_connection("127.0.0.1", self.ports[name])
            except OSError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
            else:
                writer.close()
                return

    async def stop_all(self) -> None:
        self.record_rss()
        for name in (*self.running_services(), "smtp", "webhook"):
            await self.stop(name)
