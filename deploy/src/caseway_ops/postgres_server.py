"""The local PostgreSQL server: a cluster of the project's own under ``.state/postgres``, run by pg_ctl.

It never touches Debian's "15 main" cluster; it listens on TCP only (no Unix socket that could collide
with a system server's), and refuses to start if anything else already answers on its port. initdb
refuses to run as root, so as root every server command runs as the ``postgres`` OS user.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg

from caseway_ops.database import asyncpg_dsn
from caseway_ops.errors import StackError
from caseway_ops.processes import (
    command_line,
    describe_error,
    find_executable,
    is_alive,
    port_is_open,
    port_owner,
    run_command,
    tail,
)
from caseway_ops.stack_config import DB_NAME, DB_PASSWORD, DB_USER

if TYPE_CHECKING:
    from collections.abc import Sequence

    from caseway_ops.stack_config import StackConfig

_INSTALL_HINT = "run deploy/bootstrap.sh (it installs postgresql-15 and postgresql-contrib)"
_OS_USER = "postgres"
_SUPERUSER = "postgres"
_EXTENSIONS = ("cube", "earthdistance")
READY_TIMEOUT = 60.0


def bin_dir(config: StackConfig) -> Path:
    """PostgreSQL's bin directory: CASEWAY_PG_BIN, else Debian's /usr/lib/postgresql/15 (or the newest
    version there), else wherever initdb is on PATH."""
    if config.postgres_bin_dir is not None:
        if not (config.postgres_bin_dir / "initdb").is_file():
            raise StackError(f"CASEWAY_PG_BIN={config.postgres_bin_dir} holds no initdb")
        return config.postgres_bin_dir
    debian = Path("/usr/lib/postgresql")
    preferred = debian / "15" / "bin"
    if (preferred / "initdb").is_file():
        return preferred
    versions = sorted(
        (p.parent for p in debian.glob("*/bin/initdb") if p.parent.parent.name.isdigit()),
        key=lambda p: int(p.parent.name),
    )
    if versions:
        return versions[-1]
    return Path(find_executable("initdb", _INSTALL_HINT)).parent


def _running_as_root() -> bool:
    return os.geteuid() == 0


def _as_server_user(argv: Sequence[str]) -> list[str]:
    if not _running_as_root():
        return list(argv)
    return [find_executable("runuser", "runuser is part of util-linux"), "-u", _OS_USER, "--", *argv]


def _give_to_server_user(*paths: Path) -> None:
    if not _running_as_root():
        return
    try:
        entry = pwd.getpwnam(_OS_USER)
    except KeyError:
        raise StackError(
            f"running as root, the stack runs PostgreSQL as the `{_OS_USER}` OS user, which does not exist; "
            f"{_INSTALL_HINT}"
        ) from None
    for path in paths:
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _superuser_password_file(config: StackConfig) -> Path:
    return config.postgres_dir / "superuser.password"


def _locale() -> str:
    try:
        listing = subprocess.run(
            ["locale", "-a"],  # noqa: S607 - a standard tool looked up on PATH
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.lower()
    except (OSError, subprocess.SubprocessError):
        return "C"
    return "C.UTF-8" if "c.utf8" in listing or "c.utf-8" in listing else "C"


def render_settings(config: StackConfig) -> str:
    """Settings for a developer's machine, included from postgresql.conf and rewritten on every up."""
    return "\n".join(
        [
            "# Written by caseway_ops.postgres_server on every `caseway stack up`; edits are overwritten.",
            f"listen_addresses = '{config.host}'",
            f"port = {config.postgres_port}",
            # TCP only: no socket in /var/run/postgresql that could collide with a system cluster's.
            "unix_socket_directories = ''",
            "max_connections = 200",
            "shared_buffers = 256MB",
            "work_mem = 8MB",
            "maintenance_work_mem = 128MB",
            "effective_cache_size = 1GB",
            "password_encryption = 'scram-sha-256'",
            "timezone = 'UTC'",
            "log_timezone = 'UTC'",
            "log_line_prefix = '%m [%p] %q%u@%d '",
            "log_min_duration_statement = 1000",
            "log_lock_waits = on",
            "",
        ]
    )


_HBA = """# Written by caseway_ops.postgres_server. Loopback only, passwords always (SCRAM).
# TYPE  DATABASE  USER  ADDRESS       METHOD
host    all       all   127.0.0.1/32  scram-sha-256
host    all       all   ::1/128       scram-sha-256
"""


