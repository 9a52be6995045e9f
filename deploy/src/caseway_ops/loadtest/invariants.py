"""The fault suite's proof: counts read back from the database, the topics and the receivers.

Invariants (each count that must be zero is named so):
- every accepted report (intake.reports) is in exactly one case (router.reports): ``lost_reports``;
  every report the harness knows was delivered is accepted unless it was malformed: also ``lost_reports``;
- no case was opened twice for one report: ``duplicate_cases`` (cases holding no report, and reports whose
  CaseOpened events on cases.v1 name more than one case); no report is in two cases:
  ``reports_in_two_cases`` (its CaseOpened and ReportLinked events on cases.v1 name more than one case);
- reports with an address and no coordinates, mixed with reports with coordinates, each end in exactly one
  case: ``address_only_misplaced`` (accepted, but not routed, or named in more than one case's events);
- every team assigned to a case was alerted, counted where the alert lands (the mail sink and the webhook
  server, by X-Caseway-Notification-Key / Idempotency-Key): ``missing_alerts`` (an assigned team's
  channel that received no alert for a case still open); ``alerts_delivered_twice`` (repeats of one
  notification key at a receiver: the at-least-once gap of a sender killed -9 between sending and
  recording, at most what it had in flight); ``duplicate_alerts`` (one case, team, channel and kind
  alerted under more than one key: a replay after an address change, or keys that do not say what they
  alert); ``alerts_failed`` (notifications failed for good); ``alerts_after_close`` (alerts, digests of a
  case and lines of a team's digest that arrived after their case was closed);
- a team on digest delivery gets each new non-urgent case as a line of exactly one digest, read from the
  digests' bodies at the receivers: ``digest_missing`` (a case still open in no digest), ``digest_repeated``
  (in a second digest, or alerted on its own besides); every further report of an open case is counted
  in exactly one of that case's digests to each of its teams: ``reports_digest_missing`` /
  ``reports_digest_repeated``;
- nothing reaches a team outside its working hours or inside its quiet hours, urgent cases aside:
  ``delivered_out_of_hours`` (read from the run's team directory and each delivery's arrival time);
- every case says how many reports it holds: ``miscounted_cases`` (cases whose reports_count is not the
  number of reports linked to them; the neighbourhood figures of duplicated work avoided read it);
- every poison message is in ops.deadletter.v1 or reports.rejected.v1 with a reason: ``poison_accounted``.

A case counts as closed from the later of the router closing it and the notifier recording it closed
(``notifier.cases``), plus a grace: the close reaches the notifier through cases.v1, and the notifier
decides at the claim whether a case is closed, so a notification claimed just before the close was
committed may still go while its claim lasts (the run's claim lease). What arrives later than that is a
fault: an alert held for a team's hours, a digest, a retry. What arrived after the router's close but
within that is shown as ``alerts_while_close_in_flight`` (before the notifier recorded the close) and
``alerts_after_close_within_lease`` (after it, within the lease), not counted as faults. ``examples``
holds a few of each, with their times, for whoever has to find out why.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, time
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote
from zoneinfo import ZoneInfo

import asyncpg

from caseway_notifier.domain.directory import DAYS, Directory, QuietHours, WorkingHours, load_directory
from caseway_ops.loadtest.harness import provenance, read_topic
from caseway_ops.loadtest.receipts import Delivery, listed_cases, more_reports, read_deliveries
from caseway_shared.council import LIVERPOOL_DIR
from caseway_shared.topics import Topic

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from collections.abc import Set as AbstractSet
    from pathlib import Path
    from uuid import UUID

    from caseway_ops.loadtest.harness import Sent

ALERT_KINDS = ("new-case", "joining-up")
DIGEST_KINDS = ("reports-digest", "new-cases-digest")
CLOSE_GRACE_S = 1.0  # a send claimed just before the close was recorded lands a moment after
EXAMPLES = 10  # of each fault, kept for the report
HOURS_GRACE_S = 2.0  # a send that began in hours lands a moment after they end


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
    reports_in_two_cases: int = 0
    cases_closed: int = 0  # closed during the run (by the harness, through the staff API)
    alerts_while_close_in_flight: int = 0  # after the router closed the case, before the notifier knew
    alerts_after_close_within_lease: int = 0  # after the notifier recorded the close, within a claim's lease
    digest_expected: int = 0
    digest_listed: int = 0
    digest_missing: int = 0
    digest_repeated: int = 0
    digests_received: int = 0
    reports_digest_expected: int = 0
    reports_digest_missing: int = 0
    reports_digest_repeated: int = 0
    held_for_hours: int = 0  # alerts planned while their team was out of hours, sent when it was back
    delivered_out_of_hours: int = 0
    address_only_accepted: int = 0
    address_only_with_coordinates: int = 0  # in a case that also holds a report with coordinates
    address_only_misplaced: int = 0
    examples: dict[str, list[str]] = field(default_factory=dict)  # a few of each fault found, with times

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def problems(self) -> list[str]:
        """Every invariant that does not hold, in words."""
        counted = [
            (self.lost_reports, "reports lost"),
            (self.duplicate_cases, "duplicate cases"),
            (self.reports_in_two_cases, "reports in two cases"),
            (self.address_only_misplaced, "address-only reports not in exactly one case"),
            (self.miscounted_cases, "cases whose report count is wrong"),
            (self.missing_alerts, "assigned teams not alerted"),
            (self.duplicate_alerts, "duplicate alerts"),
            (self.alerts_failed, "alerts failed"),
            (self.alerts_after_close, "alerts arrived after their case was closed"),
            (self.digest_missing, "cases in no digest of a team on digest delivery"),
            (self.digest_repeated, "cases told twice to a team on digest delivery"),
            (self.reports_digest_missing, "further reports counted in no digest"),
            (self.reports_digest_repeated, "further reports counted twice in digests"),
            (self.delivered_out_of_hours, "deliveries outside their team's hours"),
            (self.poison_sent - self.poison_accounted, "poison messages unaccounted for"),
        ]
        return [f"{n} {what}" for n, what in counted if n]


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
    """What the receivers got: every delivery's key, arrival time and (digests) what it said."""

    mail: list[Delivery]
    webhook: list[Delivery]

    @classmethod
    def read(cls, mail_file: Path, webhook_file: Path | None) -> Receipts:
        return cls(
            mail=read_deliveries(mail_file), webhook=read_deliveries(webhook_file) if webhook_file else []
        )

    def all(self) -> list[Delivery]:
        return self.mail + self.webhook

    def repeats(self) -> int:
        """Deliveries of a notification key beyond its first."""
        return sum(n - 1 for n in Counter(d.key for d in self.all()).values() if n > 1)

    def first_of_each_key(self) -> list[Delivery]:
        """Each notification key's first delivery (a repeat after a kill -9 says the same again)."""
        seen: dict[str, Delivery] = {}
        for delivery in sorted(self.all(), key=lambda d: d.at):
            seen.setdefault(unquote(delivery.key), delivery)
        return list(seen.values())


