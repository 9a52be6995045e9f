"""The notifier's service layer with the in-memory unit of work and store (milliseconds, no broker or
database): handling case events, and the sender's decisions — each notification on its own, outages
paused rather than failed, nothing for closed cases, no escalation once acknowledged."""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import uuid4

from caseway_notifier.adapters.channels import InMemoryChannel, Message, TransientDeliveryError
from caseway_notifier.adapters.memory import InMemoryNotifierStore
from caseway_notifier.domain.batch import Correlated
from caseway_notifier.domain.directory import Directory
from caseway_notifier.domain.kinds import ACKNOWLEDGED, CLOSED, ESCALATION
from caseway_notifier.domain.planning import plan_escalation
from caseway_notifier.service.case_events import CaseEvents
from caseway_notifier.service.messages import Messages
from caseway_notifier.service.sending import Sender
from caseway_notifier.settings import NotifierSettings
from caseway_shared.events import CaseAssigned, CaseClosed, CaseOpened, CaseUnassigned, ReportLinked
from caseway_shared.unit_of_work import InMemoryUnitOfWork

HOOD = "N01"
START = datetime(2026, 11, 23, 12, tzinfo=UTC)


def _directory(email: str = "waste@example.org", hook: str = "https://chat.example.org/hooks/1") -> Directory:
    return Directory.model_validate(
        {
            "staff_case_url": "https://staff.example.org/cases/{reference}",
            "teams": [
                {
                    "id": "waste",
                    "name": "Waste",
                    "department": "waste",
                    "neighbourhoods": [HOOD],
                    "channels": [{"kind": "email", "address": email}, {"kind": "webhook", "address": hook}],
                },
                {
                    "id": "parks",
                    "name": "Parks",
                    "department": "parks",
                    "neighbourhoods": [HOOD],
                    "delivery": "digest",
                    "channels": [{"kind": "email", "address": "parks@example.org"}],
                },
            ],
            "managers": [
                {
                    "neighbourhood": HOOD,
                    "name": "M",
                    "channels": [{"kind": "email", "address": "m@example.org"}],
                }
            ],
        }
    )


@dataclass
class Clock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Harness:
    directory: Directory = field(default_factory=_directory)
    store: InMemoryNotifierStore = field(default_factory=InMemoryNotifierStore)
    clock: Clock = field(default_factory=Clock)
    email: InMemoryChannel = field(default_factory=InMemoryChannel)
    webhook: InMemoryChannel = field(default_factory=InMemoryChannel)

    def __post_init__(self) -> None:
        self.uow = InMemoryUnitOfWork(self.store)
        self.messages = Messages(topic=lambda topic: f"t.{topic.value}")
        self.settings = NotifierSettings(
            ignore_hours=True,
            max_attempts=3,
            retry_base_seconds=1,
            retry_max_seconds=4,
            breaker_threshold=3,
            breaker_cooldown_seconds=10,
        )

    def case_events(self) -> CaseEvents:
        return CaseEvents(
            unit_of_work=self.uow,
            directory=self.directory,
            messages=self.messages,
            clock=self.clock,
            ignore_hours=True,
        )

    def sender(self) -> Sender:
        return Sender(
            unit_of_work=self.uow,
            channels={"email": self.email, "webhook": self.webhook},
            messages=self.messages,
            settings=self.settings,
            clock=self.clock,
        )

    def published(self, event_type: str) -> list[str]:
        return [m.headers["event-type"] for m in self.uow.published if m.headers["event-type"] == event_type]


def _opened(*departments: str) -> CaseOpened:
    return CaseOpened(
        occurred_at=START,
        case_id=uuid4(),
        reference=f"LV-{uuid4().hex[:6]}",
        report_id=uuid4(),
        category="x",
        priority="normal",
        neighbourhood=HOOD,
        ward_code=None,
        lead_department=departments[0],
        departments=departments,
        due_at=START + timedelta(hours=10),
        point=None,
        summary="s",
    )


