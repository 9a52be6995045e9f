"""intake: accepted reports (idempotent on source system + source id), contacts kept apart, outbox,
Open311 API keys (hashed), tokens, and the status of each request as the cases report it.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One script per call: env.py sends scripts through PostgreSQL's simple query protocol.
    op.execute(
        """
        CREATE TABLE intake.reports (
            report_id      uuid PRIMARY KEY,
            source_system  text NOT NULL,
            source_id      text NOT NULL,
            client_key     text,
            channel        text NOT NULL,
            category       text NOT NULL,
            received_at    timestamptz NOT NULL,
            accepted_at    timestamptz NOT NULL DEFAULT now(),
            event          jsonb NOT NULL,
            UNIQUE (source_system, source_id)
        );
        CREATE UNIQUE INDEX reports_client_key ON intake.reports (client_key) WHERE client_key IS NOT NULL;
        CREATE INDEX reports_accepted_at ON intake.reports (accepted_at);

        -- Residents' contact details, kept apart so that nothing downstream needs them and retention
        -- can purge them on their own.
        CREATE TABLE intake.reporter_contacts (
            report_id  uuid PRIMARY KEY REFERENCES intake.reports (report_id) ON DELETE CASCADE,
            name       text,
            email      text,
            phone      text
        );

        -- Open311 API keys. Only a SHA-256 digest is stored: keys are 256-bit random strings, so a fast
        -- digest is enough (nothing to brute-force) and the plaintext never rests anywhere.
        CREATE TABLE intake.api_keys (
            key_hash    bytea PRIMARY KEY,
            name        text NOT NULL UNIQUE,
            created_at  timestamptz NOT NULL DEFAULT now(),
            revoked_at  timestamptz
        );

        -- Open311 tokens: what an asynchronous answer to POST requests hands out, resolved by GET tokens.
        CREATE TABLE intake.tokens (
            token      text PRIMARY KEY,
            report_id  uuid NOT NULL UNIQUE REFERENCES intake.reports (report_id) ON DELETE CASCADE
        );

        -- What the cases say about each report (fed by cases.v1), for Open311's status and status_notes.
        CREATE TABLE intake.request_status (
            report_id           uuid PRIMARY KEY,
            case_id             uuid NOT NULL,
            reference           text NOT NULL,
            status              text NOT NULL CHECK (status IN ('open', 'closed')),
            case_status         text,
            status_notes        text,
            agency_responsible  text,
            expected_at         timestamptz,
            updated_at          timestamptz NOT NULL
        );
        CREATE INDEX request_status_case ON intake.request_status (case_id);
        CREATE INDEX reports_received_at ON intake.reports (received_at);

        CREATE TABLE intake.outbox (
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
        "DROP TABLE intake.request_status; DROP TABLE intake.tokens; DROP TABLE intake.api_keys;"
        "DROP TABLE intake.outbox; DROP TABLE intake.reporter_contacts; DROP TABLE intake.reports;"
    )
