"""The fault suite's proof: counts read back from the database, the topics and the mail sink.

Invariants (each count that must be zero is named so):
- every accepted report (intake.reports) is in exactly one case (router.reports): ``lost_reports``;
  every report the harness knows was delivered is accepted unless it was malformed: also ``lost_reports``;
- no case was opened twice for one report: ``duplicate_cases`` (cases holding no report, and reports whose
  CaseOpened events on cases.v1 name more than one case);
- every team assigned to a case was alerted, counted where the alert lands (the mail sink and the webhook
  server, by X-Caseway-Notification-Key / Idempotency-Key): ``missing_alerts`` (an assigned team's
  channel that received no alert for the case); ``alerts_delivered_twice`` (repeats of one notification
  key at a receiver: the at-least-once gap of a sender killed -9 between sending and recording, at most
  one per sender in flight); ``duplicate_alerts`` (one case, team, channel and kind alerted under more
  than one key: a replay after an address change, or keys that do not say what they alert);
  ``alerts_failed`` (notifications failed for good); ``alerts_after_close`` (alerts that arrived after
  their case was closed);
- every case says how many reports it holds: ``miscounted_cases`` (cases whose reports_count is not the
  number of reports linked to them; the neighbourhood figures of duplicated work avoided read it);
- every poison message is in ops.deadletter.v1 or reports.rejected.v1 with a reason: ``poison_accounted``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import asyncpg

from caseway_notifier.directory import load_directory
from caseway_ops.loadtest.harness import provenance, read_topic
from caseway_ops.loadtest.mailsink import read_timed_deliveries
from caseway_shared.council import LIVERPOOL_DIR
from caseway_shared.topics import Topic

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path
    from uuid import UUID

    from caseway_ops.loadtest.harness import Sent

ALERT_KINDS = ("new-case", "joining-up")
DIGEST_KINDS = ("reports-digest", "new-cases-digest")


@dataclass(frozen=True, slots=True)
class Counts:
    accepted: int
    cases: int
    duplicate_cases: int
    miscounted_cases: int
    lost_reports: int
    alerts_expected: int
    alerts_sent: int
    missing_alerts: int
    duplicate_alerts: int
    alerts_failed: int
    emails_received: int
    webhooks_received: int
    alerts_delivered_twice: int
    alerts_after_close: int
    poison_sent: int
    poison_accounted: int
    rejected_on_topic: int
    deadlettered_on_topic: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def problems(self) -> list[str]:
        """Every invariant that does not hold, in words."""
        found = []
        if self.lost_reports:
            found.append(f"{self.lost_reports} reports lost")
        if self.duplicate_cases:
            found.append(f"{self.duplicate_cases} duplicate cases")
        if self.miscounted_cases:
            found.append(f"{self.miscounted_cases} cases whose report count is wrong")
        if self.missing_alerts:
            found.append(f"{self.missing_alerts} assigned teams not alerted")
        if self.duplicate_alerts:
            found.append(f"{self.duplicate_alerts} duplicate alerts")
        if self.alerts_failed:
            found.append(f"{self.alerts_failed} alerts failed")
        if self.alerts_after_close:
            found.append(f"{self.alerts_after_close} alerts arrived after their case was closed")
        if self.poison_accounted != self.poison_sent:
            found.append(f"{self.poison_sent - self.poison_accounted} poison messages unaccounted for")
        return found


def parse_key(key: str) -> tuple[str, str, str, str] | None:
    """(case, team, channel, kind) of a notification key as a receiver saw it (URL-quoted), or None for a
    key of another form (digests). An address in the channel part (keys of old) is dropped."""
    parts = unquote(key).split("|")
    if len(parts) != 4:  # noqa: PLR2004 - case|team|channel|kind
        return None
    case, team, channel, kind = parts
    return case, team, channel.split(":", 1)[0], kind


@dataclass(frozen=True, slots=True)
class Receipts:
    """What the receivers got: every delivery's key and arrival time, mail and webhooks."""

    mail: list[tuple[str, float]]
    webhook: list[tuple[str, float]]

    @classmethod
    def read(cls, mail_file: Path, webhook_file: Path | None) -> Receipts:
        return cls(
            mail=[(key, at) for key, _, at in read_timed_deliveries(mail_file)],
            webhook=[(key, at) for key, _, at in read_timed_deliveries(webhook_file)] if webhook_file else [],
        )

    def all(self) -> list[tuple[str, float]]:
        return self.mail + self.webhook

    def repeats(self) -> int:
        """Deliveries of a notification key beyond its first."""
        return sum(n - 1 for n in Counter(key for key, _ in self.all()).values() if n > 1)


