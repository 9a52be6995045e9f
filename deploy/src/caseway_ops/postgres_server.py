"""The local PostgreSQL server: a cluster of the project's own under ``.state/postgres``, run by pg_ctl.

It never touches Debian's "15 main" cluster; it listens on TCP only (no Unix socket that could collide
with a system server's), and refuses to start if anything else already answers on its port. initdb
refuses to run as root, so as root every server command runs as the ``postgres`` OS user.

That user must reach the cluster's folder. A checkout in a home folder others cannot enter (``/root`` is
mode 700) is out of its reach, so as root the cluster then lives outside the checkout, in a folder of
its own under ``/var/tmp`` (``caseway-postgres-<hash of the state folder>``, owned by root, mode 755;
the data inside owned by ``postgres``, mode 700). The choice is made again on every command from the
same inputs, so up, status and down always find the same cluster; ``<state>/logs/postgres.log`` links
to its log. A folder there whose checkout is gone is removed on the next ``stack up``.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import hashlib
import os
import pwd
import secrets
import shutil
import stat
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
OUTSIDE_PREFIX = "caseway-postgres-"


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


def _server_account() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(_OS_USER)
    except KeyError:
        raise StackError(
            f"running as root, the stack runs PostgreSQL as the `{_OS_USER}` OS user, which does not exist; "
            f"{_INSTALL_HINT}"
        ) from None


def _give_to_server_user(*paths: Path) -> None:
    if not _running_as_root():
        return
    entry = _server_account()
    for path in paths:
        os.chown(path, entry.pw_uid, entry.pw_gid)


@dataclass(frozen=True, slots=True)
class ServerUser:
    """The OS user the server runs as, when that is not the invoking user: its uid and every group."""

    uid: int
    gids: frozenset[int]

    @classmethod
    def current(cls) -> ServerUser | None:
        """``postgres`` when running as root (the server cannot run as root); None otherwise."""
        if not _running_as_root():
            return None
        entry = _server_account()
        groups = {g.gr_gid for g in grp.getgrall() if _OS_USER in g.gr_mem}
        return cls(uid=entry.pw_uid, gids=frozenset({entry.pw_gid, *groups}))


def can_enter(path: Path, user: ServerUser) -> bool:
    """Whether ``user`` may pass through every existing folder from ``/`` down to ``path``, judged from
    the permission bits (owner, group, others). Folders not made yet will be made open (755)."""
    for folder in (*reversed(path.parents), path):
        try:
            info = folder.stat()
        except FileNotFoundError:
            break
        if info.st_uid == user.uid:
            allowed = info.st_mode >> 6
        elif info.st_gid in user.gids:
            allowed = info.st_mode >> 3
        else:
            allowed = info.st_mode
        if not allowed & stat.S_IXOTH:
            return False
    return True


def outside_dir(config: StackConfig) -> Path:
    """The cluster's folder when the state folder is out of the server user's reach: one per state
    folder, under ``config.postgres_outside_root`` (``/var/tmp``)."""
    digest = hashlib.sha256(str(config.state_dir).encode()).hexdigest()[:12]
    return config.postgres_outside_root / f"{OUTSIDE_PREFIX}{digest}"


def server_dir(config: StackConfig, user: ServerUser | None = None) -> Path:
    """Where the cluster, its superuser's password and (outside the state folder) its log live:
    ``<state>/postgres`` when the server's OS user can reach it, else `outside_dir`."""
    user = user if user is not None else ServerUser.current()
    if user is None or can_enter(config.postgres_dir, user):
        return config.postgres_dir
    return outside_dir(config)


def data_dir(config: StackConfig) -> Path:
    return server_dir(config) / "data"


def is_initialised(config: StackConfig) -> bool:
    return (data_dir(config) / "PG_VERSION").is_file()


def log_file(config: StackConfig) -> Path:
    """The server's log: in ``<state>/logs``, or beside the cluster when it lives outside the state
    folder (``<state>/logs/postgres.log`` then links to it)."""
    where = server_dir(config)
    return config.logs_dir / "postgres.log" if where == config.postgres_dir else where / "postgres.log"


