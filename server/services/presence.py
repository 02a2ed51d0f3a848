"""Agent presence on the call floor: state, heartbeats, sign-out, and the manager's floor view.

One PresenceRow per user. The stored state is what the agent last chose; the *effective* state is
computed on read: a user who signed out, or whose last heartbeat is older than the heartbeat
timeout, is offline whatever the row says (a crashed PC sends no sign-out). `mark_offline` makes
that durable and tells the change feed; the scheduler calls it periodically.

Every state change is recorded on the change feed (entity "presence", agent_id None: it is floor
news for managers, not an item of any agent's queue). Heartbeats that change nothing record nothing.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.activities import Activity, ActivityKind, AppointmentStatus, DispositionFlag
from app.domain.clocks import response_clocks
from app.domain.codec import activity_from_dict, lead_from_dict
from app.domain.errors import DomainError
from app.domain.leads import Lead
from app.rulebook import Rulebook
from server.auth import Principal, Role
from server.changes import record
from server.db import ActivityRow, LeadRow, PresenceRow, StoreRow, UserRow, utcnow
from server.rules import store_hours
from server.services.common import get_lead_for
from server.settings import Settings

# The default timeout, for callers (the scheduler) that have no Settings at hand.
DEFAULT_HEARTBEAT_TIMEOUT: timedelta = next(
    f.default for f in dataclasses.fields(Settings) if f.name == "heartbeat_timeout"
)  # type: ignore[assignment]


class PresenceState(StrEnum):
    """What an agent may set. OFFLINE is never set by a client: it follows sign-out or silence."""

    AVAILABLE = "available"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    PAUSED = "paused"


OFFLINE = "offline"


class PauseReason(StrEnum):
    BREAK = "break"
    LUNCH = "lunch"
    MEETING = "meeting"
    TRAINING = "training"
    COACHING = "coaching"
    OTHER = "other"


class PresenceError(ValueError):
    """A state change that does not make sense; `field` names the offending request field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class EffectivePresence:
    state: str  # a PresenceState value or OFFLINE
    reason: str
    lead_id: str | None
    since: datetime | None  # None: never signed in


def effective(row: PresenceRow | None, now: datetime, timeout: timedelta) -> EffectivePresence:
    """The presence a reader should see as of `now` (offline after sign-out or silence)."""
    if row is None:
        return EffectivePresence(OFFLINE, "", None, None)
    if row.state == OFFLINE or not row.logged_in:
        return EffectivePresence(OFFLINE, "", None, row.since)
    silent_since = row.last_heartbeat + timeout
    if now >= silent_since:
        # Offline from the moment the heartbeat was due, not from when somebody looked.
        return EffectivePresence(OFFLINE, "", None, max(silent_since, row.since))
    return EffectivePresence(row.state, row.reason, row.lead_id, row.since)


def is_online(row: PresenceRow | None, now: datetime, timeout: timedelta) -> bool:
    return effective(row, now, timeout).state != OFFLINE


def routable_agent_ids(
    session: Session, store_id: str, now: datetime, timeout: timedelta
) -> list[str]:
    """Active agents of the store who are signed in, heard from recently and not paused."""
    rows = session.execute(
        select(PresenceRow)
        .join(UserRow, UserRow.id == PresenceRow.user_id)
        .where(
            PresenceRow.store_id == store_id,
            UserRow.role == Role.AGENT.value,
            UserRow.active.is_(True),
        )
        .order_by(PresenceRow.user_id)
    ).scalars()
    return [
        row.user_id
        for row in rows
        if effective(row, now, timeout).state not in (OFFLINE, PresenceState.PAUSED.value)
    ]


def _record_change(session: Session, row: PresenceRow, previous: str) -> None:
    record(
        session,
        store_id=row.store_id,
        entity="presence",
        entity_id=row.user_id,
        agent_id=None,
        data={
            "user_id": row.user_id,
            "state": row.state,
            "previous_state": previous,
            "reason": row.reason,
            "lead_id": row.lead_id,
            "since": row.since.isoformat(),
        },
    )


