"""Who works a lead: round robin over the agents on the floor, the pool, reassignment, escalation.

Round robin: among the store's active agents who are logged in, not paused or offline, and whose
last heartbeat is within `Settings.heartbeat_timeout`, the one whose `last_assigned_at` is oldest
(never assigned counts as oldest) gets the lead. Nobody available: the lead goes to the unassigned
pool (`assigned_agent_id` None), which every agent of the store sees and may claim.

Concurrency: `lock_floor` takes row locks (SELECT ... FOR UPDATE, in user-id order) on the store's
presence rows, so two API processes on PostgreSQL never hand the same turn out twice. Call it
before the transaction records any change: `changes.record` holds a global advisory lock until
commit, so taking presence locks after it could deadlock with a heartbeat that locks its presence
row first. SQLite serializes writers already (BEGIN IMMEDIATE).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import Select, bindparam, select
from sqlalchemy.orm import Session

from app.domain.activities import Activity, ActivityKind
from app.domain.leads import Lead, LeadStatus
from server.changes import record
from server.db import JobRow, LeadRow, PresenceRow, UserRow
from server.services.common import add_activity, history_of, lead_of, save_lead
from server.settings import Settings

_TURN_STEP = timedelta(microseconds=1)
UNAVAILABLE_STATES = frozenset({"paused", "offline"})
# Leads nobody needs to answer any more: no escalation for them.
CLOSED_STATUSES = frozenset({LeadStatus.SOLD, LeadStatus.LOST, LeadStatus.DO_NOT_CONTACT})


_FLOOR_LOCK = (
    select(PresenceRow.user_id)
    .where(PresenceRow.store_id == bindparam("store_id"))
    .order_by(PresenceRow.user_id)
    .with_for_update()
)


def lock_floor(session: Session, store_id: str) -> None:
    """Row-lock the store's presence rows for this transaction (PostgreSQL; SQLite: no-op)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    session.execute(_FLOOR_LOCK, {"store_id": store_id}).all()


def _available_query(exclude: bool) -> Select[tuple[UserRow, PresenceRow]]:
    # Built once per shape with bind parameters (building it per lead was ~8 % of intake's CPU).
    query = (
        select(UserRow, PresenceRow)
        .join(PresenceRow, PresenceRow.user_id == UserRow.id)
        .where(
            UserRow.store_id == bindparam("store_id"),
            PresenceRow.store_id == bindparam("store_id"),
            UserRow.role == "agent",
            UserRow.active.is_(True),
            PresenceRow.logged_in.is_(True),
            PresenceRow.state.not_in(sorted(UNAVAILABLE_STATES)),
            PresenceRow.last_heartbeat > bindparam("heard_since"),
        )
        .order_by(UserRow.id)
        .with_for_update(of=PresenceRow)
        # Another process may have moved last_assigned_at while we waited for the lock.
        .execution_options(populate_existing=True)
    )
    if exclude:
        query = query.where(UserRow.id.not_in(bindparam("exclude", expanding=True)))
    return query


_AVAILABLE = {False: _available_query(False), True: _available_query(True)}


def available_agents(
    session: Session,
    store_id: str,
    now: datetime,
    heartbeat_timeout: timedelta,
    *,
    exclude: Collection[str] = (),
) -> list[tuple[UserRow, PresenceRow]]:
    """The agents who may take a new lead right now, next in turn first."""
    params: dict[str, object] = {"store_id": store_id, "heard_since": now - heartbeat_timeout}
    if exclude:
        params["exclude"] = sorted(exclude)
    result = session.execute(_AVAILABLE[bool(exclude)], params)
    rows = [(user, presence) for user, presence in result.all()]
    rows.sort(key=lambda pair: _turn_key(pair[1]))
    return rows


def _turn_key(presence: PresenceRow) -> tuple[int, datetime | None, str]:
    # Never-assigned agents first, then the longest since their last lead; ties by id.
    last = presence.last_assigned_at
    return (0 if last is None else 1, last, presence.user_id)


