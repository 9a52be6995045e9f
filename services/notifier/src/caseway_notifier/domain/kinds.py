"""The notifier's vocabulary: what a notification is about, and where a case stands."""

from __future__ import annotations

NEW_CASE = "new-case"
JOINING_UP = "joining-up"
ESCALATION = "escalation"
REPORTS_DIGEST = "reports-digest"
NEW_CASES_DIGEST = "new-cases-digest"
DIGEST_KINDS = frozenset({REPORTS_DIGEST, NEW_CASES_DIGEST})
REPORT_LINKED = "report-linked"

OPEN, ACKNOWLEDGED, CLOSED = "open", "acknowledged", "closed"
# Statuses that mean nobody has taken the case up yet; every other status counts as acknowledged.
UNACKNOWLEDGED_STATUSES = frozenset({"open", "new", "reopened", "opened", "unacknowledged"})
CLOSED_STATUSES = frozenset({"closed", "resolved", "cancelled", "withdrawn"})