def _apply(
    session: Session,
    row: PresenceRow | None,
    *,
    user_id: str,
    store_id: str,
    state: str,
    reason: str,
    lead_id: str | None,
    now: datetime,
    timeout: timedelta,
    logged_in: bool = True,
) -> PresenceRow:
    """Write the new state; record a change when the effective state, reason or lead changed."""
    before = effective(row, now, timeout)
    if row is None:
        row = PresenceRow(
            user_id=user_id,
            store_id=store_id,
            state=state,
            reason=reason,
            lead_id=lead_id,
            since=now,
            last_heartbeat=now,
            logged_in=logged_in,
        )
        session.add(row)
        session.flush()
        _record_change(session, row, before.state)
        return row
    if logged_in:
        row.last_heartbeat = now
    changed = (before.state, before.reason, before.lead_id) != (state, reason, lead_id)
    row.logged_in = logged_in
    row.state, row.reason, row.lead_id = state, reason, lead_id
    if changed:
        row.since = now
        session.flush()
        _record_change(session, row, before.state)
    return row


def set_state(
    session: Session,
    principal: Principal,
    state: str,
    *,
    reason: str | None = None,
    lead_id: str | None = None,
    now: datetime | None = None,
    timeout: timedelta = DEFAULT_HEARTBEAT_TIMEOUT,
) -> PresenceRow:
    """The principal's new state. Raises PresenceError naming the field, or 404 for a lead the
    principal may not see. Also counts as a heartbeat."""
    now = now or utcnow()
    try:
        chosen = PresenceState(state)
    except ValueError:
        raise PresenceError(
            "state", f"must be one of {', '.join(PresenceState)}, got {state!r}"
        ) from None
    reason = reason or ""
    if chosen is PresenceState.PAUSED:
        if not reason:
            raise PresenceError("reason", f"required when paused: one of {', '.join(PauseReason)}")
        if reason not in PauseReason.__members__.values():
            raise PresenceError(
                "reason", f"must be one of {', '.join(PauseReason)}, got {reason!r}"
            )
    elif reason:
        raise PresenceError("reason", f"only a paused state takes a reason (state is {state!r})")
    if lead_id is not None and chosen is not PresenceState.ON_CALL:
        raise PresenceError("lead_id", f"only on_call takes a lead (state is {state!r})")
    if lead_id is not None:
        get_lead_for(session, principal, lead_id)  # 404 unless the caller may see it
    row = session.get(PresenceRow, principal.id, with_for_update=True)
    return _apply(
        session,
        row,
        user_id=principal.id,
        store_id=principal.store_id,
        state=chosen.value,
        reason=reason,
        lead_id=lead_id,
        now=now,
        timeout=timeout,
    )


def heartbeat(
    session: Session,
    principal: Principal,
    *,
    now: datetime | None = None,
    timeout: timedelta = DEFAULT_HEARTBEAT_TIMEOUT,
) -> PresenceRow:
    """Keep the principal signed in. Cheap when nothing changes (one row updated, no change
    record); a first heartbeat, or one after sign-out or silence, makes the agent available."""
    now = now or utcnow()
    row = session.get(PresenceRow, principal.id, with_for_update=True)
    if row is not None and is_online(row, now, timeout):
        row.last_heartbeat = now
        return row
    return _apply(
        session,
        row,
        user_id=principal.id,
        store_id=principal.store_id,
        state=PresenceState.AVAILABLE.value,
        reason="",
        lead_id=None,
        now=now,
        timeout=timeout,
    )


