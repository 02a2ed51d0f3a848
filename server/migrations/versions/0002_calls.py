"""calls: server-bridged calls (POST /v1/calls)

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import server.db

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("store_id", sa.String(length=64), nullable=False),
        sa.Column("lead_id", sa.String(length=64), nullable=False),
        sa.Column("agent_id", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("provider_call_id", sa.String(length=100), nullable=True),
        sa.Column("agent_phone", sa.String(length=40), nullable=False),
        sa.Column("customer_phone", sa.String(length=20), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("cause", sa.String(length=20), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("created_at", server.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("ringing_at", server.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("answered_at", server.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("ended_at", server.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("duration_s", sa.Integer(), nullable=True),
        sa.Column("recording", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.create_index("ix_calls_store_id", ["store_id"], unique=False)
        batch_op.create_index("ix_calls_lead_id", ["lead_id"], unique=False)
        batch_op.create_index("ix_calls_agent_id", ["agent_id"], unique=False)
        batch_op.create_index("ix_calls_provider_call_id", ["provider_call_id"], unique=False)


def downgrade() -> None:
    op.drop_table("calls")
