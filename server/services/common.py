"""Reading and writing leads and activities in the server's database, with their change records.

Every route that changes a lead goes through `save_lead`, so the row's query columns, its JSON,
its version and the change feed never disagree.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from fastapi import HTTPException, status
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from app.domain.activities import Activity
from app.domain.codec import activity_from_dict, activity_to_dict, lead_from_dict, lead_to_dict
from app.domain.dealership import Dealership
from app.domain.leads import Lead
from server.auth import Principal, Role
from server.changes import batching, record
from server.db import ActivityRow, LeadAssignmentRow, LeadRow, StoreRow, UserRow, utcnow


def dealership_of(store: StoreRow) -> Dealership:
    return Dealership(
        id=store.id,
        name=store.name,
        time_zone=store.time_zone,
        state=store.state,
        postal_code=store.postal_code,
        phone=store.phone,
        address=store.address,
        market_zips=tuple(z.strip() for z in store.market_zips.split(",") if z.strip()),
    )


def lead_of(row: LeadRow) -> Lead:
    return lead_from_dict(row.data)


def can_see(principal: Principal, row: LeadRow) -> bool:
    """Agents: their own leads and the unassigned pool. Managers and admins: their store."""
    if row.store_id != principal.store_id:
        return False
    if principal.role is Role.AGENT:
        return row.assigned_agent_id in (None, principal.id)
    return principal.role in (Role.MANAGER, Role.ADMIN)


def get_lead_for(
    session: Session, principal: Principal, lead_id: str, *, lock: bool = False
) -> LeadRow:
    """The lead row if `principal` may see it; else 404 (not 403: no probing other stores)."""
    query = select(LeadRow).where(LeadRow.id == lead_id)
    if lock:
        query = query.with_for_update()
    row = session.scalar(query)
    if row is None or not can_see(principal, row):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"lead '{lead_id}' not found")
    return row


def lead_change_payload(row: LeadRow) -> dict[str, Any]:
    return {
        "lead": row.data,
        "score": row.score,
        "tier": row.tier,
        "grade": row.grade,
        "due_at": row.due_at.isoformat() if row.due_at else None,
        "version": row.version,
    }


def save_lead(
    session: Session,
    row: LeadRow | None,
    lead: Lead,
    *,
    assigned_at: datetime | None = None,
    **columns: Any,
) -> LeadRow:
    """Insert or update a lead row from `lead`, bump its version and record the change.

    `columns` sets the derived query columns (score, tier, grade, due_at, first_attempt_at).
    The previous assignee is told too (agent_id on a second change), so a reassigned lead leaves
    the old agent's queue; a lead taken from the pool is announced store-wide ("pool_left"), so
    it leaves every other agent's pool view. A change of assignee is kept in the lead's holdings
    (LeadAssignmentRow) from `assigned_at` (default: now; a new lead: since it was received).
    """
    previous_agent = row.assigned_agent_id if row is not None else None
    version = (row.version + 1) if row is not None else 1
    lead = replace(lead, version=version)
    phone = lead.primary_phone
    email = lead.primary_email
    values: dict[str, Any] = {
        "store_id": lead.store_id,
        "version": version,
        "received_at": lead.received_at,
        "status": lead.status.value,
        "assigned_agent_id": lead.assigned_agent_id,
        "phone_e164": phone.e164 if phone else None,
        "email": email.address.lower() if email else None,
        "data": lead_to_dict(lead),
        "updated_at": utcnow(),
        **columns,
    }
    created = row is None
    if row is None:
        row = LeadRow(id=lead.id, **values)
        session.add(row)
    else:
        for key, value in values.items():
            setattr(row, key, value)
    if created or not batching(session):
        # A new lead goes in first, on its own: the rows that refer to it (holdings, activities,
        # jobs) have no ORM relationship telling the unit of work to insert it before them.
        session.flush()
    if created:
        _hold(session, row, assigned_at or lead.received_at, first=True)
    elif previous_agent != row.assigned_agent_id:
        _hold(session, row, assigned_at or utcnow())
    payload = lead_change_payload(row)
    record(
        session,
        store_id=row.store_id,
        entity="lead",
        entity_id=row.id,
        data=payload,
        agent_id=row.assigned_agent_id,
    )
    if row.assigned_agent_id is not None and previous_agent != row.assigned_agent_id:
        _hand_over_history(session, row)
    if previous_agent is not None and previous_agent != row.assigned_agent_id:
        record(
            session,
            store_id=row.store_id,
            entity="lead_removed",
            entity_id=row.id,
            data={"lead_id": row.id, "reason": "reassigned", "version": row.version},
            agent_id=previous_agent,
        )
    if not created and previous_agent is None and row.assigned_agent_id is not None:
        record(
            session,
            store_id=row.store_id,
            entity="pool_left",
            entity_id=row.id,
            data={
                "lead_id": row.id,
                "agent_id": row.assigned_agent_id,
                "reason": f"taken from the pool by {_name_of(session, row.assigned_agent_id)}",
                "version": row.version,
            },
            agent_id=None,
        )
    return row


def _hand_over_history(session: Session, row: LeadRow) -> None:
    """The lead's history, again, for its new holder when somebody else held it before: an
    activity's change goes to the holder of its time, so the new holder's PC never heard of
    those (and its attempt caps and cadence would count from nothing). Re-sent activities are
    stored once on the PC (by id)."""
    held_before = session.scalar(
        select(LeadAssignmentRow.id)
        .where(
            LeadAssignmentRow.lead_id == row.id,
            LeadAssignmentRow.agent_id.is_not(None),
            LeadAssignmentRow.agent_id != row.assigned_agent_id,
        )
        .limit(1)
    )
    if held_before is None:
        return  # only the pool's (store-wide) or this agent's own activities: already theirs
    for activity in session.scalars(
        select(ActivityRow).where(ActivityRow.lead_id == row.id).order_by(ActivityRow.at)
    ):
        record(
            session,
            store_id=row.store_id,
            entity="activity",
            entity_id=activity.id,
            data=activity.data,
            agent_id=row.assigned_agent_id,
        )


def _name_of(session: Session, user_id: str) -> str:
    user = session.get(UserRow, user_id)
    return user_id if user is None else (user.display_name or user.username)


def _hold(session: Session, row: LeadRow, since: datetime, *, first: bool = False) -> None:
    """Close the lead's open holding and open one for its current assignee (`first`: a lead
    just inserted, which has no holding to close)."""
    if not first:
        session.execute(
            update(LeadAssignmentRow)
            .where(LeadAssignmentRow.lead_id == row.id, LeadAssignmentRow.until.is_(None))
            .values(until=since)
        )
    session.add(
        LeadAssignmentRow(
            lead_id=row.id, store_id=row.store_id, agent_id=row.assigned_agent_id, since=since
        )
    )
    if not batching(session):
        session.flush()


# A PC's clock and the server's differ a little: an activity this close outside a holding counts.
HOLDING_GRACE = timedelta(minutes=2)


def held_at(session: Session, lead_id: str, agent_id: str, at: datetime) -> bool:
    """Did `agent_id` hold the lead (or could see it in the pool) at `at`?"""
    found = session.scalar(
        select(LeadAssignmentRow.id)
        .where(
            LeadAssignmentRow.lead_id == lead_id,
            or_(LeadAssignmentRow.agent_id == agent_id, LeadAssignmentRow.agent_id.is_(None)),
            LeadAssignmentRow.since <= at + HOLDING_GRACE,
            or_(
                LeadAssignmentRow.until.is_(None),
                LeadAssignmentRow.until > at - HOLDING_GRACE,
            ),
        )
        .limit(1)
    )
    return found is not None


def add_activity(session: Session, lead_row: LeadRow, activity: Activity) -> ActivityRow:
    """Append an activity (append-only: an existing id is never overwritten) and record it."""
    data = activity_to_dict(activity)
    row = ActivityRow(
        id=activity.id,
        lead_id=activity.lead_id,
        store_id=lead_row.store_id,
        kind=activity.kind.value,
        at=activity.at,
        agent_id=activity.agent_id,
        data=data,
    )
    session.add(row)
    if not batching(session):
        session.flush()  # a duplicate id fails here, before its change is recorded
    record(
        session,
        store_id=lead_row.store_id,
        entity="activity",
        entity_id=activity.id,
        data=data,
        agent_id=lead_row.assigned_agent_id,
    )
    return row


def history_of(session: Session, lead_id: str) -> list[Activity]:
    rows = session.scalars(
        select(ActivityRow).where(ActivityRow.lead_id == lead_id).order_by(ActivityRow.at)
    ).all()
    return [activity_from_dict(r.data) for r in rows]
