"""Stage timestamps from clock_timestamp(): when the row was written, not when its transaction began.

now() is the transaction's start, so a batch that waited on locks or ran long stamped every row early, and
the benchmark's hop times (intake insert, router insert, notification recorded) were off by the batch's
duration. clock_timestamp() is evaluated per row at insert.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE intake.reports ALTER COLUMN accepted_at SET DEFAULT clock_timestamp();
        ALTER TABLE router.reports ALTER COLUMN routed_at SET DEFAULT clock_timestamp();
        ALTER TABLE notifier.notifications ALTER COLUMN created_at SET DEFAULT clock_timestamp();
        ALTER TABLE notifier.digest_entries ALTER COLUMN created_at SET DEFAULT clock_timestamp();
        """
    )


def downgrade() -> None:
    op.execute(
        """
        ALTER TABLE intake.reports ALTER COLUMN accepted_at SET DEFAULT now();
        ALTER TABLE router.reports ALTER COLUMN routed_at SET DEFAULT now();
        ALTER TABLE notifier.notifications ALTER COLUMN created_at SET DEFAULT now();
        ALTER TABLE notifier.digest_entries ALTER COLUMN created_at SET DEFAULT now();
        """
    )
