"""router: shadow mode for a new duplicate-detector configuration (issue 17 item 6).

`shadow_decisions`: what a shadow configuration (`CASEWAY_ROUTER_DUPLICATE_SHADOW`, recorded under its
name) would have decided for each report the router routed while it ran — link (to `case_id`), review
(flagged as possibly `case_id`'s problem) or new, with the score and the exact key of a certain link —
written in routing's own transaction. The live decision is the report's (router.reports.decision, migration
0015), so the two are compared by report id (`python -m caseway_router.research.shadow`). Nothing reads it
on the hot path; it grows by one row per report while a shadow runs, and a trial's rows are deleted by name
when it is done.

The router's role reaches the new table through the default privileges of migration 0011.

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE router.shadow_decisions (
            shadow     text NOT NULL,
            report_id  uuid NOT NULL,
            routed_at  timestamptz NOT NULL,
            category   text NOT NULL,
            decision   text NOT NULL CHECK (decision IN ('link', 'review', 'new')),
            case_id    uuid,
            score      double precision NOT NULL,
            key        text,
            PRIMARY KEY (shadow, report_id)
        );
        CREATE INDEX shadow_decisions_time ON router.shadow_decisions (shadow, routed_at);
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE router.shadow_decisions;")
