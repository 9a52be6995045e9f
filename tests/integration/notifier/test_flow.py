"""The notifier end to end against the real broker and database and the loopback servers: case events
in on cases.v1, alerts out once over their channels, every attempt but a first success recorded,
outcomes on notifications.v1, failures on ops.deadletter.v1, digests and escalation."""

import asyncio
import email
import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from caseway_shared.events import CaseStatusChanged
from factories import case_opened, report_linked

from .conftest import HOOD

pytestmark = pytest.mark.infra

_counter = iter(range(1, 10_000_000))


def _reference() -> str:
    return f"IT-{uuid.uuid4().hex[:6]}-{next(_counter):06d}"


def _opened(departments, **options):
    """A case in the test directory's neighbourhood, with a reference no other test's messages contain."""
    return case_opened(departments=departments, reference=_reference(), neighbourhood=HOOD, **options)


async def _publish(running, *events):
    for event in events:
        await running.producer.send_and_wait(
            f"{running.prefix}cases.v1",
            event.model_dump_json().encode(),
            key=str(event.case_id).encode(),
            headers=[("event-type", event.event_type.encode()), ("correlation-id", b"it-correlation")],
        )


async def _until(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        result = await predicate()
        if result:
            return result
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.1)


async def _rows(db, case_id):
    return await db.fetch(
        "SELECT notification_key, team, channel, kind, status, attempts FROM notifier.notifications"
        " WHERE case_id = $1 ORDER BY notification_key",
        case_id,
    )


async def test_each_team_is_alerted_once_on_each_channel_even_when_the_event_is_delivered_again(
    notifier, db, topic_reader
):
    event = _opened(("waste", "streetscene"), summary="see http://evil.example/x")
    await _publish(notifier, event)

    async def all_sent():
        rows = await _rows(db, event.case_id)
        return rows if len(rows) == 4 and all(r["status"] == "sent" for r in rows) else None

    rows = await _until(all_sent)
    assert {(r["team"], r["channel"], r["kind"]) for r in rows} == {
        ("it-waste", "email", "new-case"),
        ("it-waste", "webhook", "new-case"),
        ("it-streets", "email", "new-case"),
        (f"manager:{HOOD}", "email", "joining-up"),
    }
    await _publish(notifier, event)  # redelivered, e.g. after a rebalance or a replay
    suppressed = await topic_reader(
        notifier,
        "notifications.v1",
        want=lambda rs: (
            sum(
                json.loads(r.value)["event_type"] == "NotificationSuppressed"
                and r.key == str(event.case_id).encode()
                for r in rs
            )
            >= 4
        ),
    )
    mine = [json.loads(r.value) for r in suppressed if r.key == str(event.case_id).encode()]
    assert sorted(m["event_type"] for m in mine).count("NotificationSent") == 4
    assert sorted(m["event_type"] for m in mine).count("NotificationSuppressed") == 4
    await asyncio.sleep(0.5)
    mails = notifier.sink.containing(event.reference)
    assert sorted(rcpt for rcpts, _ in mails for rcpt in rcpts) == [
        "it-manager@example.org",
        "it-streets@example.org",
        "it-waste@example.org",
    ]
    assert len(notifier.webhooks.containing(event.reference)) == 1
    assert not any(b"evil" in content for _, content in mails)
    body = email.message_from_bytes(mails[0][1]).get_payload()
    assert f"https://staff.example.org/cases/{event.reference}" in body
    # Each went at the first try: its own row says it all (sent, one attempt), no attempts row besides.
    rows = await db.fetch(
        "SELECT n.status, n.attempts, n.sent_at, (SELECT count(*) FROM notifier.attempts a"
        " WHERE a.notification_key = n.notification_key) AS history"
        " FROM notifier.notifications n WHERE n.case_id = $1",
        event.case_id,
    )
    assert [(r["status"], r["attempts"], r["sent_at"] is not None, r["history"]) for r in rows] == [
        ("sent", 1, True, 0)
    ] * 4


async def test_transient_failures_are_retried_with_backoff_and_every_attempt_is_recorded(notifier, db):
    notifier.webhooks.script["/flaky"] = [503, 429]
    event = _opened(("highways",))
    await _publish(notifier, event)

    async def sent():
        rows = await _rows(db, event.case_id)
        return rows if rows and rows[0]["status"] == "sent" else None

    [row] = await _until(sent)
    assert row["attempts"] == 3
    outcomes = await db.fetch(
        "SELECT outcome, attempt FROM notifier.attempts WHERE notification_key = $1 ORDER BY attempt",
        row["notification_key"],
    )
    assert [(o["outcome"], o["attempt"]) for o in outcomes] == [("retry", 1), ("retry", 2), ("sent", 3)]
    assert len(notifier.webhooks.containing(event.reference, path="/flaky")) == 3