def pick_agent(
    session: Session,
    store_id: str,
    now: datetime,
    settings: Settings,
    *,
    exclude: Collection[str] = (),
) -> str | None:
    """The agent whose turn it is (their turn is used up), or None for the pool."""
    candidates = available_agents(
        session, store_id, now, settings.heartbeat_timeout, exclude=exclude
    )
    if not candidates:
        return None
    user, presence = candidates[0]
    # The turn stamp must be later than every other candidate's, or several leads at one
    # instant (a multi-lead document, a pinned clock, clocks of several processes a little
    # apart) would tie and the tie-break by id would hand them all to the same agent.
    stamps = [p.last_assigned_at for _, p in candidates if p.last_assigned_at is not None]
    latest = max(stamps, default=None)
    stamp = now if latest is None or now > latest else latest + _TURN_STEP
    presence.last_assigned_at = stamp
    session.flush()
    return user.id


def is_available(session: Session, agent_id: str, now: datetime, settings: Settings) -> bool:
    user = session.get(UserRow, agent_id)
    if user is None:
        return False
    return any(
        u.id == agent_id
        for u, _ in available_agents(session, user.store_id, now, settings.heartbeat_timeout)
    )


def assign(
    session: Session,
    row: LeadRow,
    agent_id: str | None,
    *,
    at: datetime,
    reason: str,
    by: str | None = None,
    lead: Lead | None = None,
) -> LeadRow:
    """Give the lead to `agent_id` (None: the pool), with an ASSIGNMENT activity saying why.

    The change feed tells the previous agent "lead_removed" (save_lead does that).
    """
    current = lead if lead is not None else lead_of(row)
    before = current.assigned_agent_id
    save_lead(session, row, replace(current, assigned_agent_id=agent_id), assigned_at=at)
    who = agent_name(session, agent_id) if agent_id else "the unassigned pool"
    was = agent_name(session, before) if before else "the pool"
    add_activity(
        session,
        row,
        Activity(
            id=str(uuid.uuid4()),
            lead_id=row.id,
            kind=ActivityKind.ASSIGNMENT,
            at=at,
            agent_id=by,
            automatic=by is None,
            body=f"Assigned to {who} (was {was}): {reason}",
        ),
    )
    return row


def agent_name(session: Session, user_id: str | None) -> str:
    if user_id is None:
        return "nobody"
    user = session.get(UserRow, user_id)
    if user is None:
        return user_id
    return user.display_name or user.username


def find_store_agent(session: Session, store_id: str, agent_id: str) -> UserRow | None:
    """An active agent of `store_id` with this id, else None."""
    user = session.get(UserRow, agent_id)
    if user is None or user.store_id != store_id or user.role != "agent" or not user.active:
        return None
    return user


class ClaimConflict(Exception):
    """Somebody else holds the lead already."""

    def __init__(self, lead_id: str, holder: str) -> None:
        super().__init__(f"lead '{lead_id}' is already assigned to {holder}")
        self.holder = holder


class NotAnAgent(ValueError):
    """The target of an assignment is not an active agent of the lead's store."""


def claim(session: Session, store_id: str, agent_id: str, lead_id: str, now: datetime) -> LeadRow:
    """The agent takes a pool lead. LookupError: no such lead in the store; ClaimConflict:
    somebody claimed (or was given) it first. Claiming one's own lead again changes nothing."""
    row = session.scalar(select(LeadRow).where(LeadRow.id == lead_id).with_for_update())
    if row is None or row.store_id != store_id:
        raise LookupError(lead_id)
    if row.assigned_agent_id == agent_id:
        return row
    if row.assigned_agent_id is not None:
        raise ClaimConflict(lead_id, agent_name(session, row.assigned_agent_id))
    return assign(session, row, agent_id, at=now, reason="claimed from the pool", by=agent_id)


def reassign(
    session: Session, row: LeadRow, agent_id: str | None, *, by: str, by_name: str, now: datetime
) -> LeadRow:
    """A manager gives the lead to `agent_id` (an active agent of its store) or to the pool."""
    if agent_id is not None and find_store_agent(session, row.store_id, agent_id) is None:
        raise NotAnAgent(f"agent_id: no active agent '{agent_id}' in this store")
    if row.assigned_agent_id == agent_id:
        return row
    return assign(session, row, agent_id, at=now, reason=f"reassigned by {by_name}", by=by)


# --- Escalation ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Escalation:
    """What `escalate` did. `next_check` is when it wants to run again (also enqueued as a job)."""

    action: str  # "none" | "alerted" | "reassigned" | "pooled"
    reason: str
    assigned_agent_id: str | None = None
    next_check: datetime | None = None


