"""The fault suite's proof: counts read back from the database, the topics and the mail sink.

Invariants (each count that must be zero is named so):
- every accepted report (intake.reports) is in exactly one case (router.reports): ``lost_reports``;
  every report the harness knows was delivered is accepted unless it was malformed: also ``lost_reports``;
- no case was opened twice for one report: ``duplicate_cases`` (cases holding no report, and reports whose
  CaseOpened events on cases.v1 name more than one case);
- every team assigned to a case got exactly one alert per case and kind: ``missing_alerts`` (an assigned
  team with no sent alert) and ``duplicate_alerts`` (more than one notification per case, team, channel
  and kind); the mail sink also counts keys delivered twice (``alerts_delivered_twice``: the at-least-once
  gap of a crash between sending and recording, which the receiver drops by X-Caseway-Notification-Key);
- every case says how many reports it holds: ``miscounted_cases`` (cases whose reports_count is not the
  number of reports linked to them; the neighbourhood figures of duplicated work avoided read it);
- every poison message is in ops.deadletter.v1 or reports.rejected.v1 with a reason: ``poison_accounted``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import asyncpg

from caseway_notifier.directory import load_directory
from caseway_ops.loadtest.harness import provenance, read_topic
from caseway_ops.loadtest.mailsink import read_deliveries
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
    alerts_delivered_twice: int
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
        if self.poison_accounted != self.poison_sent:
            found.append(f"{self.poison_sent - self.poison_accounted} poison messages unaccounted for")
        return found


async def count(
    database_url: str,
    bootstrap: str,
    prefix: str,
    sent: Sequence[Sent],
    mail_file: Path,
    *,
    poison: Sequence[Sent] = (),
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

    directory = load_directory(LIVERPOOL_DIR)
    expected: set[tuple[str, str, str]] = set()
    for row in assignments:
        for team in directory.teams_for(row["department"], row["neighbourhood"]):
            for channel in team.channels:
                expected.add((str(row["case_id"]), team.id, channel.kind))
    # Digests are one per case (or team) and period, keyed by the period: only alerts must be one per case.
    per_key = Counter(
        (str(n["case_id"]), n["team"], n["channel"], n["kind"])
        for n in notifications
        if n["case_id"] is not None and n["kind"] not in DIGEST_KINDS
    )
    sent_alerts = {
        (str(n["case_id"]), n["team"], n["channel"])
        for n in notifications
        if n["status"] == "sent" and n["kind"] in ALERT_KINDS and n["case_id"] is not None
    }
    deliveries = Counter(key for key, _ in read_deliveries(mail_file))

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
        alerts_sent=len(expected & sent_alerts),
        missing_alerts=len(expected - sent_alerts),
        duplicate_alerts=sum(n - 1 for n in per_key.values() if n > 1),
        alerts_failed=sum(1 for n in notifications if n["status"] == "failed"),
        emails_received=sum(deliveries.values()),
        alerts_delivered_twice=sum(1 for n in deliveries.values() if n > 1),
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
