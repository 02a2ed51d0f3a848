"""lead_assignments: who held each lead when (activities logged before a reassignment land)

Revision ID: 0004
Revises: 0003

Existing leads get one open holding by their current assignee since they were received (the
earlier history of a lead is unknown to this table).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import server.db

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lead_assignments",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("lead_id", sa.String(length=64), nullable=False),
        sa.Column("store_id", sa.String(length=64), nullable=False),
        sa.Column("agent_id", sa.String(length=64), nullable=True),
        sa.Column("since", server.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("until", server.db.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("lead_assignments", schema=None) as batch_op:
        batch_op.create_index("ix_lead_assignments_lead_id", ["lead_id"], unique=False)
    op.execute(
        "INSERT INTO lead_assignments (lead_id, store_id, agent_id, since) "
        "SELECT id, store_id, assigned_agent_id, received_at FROM leads"
    )


def downgrade() -> None:
    op.drop_table("lead_assignments")
