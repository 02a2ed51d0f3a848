"""Writing the change feed.

The cursor must never let a reader skip a change. With concurrent PostgreSQL transactions a plain
sequence can commit out of order (seq 11 visible before seq 10), so every transaction that records
a change first takes one transaction-scoped advisory lock: change-writing transactions commit one at
a time, in seq order. SQLite serializes writers already (BEGIN IMMEDIATE in db.py). PostgreSQL
NOTIFY, sent (once) with the lock, is delivered at commit and wakes every API process; the
listeners read the feed from their own mark, so one notification per transaction loses nothing.

The lock is held until the commit, so what runs after it runs one transaction at a time. Work
that records many changes (intake) does it inside `batched(session)`: record() only keeps the rows
and they are written at the commit (before_commit): first the transaction's other rows, then the
lock, then all its changes in one multi-row INSERT — in record() order, since the unit of work
inserts one table's new rows in the order they were added — then the commit. The lock then spans
one statement and the commit instead of the whole request. A record() outside `batched` in the
same transaction writes the kept rows first, so the order of record() calls is the seq order.
On SQLite (no such lock: one writer at a time) batched rows simply go out with the next flush.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, func, select, text
from sqlalchemy.orm import Session, SessionTransaction

from server.db import ChangeRow

CHANGE_LOCK_ID = 724_310_001
NOTIFY_CHANNEL = "bdc_changes"
# session.info keys, for the current transaction only (cleared when it ends)
_LOCKED = "change_lock"
_KEPT = "change_kept_rows"
_BATCHED = "change_batched"


@contextmanager
def batched(session: Session) -> Iterator[Session]:
    """Within: record() keeps its rows for the commit, and save_lead/add_activity do not flush
    each row (see the module docstring)."""
    before = session.info.get(_BATCHED, False)
    session.info[_BATCHED] = True
    try:
        yield session
    finally:
        session.info[_BATCHED] = before


def batching(session: Session) -> bool:
    return bool(session.info.get(_BATCHED))


def record(
    session: Session,
    *,
    store_id: str,
    entity: str,
    entity_id: str,
    data: dict[str, Any],
    agent_id: str | None = None,
) -> ChangeRow:
    """Append one change in the caller's transaction; returns the row with its seq (inside
    `batched`: without; the seq is drawn at the commit)."""
    row = ChangeRow(
        store_id=store_id, entity=entity, entity_id=entity_id, agent_id=agent_id, data=data
    )
    if batching(session):
        if session.get_bind().dialect.name == "postgresql":
            session.info.setdefault(_KEPT, []).append(row)
        else:  # no lock to keep short (one writer at a time): out with the next flush
            session.add(row)
        return row
    _write_kept(session)  # earlier record() calls get the lower seqs
    _lock(session)
    session.add(row)
    session.flush()
    session.info["last_change_seq"] = row.seq
    return row


def _lock(session: Session) -> None:
    """The change lock (PostgreSQL), with the transaction's one NOTIFY (sent at its commit)."""
    if session.info.get(_LOCKED) or session.get_bind().dialect.name != "postgresql":
        return
    session.execute(
        text("SELECT pg_advisory_xact_lock(:id), pg_notify(:channel, 'changes')"),
        {"id": CHANGE_LOCK_ID, "channel": NOTIFY_CHANNEL},
    )
    session.info[_LOCKED] = True


def _write_kept(session: Session) -> None:
    kept = session.info.pop(_KEPT, None)
    if not kept:
        return
    session.flush()  # the transaction's other rows first, before the lock
    _lock(session)
    session.add_all(kept)
    session.flush()
    session.info["last_change_seq"] = kept[-1].seq


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    _write_kept(session)


@event.listens_for(Session, "after_transaction_end")
def _transaction_over(session: Session, transaction: SessionTransaction) -> None:
    # The advisory lock is transaction-scoped: a later transaction of this session takes it again;
    # rows kept by a transaction that rolled back are dropped with it.
    if transaction.parent is None:
        session.info.pop(_LOCKED, None)
        session.info.pop(_KEPT, None)


def newest_seq(session: Session) -> int:
    return session.scalar(select(func.max(ChangeRow.seq))) or 0
