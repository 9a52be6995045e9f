"""Roles: one PostgreSQL role per service, with rights on its own schema and nothing else.

``caseway_intake``, ``caseway_router`` and ``caseway_notifier`` (NOLOGIN group roles; a deployment gives
each service a login that is a member of its role, or sets ``CASEWAY_<SERVICE>_DATABASE_ROLE``). Each may
use its own schema and read and write the rows of its tables, sequences and functions, now and for
every table later migrations add (default privileges); none can reach another service's schema, so the
router and the notifier cannot read ``intake.reporter_contacts``. The schemas and tables stay owned by
the migrating role: a running service cannot alter or drop them.

The roles are created here when the migrating role may create roles; otherwise an administrator creates
them first (the local stack does, as its superuser) and this migration only grants. Missing roles are
skipped with a notice, so a development database without them still migrates.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

SERVICES = ("intake", "router", "notifier")


def upgrade() -> None:
    for service in SERVICES:
        op.execute(
            f"""
            DO $roles$
            DECLARE
                role_name text := 'caseway_{service}';
                may_create boolean := (
                    SELECT rolcreaterole OR rolsuper FROM pg_roles WHERE rolname = current_user
                );
            BEGIN
                IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = role_name) THEN
                    IF NOT may_create THEN
                        RAISE NOTICE 'role % is missing and % may not create roles: not granted',
                            role_name, current_user;
                        RETURN;
                    END IF;
                    EXECUTE format('CREATE ROLE %I NOLOGIN', role_name);
                END IF;
                IF may_create AND NOT pg_has_role(current_user, role_name, 'MEMBER') THEN
                    EXECUTE format('GRANT %I TO %I', role_name, current_user);
                END IF;
                EXECUTE format('REVOKE ALL ON SCHEMA {service} FROM PUBLIC');
                EXECUTE format('GRANT USAGE ON SCHEMA {service} TO %I', role_name);
                EXECUTE format(
                    'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {service} TO %I',
                    role_name
                );
                EXECUTE format(
                    'GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {service} TO %I', role_name
                );
                EXECUTE format('GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {service} TO %I', role_name);
                EXECUTE format(
                    'ALTER DEFAULT PRIVILEGES IN SCHEMA {service} '
                    'GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO %I', role_name
                );
                EXECUTE format(
                    'ALTER DEFAULT PRIVILEGES IN SCHEMA {service} '
                    'GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO %I', role_name
                );
                EXECUTE format(
                    'ALTER DEFAULT PRIVILEGES IN SCHEMA {service} GRANT EXECUTE ON FUNCTIONS TO %I',
                    role_name
                );
            END
            $roles$;
            """
        )


def downgrade() -> None:
    for service in SERVICES:
        op.execute(
            f"""
            DO $roles$
            BEGIN
                IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'caseway_{service}') THEN
                    ALTER DEFAULT PRIVILEGES IN SCHEMA {service}
                        REVOKE ALL ON TABLES FROM caseway_{service};
                    ALTER DEFAULT PRIVILEGES IN SCHEMA {service}
                        REVOKE ALL ON SEQUENCES FROM caseway_{service};
                    ALTER DEFAULT PRIVILEGES IN SCHEMA {service}
                        REVOKE ALL ON FUNCTIONS FROM caseway_{service};
                    REVOKE ALL ON ALL TABLES IN SCHEMA {service} FROM caseway_{service};
                    REVOKE ALL ON ALL SEQUENCES IN SCHEMA {service} FROM caseway_{service};
                    REVOKE ALL ON ALL FUNCTIONS IN SCHEMA {service} FROM caseway_{service};
                    REVOKE ALL ON SCHEMA {service} FROM caseway_{service};
                END IF;
            END
            $roles$;
            """
        )
    # The roles stay: they are the cluster's, and other databases may use them.
