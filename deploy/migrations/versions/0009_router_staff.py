"""router: what staff do to cases — each department's own state on a case, a case's resolution and the
case it duplicates, and staff notes (internal, or public to the resident).

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One script per call: env.py sends scripts through PostgreSQL's simple query protocol.
    op.execute(
        """
        ALTER TABLE router.assignments
            ADD COLUMN state text NOT NULL DEFAULT 'assigned' CHECK (state IN ('assigned', 'acknowledged')),
            ADD COLUMN state_at timestamptz,
            ADD COLUMN state_by text;
        ALTER TABLE router.cases
            ADD COLUMN resolution text,
            ADD COLUMN duplicate_of uuid REFERENCES router.cases (case_id);
        CREATE INDEX cases_open_due ON router.cases (neighbourhood, due_at) WHERE status <> 'closed';
        CREATE INDEX assignments_department ON router.assignments (department, case_id);

        CREATE TABLE router.case_notes (
            id         bigserial PRIMARY KEY,
            case_id    uuid NOT NULL REFERENCES router.cases (case_id),
            at         timestamptz NOT NULL,
            actor      text NOT NULL,
            visibility text NOT NULL CHECK (visibility IN ('internal', 'public')),
            body       text NOT NULL
        );
        CREATE INDEX case_notes_case ON router.case_notes (case_id, id);
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE router.case_notes;
        DROP INDEX router.assignments_department; DROP INDEX router.cases_open_due;
        ALTER TABLE router.cases DROP COLUMN duplicate_of, DROP COLUMN resolution;
        ALTER TABLE router.assignments DROP COLUMN state_by, DROP COLUMN state_at, DROP COLUMN state;
        """
    )
