"""The notifier's pure rules: hours, digests, escalation, message text, tokens, pacing, and which alerts
the sender takes at once."""

import base64
import hashlib
import hmac
import json
import re
from datetime import UTC, datetime, timedelta
from uuid import uuid4

from caseway_notifier.adapters.channels import notify_token
from caseway_notifier.adapters.rate_limit import TokenBucket
from caseway_notifier.domain.cases import apply_event
from caseway_notifier.domain.delivery import hand_off_keys, left_due
from caseway_notifier.domain.directory import Directory, QuietHours, WorkingHours, load_directory
from caseway_notifier.domain.hours import digest_period, held_until, next_allowed_time, quiet_until
from caseway_notifier.domain.planning import PlannedNotification, plan_escalation, plan_notifications
from caseway_notifier.domain.wording import compose_digest
from caseway_shared.backoff import backoff_delay
from caseway_shared.council import LIVERPOOL_DIR
from caseway_shared.events import CaseStatus, CaseStatusChanged, NotificationKind, Priority
from factories import case_opened, report_linked

LIVERPOOL = load_directory(LIVERPOOL_DIR)
HOOD = "N01 City Centre & Waterfront South"
MONDAY_NOON = datetime(2026, 11, 23, 12, tzinfo=UTC)


def _directory(**team_options):
    return Directory.model_validate(
        {
            "staff_case_url": "https://staff.example.org/cases/{reference}",
            "teams": [
                {
                    "id": "waste-n01",
                    "name": "Waste N01",
                    "department": "waste",
                    "neighbourhoods": [HOOD],
                    "channels": [
                        {"kind": "email", "address": "waste-n01@example.org"},
                        {"kind": "webhook", "address": "https://chat.example.org/hooks/1"},
                    ],
                    **team_options,
                }
            ],
            "managers": [
                {
                    "neighbourhood": HOOD,
                    "name": "M",
                    "channels": [{"kind": "sms", "address": "+447700900001"}],
                }
            ],
            "category_names": {"missed-bin": "Missed bin"},
        }
    )


def _opened(
    *, departments=("waste",), priority=Priority.NORMAL, at=MONDAY_NOON, due=None, summary="Missed bin"
):
    """A missed bin in HOOD, case LV-2026-000042."""
    return case_opened(
        departments=departments,
        priority=priority,
        at=at,
        due_at=due,
        summary=summary,
        category="missed-bin",
        reference="LV-2026-000042",
        neighbourhood=HOOD,
    )


def _linked(case, count):
    return report_linked(case, count, at=MONDAY_NOON)


def test_quiet_hours_hold_back_a_non_urgent_alert_even_within_working_hours():
    directory = _directory(
        working_hours={"days": ["mon", "tue", "wed", "thu", "fri"], "start": "07:00", "end": "23:00"},
        quiet_hours={"start": "21:00", "end": "07:30"},
    )
    monday_2130 = datetime(2026, 11, 23, 21, 30, tzinfo=UTC)  # GMT in November: local = UTC
    normal = plan_notifications(_opened(at=monday_2130), directory, now=monday_2130).notifications
    urgent = plan_notifications(_opened(priority=Priority.URGENT), directory, now=monday_2130).notifications
    assert {n.not_before for n in normal} == {datetime(2026, 11, 24, 7, 30, tzinfo=UTC)}
    assert {n.not_before for n in urgent} == {monday_2130}


def test_quiet_hours_end_at_local_time_across_the_autumn_clock_change():
    # Sunday 25 October 2026 the clocks go back: 08:00 on Sunday is 08:00 UTC, on Saturday 07:00 UTC.
    quiet = QuietHours()
    assert quiet_until(datetime(2026, 10, 24, 22, tzinfo=UTC), quiet, "Europe/London") == datetime(
        2026, 10, 25, 8, tzinfo=UTC
    )
    assert quiet_until(datetime(2026, 10, 24, 5, tzinfo=UTC), quiet, "Europe/London") == datetime(
        2026, 10, 24, 7, tzinfo=UTC
    )
    assert quiet_until(datetime(2026, 10, 24, 12, tzinfo=UTC), quiet, "Europe/London") is None


def test_the_next_allowed_time_skips_the_weekend_and_the_quiet_night():
    friday_night = datetime(2026, 11, 27, 19, tzinfo=UTC)
    allowed = next_allowed_time(friday_night, WorkingHours(), QuietHours(), "Europe/London")
    assert allowed == datetime(2026, 11, 30, 8, tzinfo=UTC)


