"""Writing the change feed.

The cursor must never let a reader skip a change. With concurrent PostgreSQL transactions a plain
sequence can commit out of order (seq 11 visible before seq 10), so every transaction that records
a change first takes one transaction-scoped advisory lock: change-writing transactions commit one at
a time, in seq order. SQLite serializes writers already (BEGIN IMMEDIATE in db.py). PostgreSQL
NOTIFY, sent inside the transaction, is delivered at commit and wakes every API process.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from server.db import ChangeRow

CHANGE_LOCK_ID = 724_310_001
NOTIFY_CHANNEL = "bdc_changes"


def record(
    session: Session,
    *,
    store_id: str,
    entity: str,
    entity_id: str,
    data: dict[str, Any],
    agent_id: str | None = None,
) -> ChangeRow:
    """Append one change in the caller's transaction; returns the row with its seq."""
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres and not session.info.get("change_lock"):
        session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": CHANGE_LOCK_ID})
        session.info["change_lock"] = True
    row = ChangeRow(
        store_id=store_id, entity=entity, entity_id=entity_id, agent_id=agent_id, data=data
    )
    session.add(row)
    session.flush()
    if postgres:
        session.execute(
            text("SELECT pg_notify(:channel, :seq)"),
            {"channel": NOTIFY_CHANNEL, "seq": str(row.seq)},
        )
    session.info["last_change_seq"] = row.seq
    return row


def newest_seq(session: Session) -> int:
    return session.scalar(select(func.max(ChangeRow.seq))) or 0