Alert = tuple[str, str, str]  # (case id, team, channel kind)


@dataclass(frozen=True, slots=True)
class AtReceivers:
    """What arrived, per alert: alerts on their own, digests' listings, and what arrived too late."""

    received: set[Alert]  # alerted on their own (new-case, joining-up)
    keys_per_alert: dict[tuple[str, str, str, str], set[str]]  # (case, team, channel, kind) -> keys
    listed: dict[Alert, set[str]]  # (case, team, channel) -> the team digests (keys) that listed it
    told: dict[Alert, int]  # (case, team, channel) -> further reports counted by the case's digests
    late: list[str]  # alerts, digests and digest lines that arrived after their case closed (+ grace)

    @property
    def after_close(self) -> int:
        return len(self.late)


def at_receivers(
    receipts: Receipts,
    closed: Mapping[str, float],
    references: Mapping[str, str] | None = None,
    *,
    grace: float = CLOSE_GRACE_S,
) -> AtReceivers:
    """Read what arrived. `closed`: case id -> when it counted as closed (see `count`), and what arrives
    more than `grace` seconds after that is late; `references`: case reference -> case id, to read the
    cases a team's digest listed."""
    references = references or {}
    received: set[Alert] = set()
    keys_per_alert: dict[tuple[str, str, str, str], set[str]] = {}
    for delivery in receipts.all():
        parsed = parse_key(delivery.key)
        if parsed is not None and parsed[3] in ALERT_KINDS:
            received.add(parsed[:3])
            keys_per_alert.setdefault(parsed, set()).add(unquote(delivery.key))
    listed: dict[Alert, set[str]] = {}
    told: dict[Alert, int] = {}
    for delivery in receipts.first_of_each_key():
        parsed = parse_key(delivery.key)
        if parsed is None:
            continue
        case, team, channel, kind = parsed
        for reference in listed_cases(delivery.detail):
            alert = (references.get(reference, reference), team, channel)
            listed.setdefault(alert, set()).add(unquote(delivery.key))
        if kind.startswith("reports-digest@"):
            told[(case, team, channel)] = told.get((case, team, channel), 0) + more_reports(delivery.detail)
    late = _after_close(receipts, closed, references, grace=grace)
    return AtReceivers(received, keys_per_alert, listed, told, late)


