"""ops: the record of dead letters replayed, so that nothing is replayed twice.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE SCHEMA IF NOT EXISTS ops")
    op.execute(
        """
        CREATE TABLE ops.deadletter_replays (
            deadletter_topic     text NOT NULL,
            deadletter_partition integer NOT NULL,
            deadletter_offset    bigint NOT NULL,
            original_topic       text NOT NULL,
            replayed_at          timestamptz NOT NULL DEFAULT now(),
            replayed_by          text NOT NULL,
            PRIMARY KEY (deadletter_topic, deadletter_partition, deadletter_offset)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE ops.deadletter_replays")
    op.execute("DROP SCHEMA IF EXISTS ops")