async def test_case_events_are_recorded_once_and_a_redelivery_says_it_was_suppressed():
    h = Harness()
    event = _opened("waste", "parks")
    await h.case_events().handle([(event, "c1")])
    keys = set(h.store.notifications)
    assert {k.split("|", 1)[1] for k in keys if not k.startswith("team|")} == {
        "waste|email|new-case",
        "waste|webhook|new-case",
        f"manager:{HOOD}|email|joining-up",
    }
    assert len(h.store.entries) == 1  # parks takes a digest
    assert h.uow.committed == 1
    await h.case_events().handle([(event, "c1")])
    assert set(h.store.notifications) == keys
    assert len(h.published("NotificationSuppressed")) == 1 + 3  # folded once, then 3 already notified


async def test_a_replay_after_an_address_changed_or_of_a_closed_case_sends_nothing_new():
    h = Harness()
    event = _opened("waste")
    await h.case_events().handle([(event, "c")])
    before = set(h.store.notifications)
    h.directory = _directory(email="waste-new@example.org", hook="https://chat.example.org/hooks/2")
    await h.case_events().handle([(event, "c")])  # a replay after the team's address changed
    assert set(h.store.notifications) == before
    await h.case_events().handle([(CaseClosed(occurred_at=START, case_id=event.case_id, reference="x"), "c")])
    h.store.notifications.clear()  # even with no memory of what was sent...
    await h.case_events().handle([(event, "c")])  # ...a replay of a closed case plans nothing
    assert h.store.notifications == {}


async def test_rows_are_written_in_key_order_whatever_the_order_of_the_events():
    h = Harness()
    events = [_opened("waste", "parks") for _ in range(6)]
    linked = [
        ReportLinked(
            occurred_at=START,
            case_id=e.case_id,
            reference=e.reference,
            report_id=uuid4(),
            reports_count=2,
            score=1,
        )
        for e in events
    ]
    await h.case_events().handle([(e, "c") for e in events])
    await h.case_events().handle([(e, "c") for e in reversed(linked)])
    assert h.store.writes
    for table, keys in h.store.writes:
        assert keys == sorted(keys), table


async def test_one_notification_that_cannot_be_sent_fails_alone_and_the_others_go_once():
    h = Harness()

    @dataclass
    class Broken:
        sent: list[Message] = field(default_factory=list)

        async def send(self, message: Message) -> None:
            if "bad" in message.address:
                message.address.encode("ascii")  # raises UnicodeEncodeError: the message itself is wrong
            self.sent.append(message)

    good, bad = _opened("waste"), _opened("waste")
    await h.case_events().handle([(good, "c"), (bad, "c")])
    for key, n in h.store.notifications.items():
        if key.startswith(str(bad.case_id)) and n.planned.channel == "webhook":
            h.store.notifications[key].planned = type(n.planned)(
                **{**_fields(n.planned), "address": "https://bad/é"}
            )
    broken = Broken()
    sender = h.sender()
    sender._channels = {"email": h.email, "webhook": broken}
    assert await sender.deliver_due() == 4
    assert await sender.deliver_due() == 0  # nothing is claimed again
    statuses = sorted(n.status for n in h.store.notifications.values())
    assert statuses == ["failed", "sent", "sent", "sent"]
    assert len(h.email.sent) == 2
    assert len(broken.sent) == 1
    [dead] = [m for m in h.uow.published if m.topic == "t.ops.deadletter.v1"]
    assert "original-topic" not in dead.headers
    assert b"bad" not in dead.payload


def _fields(planned):
    return {name: getattr(planned, name) for name in planned.__dataclass_fields__}


async def test_an_outage_pauses_the_destination_and_fails_nothing_and_it_resumes_when_back():
    h = Harness()
    h.email.fail_with = TransientDeliveryError("SMTP 421")
    event = _opened("waste")
    await h.case_events().handle([(event, "c")])
    email_key = next(k for k, n in h.store.notifications.items() if n.planned.channel == "email")
    sender = h.sender()
    for _ in range(12):  # far past the budget of 3
        await sender.deliver_due()
        h.clock.now += timedelta(seconds=30)
    assert h.store.status(email_key) == "pending"
    assert h.store.notifications[email_key].failures < h.settings.max_attempts
    assert not h.published("NotificationFailed")
    h.email.fail_with = None
    for _ in range(6):
        await sender.deliver_due()
        h.clock.now += timedelta(seconds=150)
    assert h.store.status(email_key) == "sent"
    assert len(h.email.sent) == 1


