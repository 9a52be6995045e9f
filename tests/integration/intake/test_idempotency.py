"""The same upstream report, or the same POST with the same Idempotency-Key, is one report, even when it
comes again after intake restarted. A re-posted request publishes nothing new; an upstream report that
comes again has the event it was first accepted with published again, unchanged: intake's consumer
publishes after its commit and cannot tell a redelivery after a crash from an upstream repeat (issue 16
item 7), and the router keeps one report per id.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from caseway_shared.events import report_id_for

from .conftest import API_KEY, running_intake, settings_for

pytestmark = pytest.mark.infra
FORM = {"api_key": API_KEY, "service_code": "graffiti", "address_string": "Lark Lane", "description": "Tags"}


async def test_redelivery_and_reposting_across_a_restart_make_no_new_report(infra, topics, db):
    run = uuid.uuid4().hex[:8]
    event = topics.report_event(f"dup-{run}")
    report_id = str(report_id_for("liverpool-direct", f"dup-{run}"))
    client_key = f"key-{run}"

    async with running_intake(settings_for(infra)) as first:
        await topics.produce("contact-centre.reports.v1", [topics.as_bytes(event)])
        posted = await first.client.post(
            "/open311/v2/requests.json", data=FORM, headers={"Idempotency-Key": client_key}
        )
        request_id = posted.json()[0]["service_request_id"]
        await topics.read(
            "reports.received.v1", want=lambda rs: {report_id, request_id} <= set(topics.received_ids(rs))
        )

    async with running_intake(settings_for(infra)) as second:
        # Redelivered with different bytes (an upstream retry may re-serialise), then a marker after it.
        again = topics.report_event(f"dup-{run}", description="Same report, sent again.")
        marker = str(report_id_for("liverpool-direct", f"marker-{run}"))
        await topics.produce(
            "contact-centre.reports.v1",
            [topics.as_bytes(again), topics.as_bytes(topics.report_event(f"marker-{run}"))],
        )
        reposted = await second.client.post(
            "/open311/v2/requests.json", data=FORM, headers={"Idempotency-Key": client_key}
        )
        assert reposted.status_code == 200
        assert reposted.json()[0]["service_request_id"] == request_id
        await topics.read("reports.received.v1", want=lambda rs: marker in topics.received_ids(rs))
        await asyncio.sleep(1)  # the outbox relay runs on its own: give a wrong duplicate time to appear
        records = await topics.read("reports.received.v1", want=lambda _records: False, timeout=3)

    ids = topics.received_ids(records)
    mine = [json.loads(r.value) for r in records if json.loads(r.value)["report_id"] == report_id]
    assert len(mine) == 2
    assert mine[0] == mine[1], "the repeat must carry the event first accepted, not the new bytes"
    assert mine[0]["description"] == event["description"]
    assert ids.count(request_id) == 1
    assert ids.count(marker) == 1
    rows = await db.fetchval(
        "SELECT count(*) FROM intake.reports WHERE report_id = ANY($1::uuid[])", [report_id, request_id]
    )
    assert rows == 2
