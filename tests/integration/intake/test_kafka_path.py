"""Contact-centre events over the real broker: accepted ones become ReportReceived, bad ones land in
reports.rejected.v1 with the original bytes, every reason and their provenance, and are counted; the
consumer goes on. Case events intake cannot read are dead-lettered once.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaConsumer
from cryptography.fernet import Fernet
from prometheus_client.parser import text_string_to_metric_families

from caseway_intake.domain.privacy import DEVELOPMENT_CONTACT_KEY, Sealer
from caseway_shared.events import CaseStatusChanged, report_id_for

pytestmark = pytest.mark.infra


async def test_bad_events_are_rejected_with_reasons_and_the_consumer_keeps_going(intake, topics, db):
    run = uuid.uuid4().hex[:8]
    good_before = topics.report_event(f"good-a-{run}")
    not_json = b"\xff\xfe this is not json " + run.encode()
    invalid = topics.as_bytes(
        topics.report_event(
            f"bad-{run}",
            channel="pigeon",
            location={"lat": 123, "lon": -2.9},
            description="x" * 4001,
            received_at="yesterday",
        )
    )
    nul = topics.as_bytes(topics.report_event(f"nul-{run}", description="before\u0000after"))
    good_after = topics.report_event(f"good-b-{run}", category=None, category_text="rats in the alley")
    await topics.produce(
        "contact-centre.reports.v1",
        [topics.as_bytes(good_before), not_json, invalid, nul, topics.as_bytes(good_after)],
        key=run.encode(),
    )

    wanted = {str(report_id_for("liverpool-direct", f"good-{x}-{run}")) for x in "ab"}
    received = await topics.read(
        "reports.received.v1", want=lambda rs: wanted <= set(topics.received_ids(rs))
    )
    assert wanted <= set(topics.received_ids(received))
    after = next(
        json.loads(r.value)
        for r in received
        if json.loads(r.value)["report_id"] == str(report_id_for("liverpool-direct", f"good-b-{run}"))
    )
    assert after["category"] == "pests"

    def ours(records):
        return [r for r in records if r.key and run.encode() in r.key]

    rejected = await topics.read("reports.rejected.v1", want=lambda rs: len(ours(rs)) >= 3)
    mine = ours(rejected)
    assert len(mine) == 3
    payloads = [json.loads(r.value) for r in mine]
    by_original = {}
    for payload in payloads:
        original = payload["original"]
        data = original["data"]
        raw = base64.b64decode(data) if original["encoding"] == "base64" else data.encode()
        # A value that is not a JSON object is sealed whole (it may hide contact details): open it.
        by_original[Sealer([DEVELOPMENT_CONTACT_KEY]).unseal(raw)] = payload
    assert set(by_original) == {not_json, invalid, nul}

    for payload in payloads:
        source = payload["source"]
        assert source["topic"] == topics.name("contact-centre.reports.v1")
        assert isinstance(source["partition"], int)
        assert isinstance(source["offset"], int)
    assert by_original[invalid]["source"]["source_system"] == "liverpool-direct"
    fields = {reason.split(":")[0] for reason in by_original[invalid]["reasons"]}
    assert {"channel", "location.lat", "description", "received_at"} <= fields
    assert by_original[not_json]["reasons"][0].startswith("body: not valid UTF-8 JSON")
    assert by_original[nul]["reasons"] == ["description: contains a NUL character"]

    # The headers say the same for operators who filter without parsing.
    headers = {name: value.decode() for name, value in mine[0].headers}
    assert headers["event-type"] == "ReportRejected"
    assert "original-offset" in headers

    count = await db.fetchval("SELECT count(*) FROM intake.reports WHERE source_id LIKE $1", f"%-{run}")
    assert count == 2


def _rejected_counts(metrics: str) -> dict[tuple[str, str], float]:
    """caseway_records_rejected_total by (topic, reason), checking that it has no other labels."""
    counts: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            if sample.name == "caseway_records_rejected_total":
                assert set(sample.labels) == {"service", "topic", "reason"}
                assert sample.labels["service"] == "intake"
                counts[(sample.labels["topic"], sample.labels["reason"])] = sample.value
    return counts


async def test_every_rejected_record_is_counted_by_the_topic_it_came_from_and_the_kind_of_reason(
    intake, topics
):
    run = uuid.uuid4().hex[:8]
    source = topics.name("contact-centre.reports.v1")
    before = _rejected_counts((await intake.client.get("/metrics")).text)
    sealed_by_another_intake = Sealer([Fernet.generate_key().decode()]).seal(f"sealed {run}".encode())
    invalid = topics.report_event(
        f"bad-{run}", channel="pigeon", reporter={"name": "Ada Lovelace", "email": "ada@example.org"}
    )
    await topics.produce(
        "contact-centre.reports.v1",
        [
            b"not json " + run.encode(),
            topics.as_bytes(invalid),
            topics.as_bytes(topics.report_event(f"nul-{run}", description="a\u0000b")),
            sealed_by_another_intake,
            topics.as_bytes(topics.report_event(f"good-{run}")),
        ],
        key=run.encode(),
    )

    expected = {(source, "unreadable"): 1, (source, "invalid"): 2, (source, "unsealable"): 1}
    deadline = time.monotonic() + 60
    while True:
        metrics = (await intake.client.get("/metrics")).text
        after = _rejected_counts(metrics)
        added = {where: after.get(where, 0) - before.get(where, 0) for where in after}
        if {where: added.get(where, 0) for where in expected} == expected or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert {where: count for where, count in added.items() if count} == expected
    # The labels say where and what kind, never who: no resident's details, no source ids.
    for secret in ("Ada", "ada@example.org", run):
        assert all(secret not in line for line in metrics.splitlines() if "rejected" in line)


async def test_a_malformed_case_event_is_dead_lettered_once_when_its_batch_is_retried(intake, topics):
    case_id = uuid.uuid4()
    key = str(case_id).encode()

    def status_changed(note: str) -> bytes:
        event = CaseStatusChanged(
            occurred_at=datetime.now(UTC),
            case_id=case_id,
            reference="LV-2026-000042",
            status="acknowledged",
            note=note,
        )
        return event.model_dump_json().encode()

    # One batch: the unreadable event, then one PostgreSQL refuses (a NUL), which fails the batch's
    # transaction, so that the batch is tried again record by record.
    await topics.produce_together(
        "cases.v1",
        [
            b'{"event_type": "CaseOpened", "nonsense": true}',
            status_changed("before\u0000after"),
            status_changed("Crew sent"),
        ],
        key=key,
    )

    def error_of(record) -> str:
        return dict(record.headers)["error"].decode()

    def ours(records):
        return [r for r in records if r.key == key]

    # The refused event is dead-lettered after its retries, so after every copy of the malformed one.
    letters = ours(
        await topics.read(
            "ops.deadletter.v1",
            want=lambda rs: any("MalformedMessage" not in error_of(r) for r in ours(rs)),
            timeout=60,
        )
    )
    malformed = [letter for letter in letters if "MalformedMessage" in error_of(letter)]
    assert len(malformed) == 1, f"dead-lettered {len(malformed)} times"
    headers = {name: value.decode() for name, value in malformed[0].headers}
    assert headers["original-topic"] == topics.name("cases.v1")
    assert headers["attempts"] == "1"
    assert len(letters) == 2  # and the refused event once, after its retries


async def test_an_intake_replica_that_owns_no_partitions_stays_ready_and_says_so_on_consumerz(
    infra, intake, topics
):
    runtime = intake.app.state.runtime
    read = [topics.name("cases.v1"), topics.name("contact-centre.reports.v1")]
    # Twelve consumers in intake's group stand in for other replicas. The group's assignor deals the
    # partitions of both topics (six each) in turn to the members in the order of their ids, and the
    # stand-ins' ids sort first: they take every partition, and this replica is one beyond the count.
    spares = [
        AIOKafkaConsumer(
            *read,
            bootstrap_servers=infra.bootstrap_servers,
            group_id=f"{infra.topic_prefix}caseway-intake",
            client_id="a-spare-replica",
            enable_auto_commit=False,
        )
        for _ in range(12)
    ]
    try:
        for spare in spares:
            await spare.start()
        deadline = time.monotonic() + 120
        while any(runtime.consumer_assignment().values()) or not all(s.assignment() for s in spares):
            assert time.monotonic() < deadline, "the stand-ins never took the partitions"
            await asyncio.gather(*(s.getmany(timeout_ms=100) for s in spares))

        ready = await intake.client.get("/readyz")
        consumerz = await intake.client.get("/consumerz")
    finally:
        for spare in spares:
            await spare.stop()

    assert ready.status_code == 200, ready.json()
    assert ready.json() == {"ready": True, "checks": {"kafka": True, "database": True}}
    assert consumerz.status_code == 503
    assert consumerz.json() == {"consuming": False, "assigned": {topic: [] for topic in read}}
