"""Calls in the database: the request (compliance re-checked), the provider's events, presence,
and the CALL activity written when a call ends — all through the change feed."""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.domain.activities import Activity, ActivityKind, Direction
from app.domain.codec import activity_to_dict
from app.domain.compliance import BlockCode, BlockReason, ContactDecision, check_contact
from app.domain.leads import Channel
from app.domain.timezones import resolve_zones
from app.rulebook import Rulebook
from server.auth import Principal, Role
from server.calls import (
    AGENT_HANGUP,
    ANSWERED,
    CANCELLED,
    COMPLETED,
    CUSTOMER_HANGUP,
    DIALING,
    ENDED,
    FAILED,
    LOST,
    RINGING,
    STATE_ORDER,
    VOICEMAIL,
    CallProvider,
    ProviderEvent,
    machine_answered,
)
from server.changes import record
from server.db import CallRow, ContactBlockRow, LeadRow, PresenceRow, StoreRow, UserRow, transaction
from server.services import presence
from server.services.activities import post_activities
from server.services.common import history_of, lead_of
from server.settings import Settings

if TYPE_CHECKING:
    from server.scheduler import ClaimedJob
    from server.services.messages import MessagingContext

log = logging.getLogger("bdc.calls")
WATCH_JOB = "call_watch"

_LABELS = {
    AGENT_HANGUP: "ended (agent hung up)",
    CUSTOMER_HANGUP: "ended (customer hung up)",
    LOST: "call lost (its end was never reported)",
}


def call_to_dict(row: CallRow) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "id": row.id,
        "lead_id": row.lead_id,
        "agent_id": row.agent_id,
        "provider": row.provider,
        "provider_call_id": row.provider_call_id,
        "customer_phone": row.customer_phone,
        "state": row.state,
        "cause": row.cause or None,
        "detail": row.detail,
        "created_at": iso(row.created_at),
        "ringing_at": iso(row.ringing_at),
        "answered_at": iso(row.answered_at),
        "ended_at": iso(row.ended_at),
        "duration_s": row.duration_s,
        "recording": row.recording,
        "answered_by": row.answered_by or None,
    }


def _record_call(session: Session, row: CallRow) -> None:
    record(
        session,
        store_id=row.store_id,
        entity="call",
        entity_id=row.id,
        data=call_to_dict(row),
        agent_id=row.agent_id,
    )


def check_call(
    session: Session,
    rules: Rulebook,
    store: StoreRow,
    lead_row: LeadRow,
    now: datetime,
    phone: str | None,
) -> ContactDecision:
    """The domain's decision for calling this lead now, with the store's do-not-call and
    opt-out lists applied (they hold for every lead with the number)."""
    lead = lead_of(lead_row)
    numbers = {p.e164 for p in lead.phones if p.e164}
    blocks = list(
        session.scalars(
            select(ContactBlockRow).where(
                ContactBlockRow.store_id == store.id, ContactBlockRow.address.in_(numbers or {""})
            )
        )
    )
    resolution = resolve_zones(lead, rules.zip_table, fallback_zone=store.time_zone)
    decision = check_contact(
        rules.calling_rules,
        lead,
        history_of(session, lead.id),
        Channel.CALL,
        now,
        resolution=resolution,
        dnc_numbers=frozenset(b.address for b in blocks if b.kind == "dnc"),
        phone=phone,
    )
    opted = [b for b in blocks if b.kind == "opt_out"]
    if opted and BlockCode.OPTED_OUT not in decision.codes:
        reason = BlockReason(
            BlockCode.OPTED_OUT,
            f"{opted[0].address} opted out on {opted[0].at:%Y-%m-%d}: no calls, texts or emails",
        )
        decision = replace(decision, allowed=False, reasons=(reason, *decision.reasons))
    return decision


def open_call(
    session: Session,
    principal: Principal,
    lead_row: LeadRow,
    *,
    call_id: str,
    provider: str,
    agent_phone: str,
    customer_phone: str,
    now: datetime,
    timeout: Any,
    watch_after: timedelta | None = None,
) -> CallRow:
    """The call's row (state dialing), its change, the agent on call with the lead, and the
    watch job that ends the call if the provider never reports its end (`watch_after`)."""
    session.get(PresenceRow, principal.id, with_for_update=True)  # lock before any change
    row = CallRow(
        id=call_id,
        store_id=lead_row.store_id,
        lead_id=lead_row.id,
        agent_id=principal.id,
        provider=provider,
        agent_phone=agent_phone,
        customer_phone=customer_phone,
        state=DIALING,
        created_at=now,
    )
    session.add(row)
    session.flush()
    _record_call(session, row)
    presence.set_state(session, principal, "on_call", lead_id=lead_row.id, now=now, timeout=timeout)
    if watch_after is not None:
        _watch(session, row, DIALING, now + watch_after)
    return row