def test_a_due_alert_reached_out_of_its_teams_hours_waits_for_them_unless_urgent():
    directory = _directory(quiet_hours={"start": "12:30", "end": "13:00"})
    team = directory.team("waste-n01")
    in_quiet = MONDAY_NOON + timedelta(minutes=40)
    end_of_quiet = datetime(2026, 11, 23, 13, tzinfo=UTC)
    new_case, digest, escalation = (
        NotificationKind.NEW_CASE,
        NotificationKind.REPORTS_DIGEST,
        NotificationKind.ESCALATION,
    )
    assert held_until(new_case, team, directory, urgent=False, now=MONDAY_NOON, ignore_hours=False) is None
    assert (
        held_until(new_case, team, directory, urgent=False, now=in_quiet, ignore_hours=False) == end_of_quiet
    )
    assert held_until(new_case, team, directory, urgent=True, now=in_quiet, ignore_hours=False) is None
    assert held_until(new_case, team, directory, urgent=False, now=in_quiet, ignore_hours=True) is None
    saturday = datetime(2026, 11, 28, 10, tzinfo=UTC)
    monday_eight = datetime(2026, 11, 30, 8, tzinfo=UTC)
    assert held_until(digest, team, directory, urgent=False, now=saturday, ignore_hours=False) == monday_eight
    # Escalations wait only for the default quiet hours (20:00-08:00), not for working days.
    assert held_until(escalation, None, directory, urgent=False, now=saturday, ignore_hours=False) is None


def test_a_digest_team_gets_new_cases_folded_into_one_digest_per_period():
    directory = _directory(delivery="digest", digest_minutes=60)
    first = plan_notifications(_opened(), directory, now=MONDAY_NOON)
    second = plan_notifications(_opened(), directory, now=MONDAY_NOON + timedelta(minutes=20))
    later = plan_notifications(_opened(), directory, now=MONDAY_NOON + timedelta(minutes=70))
    assert first.notifications == ()
    assert {d.kind for d in first.digests} == {NotificationKind.NEW_CASES_DIGEST}
    assert {d.key for d in first.digests} == {d.key for d in second.digests}
    assert not {d.key for d in first.digests} & {d.key for d in later.digests}
    assert len({e.entry_key for e in (*first.entries, *second.entries)}) == 4  # 2 cases x 2 channels
    # Sent after the period (12:00-13:00 local) ends, within working hours.
    assert {d.not_before for d in first.digests} == {datetime(2026, 11, 23, 13, 0, 30, tzinfo=UTC)}


def test_urgent_cases_bypass_the_digest():
    directory = _directory(delivery="digest")
    plan = plan_notifications(_opened(priority=Priority.URGENT), directory, now=MONDAY_NOON)
    assert len(plan.notifications) == 2
    assert plan.entries == ()


def test_linked_reports_are_counted_into_a_per_case_digest_per_period_and_send_no_alert():
    directory = _directory()
    opened = _opened()
    case = apply_event(None, opened, directory)
    plans = [plan_notifications(_linked(opened, n), directory, now=MONDAY_NOON, case=case) for n in (2, 3, 4)]
    assert all(plan.notifications == () for plan in plans)
    digest_keys = {d.key for plan in plans for d in plan.digests}
    assert len(digest_keys) == 2  # one per channel of the team
    assert all(NotificationKind.REPORTS_DIGEST in key and str(opened.case_id) in key for key in digest_keys)
    entry_keys = {e.entry_key for plan in plans for e in plan.entries}
    assert len(entry_keys) == 6  # every linked report, on each channel, once
    lines = [e.line for plan in plans for e in plan.entries if e.channel == "email"]
    subject, body = compose_digest(
        NotificationKind.REPORTS_DIGEST, "More residents reported case LV-2026-000042", "x", lines
    )
    assert body.startswith("3 more residents reported this.")
    assert "3 more" in subject
    next_hour = plan_notifications(
        _linked(opened, 5), directory, now=MONDAY_NOON + timedelta(hours=1), case=case
    )
    assert not {d.key for d in next_hour.digests} & digest_keys


def test_a_linked_report_of_an_unknown_or_closed_case_is_not_counted():
    directory = _directory()
    opened = _opened()
    closed = apply_event(
        apply_event(None, opened, directory),
        CaseStatusChanged(occurred_at=MONDAY_NOON, case_id=opened.case_id, reference="x", status="closed"),
        directory,
    )
    assert closed is not None
    assert closed.status == CaseStatus.CLOSED
    assert plan_notifications(_linked(opened, 2), directory, now=MONDAY_NOON, case=closed).entries == ()
    assert plan_notifications(_linked(opened, 2), directory, now=MONDAY_NOON).entries == ()


def test_escalation_time_is_the_configured_share_of_the_time_to_due_and_acknowledging_records_it():
    directory = _directory()
    opened = _opened(due=MONDAY_NOON + timedelta(hours=10))
    case = apply_event(None, opened, directory)
    assert case is not None
    assert case.escalate_at == MONDAY_NOON + timedelta(hours=8)
    acknowledged = apply_event(
        case,
        CaseStatusChanged(
            occurred_at=MONDAY_NOON, case_id=case.case_id, reference="x", status="acknowledged"
        ),
        directory,
    )
    assert acknowledged is not None
    assert acknowledged.status == CaseStatus.ACKNOWLEDGED
    escalations = plan_escalation(case, directory, now=MONDAY_NOON + timedelta(hours=8))
    assert [(e.team, e.channel, e.kind) for e in escalations] == [
        (f"manager:{HOOD}", "sms", NotificationKind.ESCALATION)
    ]
    assert escalations == plan_escalation(case, directory, now=MONDAY_NOON + timedelta(hours=8))