def _write_settings(config: StackConfig) -> None:
    data = config.postgres_data_dir
    settings = data / "caseway.conf"
    settings.write_text(render_settings(config), encoding="utf-8")
    hba = data / "pg_hba.conf"
    hba.write_text(_HBA, encoding="utf-8")
    main = data / "postgresql.conf"
    text = main.read_text(encoding="utf-8")
    if "include_if_exists = 'caseway.conf'" not in text:
        main.write_text(text + "\ninclude_if_exists = 'caseway.conf'\n", encoding="utf-8")
    _give_to_server_user(settings, hba, main)


async def _check_reachable(config: StackConfig) -> None:
    """The postgres OS user must be able to reach the data directory through every parent folder."""
    if not _running_as_root():
        return
    test = find_executable("test", "coreutils")
    result = await run_command(_as_server_user([test, "-w", str(config.postgres_data_dir)]), time_limit=10)
    if result.returncode != 0:
        raise StackError(
            f"the `{_OS_USER}` OS user cannot write {config.postgres_data_dir} (a parent folder is not "
            "open to it); set CASEWAY_STATE_DIR to a folder it can reach"
        )


async def ensure_cluster(config: StackConfig) -> str:
    """initdb once (superuser password kept in ``postgres/superuser.password``); refresh the settings."""
    data = config.postgres_data_dir
    if (data / "PG_VERSION").is_file():
        _write_settings(config)
        return "already initialised"
    for folder in (config.state_dir, config.postgres_dir):
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o755)
    if data.exists():
        shutil.rmtree(data)  # an initdb that failed half-way: it never held a cluster
    data.mkdir(mode=0o700)
    _give_to_server_user(data)
    await _check_reachable(config)
    password_file = _superuser_password_file(config)
    password_file.write_text(secrets.token_urlsafe(24) + "\n", encoding="ascii")
    password_file.chmod(0o600)
    _give_to_server_user(password_file)
    argv = [
        str(bin_dir(config) / "initdb"),
        "-D",
        str(data),
        "-U",
        _SUPERUSER,
        f"--pwfile={password_file}",
        "--auth=scram-sha-256",
        "-E",
        "UTF8",
        f"--locale={_locale()}",
        "--no-instructions",
    ]
    result = await run_command(_as_server_user(argv), time_limit=180, cwd=config.postgres_dir)
    config.logs_dir.mkdir(parents=True, exist_ok=True)
    log = config.logs_dir / "initdb.log"
    log.write_text(f"$ {' '.join(argv)}\n{result.output}", encoding="utf-8")
    if result.returncode != 0:
        raise StackError(f"initdb failed (exit {result.returncode}); see {log}:\n{tail(log)}")
    _write_settings(config)
    return f"initialised {data}"


def running_pid(config: StackConfig) -> int | None:
    """The postmaster's pid if our cluster runs (from postmaster.pid, checked against the process)."""
    try:
        first = (config.postgres_data_dir / "postmaster.pid").read_text(encoding="ascii").splitlines()[0]
        pid = int(first)
    except (OSError, ValueError, IndexError):
        return None
    if not is_alive(pid) or str(config.postgres_data_dir) not in command_line(pid):
        return None  # a stale postmaster.pid whose pid now belongs to another process
    return pid


def _log(config: StackConfig) -> Path:
    return config.logs_dir / "postgres.log"


async def start(config: StackConfig) -> str:
    if (pid := running_pid(config)) is not None:
        return f"already running (pid {pid})"
    if port_is_open(config.host, config.postgres_port):
        owner = port_owner(config.postgres_port)
        raise StackError(
            f"{config.host}:{config.postgres_port} is already taken by {owner or 'another process'}, which "
            "this stack did not start (Debian's own cluster? `pg_ctlcluster 15 main stop` stops it). Stop "
            "it, or set DATABASE_URL to use that server (the stack then starts no PostgreSQL of its own), "
            "or choose another port with CASEWAY_POSTGRES_PORT."
        )
    config.logs_dir.mkdir(parents=True, exist_ok=True)
    log = _log(config)
    log.touch()
    _give_to_server_user(log)
    argv = [
        str(bin_dir(config) / "pg_ctl"),
        "-D",
        str(config.postgres_data_dir),
        "-l",
        str(log),
        "-w",
        "-t",
        "60",
    ]
    result = await run_command(_as_server_user([*argv, "start"]), time_limit=90, cwd=config.postgres_dir)
    if result.returncode != 0:
        raise StackError(
            f"PostgreSQL did not start (pg_ctl exit {result.returncode}): {result.output.strip()}\n"
            f"see {log}:\n{tail(log)}"
        )
    return f"started (pid {running_pid(config)})"


