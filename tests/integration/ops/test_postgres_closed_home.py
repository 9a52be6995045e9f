"""`make demo` as root from a checkout in a home folder others cannot enter (mode 700, as /root is):
the stack's own PostgreSQL, which runs as the `postgres` OS user, must still initialise, start, answer
and stop, with no setting to add; where no folder it can reach can be found, it says so clearly.

Only root meets this: anyone else runs the server as themselves."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import tempfile
from pathlib import Path

import pytest

from caseway_ops import postgres_server
from caseway_ops.errors import StackError
from caseway_ops.stack_config import StackConfig


@pytest.fixture(autouse=True)
def _as_root() -> None:
    """Only root runs the server as another OS user. CI runs as root, so there a non-root run is a
    broken set-up and fails; elsewhere the test is skipped."""
    if os.geteuid() != 0:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI must run as root: the closed-home PostgreSQL test needs it", pytrace=False)
        pytest.skip("only root runs the server as another OS user")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def folders():
    """A closed home folder (as /root) with a checkout's state folder in it, and an open folder that
    stands in for /var/tmp."""
    home = Path(tempfile.mkdtemp(prefix="caseway-home-"))  # mode 700
    outside = Path(tempfile.mkdtemp(prefix="caseway-var-tmp-", dir="/var/tmp"))
    outside.chmod(0o755)
    yield home, outside
    shutil.rmtree(home, ignore_errors=True)
    shutil.rmtree(outside, ignore_errors=True)


def _config(state_dir: Path, outside_root: Path) -> StackConfig:
    return StackConfig(
        deploy_dir=StackConfig.from_env({}).deploy_dir,
        state_dir=state_dir,
        postgres_port=_free_port(),
        postgres_outside_root=outside_root,
    )


@pytest.mark.timeout(240)
async def test_the_stack_runs_its_postgres_from_a_checkout_in_a_closed_home(folders):
    home, outside = folders
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    config = _config(home / "qs" / "deploy" / ".state", outside)
    try:
        assert "cannot reach" in await postgres_server.ensure_cluster(config)
        assert (await postgres_server.start(config)).startswith("started")
        await postgres_server.ensure_roles(config)
        assert "PostgreSQL" in await postgres_server.wait_ready(config.database_url, time_limit=60)

        data = postgres_server.data_dir(config)
        assert data.parent.parent == outside
        assert data.owner() == "postgres"
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        # The log is read where the README says logs are.
        assert (config.logs_dir / "postgres.log").resolve() == postgres_server.log_file(config)
        # Up again finds the same cluster running.
        assert "already initialised" in await postgres_server.ensure_cluster(config)
        assert (await postgres_server.start(config)).startswith("already running")
    finally:
        stopped = await postgres_server.stop(config)
    assert "stopped" in stopped
    assert postgres_server.running_pid(config) is None


async def test_with_no_folder_the_server_user_can_reach_the_message_says_what_to_set(folders):
    home, _ = folders
    closed_outside = home / "var-tmp"  # inside the closed home: the postgres user cannot reach it either
    closed_outside.mkdir()
    config = _config(home / "qs" / "deploy" / ".state", closed_outside)
    with pytest.raises(StackError, match="set CASEWAY_STATE_DIR"):
        await postgres_server.ensure_cluster(config)
