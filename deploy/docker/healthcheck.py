"""The Caseway image's HEALTHCHECK: GET /healthz of the service this container runs (standard library only).

The service is found from the container's processes (`caseway-intake`, `caseway-router` or
`caseway-notifier` on a command line), its port from the service's own setting
(`CASEWAY_<SERVICE>_HTTP_PORT`) or its default. A container running a tool instead (`caseway stack up`, a
mail sink) has nothing to check and is healthy. Exit status 0 healthy, 1 not.
"""
# ruff: noqa: INP001 - copied into the image as a script, not a package

from __future__ import annotations

import os
import sys
import urllib.request
from pathlib import Path

SERVICES = {
    "caseway-intake": ("CASEWAY_INTAKE_HTTP_PORT", 8080),
    "caseway-router": ("CASEWAY_ROUTER_HTTP_PORT", 8081),
    "caseway-notifier": ("CASEWAY_NOTIFIER_HTTP_PORT", 8082),
}
HEALTHY = 200


def running_service(proc: Path = Path("/proc")) -> str | None:
    """The service one of the container's processes runs, if any."""
    for entry in sorted(proc.iterdir(), key=lambda p: p.name):
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        for arg in argv[:3]:
            name = os.path.basename(arg.decode(errors="replace"))  # noqa: PTH119 - argv, not a path
            if name in SERVICES:
                return name
    return None


def main() -> int:
    service = running_service()
    if service is None:
        return 0
    variable, default = SERVICES[service]
    port = int(os.environ.get(variable) or default)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3) as answer:
            healthy = answer.status == HEALTHY
    except OSError as exc:
        sys.stderr.write(f"{service}: /healthz on port {port}: {exc}\n")
        return 1
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