def _after_close(
    receipts: Receipts, closed: Mapping[str, float], references: Mapping[str, str], *, grace: float
) -> list[str]:
    """Deliveries of a closed case's alerts and digests, and lines of a team's digest naming a closed case,
    that arrived more than `grace` after the case counted as closed, each said with its times."""
    found = []
    for delivery in receipts.all():
        parsed = parse_key(delivery.key)
        cases = [parsed[0]] if parsed is not None else []
        cases += [references.get(reference, reference) for reference in listed_cases(delivery.detail)]
        found += [
            f"{unquote(delivery.key)} (case {case}) at {delivery.at:.3f}, {delivery.at - closed[case]:.1f} s"
            " after its close"
            for case in cases
            if case in closed and delivery.at > closed[case] + grace
        ]
    return found


@dataclass(frozen=True, slots=True)
class DigestCheck:
    expected: int  # alerts that should each be a line of exactly one digest
    listed: int  # of which some digest listed
    missing: int  # in no digest (a case still open at the end)
    repeated: int  # listings beyond one: a second digest, or an alert of its own besides


def check_digests(
    expected: AbstractSet[Alert], seen: AtReceivers, *, closed: AbstractSet[str]
) -> DigestCheck:
    """Every alert in `expected` (an open non-urgent case for a team on digest delivery) appears in exactly
    one digest, and is not also alerted on its own. A case closed meanwhile owes no line (its digest
    leaves it out); a line that arrives after the close is counted by `after_close`."""
    missing = sum(1 for alert in expected if alert not in seen.listed and alert[0] not in closed)
    repeated = sum(len(keys) - 1 for alert, keys in seen.listed.items() if alert in expected)
    repeated += sum(1 for alert in expected if alert in seen.listed and alert in seen.received)
    listed = sum(1 for alert in expected if alert in seen.listed)
    return DigestCheck(len(expected), listed, missing, repeated)


def check_reports_digests(expected: Mapping[Alert, int], seen: AtReceivers) -> tuple[int, int, int]:
    """(expected, missing, repeated): every further report of an open case is counted in exactly one of
    the case's digests to each of its teams' channels; `expected` holds each open case's linked reports
    per alert."""
    missing = repeated = 0
    for alert, linked in expected.items():
        told = seen.told.get(alert, 0)
        missing += max(0, linked - told)
        repeated += max(0, told - linked)
    return sum(expected.values()), missing, repeated


def in_hours(at: float, working: WorkingHours, quiet: QuietHours, timezone: str) -> bool:
    """Whether the moment `at` (epoch seconds) is within working hours and outside quiet hours, read
    from the configuration alone (the notifier's own arithmetic is what is under test)."""
    local = datetime.fromtimestamp(at, ZoneInfo(timezone))
    clock = local.time().replace(tzinfo=None)
    working_now = DAYS[local.weekday()] in working.days and working.start <= clock < working.end
    if quiet.start == quiet.end:
        quiet_now = False
    elif quiet.start < quiet.end:
        quiet_now = quiet.start <= clock < quiet.end
    else:
        quiet_now = clock >= quiet.start or clock < quiet.end
    return working_now and not quiet_now


