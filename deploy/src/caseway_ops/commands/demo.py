"""`caseway demo`: sample reports through the running services, and what became of them."""

from __future__ import annotations

from caseway_ops.commands.common import console, run
from caseway_ops.demo import run_demo
from caseway_ops.stack_config import StackConfig


def demo() -> None:
    """Publish a handful of residents' reports and show the cases and notifications they became."""
    run(run_demo(console, StackConfig.from_env()))
