"""notifier: one row per notification key (recorded before sending), every attempt, digest entries, the
notifier's view of each case (for escalation), outbox.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One script per call: env.py sends scripts through PostgreSQL's simple query protocol.
    op.execute(
        """
        CREATE TABLE notifier.notifications (
            notification_key text PRIMARY KEY,
            case_id     uuid,  -- NULL only for a team's digest, which covers several cases
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
            attempt          integer NOT NULL,
            outcome          text NOT NULL,
            error            text
        );

        -- What digests fold in: one row per folded alert or linked report, unique so replays add nothing.
        CREATE TABLE notifier.digest_entries (
            entry_key   text PRIMARY KEY,
            digest_key  text NOT NULL,
            case_id     uuid NOT NULL,
            reference   text NOT NULL,
            team        text NOT NULL,
            channel     text NOT NULL,
            kind        text NOT NULL,
            line        text NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX digest_entries_digest ON notifier.digest_entries (digest_key);

        -- The notifier's view of each case, fed from cases.v1: for wording alerts and for escalation.
        CREATE TABLE notifier.cases (
            case_id      uuid PRIMARY KEY,
            reference    text NOT NULL,
            category     text NOT NULL,
            priority     text NOT NULL,
            neighbourhood text,
            ward_code    text,
            departments  text[] NOT NULL,
            opened_at    timestamptz NOT NULL,
            due_at       timestamptz,
            status       text NOT NULL,
            escalate_at  timestamptz,
            escalated_at timestamptz,
            correlation_id text NOT NULL DEFAULT '',
            updated_at   timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX cases_to_escalate ON notifier.cases (escalate_at)
            WHERE status = 'open' AND escalated_at IS NULL AND escalate_at IS NOT NULL;

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
    op.execute(
        "DROP TABLE notifier.outbox; DROP TABLE notifier.cases; DROP TABLE notifier.digest_entries;"
        " DROP TABLE notifier.attempts; DROP TABLE notifier.notifications;"
    )
