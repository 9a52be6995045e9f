"""The Quick start's path, as a reader takes it: `caseway services up` starts the three services and the
mail sink as background processes, `caseway demo` sends the sample reports and shows what became of
them, and `caseway services down` stops everything again."""

from __future__ import annotations

import asyncio

import pytest
from typer.testing import CliRunner

from caseway_ops.cli import app
from caseway_ops.kafka_topics import create_topics, delete_topics

pytestmark = pytest.mark.infra


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
    runner = CliRunner()
    try:
        up = runner.invoke(app, ["services", "up"])
        assert up.exit_code == 0, up.output
        assert up.output.count("ready") >= 4

        demo = runner.invoke(app, ["demo"])
        assert demo.exit_code == 0, demo.output
        # Seven distinct reports (one delivered twice) become seven cases with their departments.
        assert "Cases (7)" in demo.output
        assert "streetscene*" in demo.output
        assert "needs-triage" in demo.output  # the phone call with an address only
        assert "Rejected" in demo.output
        assert "channel: Input should be" in demo.output
        assert "sent" in demo.output
        mails = list((tmp_path / "mail" / "new").iterdir())
        assert mails, "the mail sink received no email"
    finally:
        down = runner.invoke(app, ["services", "down"])
    assert down.exit_code == 0, down.output
    status = runner.invoke(app, ["services", "status"])
    assert "ready" not in status.output.replace("not ready", "")
    asyncio.run(delete_topics(infra.bootstrap_servers, prefix))
