"""Residents' contact details stay with intake: canary values planted through both ways in appear in no
log line of the service process (structlog, the standard library's loggers, uvicorn) and in no
ReportReceived; they are kept, apart, in intake.reporter_contacts.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import uuid

import httpx
import pytest

from caseway_shared.events import report_id_for

from .conftest import API_KEY

pytestmark = pytest.mark.infra


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_contact_details_appear_in_no_log_line_and_no_event(infra, topics, db, tmp_path):
    canary = uuid.uuid4().hex[:10]
    name, surname = f"Canaryname{canary}", f"Canarysurname{canary}"
    email, phone = f"canary{canary}@example.net", "0151 " + "".join(str(int(c, 16) % 10) for c in canary[:7])
    canaries = [name, surname, email, phone]
    port = _free_port()
    log_path = tmp_path / "intake.log"
    env = {
        **os.environ,
        **infra.env(),
        "CASEWAY_INTAKE_HTTP_PORT": str(port),
        "CASEWAY_INTAKE_OPEN311_SEED_API_KEY": API_KEY,
        "CASEWAY_LOG_LEVEL": "debug",
        "CASEWAY_LOG_FORMAT": "json",
    }
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(  # noqa: ASYNC220 - one process, reaped below
            [sys.executable, "-m", "caseway_intake"], env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
        try:
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=base, timeout=10) as client:
                deadline = time.monotonic() + 180  # a loaded 2-core machine starts slowly
                while True:
                    try:
                        if (await client.get("/readyz")).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    assert time.monotonic() < deadline, "intake did not become ready"
                    await asyncio.sleep(0.3)
                contact = {"first_name": name, "last_name": surname, "email": email, "phone": phone}
                form = {"api_key": API_KEY, "service_code": "noise", "address_string": "Bold St", **contact}
                accepted = await client.post("/open311/v2/requests.json", data=form)
                assert accepted.status_code == 200
                request_id = accepted.json()[0]["service_request_id"]
                refused = await client.post(
                    "/open311/v2/requests.json",
                    params={"email": email},
                    data={**form, "lat": "999", "email": f"{email} not valid", "phone": f"x{phone}"},
                )
                assert refused.status_code == 400
                assert not any(c in refused.text for c in canaries)

            reporter = {"name": f"{name} {surname}", "email": email, "phone": phone}
            good = topics.report_event(f"canary-{canary}", reporter=reporter)
            bad = topics.report_event(
                f"canary-bad-{canary}", reporter={**reporter, "email": f"not an email {email}"}
            )
            await topics.produce("contact-centre.reports.v1", [topics.as_bytes(bad), topics.as_bytes(good)])
            kafka_id = str(report_id_for("liverpool-direct", f"canary-{canary}"))
            received = await topics.read(
                "reports.received.v1", want=lambda rs: {kafka_id, request_id} <= set(topics.received_ids(rs))
            )
            assert {kafka_id, request_id} <= set(topics.received_ids(received))
            await topics.read(
                "reports.rejected.v1",
                want=lambda rs: any(r.key == f"canary-bad-{canary}".encode() for r in rs),
            )
        finally:
            process.terminate()
            process.wait(timeout=30)

    for record in received:
        assert not any(c.encode() in record.value for c in canaries)
    logs = log_path.read_text()
    lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    events = {line.get("event") for line in lines}
    # The capture works: the service's own lines about these very reports are there.
    assert any(line.get("report_id") == request_id for line in lines)
    assert "report_rejected" in events
    assert "service_stopping" in events
    for value in canaries:
        assert value not in logs, f"a contact detail reached the logs: {value}"
    stored = await db.fetchrow(
        "SELECT name, email, phone FROM intake.reporter_contacts WHERE report_id = $1", uuid.UUID(request_id)
    )
    assert dict(stored) == {"name": f"{name} {surname}", "email": email, "phone": phone}