def _at_receivers(
    receipts: Receipts, closed: dict[str, float]
) -> tuple[set[tuple[str, str, str]], dict[tuple[str, str, str, str], set[str]], int]:
    """(case, team, channel) alerted; the keys each alert arrived under; alerts after their case closed."""
    received: set[tuple[str, str, str]] = set()
    keys_per_alert: dict[tuple[str, str, str, str], set[str]] = {}
    after_close = 0
    for key, at in receipts.all():
        parsed = parse_key(key)
        if parsed is None:
            continue
        case, team, channel, kind = parsed
        if kind in ALERT_KINDS:
            received.add((case, team, channel))
            keys_per_alert.setdefault(parsed, set()).add(unquote(key))
        if case in closed and at > closed[case] + 1.0:
            after_close += 1
    return received, keys_per_alert, after_close


async def count(
    database_url: str,
    bootstrap: str,
    prefix: str,
    sent: Sequence[Sent],
    mail_file: Path,
    *,
    poison: Sequence[Sent] = (),
    webhook_file: Path | None = None,
    council_dir: Path = LIVERPOOL_DIR,
) -> Counts:
    db = await asyncpg.connect(database_url)
    try:
        intake_ids: set[UUID] = {
            r["report_id"] for r in await db.fetch("SELECT report_id FROM intake.reports")
        }
        routed = {
            r["report_id"]: r["case_id"]
            for r in await db.fetch("SELECT report_id, case_id FROM router.reports")
        }
        cases = await db.fetchval("SELECT count(*) FROM router.cases")
        orphan_cases = await db.fetchval(
            "SELECT count(*) FROM router.cases c"
            " WHERE NOT EXISTS (SELECT 1 FROM router.reports r WHERE r.case_id = c.case_id)"
        )
        miscounted = await db.fetchval(
            "SELECT count(*) FROM router.cases c WHERE c.reports_count <>"
            " (SELECT count(*) FROM router.reports r WHERE r.case_id = c.case_id)"
        )
        assignments = await db.fetch(
            "SELECT a.case_id, a.department, c.neighbourhood"
            " FROM router.assignments a JOIN router.cases c USING (case_id)"
        )
        closed = {
            str(r["case_id"]): r["closed_at"].timestamp()
            for r in await db.fetch("SELECT case_id, closed_at FROM router.cases WHERE closed_at IS NOT NULL")
        }
        notifications = await db.fetch(
            "SELECT notification_key, case_id, team, channel, kind, status FROM notifier.notifications"
        )
    finally:
        await db.close()

    delivered_ok = {s.report_id for s in sent if s.report.valid and s.report_id is not None}
    lost = len(delivered_ok - intake_ids) + len(intake_ids - routed.keys())

    opened: dict[str, set[str]] = {}
    for record in await read_topic(bootstrap, f"{prefix}{Topic.CASES}"):
        headers = {k: v.decode("utf-8", "replace") for k, v in record.headers or ()}
        if headers.get("event-type") == "CaseOpened":
            opened.setdefault(headers.get("correlation-id", ""), set()).add((record.key or b"").decode())
    opened_twice = sum(1 for case_ids in opened.values() if len(case_ids) > 1)

    directory = load_directory(council_dir)
    expected: set[tuple[str, str, str]] = set()
    for row in assignments:
        for team in directory.teams_for(row["department"], row["neighbourhood"]):
            for channel in team.channels:
                expected.add((str(row["case_id"]), team.id, channel.kind))

    # Counted where the alerts land, not in our own tables.
    receipts = Receipts.read(mail_file, webhook_file)
    received, keys_per_alert, after_close = _at_receivers(receipts, closed)

    accounted = 0
    if poison:
        rejected = await read_topic(bootstrap, f"{prefix}{Topic.REPORTS_REJECTED}")
        dead = await read_topic(bootstrap, f"{prefix}{Topic.DEADLETTER}")
        where = provenance(rejected) | provenance(dead)
        accounted = sum(1 for p in poison if where.get((p.topic, p.partition, p.offset)))
        rejected_n, dead_n = len(rejected), len(dead)
    else:
        rejected_n = dead_n = 0

    return Counts(
        accepted=len(intake_ids),
        cases=cases,
        duplicate_cases=orphan_cases + opened_twice,
        miscounted_cases=miscounted,
        lost_reports=lost,
        alerts_expected=len(expected),
        alerts_sent=len(expected & received),
        missing_alerts=len(expected - received),
        duplicate_alerts=sum(len(keys) - 1 for keys in keys_per_alert.values() if len(keys) > 1),
        alerts_failed=sum(1 for n in notifications if n["status"] == "failed"),
        emails_received=len(receipts.mail),
        webhooks_received=len(receipts.webhook),
        alerts_delivered_twice=receipts.repeats(),
        alerts_after_close=after_close,
        poison_sent=len(poison),
        poison_accounted=accounted,
        rejected_on_topic=rejected_n,
        deadlettered_on_topic=dead_n,
    )


async def totals(database_url: str) -> tuple[int, int]:
    """(cases, notifications): what a replay must leave unchanged."""
    db = await asyncpg.connect(database_url)
    try:
        row = await db.fetchrow(
            "SELECT (SELECT count(*) FROM router.cases) AS c,"
            " (SELECT count(*) FROM notifier.notifications) AS n"
        )
        if row is None:
            raise RuntimeError("no row")
        return int(row["c"]), int(row["n"])
    finally:
        await db.close()
