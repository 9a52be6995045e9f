"""The notifier's vocabulary beyond the shared contract's (`NotificationKind`, `CaseStatus`): which kinds
of alert are digests, folding several cases or reports into one message."""

from __future__ import annotations

from caseway_shared.events import NotificationKind

DIGEST_KINDS = frozenset({NotificationKind.REPORTS_DIGEST, NotificationKind.NEW_CASES_DIGEST})