async def test_permanent_failures_are_failed_dead_lettered_as_notifications_and_can_be_re_sent(
    notifier, db, topic_reader
):
    """A 404 and a refused mailbox are permanent at once. The dead letter is the notification's (it names
    no topic to replay it to, since it came from no record: replaying it into cases.v1 would inject a
    non-event), holds no address (a webhook URL is a secret), and an operator re-sends it by command."""
    from caseway_ops.commands.notifications import resend  # noqa: PLC0415

    notifier.webhooks.always["/gone"] = 404
    event = _opened(("housing",))
    await _publish(notifier, event)

    async def settled():
        rows = [r for r in await _rows(db, event.case_id) if r["team"] != f"manager:{HOOD}"]
        return rows if len(rows) == 2 and all(r["status"] == "failed" for r in rows) else None

    rows = await _until(settled)
    attempts = {(r["team"], r["channel"]): r["attempts"] for r in rows}
    assert attempts == {("it-broken", "webhook"): 1, ("it-broken", "email"): 1}
    dead = await topic_reader(
        notifier,
        "ops.deadletter.v1",
        want=lambda rs: sum(r.key == str(event.case_id).encode() for r in rs) >= 2,
    )
    mine = [r for r in dead if r.key == str(event.case_id).encode()]
    assert len(mine) == 2
    headers = [{k: v.decode() for k, v in r.headers} for r in mine]
    assert all("original-topic" not in h for h in headers)
    assert sorted(h["attempts"] for h in headers) == ["1", "1"]
    assert all(h["error"] and h["correlation-id"] == "it-correlation" for h in headers)
    for record in mine:
        assert notifier.webhooks.url not in record.value.decode()
        assert "address" not in json.loads(record.value)
        assert all(notifier.webhooks.url not in v.decode() for _, v in record.headers)
    failed = await topic_reader(
        notifier,
        "notifications.v1",
        want=lambda rs: (
            sum(
                r.key == str(event.case_id).encode()
                and json.loads(r.value)["event_type"] == "NotificationFailed"
                for r in rs
            )
            >= 2
        ),
    )
    assert (
        sum(
            json.loads(r.value)["event_type"] == "NotificationFailed"
            for r in failed
            if r.key == str(event.case_id).encode()
        )
        == 2
    )
    # The receiver is fixed; the operator re-sends the webhook's alert (and only that one).
    notifier.webhooks.always["/gone"] = 200
    [webhook] = [r["notification_key"] for r in rows if r["channel"] == "webhook"]
    assert await resend(notifier.infra.database_url, keys=[webhook], requested_by="it") == [webhook]
    assert await resend(notifier.infra.database_url, keys=[webhook], requested_by="it") == []

    async def re_sent():
        return await _status_is(db, webhook, "sent")

    await _until(re_sent)
    assert len(notifier.webhooks.containing(event.reference, path="/gone")) == 2


async def test_sms_goes_through_notify(notifier, db):
    event = _opened(("pest-control",))
    await _publish(notifier, event)

    async def sent():
        rows = await _rows(db, event.case_id)
        return rows if rows and rows[0]["status"] == "sent" else None

    await _until(sent)
    [(path, _, body)] = notifier.notify.containing(event.reference)
    assert path == "/v2/notifications/sms"
    assert body["phone_number"] == "+447700900001"