def _watch(session: Session, row: CallRow, stage: str, due_at: datetime) -> None:
    from server.scheduler import enqueue

    enqueue(
        session,
        kind=WATCH_JOB,
        store_id=row.store_id,
        lead_id=row.lead_id,
        due_at=due_at,
        dedupe_key=f"{WATCH_JOB}:{row.id}:{stage}",
        data={"call_id": row.id},
    )


def _principal(session: Session, user_id: str, store_id: str) -> Principal:
    user = session.get(UserRow, user_id)
    role = Role(user.role) if user is not None else Role.AGENT
    return Principal(user_id, role, store_id, user.username if user else user_id)


def apply_event(
    sessions: sessionmaker[Session], rules: Rulebook, settings: Settings, event: ProviderEvent
) -> CallRow | None:
    """Apply one provider event; repeats and out-of-order events change nothing. Returns the
    call row, or None when the event is for no call of ours."""
    with transaction(sessions) as session:
        return apply_in(session, rules, settings, event)


def apply_in(
    session: Session, rules: Rulebook, settings: Settings, event: ProviderEvent
) -> CallRow | None:
    """apply_event in the caller's transaction."""
    query = select(CallRow)
    if event.call_id:
        query = query.where(CallRow.id == event.call_id)
    elif event.provider_call_id:
        query = query.where(CallRow.provider_call_id == event.provider_call_id)
    else:
        return None
    found = session.scalar(query)
    if found is None:
        return None
    # Locks in a fixed order before any change is recorded: lead, call, presence.
    session.scalar(select(LeadRow).where(LeadRow.id == found.lead_id).with_for_update())
    row = session.scalar(select(CallRow).where(CallRow.id == found.id).with_for_update())
    assert row is not None
    session.get(PresenceRow, row.agent_id, with_for_update=True)
    noted = False
    if event.answered_by and row.state != ENDED and row.answered_by != event.answered_by:
        row.answered_by = event.answered_by[:30]  # detection may come after the answer
        noted = True
    if STATE_ORDER.get(event.state, -1) <= STATE_ORDER[row.state]:
        if noted:
            session.flush()
            _record_call(session, row)
        return row
    if row.provider_call_id is None and event.provider_call_id:
        row.provider_call_id = event.provider_call_id
    at = max(event.at, row.created_at)
    if event.state == RINGING:
        row.ringing_at = at
    elif event.state == ANSWERED:
        row.ringing_at = row.ringing_at or at
        row.answered_at = at
    row.state = event.state
    principal = _principal(session, row.agent_id, row.store_id)
    if event.state == ENDED:
        row.ended_at = at
        row.cause = event.cause
        if event.cause == COMPLETED and row.answered_at is None:
            row.cause = CANCELLED  # hung up before anybody answered
        hung_up = row.cause in (COMPLETED, AGENT_HANGUP, CUSTOMER_HANGUP)
        if hung_up and row.answered_at is not None and machine_answered(row.answered_by):
            row.cause = VOICEMAIL  # a machine answered: whoever hung up, it was voicemail
        row.detail = event.detail
        if row.cause == VOICEMAIL and row.answered_by and row.answered_by not in row.detail:
            row.detail = f"{row.detail}; answered by {row.answered_by}".lstrip("; ")
        row.recording = event.recording
        if row.answered_at is not None:
            talk = round((at - row.answered_at).total_seconds())
            row.duration_s = event.duration_s if event.duration_s is not None else talk
        else:
            row.duration_s = 0
        # Written as the store's system (the lead may have been reassigned meanwhile); the
        # activity keeps the agent who made the call.
        system = Principal("system:calls", Role.ADMIN, row.store_id, "call control")
        post_activities(session, system, _activity(row), rules=rules, now=at)
    session.flush()
    _record_call(session, row)
    state = presence.effective(
        session.get(PresenceRow, row.agent_id), at, settings.heartbeat_timeout
    )
    if event.state == ENDED and state.state == "on_call" and state.lead_id == row.lead_id:
        presence.set_state(session, principal, "wrap_up", now=at)
    return row


# --- The watch job: calls whose provider went quiet --------------------------------------------


