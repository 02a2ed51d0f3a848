"""leads: indexes for GET /v1/snapshot (a store's leads by id; an agent's visible count)

Revision ID: 0005
Revises: 0004

Without (store_id, id) each snapshot page sorted the whole store (50 ms a page at 50,000 leads,
a hundred pages); without (store_id, assigned_agent_id) an agent's count read every lead row.
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.create_index("ix_leads_store_id_id", ["store_id", "id"], unique=False)
        batch_op.create_index(
            "ix_leads_store_id_assigned_agent_id", ["store_id", "assigned_agent_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.drop_index("ix_leads_store_id_assigned_agent_id")
        batch_op.drop_index("ix_leads_store_id_id")
