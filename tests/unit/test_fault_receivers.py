"""The fault suite counts what teams receive where it lands (issue 11, items 17 and 18): repeats per
notification key at the mail sink and the webhook server, one alert under several keys, alerts after their
case closed, what digests listed and counted, and deliveries outside a team's hours. Each check is fed
crafted receipts holding the fault it must catch, so a check that cannot fail would fail here."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time
from typing import TYPE_CHECKING

import httpx

from caseway_notifier.adapters.channels import SmtpChannel, WebhookChannel
from caseway_notifier.domain.directory import Directory, QuietHours, WorkingHours
from caseway_notifier.domain.wording import compose_digest
from caseway_notifier.service.ports import Message
from caseway_ops.loadtest.invariants import (
    Receipts,
    at_receivers,
    check_digests,
    check_reports_digests,
    in_hours,
    out_of_hours,
    parse_key,
)
from caseway_ops.loadtest.mailsink import CountingHandler
from caseway_ops.loadtest.receipts import Delivery, read_deliveries
from caseway_ops.loadtest.webhooksink import CountingApp
from caseway_shared.events import NotificationKind

if TYPE_CHECKING:
    from pathlib import Path

CASE = "0b9f3c2e-1111-4a53-a0f0-0d8f3f0a8f7e"
OTHER = "5d1e0f4a-2222-4b8c-9e1f-3a7b6c5d4e3f"
REFERENCES = {"LIV-2026-000001": CASE, "LIV-2026-000002": OTHER}
DIGEST_AT_TEN = "team|waste-n01|email|new-cases-digest@2026-11-30T10:00Z"
DIGEST_AT_ELEVEN = "team|waste-n01|email|new-cases-digest@2026-11-30T11:00Z"
# 2026-11-30 is a Monday; 12:00 UTC.
NOON = datetime(2026, 11, 30, 12, tzinfo=UTC).timestamp()


def _receipts(*mail: Delivery, webhook: tuple[Delivery, ...] = ()) -> Receipts:
    return Receipts(mail=list(mail), webhook=list(webhook))


def test_a_key_delivered_twice_across_receivers_is_counted_and_one_alert_under_two_keys_too(
    tmp_path: Path,
) -> None:
    mail = tmp_path / "mail.tsv"
    hook = tmp_path / "hook.tsv"
    mail.write_text(
        f"{CASE}|highways-city|email|new-case\thighways@example.org\t100.0\n"
        f"{CASE}|highways-city|email|new-case\thighways@example.org\t130.0\n"  # repeated after a kill -9
        f"{CASE}|highways-city|email:old@example.org|new-case\told@example.org\t140.0\n"  # a key of old
    )
    hook.write_text(f"{CASE}%7Chousing-city%7Cwebhook%7Cnew-case\thousing-city\t101.0\n")
    receipts = Receipts.read(mail, hook)
    assert receipts.repeats() == 1
    seen = at_receivers(receipts, {CASE: 120.0})
    assert seen.received == {(CASE, "highways-city", "email"), (CASE, "housing-city", "webhook")}
    assert len(seen.keys_per_alert[(CASE, "highways-city", "email", "new-case")]) == 2
    assert seen.after_close == 2


def test_keys_are_read_as_case_team_channel_kind() -> None:
    assert parse_key("not-a-notification-key") is None
    assert parse_key(f"{CASE}|t|webhook|joining-up") == (CASE, "t", "webhook", "joining-up")


# --- digests --------------------------------------------------------------------------------------------


def test_a_case_listed_in_two_digests_is_counted_twice_and_a_case_in_none_is_missing() -> None:
    receipts = _receipts(
        Delivery(DIGEST_AT_TEN, "waste@example.org", 100.0, "cases=LIV-2026-000001"),
        Delivery(DIGEST_AT_ELEVEN, "waste@example.org", 200.0, "cases=LIV-2026-000001"),
    )
    expected = {(CASE, "waste-n01", "email"), (OTHER, "waste-n01", "email")}
    seen = at_receivers(receipts, {}, REFERENCES)
    check = check_digests(expected, seen, closed=set())
    assert (check.expected, check.listed, check.missing, check.repeated) == (2, 1, 1, 1)


def test_one_digest_delivered_twice_lists_its_cases_once_and_a_repeat_is_left_to_the_key_count() -> None:
    receipts = _receipts(
        Delivery(DIGEST_AT_TEN, "waste@example.org", 100.0, "cases=LIV-2026-000001,LIV-2026-000002"),
        Delivery(DIGEST_AT_TEN, "waste@example.org", 130.0, "cases=LIV-2026-000001,LIV-2026-000002"),
    )
    expected = {(CASE, "waste-n01", "email"), (OTHER, "waste-n01", "email")}
    check = check_digests(expected, at_receivers(receipts, {}, REFERENCES), closed=set())
    assert (check.listed, check.missing, check.repeated) == (2, 0, 0)
    assert receipts.repeats() == 1


def test_a_case_in_a_digest_and_alerted_on_its_own_as_well_is_told_twice() -> None:
    receipts = _receipts(
        Delivery(DIGEST_AT_TEN, "waste@example.org", 100.0, "cases=LIV-2026-000001"),
        Delivery(f"{CASE}|waste-n01|email|new-case", "waste@example.org", 50.0),
    )
    check = check_digests(
        {(CASE, "waste-n01", "email")}, at_receivers(receipts, {}, REFERENCES), closed=set()
    )
    assert check.repeated == 1


def test_a_closed_case_owes_no_digest_line_but_a_line_after_its_close_is_counted() -> None:
    expected = {(CASE, "waste-n01", "email")}
    nothing = at_receivers(_receipts(), {CASE: 90.0}, REFERENCES)
    assert check_digests(expected, nothing, closed={CASE}).missing == 0
    late = _receipts(Delivery(DIGEST_AT_TEN, "waste@example.org", 100.0, "cases=LIV-2026-000001"))
    assert at_receivers(late, {CASE: 90.0}, REFERENCES).after_close == 1
    assert at_receivers(late, {CASE: 99.5}, REFERENCES).after_close == 0  # within the grace of a send
    assert at_receivers(late, {CASE: 90.0}, REFERENCES, grace=15.0).after_close == 0  # within a claim's lease
    assert at_receivers(late, {CASE: 80.0}, REFERENCES, grace=15.0).late == [
        f"{DIGEST_AT_TEN} (case {CASE}) at 100.000, 20.0 s after its close"
    ]


def test_further_reports_are_each_counted_once_in_the_cases_digests() -> None:
    first = f"{CASE}|waste-n01|email|reports-digest@2026-11-30T10:00Z"
    second = f"{CASE}|waste-n01|email|reports-digest@2026-11-30T11:00Z"
    alert = (CASE, "waste-n01", "email")
    receipts = _receipts(
        Delivery(first, "waste@example.org", 100.0, "more=2"),
        Delivery(first, "waste@example.org", 110.0, "more=2"),  # the same digest again: counted once
        Delivery(second, "waste@example.org", 200.0, "more=1"),
    )
    seen = at_receivers(receipts, {})
    assert check_reports_digests({alert: 3}, seen) == (3, 0, 0)
    assert check_reports_digests({alert: 2}, seen) == (2, 0, 1)  # one report counted twice
    assert check_reports_digests({alert: 5}, seen) == (5, 2, 0)  # two reports in no digest


# --- working hours --------------------------------------------------------------------------------------


def _hours_directory() -> Directory:
    return Directory.model_validate(
        {
            "staff_case_url": "https://staff.example.org/cases/{reference}",
            "timezone": "Etc/GMT-2",  # 12:00 UTC is 14:00 here
            "defaults": {
                "working_hours": {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]},
                "quiet_hours": {"start": "00:00", "end": "00:00"},
            },
            "teams": [
                {
                    "id": "late",
                    "name": "Late starters",
                    "department": "waste",
                    "channels": [{"kind": "email", "address": "late@example.org"}],
                    "working_hours": {"days": ["mon"], "start": "14:30", "end": "23:59"},
                },
                {
                    "id": "quiet",
                    "name": "Quiet after lunch",
                    "department": "parks",
                    "channels": [{"kind": "email", "address": "quiet@example.org"}],
                    "quiet_hours": {"start": "13:50", "end": "14:10"},
                },
            ],
        }
    )


def test_an_alert_delivered_before_its_team_starts_work_or_in_its_quiet_hours_is_counted() -> None:
    directory = _hours_directory()
    receipts = _receipts(
        Delivery(f"{CASE}|late|email|new-case", "late@example.org", NOON),  # 14:00, work starts 14:30
        Delivery(f"{OTHER}|late|email|new-case", "late@example.org", NOON + 1800),  # 14:30: in hours
        Delivery(f"{CASE}|quiet|email|new-case", "quiet@example.org", NOON),  # 14:00: quiet
        Delivery(f"{OTHER}|quiet|email|new-case", "quiet@example.org", NOON + 600),  # 14:10: quiet is over
        Delivery("team|late|email|new-cases-digest@2026-11-30T11:00Z", "late@example.org", NOON + 60),
    )
    assert len(out_of_hours(receipts, directory, urgent=set())) == 3


def test_urgent_cases_go_whatever_the_hours_and_escalations_wait_only_for_quiet_hours() -> None:
    directory = _hours_directory()
    receipts = _receipts(
        Delivery(f"{CASE}|late|email|new-case", "late@example.org", NOON),
        Delivery(f"{CASE}|late|email|reports-digest@2026-11-30T11:00Z", "late@example.org", NOON),
        Delivery(f"{OTHER}|manager:N01|email|escalation", "m@example.org", NOON),
    )
    assert out_of_hours(receipts, directory, urgent={CASE}) == []
    assert len(out_of_hours(receipts, directory, urgent=set())) == 2


def test_hours_are_read_in_the_directorys_zone_with_quiet_hours_across_midnight() -> None:
    working = WorkingHours(days=("mon",), start=time(8), end=time(18))
    night = QuietHours(start=time(20), end=time(8))
    assert in_hours(NOON, working, night, "Europe/London")
    assert not in_hours(NOON, working, night, "Etc/GMT-9")  # 21:00 there: quiet
    assert not in_hours(NOON, working, night, "Etc/GMT+6")  # 06:00 there: before work and quiet


# --- the receivers read what the notifier sends ----------------------------------------------------------


def _digest_message(key: str, kind: str, *, address: str = "waste@example.org") -> Message:
    lines = ["LIV-2026-000001: Missed bin, N01, normal, due Mon: https://staff/cases/LIV-2026-000001"]
    if kind == NotificationKind.REPORTS_DIGEST:
        lines = ["reports now 2", "reports now 3"]
    subject, body = compose_digest(kind, "New cases for Waste", "New cases for Waste:\n", lines)
    return Message(key=key, address=address, subject=subject, body=body)


class _Envelope:
    def __init__(self, content: bytes) -> None:
        self.content = content
        self.rcpt_tos = ["waste@example.org"]


async def test_the_mail_sink_reads_the_cases_a_digest_lists_and_the_reports_it_counts(tmp_path: Path) -> None:
    smtp = SmtpChannel(host="127.0.0.1", port=1, sender="caseway@example.org")
    out = tmp_path / "mail.tsv"
    with out.open("w", encoding="utf-8") as handle:
        handler = CountingHandler(handle)
        for key, kind in (
            (DIGEST_AT_TEN, NotificationKind.NEW_CASES_DIGEST),
            (f"{CASE}|waste-n01|email|reports-digest@2026-11-30T10:00Z", NotificationKind.REPORTS_DIGEST),
            (f"{CASE}|waste-n01|email|new-case", "new-case"),
        ):
            await handler.handle_DATA(None, None, _Envelope(smtp._email(_digest_message(key, kind))))
    assert [d.detail for d in read_deliveries(out)] == ["cases=LIV-2026-000001", "more=2", ""]


async def test_the_webhook_server_reads_the_cases_a_digest_lists(tmp_path: Path) -> None:
    posted: list[httpx.Request] = []
    transport = httpx.MockTransport(lambda request: posted.append(request) or httpx.Response(200))
    async with httpx.AsyncClient(transport=transport) as client:
        await WebhookChannel(client=client).send(
            _digest_message(
                DIGEST_AT_TEN.replace("email", "webhook"),
                NotificationKind.NEW_CASES_DIGEST,
                address="http://127.0.0.1/hook/waste-n01",
            )
        )
    request = posted[0]
    out = tmp_path / "hook.tsv"
    sent: list[dict[str, object]] = []

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": request.content, "more_body": False}

    with out.open("w", encoding="utf-8") as handle:
        headers = [(name.lower(), value) for name, value in request.headers.raw]  # as ASGI gives them
        scope = {"type": "http", "path": "/hook/waste-n01", "headers": headers}
        await CountingApp(handle, tmp_path / "no-fail-file")(scope, receive, send)
    assert sent[0]["status"] == 200
    (delivery,) = read_deliveries(out)
    assert (delivery.who, delivery.detail) == ("waste-n01", "cases=LIV-2026-000001")
    assert json.loads(request.content)["text"].startswith("New cases for Waste: 1")
