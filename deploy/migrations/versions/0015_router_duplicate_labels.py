"""router: staff decisions about duplicates as labels for the detector (issue 17 item 5).

Each report keeps what routing's detector decided for it (`decision`: link, review or new; the case it
joined or was flagged as possibly repeating; the score of the link or flag, or for a new case the best
score seen; the exact key of a certain link), so a later staff decision can say what the detector had
done. Reports routed before this migration have none (their labels say the detector's verdict is unknown).

`duplicate_labels`: one row per judged pair — is this report the same problem as this case? — with who
said so and when, the staff action that did (a possible duplicate confirmed or rejected, a report linked or
unlinked by hand, a case closed with the reports the router linked to it), and what the detector had
decided about the pair with its score (caseway_router.domain.casefile.Label). Written in the staff action's
own transaction; read by the evaluation (`--labels-from`) and the shadow comparison.

The router's role reaches the new table and its sequence through the default privileges of migration 0011.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE router.reports
            ADD COLUMN decision text,
            ADD COLUMN decision_case_id uuid,
            ADD COLUMN decision_score double precision,
            ADD COLUMN decision_key text;
        -- NOT VALID: checked for every row written from now on, without reading the rows already there
        -- (which all have none).
        ALTER TABLE router.reports ADD CONSTRAINT reports_decision
            CHECK (decision IN ('link', 'review', 'new')) NOT VALID;

        CREATE TABLE router.duplicate_labels (
            id             bigserial PRIMARY KEY,
            at             timestamptz NOT NULL,
            actor          text NOT NULL,
            decision       text NOT NULL CHECK (decision IN ('duplicate-confirmed', 'duplicate-rejected',
                'closed-as-duplicate', 'report-linked', 'report-unlinked', 'case-closed')),
            report_id      uuid NOT NULL REFERENCES router.reports (report_id),
            case_id        uuid NOT NULL REFERENCES router.cases (case_id),
            report_case_id uuid REFERENCES router.cases (case_id),
            same_problem   boolean NOT NULL,
            detector       text NOT NULL CHECK (detector IN ('linked', 'flagged', 'apart', 'unknown')),
            score          double precision,
            key            text
        );
        CREATE INDEX duplicate_labels_pair ON router.duplicate_labels (report_id, case_id);
        CREATE INDEX duplicate_labels_at ON router.duplicate_labels (at);
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE router.duplicate_labels;
        ALTER TABLE router.reports DROP COLUMN decision, DROP COLUMN decision_case_id,
            DROP COLUMN decision_score, DROP COLUMN decision_key;
        """
    )
