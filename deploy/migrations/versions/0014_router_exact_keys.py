"""router: exact keys for duplicate detection (issue 17 item 3): each case keeps the property (UPRN), street
(USRN) and street asset its reports named (the first one each), and the candidate search looks them up as
it looks up an address, one index descent per report and key, inside the window.

A report of one family with the same property, or of one category with the same asset or (without a
point) the same street, is the same problem at any distance (caseway_router.domain.duplicates.key_match),
so these lookups need no point. Cases opened before this migration have no keys (the reports table never
kept them) and are found by point and address as before.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE router.cases ADD COLUMN uprn text, ADD COLUMN usrn text, ADD COLUMN asset_id text;
        CREATE INDEX cases_uprn ON router.cases (family, uprn, last_report_at) WHERE uprn IS NOT NULL;
        CREATE INDEX cases_usrn ON router.cases (family, category, usrn, last_report_at)
            WHERE usrn IS NOT NULL;
        CREATE INDEX cases_asset ON router.cases (family, category, asset_id, last_report_at)
            WHERE asset_id IS NOT NULL;
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP INDEX router.cases_asset;
        DROP INDEX router.cases_usrn;
        DROP INDEX router.cases_uprn;
        ALTER TABLE router.cases DROP COLUMN uprn, DROP COLUMN usrn, DROP COLUMN asset_id;
        """
    )
