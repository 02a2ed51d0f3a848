"""Activities keyed by (lead_id, id): a first download stores its activities in key order
(the snapshot comes lead by lead), where the random order of UUID keys cost most of its time.
The rows keep their rowids: reads order a lead's history by (at, rowid).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from app.store.models import UtcDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_COLUMNS = "rowid, id, lead_id, at, data, pending"


def _activities(name: str, *key: str) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("lead_id", sa.String(length=64), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("pending", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint(*key),
    )


def upgrade() -> None:
    _activities("activities_by_lead", "lead_id", "id")
    op.execute(
        f"INSERT INTO activities_by_lead ({_COLUMNS}) SELECT {_COLUMNS} FROM activities "
        "ORDER BY rowid"
    )
    op.drop_index("ix_activities_lead_id", table_name="activities")
    op.drop_table("activities")
    op.rename_table("activities_by_lead", "activities")


def downgrade() -> None:
    # Refused (UNIQUE failed, nothing changed) if one id came to be stored under two leads.
    _activities("activities_by_id", "id")
    op.execute(
        f"INSERT INTO activities_by_id ({_COLUMNS}) SELECT {_COLUMNS} FROM activities "
        "ORDER BY rowid"
    )
    op.drop_table("activities")
    op.rename_table("activities_by_id", "activities")
    op.create_index("ix_activities_lead_id", "activities", ["lead_id"])
