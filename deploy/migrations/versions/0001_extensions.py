"""Extensions and schemas: cube and earthdistance, and one schema per service.

Revision ID: 0001
Revises:
Create Date: 2025-11-23
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from alembic import op

if TYPE_CHECKING:
    from collections.abc import Sequence

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMAS = ("intake", "router", "notifier")


def upgrade() -> None:
    # earthdistance is not a trusted extension: on a server where the application's role is no
    # superuser, an administrator installs both first (the local stack does, into template1), and
    # IF NOT EXISTS then finds them without needing the privilege.
    op.execute("CREATE EXTENSION IF NOT EXISTS cube")
    op.execute("CREATE EXTENSION IF NOT EXISTS earthdistance")
    for schema in SCHEMAS:
        op.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")


def downgrade() -> None:
    for schema in reversed(SCHEMAS):
        op.execute(f"DROP SCHEMA IF EXISTS {schema}")
    # The extensions stay: an administrator may have installed them, and only their owner may drop them.
