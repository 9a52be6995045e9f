"""The local stack's PostgreSQL settings (issue 16, item 12): what the services need (connections, the
router's advisory locks), checkpoints spread out under load, and durability kept."""

from pathlib import Path

from caseway_ops.postgres_server import render_settings
from caseway_ops.stack_config import StackConfig


def _settings() -> dict[str, str]:
    text = render_settings(StackConfig(deploy_dir=Path("deploy"), state_dir=Path("/tmp/caseway-state")))
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))
    return {name.strip(): value.strip().strip("'") for name, value in pairs}


def test_durability_is_kept():
    settings = _settings()
    assert (settings["fsync"], settings["synchronous_commit"], settings["full_page_writes"]) == (
        "on",
        "on",
        "on",
    )


def test_the_lock_table_holds_several_routers_at_their_lock_budget():
    settings = _settings()
    lock_table = int(settings["max_locks_per_transaction"]) * int(settings["max_connections"])
    assert (
        lock_table >= 4 * 1000
    )  # four router replicas each holding CASEWAY_ROUTER_MOST_LOCKS_PER_TRANSACTION


def test_checkpoints_are_spread_out_under_sustained_load():
    settings = _settings()
    assert settings["max_wal_size"] == "4GB"
    assert settings["checkpoint_timeout"] == "15min"
    assert float(settings["checkpoint_completion_target"]) >= 0.9
