"""Opt-outs and do-not-call entries (ContactBlockRow), written with their change records.

Every block added or lifted is recorded in the change feed as entity CONTACT_BLOCK with no owner:
every staff member of the store sees it (server.hub.STORE_WIDE_ENTITIES), so a customer who
opted out is blocked on every PC of the store, offline too. Data: {"address", "kind", "at",
"removed"}. GET /v1/contact-blocks lists the current ones for a full download.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server.changes import record
from server.db import ContactBlockRow, utcnow

CONTACT_BLOCK = "contact_block"
KINDS = ("opt_out", "dnc")


def block_payload(
    row: ContactBlockRow, *, removed: bool = False, at: datetime | None = None
) -> dict[str, Any]:
    return {
        "address": row.address,
        "kind": row.kind,
        "at": (at or row.at).isoformat(),
        "removed": removed,
    }


def _record(
    session: Session, row: ContactBlockRow, *, removed: bool, at: datetime | None = None
) -> None:
    record(
        session,
        store_id=row.store_id,
        entity=CONTACT_BLOCK,
        entity_id=f"{row.kind}:{row.address}"[:64],
        data=block_payload(row, removed=removed, at=at),
        agent_id=None,
    )


def add_block(
    session: Session,
    store_id: str,
    address: str,
    kind: str,
    source: str,
    at: datetime | None = None,
) -> bool:
    """Block `address` (E.164 phone or lower-case e-mail) in the store and record the change.
    False when it was blocked already (nothing recorded)."""
    if kind not in KINDS:
        raise ValueError(f"kind: {kind!r} is not one of {KINDS}")
    exists = session.scalar(
        select(ContactBlockRow.id).where(
            ContactBlockRow.store_id == store_id,
            ContactBlockRow.address == address,
            ContactBlockRow.kind == kind,
        )
    )
    if exists is not None:
        return False
    row = ContactBlockRow(
        store_id=store_id, address=address, kind=kind, at=at or utcnow(), source=source
    )
    try:
        with session.begin_nested():  # another request may block the same address at once
            session.add(row)
            session.flush()
    except IntegrityError:
        return False
    _record(session, row, removed=False)
    return True


def remove_blocks(
    session: Session, store_ids: Iterable[str], address: str, kind: str, at: datetime
) -> int:
    """Lift the `kind` blocks of `address` in these stores (e.g. the customer texted START),
    recording each removal. Returns how many were lifted."""
    rows = session.scalars(
        select(ContactBlockRow).where(
            ContactBlockRow.store_id.in_(list(store_ids)),
            ContactBlockRow.address == address,
            ContactBlockRow.kind == kind,
        )
    ).all()
    for row in rows:
        _record(session, row, removed=True, at=at)
        session.delete(row)
    session.flush()
    return len(rows)


def list_blocks(
    session: Session, store_id: str, after: int, limit: int
) -> tuple[list[dict[str, Any]], int | None]:
    """One page of the store's blocks in id order after `after`: (blocks, next cursor or None)."""
    rows = session.scalars(
        select(ContactBlockRow)
        .where(ContactBlockRow.store_id == store_id, ContactBlockRow.id > after)
        .order_by(ContactBlockRow.id)
        .limit(limit + 1)
    ).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return [block_payload(r) for r in rows], (rows[-1].id if more and rows else None)
