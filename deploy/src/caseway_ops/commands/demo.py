"""`caseway demo`: sample reports through the running services, and what became of them."""

from __future__ import annotations

from caseway_ops.commands.common import console, run
from caseway_ops.demo import run_demo


def demo() -> None:
    """Publish a handful of residents' reports and show the cases and notifications they became."""
    run(run_demo(console))
