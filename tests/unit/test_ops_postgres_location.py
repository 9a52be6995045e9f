"""Where the local PostgreSQL cluster lives: in the checkout's state folder when the server's OS user can
reach it, else in a folder of its own outside the checkout (root's home is mode 700, and as root the
server runs as `postgres`), chosen the same way every time so that up, status and down agree."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from caseway_ops.postgres_server import (
    ServerUser,
    can_enter,
    forget_abandoned_clusters,
    outside_dir,
    server_dir,
)
from caseway_ops.stack_config import StackConfig

STRANGER = ServerUser(uid=54321, gids=frozenset({54321}))


@pytest.fixture
def open_dir():
    """A folder everyone may enter (pytest's own temporary folders are private to their owner)."""
    with tempfile.TemporaryDirectory(prefix="caseway-location-") as name:
        folder = Path(name)
        folder.chmod(0o755)
        yield folder


def _config(state_dir: Path, outside_root: Path) -> StackConfig:
    deploy = StackConfig.from_env({}).deploy_dir
    return StackConfig(deploy_dir=deploy, state_dir=state_dir, postgres_outside_root=outside_root)


def test_a_folder_closed_to_others_stops_another_user_on_the_way_down(open_dir):
    home = open_dir / "home"
    (home / "clone" / "deploy").mkdir(parents=True)
    home.chmod(0o700)
    assert not can_enter(home / "clone" / "deploy" / ".state" / "postgres", STRANGER)
    home.chmod(0o755)
    assert can_enter(home / "clone" / "deploy" / ".state" / "postgres", STRANGER)


def test_owner_and_group_permissions_count_for_their_owner_and_group(open_dir):
    folder = open_dir / "team"
    folder.mkdir()
    folder.chmod(0o750)
    member = ServerUser(uid=54321, gids=frozenset({folder.stat().st_gid}))
    owner = ServerUser(uid=folder.stat().st_uid, gids=frozenset())
    assert can_enter(folder / "x", member)
    assert can_enter(folder / "x", owner)
    assert not can_enter(folder / "x", STRANGER)


def test_the_cluster_stays_in_the_state_folder_when_the_server_user_can_reach_it(open_dir):
    config = _config(open_dir / "clone" / "deploy" / ".state", open_dir / "outside")
    assert server_dir(config, STRANGER) == config.postgres_dir


def test_the_cluster_moves_outside_a_home_folder_closed_to_the_server_user(open_dir):
    home = open_dir / "root"
    home.mkdir(mode=0o700)
    config = _config(home / "qs" / "deploy" / ".state", open_dir / "outside")
    chosen = server_dir(config, STRANGER)
    assert chosen == outside_dir(config)
    assert chosen.parent == open_dir / "outside"
    assert chosen.name.startswith("caseway-postgres-")


def test_each_state_folder_has_its_own_outside_folder_and_keeps_it(open_dir):
    one = _config(open_dir / "a" / ".state", open_dir)
    two = _config(open_dir / "b" / ".state", open_dir)
    assert outside_dir(one) != outside_dir(two)
    assert outside_dir(one) == outside_dir(_config(open_dir / "a" / ".state", open_dir))


def test_running_as_the_invoking_user_keeps_the_cluster_in_the_state_folder(open_dir):
    home = open_dir / "home"
    home.mkdir(mode=0o700)
    config = _config(home / ".state", open_dir)
    if os.geteuid() != 0:
        assert server_dir(config) == config.postgres_dir
    assert server_dir(config, None) in {config.postgres_dir, outside_dir(config)}


def test_a_cluster_whose_checkout_is_gone_is_forgotten_and_others_are_kept(open_dir):
    gone = _config(open_dir / "deleted-clone" / ".state", open_dir)
    kept = _config(open_dir / "clone" / ".state", open_dir)
    kept.state_dir.mkdir(parents=True)
    for config in (gone, kept):
        folder = outside_dir(config)
        (folder / "data").mkdir(parents=True)
        (folder / "origin").write_text(f"{config.state_dir}\n", encoding="utf-8")
    removed = forget_abandoned_clusters(kept)
    assert removed == [outside_dir(gone)]
    assert not outside_dir(gone).exists()
    assert outside_dir(kept).is_dir()
