"""notifier: each notification's own delivery state (pending -> sending, with a lease -> sent, failed,
suppressed), its retry budget apart from its attempts, keys without the address, and rate limits shared
by replicas.

Notification keys were `{case}|{team}|{channel}:{address}|{kind}`; they become `{case}|{team}|{channel}|
{kind}`, so that a changed address does not alert again. Where two rows fold into one key (the address
changed and a replay alerted again), the one that was sent (else the oldest) takes the key; the others
keep theirs and, if still pending, are suppressed.

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_OLD_KEY = r"^([^|]*)\|([^|]*)\|(email|sms|webhook):.*\|([^|]*)$"


def upgrade() -> None:
    # One script per call: env.py sends scripts through PostgreSQL's simple query protocol.
    op.execute(
        f"""
        ALTER TABLE notifier.notifications DROP CONSTRAINT notifications_status_check;
        ALTER TABLE notifier.notifications ADD CONSTRAINT notifications_status_check
            CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'suppressed'));
        ALTER TABLE notifier.notifications
            ADD COLUMN claimed_until timestamptz,
            ADD COLUMN failures integer NOT NULL DEFAULT 0;
        UPDATE notifier.notifications SET failures = attempts WHERE status IN ('pending', 'failed');
        CREATE INDEX notifications_in_flight ON notifier.notifications (claimed_until)
            WHERE status = 'sending';

        ALTER TABLE notifier.attempts DROP CONSTRAINT attempts_notification_key_fkey;
        ALTER TABLE notifier.attempts ADD CONSTRAINT attempts_notification_key_fkey
            FOREIGN KEY (notification_key) REFERENCES notifier.notifications (notification_key)
            ON UPDATE CASCADE;

        CREATE TEMPORARY TABLE rekeyed ON COMMIT DROP AS
        SELECT notification_key AS old_key,
               regexp_replace(notification_key, '{_OLD_KEY}', '\\1|\\2|\\3|\\4') AS new_key,
               row_number() OVER (
                   PARTITION BY regexp_replace(notification_key, '{_OLD_KEY}', '\\1|\\2|\\3|\\4')
                   ORDER BY status = 'sent' DESC, status = 'failed' DESC, status = 'pending' DESC, created_at,
                            notification_key
               ) AS rank
        FROM notifier.notifications WHERE notification_key ~ '{_OLD_KEY}';
        UPDATE notifier.notifications n SET notification_key = r.new_key
        FROM rekeyed r WHERE n.notification_key = r.old_key AND r.rank = 1
            AND NOT EXISTS (SELECT 1 FROM notifier.notifications o WHERE o.notification_key = r.new_key);
        UPDATE notifier.notifications n
        SET status = 'suppressed', last_error = 'same case, team, channel and kind'
        FROM rekeyed r WHERE n.notification_key = r.old_key AND n.status IN ('pending', 'sending');

        UPDATE notifier.digest_entries
        SET digest_key = regexp_replace(digest_key, '{_OLD_KEY}', '\\1|\\2|\\3|\\4')
        WHERE digest_key ~ '{_OLD_KEY}';
        DELETE FROM notifier.digest_entries e
        WHERE e.entry_key ~ '{_OLD_KEY}' AND EXISTS (
            SELECT 1 FROM notifier.digest_entries o
            WHERE o.entry_key <> e.entry_key
              AND regexp_replace(o.entry_key, '{_OLD_KEY}', '\\1|\\2|\\3|\\4')
                  = regexp_replace(e.entry_key, '{_OLD_KEY}', '\\1|\\2|\\3|\\4')
              AND (o.created_at, o.entry_key) < (e.created_at, e.entry_key)
        );
        UPDATE notifier.digest_entries
        SET entry_key = regexp_replace(entry_key, '{_OLD_KEY}', '\\1|\\2|\\3|\\4')
        WHERE entry_key ~ '{_OLD_KEY}';

        -- Rate limits that belong to an account (GOV.UK Notify's is per API key), shared by replicas.
        CREATE TABLE notifier.rate_limits (
            name       text PRIMARY KEY,
            tokens     double precision NOT NULL,
            updated_at timestamptz NOT NULL
        );
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE notifier.rate_limits;
        UPDATE notifier.notifications SET status = 'pending' WHERE status = 'sending';
        DROP INDEX notifier.notifications_in_flight;
        ALTER TABLE notifier.notifications DROP COLUMN claimed_until, DROP COLUMN failures;
        ALTER TABLE notifier.notifications DROP CONSTRAINT notifications_status_check;
        ALTER TABLE notifier.notifications ADD CONSTRAINT notifications_status_check
            CHECK (status IN ('pending', 'sent', 'failed', 'suppressed'));
        """
    )
