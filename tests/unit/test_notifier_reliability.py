"""The notifier's reliability rules that are pure decisions (issue 11, items 3 and 4): what a
notification's key is made of, and what a replayed event of a closed case calls for."""

from datetime import UTC, datetime

from caseway_notifier.domain.cases import apply_event
from caseway_notifier.domain.directory import Directory
from caseway_notifier.domain.planning import plan_notifications
from caseway_shared.events import CaseClosed, CaseOpened
from factories import case_opened

HOOD = "N01 City Centre & Waterfront South"
MONDAY_NOON = datetime(2026, 11, 23, 12, tzinfo=UTC)


def _directory(email: str, hook: str) -> Directory:
    return Directory.model_validate(
        {
            "staff_case_url": "https://staff.example.org/cases/{reference}",
            "teams": [
                {
                    "id": "waste-n01",
                    "name": "Waste N01",
                    "department": "waste",
                    "neighbourhoods": [HOOD],
                    "channels": [{"kind": "email", "address": email}, {"kind": "webhook", "address": hook}],
                },
                {
                    "id": "parks-n01",
                    "name": "Parks N01",
                    "department": "parks",
                    "neighbourhoods": [HOOD],
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


BEFORE = _directory("waste@example.org", "https://chat.example.org/hooks/secret-1")
AFTER = _directory("waste-team@example.org", "https://chat.example.org/hooks/secret-2")


def _opened() -> CaseOpened:
    return case_opened(departments=("waste", "parks"), at=MONDAY_NOON, neighbourhood=HOOD)


def test_a_notification_is_keyed_by_case_team_channel_and_kind_not_by_address():
    event = _opened()
    before = plan_notifications(event, BEFORE, now=MONDAY_NOON).notifications
    after = plan_notifications(event, AFTER, now=MONDAY_NOON).notifications
    assert {n.key for n in before} == {n.key for n in after}
    assert {n.key for n in before} == {
        f"{event.case_id}|waste-n01|email|new-case",
        f"{event.case_id}|waste-n01|webhook|new-case",
        f"{event.case_id}|parks-n01|email|new-case",
        f"{event.case_id}|manager:{HOOD}|email|joining-up",
    }
    assert not any("secret" in n.key or "@" in n.key for n in before)


def test_a_replayed_case_opened_of_a_closed_case_calls_for_nothing():
    event = _opened()
    opened = apply_event(None, event, BEFORE)
    closed = apply_event(
        opened, CaseClosed(occurred_at=MONDAY_NOON, case_id=event.case_id, reference="x"), BEFORE
    )
    assert closed is not None
    replayed = apply_event(closed, event, AFTER)
    plan = plan_notifications(event, AFTER, now=MONDAY_NOON, case=replayed)
    assert plan.notifications == ()
    assert plan.digests == ()
    assert plan.entries == ()
