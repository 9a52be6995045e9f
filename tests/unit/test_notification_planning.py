"""The notifier's pure planning: who is told, once, and when."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from caseway_notifier.domain.directory import WorkingHours, load_directory
from caseway_notifier.domain.hours import next_working_time
from caseway_notifier.domain.planning import plan_notifications
from caseway_shared.council import LIVERPOOL_DIR
from caseway_shared.events import CaseAssigned, Priority
from factories import case_opened, report_linked

DIRECTORY = load_directory(LIVERPOOL_DIR)
HOOD = "N01 City Centre & Waterfront South"
MONDAY_NOON = datetime(2026, 11, 23, 12, tzinfo=UTC)


def _opened(departments=("streetscene", "env-crime"), priority=Priority.NORMAL):
    return case_opened(
        departments=departments,
        priority=priority,
        at=MONDAY_NOON,
        reference="LV-2026-000001",
        neighbourhood=HOOD,
    )


def test_each_department_s_team_is_alerted_and_the_manager_told_of_joined_up_cases():
    planned = plan_notifications(_opened(), DIRECTORY, now=MONDAY_NOON).notifications
    teams = sorted(p.team for p in planned)
    assert teams == ["env-crime-city", f"manager:{HOOD}", "streetscene-n01"]
    assert all("LV-2026-000001" in p.body for p in planned)


def test_planning_twice_gives_the_same_keys_and_assignments_reuse_them():
    event = _opened()
    first = {p.key for p in plan_notifications(event, DIRECTORY, now=MONDAY_NOON).notifications}
    again = {p.key for p in plan_notifications(event, DIRECTORY, now=MONDAY_NOON).notifications}
    assigned = CaseAssigned(
        occurred_at=MONDAY_NOON,
        case_id=event.case_id,
        reference=event.reference,
        department="env-crime",
        role="contributor",
        neighbourhood=HOOD,
    )
    assert first == again
    assert {p.key for p in plan_notifications(assigned, DIRECTORY, now=MONDAY_NOON).notifications} <= first


def test_a_linked_report_sends_no_new_alert():
    linked = report_linked(_opened(), 2, at=MONDAY_NOON)
    assert plan_notifications(linked, DIRECTORY, now=MONDAY_NOON).notifications == ()


def test_non_urgent_alerts_wait_for_working_hours_and_urgent_ones_do_not():
    saturday_night = datetime(2026, 11, 28, 23, tzinfo=UTC)
    normal = plan_notifications(_opened(("streetscene",)), DIRECTORY, now=saturday_night).notifications
    urgent = plan_notifications(
        _opened(("streetscene",), priority=Priority.URGENT), DIRECTORY, now=saturday_night
    ).notifications
    assert normal[0].not_before == datetime(2026, 11, 30, 8, tzinfo=ZoneInfo("Europe/London"))
    assert urgent[0].not_before == saturday_night


def test_working_hours_follow_local_time_across_the_clock_change():
    hours = WorkingHours()
    # Sunday 29 March 2026 the clocks go forward: Monday 08:00 local is 07:00 UTC.
    assert next_working_time(datetime(2026, 3, 29, 12, tzinfo=UTC), hours, "Europe/London") == datetime(
        2026, 3, 30, 7, tzinfo=UTC
    )
