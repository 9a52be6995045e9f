"""notifier: one row per notification key (recorded before sending), every attempt, outbox.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _run(sql: str) -> None:
    # asyncpg runs one statement per call: split the script on statement ends.
    for statement in sql.split(";"):
        if statement.strip():
            op.execute(statement)


def upgrade() -> None:
    _run(
        """
        CREATE TABLE notifier.notifications (
            notification_key text PRIMARY KEY,
            case_id     uuid NOT NULL,
            reference   text NOT NULL,
            team        text NOT NULL,
            channel     text NOT NULL,
            address     text NOT NULL,
            kind        text NOT NULL,
            status      text NOT NULL CHECK (status IN ('pending', 'sent', 'failed', 'suppressed')),
            subject     text NOT NULL,
            body        text NOT NULL,
            not_before  timestamptz NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT now(),
            sent_at     timestamptz,
            attempts    integer NOT NULL DEFAULT 0,
            last_error  text,
            correlation_id text NOT NULL
        );
        CREATE INDEX notifications_due ON notifier.notifications (not_before) WHERE status = 'pending';
        CREATE INDEX notifications_case ON notifier.notifications (case_id);

        CREATE TABLE notifier.attempts (
            id               bigserial PRIMARY KEY,
            notification_key text NOT NULL REFERENCES notifier.notifications (notification_key),
            at               timestamptz NOT NULL DEFAULT now(),
            outcome          text NOT NULL,
            error            text
        );

        CREATE TABLE notifier.outbox (
            id        bigserial PRIMARY KEY,
            topic     text NOT NULL,
            key       text NOT NULL,
            payload   bytea NOT NULL,
            headers   jsonb NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        );
        """
    )


def downgrade() -> None:
    _run("DROP TABLE notifier.outbox; DROP TABLE notifier.attempts; DROP TABLE notifier.notifications;")
