"""The notifier's failure paths (issue 11, items 1-3): one notification that cannot be sent fails alone
and holds back nothing; a channel's outage longer than the retry budget pauses it and fails nothing; a
permanent failure is dead-lettered without claiming cases.v1 as its origin and can be re-sent by an
operator; a closed case is sent nothing more."""

import asyncio
import json
from datetime import UTC, datetime

import pytest

from caseway_shared.events import CaseClosed, CaseStatusChanged
from factories import report_linked

from .test_flow import _opened, _publish, _rows, _until

pytestmark = pytest.mark.infra


async def _settled(db, case_id, count):
    rows = await _rows(db, case_id)
    done = len(rows) == count and all(r["status"] in {"sent", "failed", "suppressed"} for r in rows)
    return rows if done else None


async def _case_status(db, case_id, status):
    return await db.fetchval("SELECT status FROM notifier.cases WHERE case_id = $1", case_id) == status


async def test_a_notification_that_cannot_be_sent_fails_alone_and_the_others_are_sent_once(notifier, db):
    # it-équipe's id is not ASCII (it travels in a header); it-badurl's webhook URL is invalid.
    event = _opened(("waste", "it-unicode", "it-badurl"))
    await _publish(notifier, event)
    rows = await _until(lambda: _settled(db, event.case_id, 5))
    status = {(r["team"], r["channel"]): (r["status"], r["attempts"]) for r in rows}
    assert status[("it-badurl", "webhook")] == ("failed", 1)
    assert status[("it-équipe", "webhook")] == ("sent", 1)
    assert status[("it-waste", "email")] == ("sent", 1)
    assert status[("it-waste", "webhook")] == ("sent", 1)
    await asyncio.sleep(1.0)  # several sender rounds: nothing is sent again
    assert len(notifier.sink.containing(event.reference)) == 2  # it-waste and the manager
    assert len(notifier.webhooks.containing(event.reference, path="/waste")) == 1
    assert len([r for r in notifier.webhooks.received if event.reference in json.dumps(r[2])]) == 2


async def test_an_outage_longer_than_the_retry_budget_pauses_the_channel_and_fails_nothing(
    notifier, db, topic_reader
):
    notifier.webhooks.always["/outage"] = 503
    event = _opened(("it-outage",))
    await _publish(notifier, event)

    def tries():
        return len(notifier.webhooks.containing(event.reference, path="/outage"))

    async def outlasted_the_budget():
        # Settled, not in the middle of an attempt: the webhook server counts a try before the notifier
        # has written its outcome (the row is 'sending' meanwhile).
        [row] = await _rows(db, event.case_id) or [None]
        return row is not None and row["status"] != "sending" and (tries() >= 5 or row["status"] == "failed")

    await _until(outlasted_the_budget)  # max_attempts is 3: the budget is spent by now
    [row] = await _rows(db, event.case_id)
    assert row["status"] == "pending"
    del notifier.webhooks.always["/outage"]  # the receiver is back

    async def sent():
        [row] = await _rows(db, event.case_id)
        return row["status"] == "sent"

    await _until(sent)
    records = await topic_reader(
        notifier,
        "notifications.v1",
        want=lambda rs: any(
            r.key == str(event.case_id).encode() and json.loads(r.value)["event_type"] == "NotificationSent"
            for r in rs
        ),
    )
    mine = [json.loads(r.value)["event_type"] for r in records if r.key == str(event.case_id).encode()]
    assert mine == ["NotificationSent"]


async def test_a_closed_case_is_sent_nothing_that_was_held_back(notifier, db):
    """A digest waits for its period: a case closed before then is left out of it (and a digest left
    with nothing is not sent); a case's digest of linked reports is not sent either."""
    held = _opened(("it-later",))
    other = _opened(("it-later",))
    linked_case = _opened(("waste",))
    await _publish(notifier, held, other, linked_case)
    await _until(lambda: _status_count(db, linked_case.case_id, "sent", 2))
    await _publish(
        notifier,
        report_linked(linked_case, 2),
        CaseClosed(occurred_at=datetime.now(UTC), case_id=held.case_id, reference=held.reference),
        CaseStatusChanged(
            occurred_at=datetime.now(UTC),
            case_id=linked_case.case_id,
            reference=linked_case.reference,
            status="closed",
        ),
    )
    await _until(lambda: _case_status(db, held.case_id, "closed"))
    await _until(lambda: _case_status(db, linked_case.case_id, "closed"))

    async def digests():
        rows = await db.fetch(
            "SELECT DISTINCT n.notification_key FROM notifier.notifications n"
            " JOIN notifier.digest_entries e ON e.digest_key = n.notification_key"
            " WHERE e.case_id = ANY($1::uuid[])",
            [held.case_id, linked_case.case_id],
        )
        return [r["notification_key"] for r in rows] if len(rows) == 3 else None  # 1 + waste's 2

    keys = await _until(digests)
    await db.execute(
        "UPDATE notifier.notifications SET not_before = now() WHERE notification_key = ANY($1::text[])", keys
    )

    async def done():
        rows = await db.fetch(
            "SELECT status FROM notifier.notifications WHERE notification_key = ANY($1::text[])", keys
        )
        return all(r["status"] in {"sent", "suppressed", "failed"} for r in rows)

    await _until(done)
    later = [m for m in notifier.sink.messages if "it-later@example.org" in m[0]]
    assert not [m for m in later if held.reference.encode() in m[1]]
    assert [m for m in later if other.reference.encode() in m[1]]
    assert not [m for m in notifier.sink.containing(linked_case.reference) if b"more residents" in m[1]]
    assert not [
        r for r in notifier.webhooks.containing(linked_case.reference) if "more residents" in r[2]["text"]
    ]


async def _status_count(db, case_id, status, count):
    return (
        await db.fetchval(
            "SELECT count(*) FROM notifier.notifications WHERE case_id = $1 AND status = $2", case_id, status
        )
        >= count
    )
