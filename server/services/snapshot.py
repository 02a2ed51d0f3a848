"""The snapshot a workstation loads on its first sync and after a 410: every lead the caller may
see, as a "lead" change carries it, with its whole activity history, paged by lead id.

Replaying the change feed from seq 0 costs ~580,000 rows at 50,000 leads, and the feed forgets
after retention; the leads table does neither. The client keeps the first page's `newest` and,
after the last page, follows GET /v1/changes from it: a lead changed while it pages shows up
there again (a page may already hold a newer version; the client keeps the newest).

The body is assembled from the stored JSON texts (leads.data and activities.data, cast to text)
rather than decoded and encoded again: a page is ~3 MB of activity JSON at 50,000 leads.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import ColumnElement, Text, cast, false, func, or_, select
from sqlalchemy.orm import Session

from server.auth import Principal, Role
from server.db import ActivityRow, LeadRow
from server.hub import resume_seq

MAX_SNAPSHOT_PAGE = 1000


def visible_leads(principal: Principal) -> list[ColumnElement[bool]]:
    """WHERE clauses for the leads `principal` may see (as common.can_see): agents their own
    and the pool, managers and admins their whole store, nobody another store's."""
    where: list[ColumnElement[bool]] = [LeadRow.store_id == principal.store_id]
    if principal.role is Role.AGENT:
        where.append(
            or_(LeadRow.assigned_agent_id == principal.id, LeadRow.assigned_agent_id.is_(None))
        )
    elif principal.role not in (Role.MANAGER, Role.ADMIN):
        where.append(false())
    return where


def read_snapshot(session: Session, principal: Principal, cursor: str | None, limit: int) -> bytes:
    """One page as a JSON document: {"newest", "total", "leads", "next_cursor"}; each lead is
    common.lead_change_payload's fields plus "activities" (ActivityRow.data, oldest first)."""
    if not 1 <= limit <= MAX_SNAPSHOT_PAGE:
        raise ValueError(f"limit must be 1 to {MAX_SNAPSHOT_PAGE}")
    # Read first: on SQLite it also opens the read snapshot the leads come from; on PostgreSQL
    # (read committed) the leads read later are at least as new. Either way nothing the client
    # lacks is older than `newest`.
    newest = resume_seq(session, principal.store_id)
    where = visible_leads(principal)
    total = session.scalar(select(func.count()).select_from(LeadRow).where(*where)) or 0
    query = select(
        LeadRow.id,
        cast(LeadRow.data, Text),
        LeadRow.score,
        LeadRow.tier,
        LeadRow.grade,
        LeadRow.due_at,
        LeadRow.version,
    ).where(*where)
    if cursor:
        query = query.where(LeadRow.id > cursor)
    rows = session.execute(query.order_by(LeadRow.id).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    histories: dict[str, list[str]] = {row[0]: [] for row in rows}
    if histories:
        activities = session.execute(
            select(ActivityRow.lead_id, cast(ActivityRow.data, Text))
            .where(ActivityRow.lead_id.in_(list(histories)))
            .order_by(ActivityRow.lead_id, ActivityRow.at, ActivityRow.id)
        )
        for lead_id, data in activities:
            histories[lead_id].append(data)
    parts = [f'{{"newest": {int(newest)}, "total": {int(total)}, "leads": [']
    for n, (lead_id, data, score, tier, grade, due_at, version) in enumerate(rows):
        fields: dict[str, Any] = {
            "score": score,
            "tier": tier,
            "grade": grade,
            "due_at": due_at.isoformat() if due_at else None,
            "version": version,
        }
        parts.append(", " if n else "")
        parts.append(f'{{"lead": {data}, {json.dumps(fields)[1:-1]}, "activities": [')
        parts.append(", ".join(histories[lead_id]))
        parts.append("]}")
    next_cursor = rows[-1][0] if more else None
    parts.append(f'], "next_cursor": {json.dumps(next_cursor)}}}')
    return "".join(parts).encode()
