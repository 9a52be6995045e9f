"""The notifier's store on PostgreSQL and its in-memory twin answer the same (issue 16, item 10): alerts
recorded already claimed for the sender that takes them at once, with their case's status; a
redelivery claims nothing; the sweep leaves leased and held rows alone; a batch of outcomes is one
write, and a success at the first try leaves no attempts row while every other outcome does."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from caseway_notifier.adapters.memory import InMemoryNotifierStore
from caseway_notifier.adapters.store import NotifierStore
from caseway_notifier.domain.batch import Correlated
from caseway_notifier.domain.cases import CaseState
from caseway_notifier.domain.planning import PlannedNotification
from caseway_notifier.service.ports import Lease, Outcome
from caseway_shared.events import CaseStatus, NotificationKind, Priority

pytestmark = pytest.mark.infra

NOW = datetime.now(UTC).replace(microsecond=0)
LEASE = timedelta(seconds=120)


def _case(case_id: uuid.UUID) -> CaseState:
    return CaseState(
        case_id=case_id,
        reference="IT-STORE",
        category="fly-tipping",
        priority=Priority.NORMAL,
        neighbourhood="IT Hood",
        ward_code=None,
        departments=("waste",),
        opened_at=NOW,
        due_at=None,
        status=CaseStatus.ACKNOWLEDGED,
        escalate_at=None,
    )


def _planned(case_id: uuid.UUID, channel: str, *, kind=NotificationKind.NEW_CASE, later=False):
    return PlannedNotification(
        key=f"{case_id}|store-team|{channel}|{kind}",
        case_id=case_id,
        reference="IT-STORE",
        team="store-team",
        channel=channel,
        address="store@example.org" if channel == "email" else "https://hooks.example.org/x",
        kind=kind,
        subject="s",
        body="b",
        not_before=NOW + timedelta(hours=1) if later else NOW,
    )


async def _story(store, attempts) -> list[object]:
    """The same calls on either store; what each answered, in a comparable form."""
    case_id = uuid.uuid4()
    email, webhook = _planned(case_id, "email"), _planned(case_id, "webhook")
    held = _planned(case_id, "sms", later=True)
    planned = [Correlated(p, "corr") for p in sorted((email, webhook, held), key=lambda p: p.key)]
    lease = Lease(keys=frozenset({email.key, webhook.key}), until=NOW + LEASE)
    seen: list[object] = []

    await store.save_cases([Correlated(_case(case_id), "corr")])
    recorded = await store.record_planned(planned, lease=lease)
    seen.append(sorted(k.split("|", 1)[1] for k in recorded.new))
    seen.append(
        sorted(
            (c.key.split("|", 1)[1], c.case_status, c.claimed_until, c.attempts, c.correlation_id, c.body)
            for c in recorded.claimed
        )
    )
    again = await store.record_planned(planned, lease=lease)  # a redelivered event
    seen.append((again.new, again.claimed))
    swept = await store.claim_due(now=NOW, limit=10, lease_until=NOW + LEASE, paused=[])
    seen.append([c.key for c in swept])  # leased or held: nothing for the sweep

    await store.record_outcomes(
        [
            Outcome(
                key=webhook.key,
                status="pending",
                at=NOW,
                outcome="retry",
                attempt=1,
                failures=1,
                error="HTTP 503",
                not_before=NOW + timedelta(seconds=2),
            ),
            Outcome(key=email.key, status="sent", at=NOW, outcome="sent", attempt=1),
        ]
    )
    seen.append(
        sorted((key.split("|", 1)[1], outcome, attempt) for key, outcome, attempt in await attempts(case_id))
    )
    later = await store.claim_due(
        now=NOW + timedelta(seconds=3), limit=10, lease_until=NOW + LEASE, paused=[]
    )
    seen.append([(c.key.split("|", 1)[1], c.attempts, c.failures) for c in later])
    await store.record_outcomes(
        [Outcome(key=webhook.key, status="sent", at=NOW, outcome="sent", attempt=2, failures=1)]
    )
    seen.append(
        sorted((key.split("|", 1)[1], outcome, attempt) for key, outcome, attempt in await attempts(case_id))
    )
    return seen


async def test_the_store_and_its_twin_record_claim_and_record_outcomes_alike(db):
    twin = InMemoryNotifierStore()

    async def twin_attempts(case_id):
        return [(o.key, o.outcome, o.attempt) for o in twin.attempts if o.key.startswith(str(case_id))]

    expected = await _story(twin, twin_attempts)

    transaction = db.transaction()
    await transaction.start()
    try:
        store = NotifierStore(db)

        async def attempts(case_id):
            rows = await db.fetch(
                "SELECT a.notification_key, a.outcome, a.attempt FROM notifier.attempts a"
                " JOIN notifier.notifications n USING (notification_key) WHERE n.case_id = $1",
                case_id,
            )
            return [(r["notification_key"], r["outcome"], r["attempt"]) for r in rows]

        answered = await _story(store, attempts)
    finally:
        await transaction.rollback()

    assert answered == expected
    assert expected[1] == [
        ("store-team|email|new-case", CaseStatus.ACKNOWLEDGED, NOW + LEASE, 0, "corr", "b"),
        ("store-team|webhook|new-case", CaseStatus.ACKNOWLEDGED, NOW + LEASE, 0, "corr", "b"),
    ]
    assert expected[2] == (set(), [])
    assert expected[3] == []
    assert expected[4] == [("store-team|webhook|new-case", "retry", 1)]  # the first success left none
    assert expected[5] == [("store-team|webhook|new-case", 1, 1)]
    assert expected[6] == [
        ("store-team|webhook|new-case", "retry", 1),
        ("store-team|webhook|new-case", "sent", 2),
    ]