async def stop(config: StackConfig) -> str:
    pid = running_pid(config)
    if pid is None:
        return "not running"
    pg_ctl = [str(bin_dir(config) / "pg_ctl"), "-D", str(config.postgres_data_dir), "-w", "-t", "60"]
    # "fast" is SIGINT: roll back open transactions, disconnect clients, checkpoint, exit.
    result = await run_command(
        _as_server_user([*pg_ctl, "-m", "fast", "stop"]), time_limit=90, cwd=config.postgres_dir
    )
    if result.returncode == 0:
        return f"pid {pid} stopped (fast shutdown)"
    await run_command(
        _as_server_user([*pg_ctl, "-m", "immediate", "stop"]), time_limit=30, cwd=config.postgres_dir
    )
    return f"pid {pid} stopped (immediate shutdown, after: {result.output.strip()})"


async def _superuser_connection(config: StackConfig, database: str) -> asyncpg.Connection:
    password = _superuser_password_file(config).read_text(encoding="ascii").strip()
    return await asyncpg.connect(
        host=config.host,
        port=config.postgres_port,
        user=_SUPERUSER,
        password=password,
        database=database,
        timeout=10,
    )


async def _install_extensions(config: StackConfig, database: str) -> None:
    conn = await _superuser_connection(config, database)
    try:
        for extension in _EXTENSIONS:
            await conn.execute(f"CREATE EXTENSION IF NOT EXISTS {extension}")
    finally:
        await conn.close()


async def ensure_roles(config: StackConfig) -> str:
    """Role ``caseway`` (password ``caseway``, CREATEDB, not a superuser) and its database ``caseway``.

    ``earthdistance`` is not a trusted extension, so the superuser installs ``cube`` and
    ``earthdistance`` into template1 (every database created later has them, including each test's)
    and into ``caseway``; the migrations' ``CREATE EXTENSION IF NOT EXISTS`` then finds them, just as
    it would on a production server where an administrator installed them.
    """
    done: list[str] = []
    await _install_extensions(config, "template1")
    conn = await _superuser_connection(config, "postgres")
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", DB_USER):
            await conn.execute(f"CREATE ROLE {DB_USER} LOGIN CREATEDB PASSWORD '{DB_PASSWORD}'")
            done.append(f"role {DB_USER}")
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DB_NAME):
            await conn.execute(f"CREATE DATABASE {DB_NAME} OWNER {DB_USER}")
            done.append(f"database {DB_NAME}")
    finally:
        await conn.close()
    await _install_extensions(config, DB_NAME)
    return f"created {', '.join(done)}" if done else "role and database present"


@dataclass(frozen=True, slots=True)
class Probe:
    ready: bool
    detail: str


async def probe(database_url: str, *, time_limit: float = 5.0) -> Probe:
    """Ready means ``SELECT 1`` answers over a real connection with the application's credentials."""
    try:
        conn = await asyncpg.connect(asyncpg_dsn(database_url), timeout=time_limit)
    except Exception as exc:  # any failure means "not ready yet", reported as such
        return Probe(ready=False, detail=describe_error(exc))
    try:
        version = await conn.fetchval("SHOW server_version")
        await conn.fetchval("SELECT 1")
    except Exception as exc:  # the server went away between connect and query
        return Probe(ready=False, detail=describe_error(exc))
    finally:
        await conn.close()
    return Probe(ready=True, detail=f"PostgreSQL {version}")


async def wait_ready(database_url: str, *, time_limit: float = READY_TIMEOUT) -> str:
    deadline = time.monotonic() + time_limit
    last = Probe(ready=False, detail="not probed")
    while time.monotonic() < deadline:
        last = await probe(database_url, time_limit=min(5.0, max(0.5, deadline - time.monotonic())))
        if last.ready:
            return last.detail
        await asyncio.sleep(0.2)
    raise StackError(f"PostgreSQL was not ready within {time_limit:.0f} s ({last.detail})")
