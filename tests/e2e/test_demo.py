"""The Quick start's path, as a reader takes it: `caseway services up` starts the three services and the
mail sink as background processes, `caseway demo` sends the sample reports and shows what became of
them, and `caseway services down` stops everything again.

`make demo` leaves its services and mail sink running on the usual ports (1025, 8080-8082) before
`make test` runs this, so the test's processes take free ports of their own (and a state folder of
their own): whatever runs already, they never collide with it, and stopping them stops nothing else.
"""

from __future__ import annotations

import asyncio
import socket
from contextlib import ExitStack

import pytest
from typer.testing import CliRunner

from caseway_ops.cli import app
from caseway_ops.kafka_topics import create_topics, delete_topics
from caseway_ops.stack_config import (
    DEFAULT_INTAKE_PORT,
    DEFAULT_MAIL_SINK_PORT,
    DEFAULT_NOTIFIER_PORT,
    DEFAULT_ROUTER_PORT,
)

pytestmark = pytest.mark.infra

PORT_VARIABLES = (
    "CASEWAY_MAIL_SINK_PORT",
    "CASEWAY_INTAKE_HTTP_PORT",
    "CASEWAY_ROUTER_HTTP_PORT",
    "CASEWAY_NOTIFIER_HTTP_PORT",
)


def _free_ports(count: int) -> list[int]:
    """Ports nothing listens on now (all held open together, so they are distinct)."""
    with ExitStack() as held:
        sockets = [held.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


@pytest.mark.timeout(300)
def test_services_up_demo_and_services_down(infra, tmp_path, monkeypatch):
    # Topics of its own: the other end-to-end test reads the session's topics whole.
    prefix = f"{infra.topic_prefix}demo."
    asyncio.run(create_topics(infra.bootstrap_servers, prefix))
    for name, value in infra.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CASEWAY_TOPIC_PREFIX", prefix)
    monkeypatch.setenv("CASEWAY_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "250")
    ports = dict(zip(PORT_VARIABLES, _free_ports(len(PORT_VARIABLES)), strict=True))
    for name, port in ports.items():
        monkeypatch.setenv(name, str(port))
    monkeypatch.delenv("CASEWAY_NOTIFIER_SMTP_PORT", raising=False)
    runner = CliRunner()
    try:
        up = runner.invoke(app, ["services", "up"])
        assert up.exit_code == 0, up.output
        assert up.output.count("ready") >= 4
        # Its own ports, never the ones `make demo` leaves its processes on.
        for port in ports.values():
            assert f" {port} " in up.output
        for port in (DEFAULT_MAIL_SINK_PORT, DEFAULT_INTAKE_PORT, DEFAULT_ROUTER_PORT, DEFAULT_NOTIFIER_PORT):
            assert f" {port} " not in up.output

        demo = runner.invoke(app, ["demo"])
        assert demo.exit_code == 0, demo.output
        # Seven distinct reports (one delivered twice) become seven cases with their departments.
        assert "Cases (7)" in demo.output
        assert "streetscene*" in demo.output
        assert "needs-triage" in demo.output  # the phone call with an address only
        assert "Rejected" in demo.output
        assert "channel: Input should be" in demo.output
        assert "sent" in demo.output
        # The notifier mailed this test's sink, on this test's port.
        mails = list((tmp_path / "mail" / "new").iterdir())
        assert mails, "the mail sink received no email"
    finally:
        down = runner.invoke(app, ["services", "down"])
    assert down.exit_code == 0, down.output
    status = runner.invoke(app, ["services", "status"])
    assert "ready" not in status.output.replace("not ready", "")
    asyncio.run(delete_topics(infra.bootstrap_servers, prefix))