def out_of_hours(receipts: Receipts, directory: Directory, *, urgent: AbstractSet[str]) -> list[str]:
    """Deliveries that arrived outside their team's working hours or inside its quiet hours, each said
    with its local time. Urgent cases' alerts and digests of further reports are exempt (they go at once,
    by design); escalations wait only for the end of the default quiet hours."""
    found = []
    for delivery in receipts.all():
        parsed = parse_key(delivery.key)
        if parsed is None:
            continue
        case, team_id, _, kind = parsed
        if case in urgent and (kind == "new-case" or kind.startswith("reports-digest@")):
            continue
        team = directory.team(team_id)
        working = (
            WorkingHours(days=DAYS, start=time(0), end=time(23, 59, 59, 999999))
            if kind == "escalation"
            else directory.working_hours_of(team)
        )
        quiet = directory.defaults.quiet_hours if kind == "escalation" else directory.quiet_hours_of(team)
        # A send that began in hours may land a moment after they end.
        if not any(
            in_hours(delivery.at - lag, working, quiet, directory.timezone) for lag in (0.0, HOURS_GRACE_S)
        ):
            local = datetime.fromtimestamp(delivery.at, ZoneInfo(directory.timezone))
            found.append(f"{unquote(delivery.key)} at {local:%H:%M:%S.%f} ({directory.timezone})")
    return found


@dataclass(frozen=True, slots=True)
class _Tables:
    """What `count` reads from the database, in one connection."""

    intake_ids: set[UUID]
    routed: dict[UUID, UUID]  # report -> case
    cases: int
    orphan_cases: int
    miscounted: int
    assignments: list[asyncpg.Record]
    cases_of_run: list[asyncpg.Record]  # every case: id, reference, priority, closed_at, reports, points
    notifier_cases: dict[str, tuple[str, float]]  # case id -> (status, updated_at)
    notifications: list[asyncpg.Record]


async def _read_tables(database_url: str) -> _Tables:
    db = await asyncpg.connect(database_url)
    try:
        return _Tables(
            intake_ids={r["report_id"] for r in await db.fetch("SELECT report_id FROM intake.reports")},
            routed={
                r["report_id"]: r["case_id"]
                for r in await db.fetch("SELECT report_id, case_id FROM router.reports")
            },
            cases=await db.fetchval("SELECT count(*) FROM router.cases"),
            orphan_cases=await db.fetchval(
                "SELECT count(*) FROM router.cases c"
                " WHERE NOT EXISTS (SELECT 1 FROM router.reports r WHERE r.case_id = c.case_id)"
            ),
            miscounted=await db.fetchval(
                "SELECT count(*) FROM router.cases c WHERE c.reports_count <>"
                " (SELECT count(*) FROM router.reports r WHERE r.case_id = c.case_id)"
            ),
            assignments=await db.fetch(
                "SELECT a.case_id, a.department, c.neighbourhood"
                " FROM router.assignments a JOIN router.cases c USING (case_id)"
            ),
            cases_of_run=await db.fetch(
                "SELECT c.case_id, c.reference, c.priority, c.closed_at,"
                " count(r.report_id) AS reports, count(r.lat) AS points"
                " FROM router.cases c LEFT JOIN router.reports r USING (case_id) GROUP BY c.case_id"
            ),
            notifier_cases={
                str(r["case_id"]): (r["status"], r["updated_at"].timestamp())
                for r in await db.fetch("SELECT case_id, status, updated_at FROM notifier.cases")
            },
            notifications=await db.fetch(
                "SELECT notification_key, case_id, team, channel, kind, status, created_at, not_before"
                " FROM notifier.notifications"
            ),
        )
    finally:
        await db.close()


@dataclass(frozen=True, slots=True)
class _Topics:
    opened_twice: int
    in_two_cases: set[str]  # report ids whose events name more than one case


