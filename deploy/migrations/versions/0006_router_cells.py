"""router: candidate search by grid cell (btree), no longer by earthdistance (GiST).

The batched earthdistance search collapsed once about 10,000 cases existed: its plan joined the whole batch
to the table and evaluated a function that cannot be inlined for every row visited. Each case now stores
the key of the grid cell its point lies in (caseway_router.domain.areas.case_cell), and the search is one
lookup per cell of each report's box on (family, cell, last_report_at).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# caseway_router.domain.areas: CELL_DEGREES, _ROW_STRIDE and _COLUMN_OFFSET, as they were when this ran
# (a migration is history: it must not change when the code does). Used only to key existing rows.
_CELL_DEGREES = 0.0005
_ROW_STRIDE = 1 << 21
_COLUMN_OFFSET = 1 << 20


def upgrade() -> None:
    op.execute(
        f"""
        ALTER TABLE router.cases ADD COLUMN cell bigint;
        UPDATE router.cases SET cell = floor(lat / {_CELL_DEGREES})::bigint * {_ROW_STRIDE}
            + floor(lon / {_CELL_DEGREES})::bigint + {_COLUMN_OFFSET}
        WHERE lat IS NOT NULL AND lon IS NOT NULL;
        CREATE INDEX cases_cell ON router.cases (family, cell, last_report_at) WHERE cell IS NOT NULL;
        DROP INDEX router.cases_near;
        DROP FUNCTION router.earth_point;
        """
    )


def downgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION router.earth_point(lat double precision, lon double precision) RETURNS public.earth
            LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = public
            AS $$ SELECT ll_to_earth(lat, lon) $$;
        CREATE INDEX cases_near ON router.cases USING gist (router.earth_point(lat, lon))
            WHERE lat IS NOT NULL;
        DROP INDEX router.cases_cell;
        ALTER TABLE router.cases DROP COLUMN cell;
        """
    )
