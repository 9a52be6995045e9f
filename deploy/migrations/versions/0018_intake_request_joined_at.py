"""intake: when each report joined its current case, so a case's updates go only to reports that were in it.

A case-wide update (a status change, a public note, a close) is listed for every report of the case. Read
at replay time, "every report of the case" held reports that joined after the event, so a replay of
cases.v1 (a consumer-group reset) gave them the case's older updates. `joined_at` is set when a report
opens or joins a case; an update goes to the reports that joined no later than its event. Rows from before
this migration have none: they are taken as having been in their case from its start.

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE intake.request_status ADD COLUMN joined_at timestamptz")


def downgrade() -> None:
    op.execute("ALTER TABLE intake.request_status DROP COLUMN joined_at")