def watch_job(ctx: MessagingContext, job: ClaimedJob, now: datetime) -> str:
    """Scheduler handler for "call_watch": end the call if it is stale, else watch its current
    stage. Exactly once across processes: the job's lease is re-checked under its row lock in
    the transaction that ends the call and marks the job done."""
    from server.scheduler import assert_owned, finish

    with transaction(ctx.sessions) as session:
        if job.lead_id is not None:  # lock order everywhere: lead, job, call, presence
            session.scalar(select(LeadRow).where(LeadRow.id == job.lead_id).with_for_update())
        assert_owned(session, job)
        result = _watch_call(ctx, session, str(job.data.get("call_id", "")), now)
        finish(session, job, now, result)
    return result


def _watch_call(ctx: MessagingContext, session: Session, call_id: str, now: datetime) -> str:
    settings = ctx.settings
    row = session.scalar(select(CallRow).where(CallRow.id == call_id).with_for_update())
    if row is None:
        return "skipped: no such call"
    if row.state == ENDED:
        return "skipped: the call ended"
    if row.state == ANSWERED:
        assert row.answered_at is not None
        deadline = row.answered_at + settings.call_max_duration
        limit, cause = settings.call_max_duration, LOST
        what = "still reported as answered"
    else:
        deadline = (row.ringing_at or row.created_at) + settings.call_setup_timeout
        limit, cause = settings.call_setup_timeout, FAILED
        what = "not answered and no word from the calling service"
    if now < deadline:
        _watch(session, row, row.state, deadline)
        return f"watching: {row.state} until {deadline.isoformat()}"
    minutes = round(limit.total_seconds() / 60)
    detail = f"{what} after {minutes} min ({row.provider}); ended by the server"
    apply_in(
        session,
        ctx.rules,
        settings,
        ProviderEvent(row.id, None, ENDED, now, cause, detail),
    )
    log.warning("call %s (%s, %s) ended as %s: %s", row.id, row.provider, row.state, cause, detail)
    return f"ended as {cause}: {detail}"


def _activity(row: CallRow) -> dict[str, Any]:
    label = _LABELS.get(row.cause, row.cause.replace("_", " "))
    body = f"Call (server, {row.provider}): {label}"
    if row.detail:
        body += f" ({row.detail})"
    if row.answered_at is not None:
        body += f" · talk {row.duration_s or 0} s"
    if row.recording:
        body += f" · recording {row.recording}"
    assert row.ended_at is not None
    activity = Activity(
        id=row.id,
        lead_id=row.lead_id,
        kind=ActivityKind.CALL,
        at=row.created_at,
        direction=Direction.OUTBOUND,
        agent_id=row.agent_id,
        phone=row.customer_phone,
        duration_s=row.duration_s or 0,
        answered=row.answered_at is not None,
        body=body,
    )
    return activity_to_dict(activity)


# --- The provider the settings name ----------------------------------------------------------

_build_lock = threading.Lock()


def provider_of(app: Any) -> CallProvider | None:
    """The app's call provider, built from its settings on first use (tests may set
    app.state.call_provider beforehand). None when no provider is configured."""
    state = app.state
    provider = getattr(state, "call_provider", None)
    if provider is None:
        with _build_lock:
            provider = getattr(state, "call_provider", None)
            if provider is None:
                provider = build_provider(app)
                state.call_provider = provider or "none"
    return None if provider == "none" else provider


def sink_for(app: Any) -> Any:
    from server.rules import get_rules

    def sink(event: ProviderEvent) -> None:
        apply_event(app.state.sessions, get_rules(app), app.state.settings, event)

    return sink


def build_provider(app: Any) -> CallProvider | None:
    settings: Settings = app.state.settings
    if settings.call_provider == "none":
        return None
    if settings.call_provider == "twilio":
        from server.calls.twilio import TwilioCallProvider, callback_url

        return TwilioCallProvider(
            settings.twilio_base_url,
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            status_callback=callback_url(settings.public_base_url),
        )
    if settings.call_provider == "ami":
        from server.calls.ami import AmiCallProvider
        from server.rules import clock_of

        provider = AmiCallProvider(
            settings.ami_host,
            settings.ami_port,
            settings.ami_username,
            settings.ami_secret,
            sink_for(app),
            context=settings.ami_context,
            agent_channel=settings.ami_agent_channel,
            clock=lambda: clock_of(app),
        )
        app.state.on_stop.append(lambda _app: _close(provider))
        return provider
    if settings.call_provider == "demo":
        from server.calls.demo import DemoCallProvider
        from server.rules import clock_of

        demo = DemoCallProvider(
            sink_for(app),
            seed=settings.demo_call_seed,
            speed=settings.demo_call_speed,
            clock=lambda: clock_of(app),
        )
        app.state.on_stop.append(lambda _app: _close(demo))
        return demo
    raise ValueError(
        f"call_provider: unknown provider {settings.call_provider!r} (none, twilio, ami, demo)"
    )


async def _close(provider: CallProvider) -> None:
    provider.close()
