"""intake: accepted reports (idempotent on source system + source id), contacts kept apart, outbox.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
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
    _run("DROP TABLE intake.outbox; DROP TABLE intake.reporter_contacts; DROP TABLE intake.reports;")