async def _read_case_events(bootstrap: str, prefix: str) -> _Topics:
    opened: dict[str, set[str]] = {}
    named: dict[str, set[str]] = {}  # report id -> cases its CaseOpened / ReportLinked events name
    for record in await read_topic(bootstrap, f"{prefix}{Topic.CASES}"):
        headers = {k: v.decode("utf-8", "replace") for k, v in record.headers or ()}
        case_id = (record.key or b"").decode()
        if headers.get("event-type") == "CaseOpened":
            report = headers.get("correlation-id", "")
            opened.setdefault(report, set()).add(case_id)
            named.setdefault(report, set()).add(case_id)
        elif headers.get("event-type") == "ReportLinked":
            try:
                value = json.loads(record.value)
            except (ValueError, TypeError):
                continue
            if isinstance(value, dict) and not value.get("from_case_id"):
                named.setdefault(str(value.get("report_id", "")), set()).add(case_id)
    return _Topics(
        opened_twice=sum(1 for case_ids in opened.values() if len(case_ids) > 1),
        in_two_cases={report for report, case_ids in named.items() if len(case_ids) > 1},
    )


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
    hours_honoured: bool = False,
    close_grace_s: float = CLOSE_GRACE_S,
) -> Counts:
    """The counts of a run whose teams are in `council_dir`; `hours_honoured` says the notifier was not
    told to ignore the teams' hours (only then is a delivery out of hours a fault); `close_grace_s` is how
    long after a close was recorded a notification claimed before it may still land (the claim lease)."""
    tables = await _read_tables(database_url)
    topics = await _read_case_events(bootstrap, prefix)

    delivered_ok = {s.report_id for s in sent if s.report.valid and s.report_id is not None}
    lost = len(delivered_ok - tables.intake_ids) + len(tables.intake_ids - tables.routed.keys())

    directory = load_directory(council_dir)
    references = {r["reference"]: str(r["case_id"]) for r in tables.cases_of_run}
    urgent = {str(r["case_id"]) for r in tables.cases_of_run if r["priority"] == "urgent"}
    router_closed = {
        str(r["case_id"]): r["closed_at"].timestamp()
        for r in tables.cases_of_run
        if r["closed_at"] is not None
    }
    # Closed from the later of the router's close and the notifier's record of it (see the docstring).
    closed = {
        case: max(at, tables.notifier_cases[case][1])
        if tables.notifier_cases.get(case, ("",))[0] == "closed"
        else at
        for case, at in router_closed.items()
    }
    expected, digest_expected = _expected_alerts(tables.assignments, directory, urgent=urgent)

    # Counted where the alerts land, not in our own tables.
    receipts = Receipts.read(mail_file, webhook_file)
    seen = at_receivers(receipts, closed, references, grace=close_grace_s)
    strict = at_receivers(receipts, closed, references).late  # without the lease's grace
    counted = set(seen.late)
    within_lease = [late for late in strict if late not in counted]
    in_flight = at_receivers(receipts, router_closed, references).after_close - len(strict)
    outside_hours = out_of_hours(receipts, directory, urgent=urgent) if hours_honoured else []
    # A case closed meanwhile is owed nothing more: what arrives for it after the close is counted apart.
    still_open = {alert for alert in expected if alert[0] not in closed}
    digests = check_digests(digest_expected, seen, closed=closed.keys())
    linked = {str(r["case_id"]): r["reports"] - 1 for r in tables.cases_of_run}
    told_expected = {
        alert: linked[alert[0]]
        for alert in expected | digest_expected
        if alert[0] not in closed and alert[0] in tables.notifier_cases and alert[0] in linked
    }
    told = check_reports_digests(told_expected, seen)

    accounted = rejected_n = dead_n = 0
    if poison:
        rejected = await read_topic(bootstrap, f"{prefix}{Topic.REPORTS_REJECTED}")
        dead = await read_topic(bootstrap, f"{prefix}{Topic.DEADLETTER}")
        where = provenance(rejected) | provenance(dead)
        accounted = sum(1 for p in poison if where.get((p.topic, p.partition, p.offset)))
        rejected_n, dead_n = len(rejected), len(dead)

    address_only = _address_only(sent, tables, topics)
    return Counts(
        accepted=len(tables.intake_ids),
        cases=tables.cases,
        duplicate_cases=tables.orphan_cases + topics.opened_twice,
        miscounted_cases=tables.miscounted,
        lost_reports=lost,
        alerts_expected=len(still_open),
        alerts_sent=len(still_open & seen.received),
        missing_alerts=len(still_open - seen.received),
        duplicate_alerts=sum(len(keys) - 1 for keys in seen.keys_per_alert.values() if len(keys) > 1),
        alerts_failed=sum(1 for n in tables.notifications if n["status"] == "failed"),
        emails_received=len(receipts.mail),
        webhooks_received=len(receipts.webhook),
        alerts_delivered_twice=receipts.repeats(),
        alerts_after_close=seen.after_close,
        poison_sent=len(poison),
        poison_accounted=accounted,
        rejected_on_topic=rejected_n,
        deadlettered_on_topic=dead_n,
        reports_in_two_cases=len(topics.in_two_cases),
        cases_closed=sum(
            1
            for r in tables.cases_of_run
            if r["closed_at"] is not None and not r["reference"].startswith("PRE-")
        ),
        alerts_while_close_in_flight=in_flight,
        alerts_after_close_within_lease=len(within_lease),
        digest_expected=digests.expected,
        digest_listed=digests.listed,
        digest_missing=digests.missing,
        digest_repeated=digests.repeated,
        digests_received=sum(1 for d in receipts.all() if "digest@" in d.key),
        reports_digest_expected=told[0],
        reports_digest_missing=told[1],
        reports_digest_repeated=told[2],
        held_for_hours=_held_for_hours(tables.notifications, directory),
        delivered_out_of_hours=len(outside_hours),
        address_only_accepted=address_only[0],
        address_only_with_coordinates=address_only[1],
        address_only_misplaced=address_only[2],
        examples={
            name: found[:EXAMPLES]
            for name, found in (
                ("alerts_after_close", seen.late),
                ("alerts_after_close_within_lease", within_lease),
                ("delivered_out_of_hours", outside_hours),
            )
            if found
        },
    )


