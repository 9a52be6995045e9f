"""Small process and port helpers: detached servers, pid files, stopping cleanly, who holds a port."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from caseway_ops.errors import StackError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping, Sequence
    from pathlib import Path


def find_executable(name: str, hint: str) -> str:
    """The absolute path of ``name`` on PATH, or a `StackError` saying how to get it."""
    found = shutil.which(name)
    if found is None:
        raise StackError(f"`{name}` is not installed or not on PATH; {hint}")
    return found


def is_alive(pid: int) -> bool:
    """True while ``pid`` runs; reaps it if it is our own child that has exited."""
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = f"/proc/{pid}/stat"
        with open(stat, encoding="ascii", errors="replace") as handle:  # noqa: PTH123
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def command_line(pid: int) -> str:
    """The command line of ``pid`` (empty if it cannot be read)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:  # noqa: PTH123
            return handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None


def spawn_detached(argv: Sequence[str], *, output: Path, env: Mapping[str, str]) -> int:
    """Start ``argv`` in its own session (so a Ctrl-C in the terminal does not reach it), stdout and
    stderr appended to ``output``, stdin from /dev/null; returns its pid (also its process group id).

    ``posix_spawn`` rather than ``subprocess.Popen``: there is no Popen object left behind to warn that
    its process still runs when it is collected, and the server outlives this process anyway.
    """
    output.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(output), flags, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    # posix_spawn has no working-directory argument: callers pass absolute paths only.
    return os.posix_spawn(argv[0], list(argv), dict(env), file_actions=actions, setsid=True)


async def stop_process_group(pid: int, *, grace: float) -> str:
    """SIGTERM the process group led by ``pid``, wait up to ``grace`` seconds, then SIGKILL it."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return "was not running"
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not is_alive(pid):
            return "stopped (SIGTERM)"
        await asyncio.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    for _ in range(50):
        if not is_alive(pid):
            break
        await asyncio.sleep(0.1)
    return f"killed (SIGKILL after {grace:.0f} s without stopping)"


@dataclass(frozen=True, slots=True)
class CommandResult:
    returncode: int
    output: str


async def run_command(
    argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None, time_limit: float
) -> CommandResult:
    """Run ``argv`` to completion, stdout and stderr merged; a `StackError` past ``time_limit`` seconds."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=None if env is None else dict(env),
        cwd=cwd,
        start_new_session=True,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), time_limit)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        raise StackError(f"`{' '.join(argv)}` did not finish within {time_limit:.0f} s") from None
    except asyncio.CancelledError:
        # A sibling step failed: do not leave a half-done initdb or Maven download running behind us.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        raise
    assert process.returncode is not None  # noqa: S101 - communicate() returns after the exit
    return CommandResult(process.returncode, out.decode(errors="replace"))


def port_is_open(host: str, port: int, *, timeout: float = 0.5) -> bool:
    """True if something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


_SS_USER = re.compile(r'\("(?P<name>[^"]*)",pid=(?P<pid>\d+)')


def port_owner(port: int) -> str | None:
    """Best effort: ``"pid 123 (postgres: ...)"`` for the process listening on ``port``, else None."""
    ss = shutil.which("ss")
    if ss is None:
        return None
    try:
        listing = subprocess.run(  # noqa: S603 - fixed arguments
            [ss, "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, timeout=5, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = _SS_USER.search(listing)
    if match is None:
        return None
    pid = int(match["pid"])
    return f"pid {pid} ({' '.join(command_line(pid).split())[:160] or match['name']})"


@contextlib.asynccontextmanager
async def file_lock(path: Path) -> AsyncIterator[None]:
    """Hold an exclusive lock on ``path`` (so that parallel test workers start the stack once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def describe_error(exc: BaseException) -> str:
    """``Type: message``, or just ``Type`` when the message is empty (as for most TimeoutErrors)."""
    message = str(exc).strip()
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def tail(path: Path, lines: int = 20, *, after: str | None = None, width: int = 300) -> str:
    """The last ``lines`` lines of a log file, for error messages: only those after the last line that
    starts with ``after`` if given, each cut to ``width`` characters."""
    try:
        content = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    if after is not None:
        starts = [i for i, line in enumerate(content) if line.startswith(after)]
        if starts:
            content = content[starts[-1] + 1 :]
    return "\n".join(line if len(line) <= width else line[:width] + " …" for line in content[-lines:])
