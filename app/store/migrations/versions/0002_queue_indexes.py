"""Indexes for the sender's due query and the per-agent queue.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_outbox_state_due", "outbox", ["state", "next_attempt_at"])
    op.create_index("ix_leads_assigned_agent_id", "leads", ["assigned_agent_id"])


def downgrade() -> None:
    op.drop_index("ix_leads_assigned_agent_id", table_name="leads")
    op.drop_index("ix_outbox_state_due", table_name="outbox")
