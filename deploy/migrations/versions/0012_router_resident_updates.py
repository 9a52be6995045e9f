"""router: residents' updates handled (from reports.updates.v1), one row per update id, so a redelivered
or replayed update changes nothing.

Revision ID: 0012
Revises: 0011
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE router.resident_updates (
            update_id  text PRIMARY KEY,
            report_id  uuid NOT NULL,
            case_id    uuid REFERENCES router.cases (case_id),
            action     text NOT NULL CHECK (action IN ('note', 'reopen')),
            outcome    text NOT NULL,
            handled_at timestamptz NOT NULL
        );
        CREATE INDEX resident_updates_case ON router.resident_updates (case_id);
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE router.resident_updates;")
