"""intake, Open311 as real clients use it: what a client sent beyond the event (kept, not published), photos
sent in the request, and the service-request-updates feed (from case events and from residents).

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One script per call: env.py sends scripts through PostgreSQL's simple query protocol.
    op.execute(
        """
        -- What a client sent that the event does not carry: answers to questions the category does not
        -- declare (FixMyStreet sends its own as attribute[...]), an address_id that is not a UPRN.
        -- Kept with the report for staff; never published, as it may hold personal data.
        ALTER TABLE intake.reports ADD COLUMN extras jsonb;

        -- Photos sent in a multipart request (never fetched from a URL by the server).
        CREATE TABLE intake.media (
            media_id      uuid PRIMARY KEY,
            report_id     uuid NOT NULL REFERENCES intake.reports (report_id) ON DELETE CASCADE,
            part_name     text NOT NULL,
            filename      text,
            content_type  text NOT NULL,
            size          integer NOT NULL,
            data          bytea NOT NULL,
            created_at    timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX media_report ON intake.media (report_id);

        -- The service-request-updates feed: one row per update a report shows, from its case's events
        -- (origin 'case') or posted by the resident through a front end (origin 'resident').
        -- update_id is derived from what caused it, so a replayed event adds nothing.
        CREATE TABLE intake.request_updates (
            update_id             text PRIMARY KEY,
            report_id             uuid NOT NULL,
            case_id               uuid,
            origin                text NOT NULL CHECK (origin IN ('case', 'resident')),
            status                text NOT NULL,
            description           text NOT NULL,
            external_status_code  text,
            media_url             text,
            updated_at            timestamptz NOT NULL,
            client_key            text UNIQUE
        );
        CREATE INDEX request_updates_updated ON intake.request_updates (updated_at, update_id);
        CREATE INDEX request_updates_report ON intake.request_updates (report_id);

        -- Who posted a resident's update: personal data, kept apart like intake.reporter_contacts.
        CREATE TABLE intake.update_contacts (
            update_id  text PRIMARY KEY REFERENCES intake.request_updates (update_id) ON DELETE CASCADE,
            name       text,
            email      text,
            phone      text
        );
        """
    )


def downgrade() -> None:
    op.execute(
        "DROP TABLE intake.update_contacts; DROP TABLE intake.request_updates; DROP TABLE intake.media;"
        "ALTER TABLE intake.reports DROP COLUMN extras;"
    )