def _prepare_outside(config: StackConfig, folder: Path) -> None:
    """Make the folder outside the checkout, refusing one that someone else made or may change."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o755)
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise StackError(
            f"{folder} (where the cluster goes, since the `{_OS_USER}` OS user cannot reach "
            f"{config.postgres_dir}) exists but is not a folder that only this user may change; remove "
            "it, or set CASEWAY_STATE_DIR to a folder the postgres user can reach"
        )
    (folder / "origin").write_text(f"{config.state_dir}\n", encoding="utf-8")


def forget_abandoned_clusters(config: StackConfig) -> list[Path]:
    """Remove clusters outside a state folder whose state folder is gone and which do not run."""
    removed = []
    for folder in config.postgres_outside_root.glob(f"{OUTSIDE_PREFIX}*"):
        try:
            info = folder.lstat()
            origin = Path((folder / "origin").read_text(encoding="utf-8").strip())
        except (OSError, ValueError):
            continue
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or origin.exists():
            continue
        if _postmaster_pid(folder / "data") is not None:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def _link_log(config: StackConfig, log: Path) -> None:
    link = config.logs_dir / "postgres.log"
    if log == link:
        return
    if link.is_symlink() and link.readlink() == log:
        return
    link.unlink(missing_ok=True)
    link.symlink_to(log)


def _superuser_password_file(config: StackConfig) -> Path:
    return server_dir(config) / "superuser.password"


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
            # The router takes an advisory lock per map cell and address of each report it routes (at most
            # CASEWAY_ROUTER_MOST_LOCKS_PER_TRANSACTION = 1000 per transaction); the lock table holds this
            # x max_connections, so several replicas catching up never run out of shared memory.
            "max_locks_per_transaction = 256",
            "shared_buffers = 256MB",
            "work_mem = 8MB",
            "maintenance_work_mem = 128MB",
            "effective_cache_size = 1GB",
            # Durability is not traded for speed: every commit is flushed before it is acknowledged.
            "fsync = on",
            "synchronous_commit = on",
            "full_page_writes = on",
            # Under sustained load the default 1 GB of WAL forces a checkpoint every few minutes, and each
            # one is followed by a burst of full-page writes; these spread checkpoints out and smooth them.
            "wal_buffers = 16MB",
            "max_wal_size = 4GB",
            "min_wal_size = 512MB",
            "checkpoint_timeout = 15min",
            "checkpoint_completion_target = 0.9",
            "password_encryption = 'scram-sha-256'",
            "timezone = 'UTC'",
            "log_timezone = 'UTC'",
            "log_line_prefix = '%m [%p] %q%u@%d '",
            "log_min_duration_statement = 1000",
            "log_lock_waits = on",
            *_statement_statistics(config),
            "",
        ]
    )


def _statement_statistics(config: StackConfig) -> list[str]:
    """pg_stat_statements, for the benchmark's top statements, where the server has the module (Debian's
    PostgreSQL ships it; a server without it still starts)."""
    try:
        library = bin_dir(config).parent / "lib" / "pg_stat_statements.so"
    except StackError:
        return []
    return ["shared_preload_libraries = 'pg_stat_statements'"] if library.is_file() else []


_HBA = """# Written by caseway_ops.postgres_server. Loopback only, passwords always (SCRAM).
# TYPE  DATABASE  USER  ADDRESS       METHOD
host    all       all   127.0.0.1/32  scram-sha-256
host    all       all   ::1/128       scram-sha-256
"""


def _write_settings(config: StackConfig) -> None:
    data = data_dir(config)
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
    """The postgres OS user must be able to write the data directory (the permission bits said it can
    reach it; access lists or a mount may still say no, and this asks the system itself)."""
    if not _running_as_root():
        return
    data = data_dir(config)
    test = find_executable("test", "coreutils")
    result = await run_command(_as_server_user([test, "-w", str(data)]), time_limit=10)
    if result.returncode != 0:
        raise StackError(
            f"the `{_OS_USER}` OS user cannot write {data} (a parent folder is not open to it); set "
            "CASEWAY_STATE_DIR to a folder it can reach"
        )


async def ensure_cluster(config: StackConfig) -> str:
    """initdb once (superuser password kept beside the data, see `server_dir`); refresh the settings."""
    where = server_dir(config)
    data = where / "data"
    outside = where != config.postgres_dir
    if _running_as_root():
        forget_abandoned_clusters(config)
    if (data / "PG_VERSION").is_file():
        _write_settings(config)
        return "already initialised" + (f" in {where}" if outside else "")
    config.state_dir.mkdir(parents=True, exist_ok=True)
    config.state_dir.chmod(0o755)
    if outside:
        _prepare_outside(config, where)
    else:
        where.mkdir(parents=True, exist_ok=True)
        where.chmod(0o755)
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
    result = await run_command(_as_server_user(argv), time_limit=180, cwd=where)
    config.logs_dir.mkdir(parents=True, exist_ok=True)
    log = config.logs_dir / "initdb.log"
    log.write_text(f"$ {' '.join(argv)}\n{result.output}", encoding="utf-8")
    if result.returncode != 0:
        raise StackError(f"initdb failed (exit {result.returncode}); see {log}:\n{tail(log)}")
    _write_settings(config)
    if outside:
        return f"initialised {data} (the `{_OS_USER}` OS user cannot reach {config.postgres_dir})"
    return f"initialised {data}"


def _postmaster_pid(data: Path) -> int | None:
    try:
        first = (data / "postmaster.pid").read_text(encoding="ascii").splitlines()[0]
        pid = int(first)
    except (OSError, ValueError, IndexError):
        return None
    if not is_alive(pid) or str(data) not in command_line(pid):
        return None  # a stale postmaster.pid whose pid now belongs to another process
    return pid


def running_pid(config: StackConfig) -> int | None:
    """The postmaster's pid if our cluster runs (from postmaster.pid, checked against the process)."""
    return _postmaster_pid(data_dir(config))


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
    log = log_file(config)
    log.touch()
    _give_to_server_user(log)
    _link_log(config, log)
    argv = [
        str(bin_dir(config) / "pg_ctl"),
        "-D",
        str(data_dir(config)),
        "-l",
        str(log),
        "-w",
        "-t",
        "60",
    ]
    result = await run_command(_as_server_user([*argv, "start"]), time_limit=90, cwd=server_dir(config))
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
    where = server_dir(config)
    pg_ctl = [str(bin_dir(config) / "pg_ctl"), "-D", str(where / "data"), "-w", "-t", "60"]
    # "fast" is SIGINT: roll back open transactions, disconnect clients, checkpoint, exit.
    result = await run_command(_as_server_user([*pg_ctl, "-m", "fast", "stop"]), time_limit=90, cwd=where)
    if result.returncode == 0:
        return f"pid {pid} stopped (fast shutdown)"
    await run_command(_as_server_user([*pg_ctl, "-m", "immediate", "stop"]), time_limit=30, cwd=where)
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
        if _statement_statistics(config):
            # For the benchmark's top statements: pg_stat_statements is not a trusted extension, and its
            # reset is the superuser's unless granted (a grant in template1 is copied to each new database).
            await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            await conn.execute(
                f"GRANT EXECUTE ON FUNCTION pg_stat_statements_reset(oid, oid, bigint) TO {DB_USER}"
            )
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
    conn = await _superuser_connection(config, "postgres")
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", DB_USER):
            await conn.execute(f"CREATE ROLE {DB_USER} LOGIN CREATEDB PASSWORD '{DB_PASSWORD}'")
            done.append(f"role {DB_USER}")
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DB_NAME):
            await conn.execute(f"CREATE DATABASE {DB_NAME} OWNER {DB_USER}")
            done.append(f"database {DB_NAME}")
        # Every statement's text in pg_stat_statements, not only its own role's (the services' roles).
        await conn.execute(f"GRANT pg_read_all_stats TO {DB_USER}")
    finally:
        await conn.close()
    # The role first: template1's grants name it. Databases made before this from template1 (this one,
    # if just created) get their extensions below.
    await _install_extensions(config, "template1")
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