def escalate(
    session: Session, lead_row: LeadRow, now: datetime, settings: Settings | None = None
) -> Escalation:
    """The deadline check the scheduler runs at a lead's due_at (and again when this asks).

    No agent attempt by the deadline: managers are alerted (a change entity "alert" with no
    agent, so every manager of the store sees it). Once `settings.reassign_after` has passed
    too, the lead goes to another available agent (or to the pool when its agent is off the
    floor and nobody else is free). Before that point a follow-up "escalate" job is enqueued.
    Call in the caller's transaction, before it records any other change (see lock_floor).
    """
    settings = settings or Settings(db_url="")
    if lead_row.due_at is None:
        return Escalation("none", "the lead has no deadline")
    lead = lead_of(lead_row)
    if lead.status in CLOSED_STATUSES or lead.opted_out_at is not None or lead.is_spam:
        return Escalation("none", f"the lead is {lead.status.value}; nothing to chase")
    if lead_row.first_attempt_at is not None or _attempted(session, lead_row):
        return Escalation("none", "an agent already attempted contact")
    if now < lead_row.due_at:
        return Escalation("none", "not due yet", lead.assigned_agent_id, lead_row.due_at)

    lock_floor(session, lead_row.store_id)
    overdue = now - lead_row.due_at
    reassign_at = (
        lead_row.due_at + settings.reassign_after if settings.reassign_after is not None else None
    )
    current = lead.assigned_agent_id
    if reassign_at is not None and now >= reassign_at:
        target = pick_agent(
            session, lead_row.store_id, now, settings, exclude=[current] if current else []
        )
        minutes = int(overdue.total_seconds() // 60)
        if target is not None:
            assign(session, lead_row, target, at=now, reason=f"no attempt {minutes} min past due")
            _alert(session, lead_row, now, overdue, "reassigned", previous=current)
            return Escalation("reassigned", f"no attempt {minutes} min past due", target)
        if current is not None and not is_available(session, current, now, settings):
            assign(
                session,
                lead_row,
                None,
                at=now,
                reason=f"agent off the floor, {minutes} min past due",
            )
            _alert(session, lead_row, now, overdue, "pooled", previous=current)
            return Escalation("pooled", "its agent is off the floor and nobody else is free")
        _alert(session, lead_row, now, overdue, "alerted", previous=current)
        return Escalation("alerted", "no other agent is available", current)

    _alert(session, lead_row, now, overdue, "alerted", previous=current)
    if reassign_at is not None:
        _enqueue_once(
            session,
            kind="escalate",
            dedupe_key=f"escalate-reassign:{lead_row.id}",
            store_id=lead_row.store_id,
            lead_id=lead_row.id,
            due_at=reassign_at,
        )
    return Escalation("alerted", "no attempt by the deadline", current, reassign_at)


def _attempted(session: Session, lead_row: LeadRow) -> bool:
    received = lead_row.received_at
    return any(a.is_agent_attempt and a.at >= received for a in history_of(session, lead_row.id))


def _alert(
    session: Session,
    lead_row: LeadRow,
    now: datetime,
    overdue: timedelta,
    action: str,
    *,
    previous: str | None,
) -> None:
    record(
        session,
        store_id=lead_row.store_id,
        entity="alert",
        entity_id=lead_row.id,
        agent_id=None,  # managers' feed: no single owner
        data={
            "kind": "response_overdue",
            "lead_id": lead_row.id,
            "action": action,
            "assigned_agent_id": lead_row.assigned_agent_id,
            "previous_agent_id": previous,
            "due_at": lead_row.due_at.isoformat() if lead_row.due_at else None,
            "overdue_s": int(overdue.total_seconds()),
            "at": now.isoformat(),
        },
    )


def _enqueue_once(
    session: Session,
    *,
    kind: str,
    dedupe_key: str,
    store_id: str,
    lead_id: str,
    due_at: datetime,
) -> None:
    exists = session.scalar(select(JobRow.id).where(JobRow.dedupe_key == dedupe_key))
    if exists is None:
        session.add(
            JobRow(
                kind=kind, dedupe_key=dedupe_key, store_id=store_id, lead_id=lead_id, due_at=due_at
            )
        )
        session.flush()