def sign_out(session: Session, user_id: str, *, now: datetime | None = None) -> bool:
    """Mark the user signed out (offline at once). Returns whether anything changed.

    Call it in the sign-out transaction (POST /v1/auth/revoke)."""
    now = now or utcnow()
    row = session.get(PresenceRow, user_id, with_for_update=True)
    if row is None or (row.state == OFFLINE and not row.logged_in):
        return False
    previous = row.state if row.logged_in else OFFLINE
    row.logged_in = False
    row.state, row.reason, row.lead_id = OFFLINE, "", None
    row.since = now
    session.flush()
    if previous != OFFLINE:
        _record_change(session, row, previous)
    return True


def mark_offline(
    session: Session, now: datetime | None = None, timeout: timedelta = DEFAULT_HEARTBEAT_TIMEOUT
) -> list[str]:
    """Make silent users offline and record each change; returns their user ids.

    Safe with several API processes: the rows are locked and the condition re-checked (PostgreSQL
    re-evaluates the WHERE clause of a row another transaction changed), so a user goes offline
    once, with one change record.
    """
    now = now or utcnow()
    silent = session.scalars(
        select(PresenceRow)
        .where(PresenceRow.state != OFFLINE, PresenceRow.last_heartbeat <= now - timeout)
        .order_by(PresenceRow.user_id)
        .with_for_update()
    ).all()
    gone = []
    for row in silent:
        previous = row.state if row.logged_in else OFFLINE
        row.logged_in = False
        row.state, row.reason, row.lead_id = OFFLINE, "", None
        row.since = row.last_heartbeat + timeout
        session.flush()
        if previous != OFFLINE:
            _record_change(session, row, previous)
        gone.append(row.user_id)
    return gone


# --- The floor ------------------------------------------------------------------------------------