def _expected_alerts(
    assignments: Sequence[asyncpg.Record], directory: Directory, *, urgent: AbstractSet[str]
) -> tuple[set[Alert], set[Alert]]:
    """(alerts each team's channel should get on its own, alerts that should be lines of a digest)."""
    alone: set[Alert] = set()
    digested: set[Alert] = set()
    for row in assignments:
        case = str(row["case_id"])
        for team in directory.teams_for(row["department"], row["neighbourhood"]):
            wanted = digested if directory.delivery_of(team) == "digest" and case not in urgent else alone
            for channel in team.channels:
                wanted.add((case, team.id, channel.kind))
    return alone, digested


def _held_for_hours(notifications: Sequence[asyncpg.Record], directory: Directory) -> int:
    """Alerts to teams with hours of their own that were planned to wait (a figure: what the hours
    scenario put to the test)."""
    own_hours = {team.id for team in directory.teams if team.working_hours or team.quiet_hours}
    return sum(
        1
        for n in notifications
        if n["team"] in own_hours
        and n["kind"] == "new-case"
        and (n["not_before"] - n["created_at"]).total_seconds() > HOURS_GRACE_S
    )


def _address_only(sent: Sequence[Sent], tables: _Tables, topics: _Topics) -> tuple[int, int, int]:
    """(accepted, in a case that also holds reports with coordinates, not in exactly one case) of the
    reports sent with an address and no coordinates."""
    ids = {s.report_id for s in sent if s.report.valid and s.report.address_only and s.report_id is not None}
    accepted = ids & tables.intake_ids
    points = {str(r["case_id"]): r["points"] for r in tables.cases_of_run}
    with_points = sum(
        1 for report in accepted if report in tables.routed and points.get(str(tables.routed[report]), 0) > 0
    )
    misplaced = sum(
        1 for report in accepted if report not in tables.routed or str(report) in topics.in_two_cases
    )
    return len(accepted), with_points, misplaced


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
