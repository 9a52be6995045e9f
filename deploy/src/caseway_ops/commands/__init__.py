"""The sub-commands of `caseway`, one module (and one typer app) each, registered in caseway_ops.cli."""