async def test_linked_reports_are_folded_into_one_digest_of_the_period(notifier, db, topic_reader):
    event = _opened(("waste",))
    await _publish(notifier, event)
    await _until(lambda: _sent_count(db, event.case_id, 2))
    linked = [report_linked(event, n) for n in (2, 3, 4)]
    await _publish(notifier, *linked, linked[0])  # the last one is a redelivery: counted once

    async def digests():
        rows = await db.fetch(
            "SELECT notification_key, status FROM notifier.notifications"
            " WHERE case_id = $1 AND kind = 'reports-digest'",
            event.case_id,
        )
        entries = await db.fetchval(
            "SELECT count(*) FROM notifier.digest_entries WHERE case_id = $1", event.case_id
        )
        return rows if len(rows) == 2 and entries == 6 else None

    rows = await _until(digests)
    assert {r["status"] for r in rows} == {"pending"}  # waiting for its period to end
    # The period ends: move its time forward rather than wait an hour.
    await db.execute(
        "UPDATE notifier.notifications SET not_before = now() WHERE notification_key = ANY($1::text[])",
        [r["notification_key"] for r in rows],
    )
    await _until(lambda: _sent_count(db, event.case_id, 4))
    mails = [m for m in notifier.sink.containing(event.reference) if b"more residents" in m[1]]
    assert len(mails) == 1
    assert "3 more residents reported this." in email.message_from_bytes(mails[0][1]).get_payload()
    hooks = [r for r in notifier.webhooks.containing(event.reference) if "more residents" in r[2]["text"]]
    assert len(hooks) == 1
    records = await topic_reader(
        notifier,
        "notifications.v1",
        want=lambda rs: (
            sum(
                r.key == str(event.case_id).encode()
                and json.loads(r.value)["event_type"] == "NotificationSuppressed"
                for r in rs
            )
            >= 6
        ),
    )
    folded = [
        json.loads(r.value)
        for r in records
        if r.key == str(event.case_id).encode()
        and json.loads(r.value)["event_type"] == "NotificationSuppressed"
    ]
    assert len(folded) == 6
    assert all(f["kind"] == "report-linked" and "folded into digest" in f["reason"] for f in folded)


async def test_a_digest_team_gets_its_new_cases_in_one_message(notifier, db):
    cases = [_opened(("parks",)) for _ in range(3)]
    await _publish(notifier, *cases)

    async def digest():
        return await db.fetchval(
            "SELECT DISTINCT digest_key FROM notifier.digest_entries WHERE case_id = ANY($1::uuid[])"
            " GROUP BY digest_key HAVING count(*) = 3",
            [c.case_id for c in cases],
        )

    key = await _until(digest)
    await db.execute("UPDATE notifier.notifications SET not_before = now() WHERE notification_key = $1", key)
    await _until(lambda: _status_is(db, key, "sent"))
    [mail] = [m for m in notifier.sink.messages if all(c.reference.encode() in m[1] for c in cases)]
    assert mail[0] == ["it-parks@example.org"]
    assert not await db.fetchval(
        "SELECT count(*) FROM notifier.notifications WHERE case_id = ANY($1::uuid[]) AND kind = 'new-case'",
        [c.case_id for c in cases],
    )


async def test_an_unacknowledged_case_near_its_due_time_escalates_to_the_manager_once(notifier, db):
    due = datetime.now(UTC) + timedelta(seconds=3)
    late = _opened(("waste",), due_at=due)
    acknowledged = _opened(("waste",), due_at=due)
    await _publish(
        notifier,
        late,
        acknowledged,
        CaseStatusChanged(
            occurred_at=datetime.now(UTC),
            case_id=acknowledged.case_id,
            reference=acknowledged.reference,
            status="acknowledged",
        ),
    )

    async def escalated():
        return await db.fetchrow(
            "SELECT status, team FROM notifier.notifications WHERE case_id = $1 AND kind = 'escalation'"
            " AND status = 'sent'",
            late.case_id,
        )

    row = await _until(escalated, timeout=20)
    assert row["team"] == f"manager:{HOOD}"
    await asyncio.sleep(1.0)  # several scheduler rounds later...
    assert (
        await db.fetchval(
            "SELECT count(*) FROM notifier.notifications"
            " WHERE case_id = ANY($1::uuid[]) AND kind = 'escalation'",
            [late.case_id, acknowledged.case_id],
        )
        == 1
    )
    escalations = [m for m in notifier.sink.containing(late.reference) if b"Escalation" in m[1]]
    assert len(escalations) == 1
    assert escalations[0][0] == ["it-manager@example.org"]
    assert not [m for m in notifier.sink.containing(acknowledged.reference) if b"Escalation" in m[1]]


async def _sent_count(db, case_id, count):
    return (
        await db.fetchval(
            "SELECT count(*) FROM notifier.notifications WHERE case_id = $1 AND status = 'sent'", case_id
        )
        >= count
    )


async def _status_is(db, key, status):
    return (
        await db.fetchval("SELECT status FROM notifier.notifications WHERE notification_key = $1", key)
        == status
    )
