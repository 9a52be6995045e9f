"""router: cases, the reports they hold, assignments, full history, outbox.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One script per call: env.py sends scripts through PostgreSQL's simple query protocol.
    op.execute(
        """
        CREATE SEQUENCE router.case_number;

        CREATE TABLE router.cases (
            case_id        uuid PRIMARY KEY,
            reference      text NOT NULL UNIQUE,
            category       text NOT NULL,
            family         text NOT NULL,
            status         text NOT NULL DEFAULT 'open',
            priority       text NOT NULL,
            neighbourhood  text,
            ward_code      text,
            lat            double precision,
            lon            double precision,
            address        text,
            -- The normalised address (caseway_router.duplicates.normalise_address): found without a point.
            address_key    text,
            detail         text,
            place_type     text,
            summary        text NOT NULL,
            description    text NOT NULL,
            lead_department text NOT NULL,
            opened_at      timestamptz NOT NULL,
            due_at         timestamptz,
            closed_at      timestamptz,
            last_report_at timestamptz NOT NULL,
            reports_count  integer NOT NULL DEFAULT 1,
            -- How many of its reports had a point: the case's point is their mean.
            points_count   integer NOT NULL DEFAULT 0,
            flags          text[] NOT NULL DEFAULT '{}'
        );
        -- Candidate search for duplicates: cases of a family near a point. earthdistance over cube (contrib,
        -- in Debian's postgresql-contrib) rather than PostGIS: a radius search around a point is all the
        -- router asks, the two extensions ship with every PostgreSQL, and a GiST index on ll_to_earth
        -- answers earth_box containment. Closed cases stay indexed: recently closed ones are candidates.
        -- earthdistance's own functions name cube and earth without a schema, so they fail where the
        -- search path is empty, as in autovacuum's ANALYZE of an index on them: index through a wrapper
        -- that pins the path (and use the same wrapper in queries, so the index matches).
        CREATE FUNCTION router.earth_point(lat double precision, lon double precision) RETURNS public.earth
            LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = public
            AS $$ SELECT ll_to_earth(lat, lon) $$;
        CREATE INDEX cases_near ON router.cases USING gist (router.earth_point(lat, lon))
            WHERE lat IS NOT NULL;
        CREATE INDEX cases_address ON router.cases (family, address_key) WHERE address_key IS NOT NULL;
        CREATE INDEX cases_family_time ON router.cases (family, last_report_at);
        CREATE INDEX cases_neighbourhood_status ON router.cases (neighbourhood, status);

        CREATE TABLE router.reports (
            report_id    uuid PRIMARY KEY,
            case_id      uuid NOT NULL REFERENCES router.cases (case_id),
            source_system text NOT NULL,
            source_id    text NOT NULL,
            received_at  timestamptz NOT NULL,
            routed_at    timestamptz NOT NULL DEFAULT now(),
            category     text NOT NULL,
            lat          double precision,
            lon          double precision,
            address      text,
            description  text NOT NULL,
            link_score   double precision,
            correlation_id text NOT NULL
        );
        CREATE INDEX reports_case ON router.reports (case_id);

        CREATE TABLE router.assignments (
            case_id     uuid NOT NULL REFERENCES router.cases (case_id),
            department  text NOT NULL,
            role        text NOT NULL CHECK (role IN ('lead', 'contributor')),
            assigned_at timestamptz NOT NULL,
            PRIMARY KEY (case_id, department)
        );

        CREATE TABLE router.case_history (
            id        bigserial PRIMARY KEY,
            case_id   uuid NOT NULL REFERENCES router.cases (case_id),
            at        timestamptz NOT NULL,
            actor     text NOT NULL,
            action    text NOT NULL,
            detail    jsonb NOT NULL DEFAULT '{}'
        );
        CREATE INDEX case_history_case ON router.case_history (case_id, id);

        CREATE TABLE router.outbox (
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
        """
        DROP TABLE router.outbox; DROP TABLE router.case_history; DROP TABLE router.assignments;
        DROP TABLE router.reports; DROP TABLE router.cases; DROP SEQUENCE router.case_number;
        DROP FUNCTION router.earth_point;
        """
    )
