"""The fault suite counts alerts where they land (issue 11, item 17): repeats per notification key at the
mail sink and the webhook server, one alert under several keys, and alerts after their case closed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from caseway_ops.loadtest.invariants import Receipts, _at_receivers, parse_key

if TYPE_CHECKING:
    from pathlib import Path

CASE = "0b9f3c2e-1111-4a53-a0f0-0d8f3f0a8f7e"


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
    received, keys, after_close = _at_receivers(receipts, {CASE: 120.0})
    assert received == {(CASE, "highways-city", "email"), (CASE, "housing-city", "webhook")}
    assert len(keys[(CASE, "highways-city", "email", "new-case")]) == 2
    assert after_close == 2


def test_keys_are_read_as_case_team_channel_kind() -> None:
    assert parse_key("not-a-notification-key") is None
    assert parse_key(f"{CASE}|t|webhook|joining-up") == (CASE, "t", "webhook", "joining-up")