def test_messages_carry_the_reference_and_staff_link_and_nothing_a_resident_wrote():
    """Whatever the summary holds (it derives from what residents typed), no message repeats it: the
    only link in any message is the staff link."""
    hostile = (
        "Call me 07700 900123 http://evil.example/x <a href='http://evil.example'>x</a> www.evil.example"
    )
    event = _opened(departments=("streetscene", "env-crime", "city-watch"), summary=hostile[:200])
    plan = plan_notifications(event, LIVERPOOL, now=MONDAY_NOON)
    assert len(plan.notifications) == 4
    for notification in plan.notifications:
        text = f"{notification.subject}\n{notification.body}"
        assert "LV-2026-000042" in text
        assert "evil" not in text
        assert "07700" not in text
        assert "<" not in text
        assert re.findall(r"https?://\S+", text) == ["http://127.0.0.1:8081/cases/LV-2026-000042"]


def test_digest_periods_are_local_wall_clock_days():
    start, end = digest_period(datetime(2026, 7, 1, 12, tzinfo=UTC), 1440, "Europe/London")
    assert (start, end) == (datetime(2026, 6, 30, 23, tzinfo=UTC), datetime(2026, 7, 1, 23, tzinfo=UTC))


def test_the_notify_token_is_an_hs256_jwt_from_the_key_s_service_id_and_secret():
    service_id, secret = str(uuid4()), str(uuid4())
    token = notify_token(f"caseway_test-{service_id}-{secret}", now=1_700_000_000)
    header, payload, signature = token.split(".")
    expected = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(signature + "==") == expected
    assert json.loads(base64.urlsafe_b64decode(payload + "==")) == {"iss": service_id, "iat": 1_700_000_000}
    assert json.loads(base64.urlsafe_b64decode(header + "==")) == {"typ": "JWT", "alg": "HS256"}


async def test_the_token_bucket_paces_to_its_rate():
    clock = [0.0]

    async def sleep(seconds):
        clock[0] += seconds

    bucket = TokenBucket(rate=50, burst=50, clock=lambda: clock[0], sleep=sleep)
    for _ in range(150):
        await bucket.acquire()
    assert 1.99 <= clock[0] <= 2.01  # 50 at once, then 100 more at 50 a second


def test_backoff_grows_exponentially_with_jitter_up_to_a_bound():
    assert backoff_delay(1, base=2, cap=300, jitter=1) == 2
    assert backoff_delay(3, base=2, cap=300, jitter=1) == 8
    assert backoff_delay(3, base=2, cap=300, jitter=0) == 4
    assert backoff_delay(20, base=2, cap=300, jitter=1) == 300


def test_channels_through_notify_share_one_bucket_at_notify_s_rate():
    from caseway_notifier.entrypoints.app import default_limits  # noqa: PLC0415
    from caseway_notifier.settings import NotifierSettings  # noqa: PLC0415

    limits = default_limits(NotifierSettings(notify_api_key="k" * 80, email_via="notify"))
    assert limits["sms"] is limits["email"]
    assert limits["sms"].rate == 3000 / 60
    assert "webhook" not in limits
    assert "email" not in default_limits(NotifierSettings())


def test_the_sender_takes_at_once_only_alerts_due_now_not_digests_nor_paused_and_as_many_as_it_has_room_for():
    now = MONDAY_NOON

    def planned(
        key, *, channel="email", address="a@example.org", kind=NotificationKind.NEW_CASE, later=False
    ):
        return PlannedNotification(
            key=key,
            case_id=uuid4(),
            reference="LV-1",
            team="t",
            channel=channel,
            address=address,
            kind=kind,
            subject="s",
            body="b",
            not_before=now + timedelta(hours=1) if later else now,
        )

    alerts = [
        planned("d"),
        planned("a"),
        planned("held", later=True),
        planned("digest", kind=NotificationKind.NEW_CASES_DIGEST),
        planned("hook-down", channel="webhook", address="https://down.example.org/x"),
        planned("c", channel="webhook", address="https://up.example.org/x"),
    ]
    paused = ["webhook:https://down.example.org/x"]
    assert hand_off_keys(alerts, now=now, paused=paused, room=10) == {"a", "c", "d"}
    assert hand_off_keys(alerts, now=now, paused=paused, room=2) == {"a", "c"}  # first in key order
    assert hand_off_keys(alerts, now=now, paused=paused, room=0) == frozenset()
    # What was due and new but not taken (no room, a paused destination) is the sweep's, now.
    assert left_due(alerts, new={"a", "c", "d"}, claimed={"a", "c"}, now=now)
    assert not left_due(alerts, new={"a", "held"}, claimed={"a"}, now=now)
