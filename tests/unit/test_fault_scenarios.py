"""The fault suite's scenarios are what they say: the run's council has teams on digests and teams out of
hours for part of the run (and loads as the notifier will load it), and the load mixes reports given by
address alone with reports given with coordinates."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from caseway_notifier.domain.directory import load_directory
from caseway_notifier.domain.hours import next_allowed_time
from caseway_ops.loadtest.generator import GeneratedReport, LoadGenerator
from caseway_ops.loadtest.run_council import council_for_run, morning_zone, plan_hours
from caseway_shared.council import load_council

if TYPE_CHECKING:
    from pathlib import Path

NOW = datetime(2026, 11, 30, 23, 40, tzinfo=UTC)  # late at night in Liverpool


def test_the_runs_teams_live_where_the_run_starts_in_the_morning_whatever_the_hour() -> None:
    for hour in range(24):
        moment = NOW.replace(hour=hour)
        assert moment.astimezone(ZoneInfo(morning_zone(moment))).hour == 9


def test_the_runs_council_puts_some_teams_on_digests_and_some_out_of_hours_until_the_window_opens(
    tmp_path: Path,
) -> None:
    hours = plan_hours(NOW, opens_after_s=90)
    folder = council_for_run(
        tmp_path / "council",
        webhook_url=lambda team: f"http://127.0.0.1:1/hook/{team}",
        webhook_every=3,
        digest_every=4,
        digest_minutes=1,
        hours_every=5,
        hours=hours,
    )
    directory = load_directory(folder)
    assert directory.timezone == hours.timezone
    assert directory.defaults.digest_minutes == 1
    digest = [team.id for team in directory.teams if directory.delivery_of(team) == "digest"]
    late = [team for team in directory.teams if team.working_hours is not None]
    quiet = [team for team in directory.teams if team.quiet_hours is not None]
    hooked = [team for team in directory.teams if any(c.kind == "webhook" for c in team.channels)]
    assert digest[:2] == ["streetscene-city", "highways-city"]
    assert len(digest) == 8
    assert [team.id for team in late][:2] == ["env-crime-city", "waste-city"]
    assert len(late) == len(quiet) == 6
    assert len(hooked) == 10
    assert all(len(m.channels) == 1 for m in directory.managers)  # managers are no teams
    # Everyone else is in hours now; a late starter is held until its window opens, a quiet team until
    # its quiet hours end, and both windows fall within the next few minutes.
    start = NOW + timedelta(seconds=30)
    everyone = next_allowed_time(
        start, directory.defaults.working_hours, directory.defaults.quiet_hours, directory.timezone
    )
    assert everyone == start
    opens = next_allowed_time(
        start, directory.working_hours_of(late[0]), directory.quiet_hours_of(late[0]), directory.timezone
    )
    assert opens == hours.opens_at
    assert timedelta(seconds=90) <= opens - NOW <= timedelta(seconds=150)
    within_quiet = hours.quiet_from + timedelta(seconds=1)
    after_quiet = next_allowed_time(
        within_quiet,
        directory.working_hours_of(quiet[0]),
        directory.quiet_hours_of(quiet[0]),
        directory.timezone,
    )
    assert after_quiet == hours.quiet_until > hours.quiet_from


def test_without_scenarios_the_runs_council_is_the_default_one_with_webhooks(tmp_path: Path) -> None:
    folder = council_for_run(
        tmp_path / "council", webhook_url=lambda team: f"http://h/{team}", webhook_every=3
    )
    directory = load_directory(folder)
    assert directory.timezone == "Europe/London"
    assert all(team.delivery is None and team.working_hours is None for team in directory.teams)


def _location(report: GeneratedReport) -> dict[str, object]:
    return json.loads(report.value)["location"]


def _address(report: GeneratedReport) -> str:
    if report.path == "kafka":
        return str(_location(report)["address"])
    return report.fields["address_string"]


def test_the_load_mixes_address_only_reports_with_coordinate_reports_of_the_same_problems() -> None:
    generator = LoadGenerator(load_council(), seed=3, http_share=0.2, address_only_share=0.3)
    reports = [generator.next() for _ in range(3000)]
    valid = [r for r in reports if r.valid]
    address_only = [r for r in valid if r.address_only]
    assert 0.2 < len(address_only) / len(valid) < 0.45
    for report in address_only:
        if report.path == "kafka":
            assert "lat" not in _location(report)
            assert _location(report)["address"]
        else:
            assert "lat" not in report.fields
            assert report.fields["address_string"]
    kafka_only = [r for r in address_only if r.path == "kafka"]
    assert any("ward_code" in _location(r) for r in kafka_only)
    assert any("ward_code" not in _location(r) for r in kafka_only)

    # The same problem (its address) reported both ways.
    told: dict[str, set[bool]] = {}
    for report in valid:
        told.setdefault(_address(report), set()).add(report.address_only)
    assert sum(1 for ways in told.values() if ways == {True, False}) > 50


def test_without_address_only_reports_the_load_is_what_it_always_was() -> None:
    council = load_council()
    plain = LoadGenerator(council, seed=5)
    explicit = LoadGenerator(council, seed=5, address_only_share=0.0)
    for _ in range(500):
        a, b = plain.next(), explicit.next()
        assert (a.fields, a.address_only, b.address_only) == (b.fields, False, False)
        if a.valid and a.path == "kafka":
            assert {**json.loads(a.value), "received_at": ""} == {**json.loads(b.value), "received_at": ""}
            assert {"lat", "lon"} <= _location(a).keys()
