"""intake: residents' data (issue 13 item 6): the keyed digest of an Open311 body, so that an
Idempotency-Key reused with another body is refused, and when a report's personal data was purged.

Revision ID: 0013
Revises: 0012
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE intake.reports ADD COLUMN request_digest bytea, ADD COLUMN purged_at timestamptz;
        CREATE INDEX reports_not_purged ON intake.reports (accepted_at) WHERE purged_at IS NULL;
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP INDEX intake.reports_not_purged;
        ALTER TABLE intake.reports DROP COLUMN request_digest, DROP COLUMN purged_at;
        """
    )