def local_day_bounds(zone: ZoneInfo, now: datetime) -> tuple[datetime, datetime]:
    """[midnight, next midnight) of `now`'s local date in `zone`, as aware instants."""
    day = now.astimezone(zone).date()
    start = datetime.combine(day, time(0), tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    return start, end


@dataclass
class _Today:
    calls: int = 0
    contact_leads: set[str] = dataclasses.field(default_factory=set)
    appointment_leads: set[str] = dataclasses.field(default_factory=set)


def _decoded(rows: Iterable[ActivityRow]) -> list[Activity]:
    activities = []
    for row in rows:
        try:
            activities.append(activity_from_dict(row.data))
        except DomainError:
            continue  # a damaged record must not take the floor view down
    return activities


def _today_by_agent(activities: Iterable[Activity]) -> dict[str, _Today]:
    """Calls (outbound agent calls), contacts and appointments (distinct leads) per agent."""
    by_agent: dict[str, _Today] = defaultdict(_Today)
    for activity in activities:
        if activity.agent_id is None:
            continue
        today = by_agent[activity.agent_id]
        if activity.kind is ActivityKind.CALL and activity.is_agent_attempt:
            today.calls += 1
        if activity.is_conversation:
            today.contact_leads.add(activity.lead_id)
        if (
            activity.kind is ActivityKind.APPOINTMENT
            and activity.appointment_status is AppointmentStatus.SET
        ) or (
            activity.kind is ActivityKind.DISPOSITION
            and activity.flags & DispositionFlag.APPOINTMENT_SET
        ):
            today.appointment_leads.add(activity.lead_id)
            today.contact_leads.add(activity.lead_id)  # an appointment is set in a conversation
    return by_agent


def floor(
    session: Session,
    store_id: str,
    rules: Rulebook,
    *,
    now: datetime | None = None,
    timeout: timedelta = DEFAULT_HEARTBEAT_TIMEOUT,
) -> dict[str, Any]:
    """Every active agent of the store: presence, today's numbers and 5-minute compliance.

    "Today" is the store's local date. Compliance counts the agent's leads received today whose
    5-minute outcome is known (attempted, or the deadline passed): met / judged.
    """
    now = now or utcnow()
    store = session.get(StoreRow, store_id)
    if store is None:
        raise LookupError(f"store {store_id!r} not found")
    hours = store_hours(rules, store)
    day_start, day_end = local_day_bounds(hours.zone, now)

    agents = session.scalars(
        select(UserRow)
        .where(
            UserRow.store_id == store_id,
            UserRow.role == Role.AGENT.value,
            UserRow.active.is_(True),
        )
        .order_by(UserRow.username)
    ).all()
    presence = {
        row.user_id: row
        for row in session.scalars(select(PresenceRow).where(PresenceRow.store_id == store_id))
    }
    today = _today_by_agent(
        _decoded(
            session.scalars(
                select(ActivityRow).where(
                    ActivityRow.store_id == store_id,
                    ActivityRow.at >= day_start,
                    ActivityRow.at < day_end,
                    ActivityRow.at <= now,
                )
            )
        )
    )

    leads_today = session.scalars(
        select(LeadRow).where(
            LeadRow.store_id == store_id,
            LeadRow.received_at >= day_start,
            LeadRow.received_at < day_end,
            LeadRow.assigned_agent_id.is_not(None),
        )
    ).all()
    histories: dict[str, list[Activity]] = defaultdict(list)
    if leads_today:
        for activity in _decoded(
            session.scalars(
                select(ActivityRow).where(ActivityRow.lead_id.in_([r.id for r in leads_today]))
            )
        ):
            histories[activity.lead_id].append(activity)
    compliance: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # agent -> [judged, met]
    for row in leads_today:
        try:
            lead = lead_from_dict(row.data)
            clocks = response_clocks(lead, histories[row.id], hours, rules.response_policy, now)
        except DomainError:
            continue
        if clocks.met_5_minute_rule is None or row.assigned_agent_id is None:
            continue
        tally = compliance[row.assigned_agent_id]
        tally[0] += 1
        tally[1] += clocks.met_5_minute_rule

    on_call_ids = {
        state.lead_id
        for state in (effective(presence.get(a.id), now, timeout) for a in agents)
        if state.lead_id
    }
    customers = _customer_names(session, store_id, on_call_ids)

    rows = []
    for agent in agents:
        state = effective(presence.get(agent.id), now, timeout)
        counts = today.get(agent.id, _Today())
        judged, met = compliance.get(agent.id, (0, 0))
        last = presence[agent.id].last_heartbeat if agent.id in presence else None
        rows.append(
            {
                "user_id": agent.id,
                "username": agent.username,
                "display_name": agent.display_name or agent.username,
                "state": state.state,
                "reason": state.reason or None,
                "since": state.since.isoformat() if state.since else None,
                "seconds_in_state": (
                    max(0, int((now - state.since).total_seconds())) if state.since else None
                ),
                "last_heartbeat": last.isoformat() if last else None,
                "lead": (
                    {"id": state.lead_id, "customer_name": customers.get(state.lead_id, "")}
                    if state.lead_id
                    else None
                ),
                "today": {
                    "calls": counts.calls,
                    "contacts": len(counts.contact_leads),
                    "appointments": len(counts.appointment_leads),
                },
                "deadline_compliance": {
                    "judged": judged,
                    "met": met,
                    "rate": (met / judged) if judged else None,
                },
            }
        )
    return {
        "server_time": now.isoformat(),
        "store_id": store.id,
        "time_zone": store.time_zone,
        "day": day_start.date().isoformat(),
        "heartbeat_timeout_s": int(timeout.total_seconds()),
        "agents": rows,
    }


def _customer_names(session: Session, store_id: str, lead_ids: set[str]) -> dict[str, str]:
    if not lead_ids:
        return {}
    names = {}
    for row in session.scalars(
        select(LeadRow).where(LeadRow.id.in_(lead_ids), LeadRow.store_id == store_id)
    ):
        try:
            lead: Lead = lead_from_dict(row.data)
        except DomainError:
            continue
        names[row.id] = lead.person.full_name
    return names