async def test_an_alert_the_sender_reaches_after_its_teams_quiet_hours_began_waits_for_their_end():
    directory = Directory.model_validate(
        {
            **_directory().model_dump(),
            "teams": [
                {**team.model_dump(), "quiet_hours": {"start": "12:05", "end": "12:30"}}
                for team in _directory().teams
            ],
            "defaults": {"quiet_hours": {"start": "12:05", "end": "12:30"}},
        }
    )
    h = Harness(directory=directory)
    h.settings = h.settings.model_copy(update={"ignore_hours": False})
    await CaseEvents(unit_of_work=h.uow, directory=directory, messages=h.messages, clock=h.clock).handle(
        [(_opened("waste"), "c1")]
    )
    sender = Sender(
        unit_of_work=h.uow,
        channels={"email": h.email, "webhook": h.webhook},
        messages=h.messages,
        settings=h.settings,
        clock=h.clock,
        directory=directory,
    )
    h.clock.now = START + timedelta(minutes=10)  # due since 12:00, reached in the quiet hours
    assert await sender.deliver_due() == 2
    assert h.email.sent == h.webhook.sent == []
    assert {n.status for n in h.store.notifications.values() if n.planned.kind == "new-case"} == {"pending"}
    h.clock.now = START + timedelta(minutes=29)
    assert await sender.deliver_due() == 0
    h.clock.now = START + timedelta(minutes=30)
    assert await sender.deliver_due() == 2
    assert len(h.email.sent) == len(h.webhook.sent) == 1


async def test_a_closed_case_is_sent_nothing_and_an_acknowledged_one_is_not_escalated():
    h = Harness()
    closed, acknowledged = _opened("waste"), _opened("waste")
    await h.case_events().handle([(closed, "c"), (acknowledged, "c")])
    h.store.set_case(h.store.cases[closed.case_id], status=CLOSED)
    case = h.store.cases[acknowledged.case_id]
    escalation = plan_escalation(case, h.directory, now=START)
    await h.store.record_planned([Correlated(n, "c") for n in escalation])
    h.store.set_case(case, status=ACKNOWLEDGED)
    await h.sender().deliver_due()
    sent = {(m.key.split("|")[0], m.key.split("|")[-1]) for m in (*h.email.sent, *h.webhook.sent)}
    assert (str(closed.case_id), "new-case") not in sent
    assert (str(acknowledged.case_id), "new-case") in sent
    assert (str(acknowledged.case_id), ESCALATION) not in sent
    reasons = {o.error for o in h.store.attempts if o.status == "suppressed"}
    assert reasons == {"case closed", "case acknowledged"}


async def test_an_unassigned_department_hears_nothing_more_of_the_case():
    """Parks' part is handed to waste: a later resident's report is folded into waste's digest only, and
    the case the notifier keeps no longer names parks."""
    h = Harness()
    event = _opened("waste", "parks")
    handed_over = [
        CaseUnassigned(
            occurred_at=START,
            case_id=event.case_id,
            reference=event.reference,
            department="parks",
            neighbourhood=HOOD,
            replaced_by="waste",
            actor="someone",
        ),
        CaseAssigned(
            occurred_at=START,
            case_id=event.case_id,
            reference=event.reference,
            department="waste",
            role="contributor",
            neighbourhood=HOOD,
            replaces="parks",
            actor="someone",
        ),
    ]
    linked = ReportLinked(
        occurred_at=START,
        case_id=event.case_id,
        reference=event.reference,
        report_id=uuid4(),
        reports_count=2,
        score=0.9,
    )
    await h.case_events().handle([(event, "c"), *((e, "c") for e in handed_over)])
    assert h.store.cases[event.case_id].departments == ("waste",)
    await h.case_events().handle([(linked, "c")])
    digests = {k for k in h.store.notifications if "reports-digest" in k}
    assert digests, "the remaining department's team was not told of the new report"
    assert {k.split("|")[1] for k in digests} == {"waste"}
    # A redelivered unassignment changes nothing.
    await h.case_events().handle([(handed_over[0], "c")])
    assert h.store.cases[event.case_id].departments == ("waste",)
