"""What the counting receivers (the mail sink and the webhook server) write for each delivery, and how it is
read back: one line per delivery, ``<notification key>\\t<recipients or team>\\t<arrival time>\\t<detail>``.

The detail is empty for an alert; for a digest it is what the digest says, so the fault suite can tell at
the receiver which cases a team's digest listed and how many further reports a case's digest counted:
``cases=<reference>,<reference>,...`` for a team's digest of new cases (one line ``- <reference>: ...`` per
case in its body), ``more=<n>`` for a case's digest of further reports (subject ``...: <n> more``).
Pure: no I/O but `read_deliveries`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

NEW_CASES_DIGEST = "new-cases-digest@"
REPORTS_DIGEST = "reports-digest@"
_MORE = re.compile(r": (\d+) more$")


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message as a receiver got it."""

    key: str  # the notification key, as the receiver saw it (URL-quoted where the sender quoted it)
    who: str  # recipients (mail) or the team of the hook's path (webhook)
    at: float  # arrival, wall clock (time.time())
    detail: str = ""


def is_digest(key: str) -> bool:
    return NEW_CASES_DIGEST in key or REPORTS_DIGEST in key


def digest_detail(key: str, subject: str, body: str) -> str:
    """What the digest under `key` says (see the module's docstring); empty for anything else."""
    if NEW_CASES_DIGEST in key:
        references = [
            line[2:].split(":", 1)[0].strip() for line in body.splitlines() if line.startswith("- ")
        ]
        return "cases=" + ",".join(r for r in references if r)
    if REPORTS_DIGEST in key and (found := _MORE.search(subject.strip())):
        return f"more={found.group(1)}"
    return ""


def line_of(delivery: Delivery) -> str:
    """The delivery as one line of a receiver's file (tabs and line breaks in a value become spaces)."""
    fields = (delivery.key, delivery.who, f"{delivery.at:.3f}", delivery.detail)
    return "\t".join(_one_field(field) for field in fields) + "\n"


def _one_field(text: str) -> str:
    return text.replace("\t", " ").replace("\r", " ").replace("\n", " ")


def read_deliveries(path: Path) -> list[Delivery]:
    """Every delivery a receiver wrote to `path` (none if it wrote nothing); a line without a key is
    skipped, an unreadable time reads as 0."""
    if not path.exists():
        return []
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        key, who, at, detail = [*line.split("\t", 3), "", "", ""][:4]
        if not key:
            continue
        try:
            when = float(at)
        except ValueError:
            when = 0.0
        found.append(Delivery(key, who, when, detail))
    return found


def listed_cases(detail: str) -> list[str]:
    """The references a team's digest listed (its detail ``cases=...``)."""
    if not detail.startswith("cases="):
        return []
    return [reference for reference in detail.removeprefix("cases=").split(",") if reference]


def more_reports(detail: str) -> int:
    """How many further reports a case's digest counted (its detail ``more=<n>``; 0 otherwise)."""
    if not detail.startswith("more="):
        return 0
    try:
        return int(detail.removeprefix("more="))
    except ValueError:
        return 0
