"""Texts and e-mails to leads: compliance re-checked at the moment of sending, one queue for every
outbound message (agent-written or automatic), and the inbound-SMS webhook's consent handling.

Every outbound message is a MessageRow plus a "send_message" job, written in one transaction and
delivered after it commits — at once by the request that made it, or by the scheduler when the
gateway was down — so a send never holds a database write lock while it waits on the network, and
the job's lease makes sure only one process hands a message to a gateway.

A message's `to_address` is the customer's address: the recipient for outbound messages, the
sender for inbound ones.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any

from sqlalchemy import String, cast, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.domain.activities import Activity, ActivityKind, AppointmentStatus, Direction
from app.domain.compliance import (
    BlockCode,
    BlockReason,
    ContactDecision,
    ContactPurpose,
    check_contact,
    opted_out_since,
)
from app.domain.errors import DomainError
from app.domain.leads import Channel, Lead, LeadStatus
from app.domain.phones import make_phone, normalize_e164
from app.domain.scoring import Grade, LeadScore, Tier, score_changed, score_lead
from app.domain.sms_replies import ReplyKind, classify_reply
from app.domain.templates import (
    MERGE_FIELDS,
    Rendered,
    TemplateKind,
    merge_context,
    missing_marker,
    render_template,
)
from app.domain.timezones import resolve_zones
from app.rulebook import Rulebook, load_rulebook
from server import scheduler
from server.changes import record
from server.db import (
    ChangeRow,
    ContactBlockRow,
    IdempotencyRow,
    JobRow,
    LeadRow,
    MessageRow,
    StoreRow,
    UserRow,
    transaction,
)
from server.messaging import GatewayRefused, Gateways, gateways_of
from server.messaging.twilio import OPTED_OUT_CODE
from server.services.activities import attach_to_lead_change, cadence_summary
from server.services.blocks import add_block, remove_blocks
from server.services.common import add_activity, dealership_of, history_of, lead_of, save_lead
from server.settings import Settings

log = logging.getLogger("bdc.messages")

MAX_TEXT_CHARS = 1600  # Twilio's limit for one message body (10 segments)
MAX_EMAIL_CHARS = 50_000
# Purpose of keyword answers (HELP, the START confirmation): the customer's own request, answered
# at once. CTIA practice answers HELP even for an opted-out number, so no consent check applies.
KEYWORD_REPLY = "keyword_reply"
WEBHOOK_PRINCIPAL = "webhook:sms"  # idempotency namespace for inbound MessageSids
_MARKETING_KINDS = {TemplateKind.EQUITY_MINING, TemplateKind.NURTURE}
# An appointment outcome recorded without its slot counts for a slot within this much of it.
OUTCOME_WINDOW = timedelta(hours=12)


class MessageStatus(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    REFUSED = "refused"  # by our compliance check at send time, or by the provider
    FAILED = "failed"  # the gateway stayed unreachable through every retry
    RECEIVED = "received"  # inbound
    DELIVERED = "delivered"  # provider status callbacks
    UNDELIVERED = "undelivered"


@dataclass(frozen=True)
class MessagingContext:
    """What sending needs, outside a request: sessions, settings, rules and gateways."""

    sessions: sessionmaker[Session]
    settings: Settings
    rules: Rulebook
    gateways: Gateways


@lru_cache(maxsize=1)
def _shared_rulebook() -> Rulebook:
    return load_rulebook()


def context_of(app: Any) -> MessagingContext:
    from server.rules import get_rules

    return MessagingContext(
        sessions=app.state.sessions,
        settings=app.state.settings,
        rules=get_rules(app),
        gateways=gateways_of(app),
    )


def standalone_context(
    sessions: sessionmaker[Session], gateways: Gateways | None = None
) -> MessagingContext:
    """A context for a bare sessionmaker (tools and tests): shipped rules, log gateways."""
    from server.messaging import LogGateway

    return MessagingContext(
        sessions=sessions,
        settings=Settings(db_url=""),
        rules=_shared_rulebook(),
        gateways=gateways or Gateways(text=LogGateway("sms-log"), email=LogGateway("email-log")),
    )


# --- Refusals ------------------------------------------------------------------------------------


class MessageRefused(Exception):
    """A message that may not go out: a reason code, a human message, and when it may."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        reasons: Sequence[BlockReason] = (),
        next_allowed_at: datetime | None = None,
        message_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reasons = tuple(reasons)
        self.next_allowed_at = next_allowed_at
        self.message_id = message_id

    def to_dict(self) -> dict[str, Any]:
        reasons = [{"code": r.code.value.upper(), "message": r.message} for r in self.reasons]
        return {
            "detail": self.message,
            "code": self.code,
            "reasons": reasons or [{"code": self.code, "message": self.message}],
            "next_allowed_at": self.next_allowed_at.isoformat() if self.next_allowed_at else None,
            "message_id": self.message_id,
        }

    @property
    def stored_reason(self) -> str:
        return f"{self.code}: {self.message}"


def refusal_of(decision: ContactDecision) -> MessageRefused:
    first = decision.reasons[0]
    return MessageRefused(
        first.code.value.upper(),
        decision.message,
        reasons=decision.reasons,
        next_allowed_at=decision.next_allowed_at,
    )


# --- Compliance at send time ------------------------------------------------------------------


def _addresses(lead: Lead) -> set[str]:
    found = {p.e164 for p in lead.phones if p.e164}
    found |= {e.address.lower() for e in lead.emails}
    return found


def _blocks(session: Session, store_id: str, addresses: Iterable[str]) -> list[ContactBlockRow]:
    wanted = list(addresses)
    if not wanted:
        return []
    return list(
        session.scalars(
            select(ContactBlockRow).where(
                ContactBlockRow.store_id == store_id, ContactBlockRow.address.in_(wanted)
            )
        )
    )


def check_send(
    session: Session,
    rules: Rulebook,
    store: StoreRow,
    lead: Lead,
    channel: Channel,
    now: datetime,
    *,
    purpose: str,
    to: str | None = None,
) -> ContactDecision:
    """The domain's compliance decision for this send, with the store's do-not-call and opt-out
    lists applied (an opted-out number stops every channel for every lead that has it)."""
    blocks = _blocks(session, store.id, _addresses(lead))
    if purpose == KEYWORD_REPLY:
        # The customer just asked (HELP / START): only a number able to take a text is needed.
        phone = make_phone(to) if to else lead.text_phone
        if phone is None or phone.e164 is None:
            reason = BlockReason(BlockCode.NO_ADDRESS, "no number to answer")
            return ContactDecision(allowed=False, reasons=(reason,))
        return ContactDecision(allowed=True, address=phone.e164)
    resolution = resolve_zones(lead, rules.zip_table, fallback_zone=store.time_zone)
    decision = check_contact(
        rules.calling_rules,
        lead,
        history_of(session, lead.id),
        channel,
        now,
        resolution=resolution,
        dnc_numbers=frozenset(b.address for b in blocks if b.kind == "dnc"),
        phone=to if channel is Channel.TEXT else None,
        purpose=ContactPurpose(purpose),
    )
    if purpose == ContactPurpose.OPT_OUT_CONFIRMATION or BlockCode.OPTED_OUT in decision.codes:
        return decision
    opted = [b for b in blocks if b.kind == "opt_out"]
    if opted:
        block = opted[0]
        reason = BlockReason(
            BlockCode.OPTED_OUT,
            f"{block.address} opted out on {block.at:%Y-%m-%d} ({block.source or 'opt-out list'}):"
            " no calls, texts or emails until they opt back in",
        )
        return ContactDecision(
            allowed=False, reasons=(reason, *decision.reasons), address=decision.address
        )
    return decision


# --- Bodies --------------------------------------------------------------------------------------

_MARKERS = tuple(missing_marker(name) for name in MERGE_FIELDS)
_RAW_FIELD = re.compile(r"\{\s*(" + "|".join(MERGE_FIELDS) + r")\s*\}")


def unfilled_fields(text: str) -> list[str]:
    """Merge fields left in a body: "[first name?]" markers, or raw "{first_name}" fields."""
    found = [marker for marker in _MARKERS if marker in text]
    found += [f"{{{m.group(1)}}}" for m in _RAW_FIELD.finditer(text)]
    return found


def _purpose_of(rules: Rulebook, template_id: str | None, channel: Channel) -> str:
    if template_id is None:
        # Free text typed by the agent is part of a conversation with the customer.
        if channel is Channel.TEXT:
            return ContactPurpose.CONVERSATIONAL
        return ContactPurpose.INFORMATIONAL
    kind = rules.templates.get(template_id).kind
    return ContactPurpose.MARKETING if kind in _MARKETING_KINDS else ContactPurpose.INFORMATIONAL


_FALLBACKS = {
    "first_name": "there",
    "vehicle": "vehicle",
    "agent_name": "our team",
    "agent_first_name": "our team",
}


def automatic_body(
    rules: Rulebook,
    template_id: str,
    lead: Lead,
    store: StoreRow,
    agent: UserRow | None,
    *,
    appointment_at: datetime | None = None,
) -> tuple[str, str]:
    """(subject, body) of an automatic message. Neutral words stand in for a missing name,
    vehicle or agent; a line made only of missing store details (an address in a signature) is
    dropped; anything else missing refuses the message — a customer never gets "Hi ,"."""
    template = rules.templates.get(template_id)
    dealership = dealership_of(store)
    context = merge_context(
        lead,
        dealership,
        agent.display_name or agent.username if agent else "",
        agent.phone if agent else "",
        appointment_at=appointment_at,
    )
    filled = {k: v for k, v in _FALLBACKS.items() if not getattr(context, k).strip()}
    if not context.agent_phone.strip() and store.phone:
        filled["agent_phone"] = context.dealership_phone
    context = replace(context, **filled) if filled else context
    rendered = render_template(template, context)
    body = _drop_empty_lines(rendered.body)
    subject = _drop_empty_lines(rendered.subject) if rendered.subject else ""
    missing = unfilled_fields(body) + unfilled_fields(subject)
    if missing:
        raise MessageRefused(
            "TEMPLATE_INCOMPLETE",
            f"template {template_id} has no value for {', '.join(missing)}: not sent",
        )
    return subject, body


def _drop_empty_lines(rendered: Rendered) -> str:
    if rendered.complete:
        return rendered.text.strip()
    kept = []
    for line in rendered.text.splitlines():
        rest = line
        for marker in _MARKERS:
            rest = rest.replace(marker, "")
        if line.strip() and not rest.strip():
            continue  # nothing but missing values
        kept.append(line)
    return "\n".join(kept).strip()


# --- Queueing and delivering --------------------------------------------------------------------


def message_to_dict(row: MessageRow) -> dict[str, Any]:
    code = row.reason.split(":", 1)[0] if re.match(r"^[A-Z0-9_]+:", row.reason) else None
    return {
        "id": row.id,
        "lead_id": row.lead_id,
        "channel": row.channel,
        "direction": row.direction,
        "to": row.to_address,
        "subject": row.subject,
        "body": row.body,
        "template_id": row.template_id,
        "status": row.status,
        "reason_code": code,
        "reason": row.reason,
        "provider_id": row.provider_id,
        "created_at": row.created_at.isoformat(),
        "sent_at": row.sent_at.isoformat() if row.sent_at else None,
    }


def _record_message(session: Session, row: MessageRow, agent_id: str | None) -> None:
    record(
        session,
        store_id=row.store_id,
        entity="message",
        entity_id=row.id,
        data=message_to_dict(row),
        agent_id=agent_id,
    )


def queue_message(
    session: Session,
    lead_row: LeadRow,
    *,
    message_id: str,
    channel: Channel,
    to: str,
    body: str,
    subject: str = "",
    template_id: str | None,
    purpose: str,
    now: datetime,
    agent_id: str | None = None,
    automatic: bool = False,
) -> tuple[MessageRow, JobRow]:
    """A queued message and the job that delivers it (due now), in the caller's transaction."""
    row = MessageRow(
        id=message_id,
        lead_id=lead_row.id,
        store_id=lead_row.store_id,
        channel=channel.value,
        direction=Direction.OUTBOUND.value,
        to_address=to,
        subject=subject,
        body=body,
        template_id=template_id,
        status=MessageStatus.QUEUED.value,
        created_at=now,
    )
    session.add(row)
    session.flush()
    job = scheduler.enqueue(
        session,
        kind="send_message",
        store_id=lead_row.store_id,
        lead_id=lead_row.id,
        due_at=now,
        dedupe_key=f"send_message:{message_id}",
        data={
            "message_id": message_id,
            "purpose": purpose,
            "agent_id": agent_id,
            "automatic": automatic,
        },
    )
    assert job is not None  # a new message id has no job yet
    _record_message(session, row, lead_row.assigned_agent_id)
    return row, job


@dataclass(frozen=True)
class NewMessage:
    id: str
    lead_id: str
    channel: Channel
    body: str
    subject: str = ""
    template_id: str | None = None


def create_message(
    session: Session,
    rules: Rulebook,
    lead_row: LeadRow,
    request: NewMessage,
    agent_id: str,
    now: datetime,
) -> tuple[MessageRow, int | None]:
    """An agent's message, checked and queued: (row, job id to run), or (existing row, None) for a
    repeat of the same message. Raises MessageRefused, UnknownTemplate or MessageIdInUse."""
    existing = session.get(MessageRow, request.id)
    if existing is not None:
        same = (
            existing.lead_id == request.lead_id
            and existing.channel == request.channel.value
            and existing.body == request.body
            and (existing.subject or "") == request.subject
        )
        if not same:
            raise MessageIdInUse(f"message id '{request.id}' is already used by another message")
        return existing, None
    if request.template_id is not None:
        if request.template_id not in rules.templates:
            raise UnknownTemplate(f"no template {request.template_id!r}")
        template = rules.templates.get(request.template_id)
        if template.channel is not request.channel:
            raise UnknownTemplate(
                f"{request.template_id!r} is a {template.channel.value} template, "
                f"not {request.channel.value}"
            )
    missing = unfilled_fields(request.body) + unfilled_fields(request.subject)
    if missing:
        raise MessageRefused(
            "UNFILLED_MERGE_FIELDS",
            f"fill in {', '.join(missing)} before sending",
        )
    store = session.get(StoreRow, lead_row.store_id)
    assert store is not None
    lead = lead_of(lead_row)
    purpose = _purpose_of(rules, request.template_id, request.channel)
    decision = check_send(session, rules, store, lead, request.channel, now, purpose=purpose)
    if not decision.allowed:
        raise refusal_of(decision)
    assert decision.address is not None
    row, job = queue_message(
        session,
        lead_row,
        message_id=request.id,
        channel=request.channel,
        to=decision.address,
        body=request.body,
        subject=request.subject,
        template_id=request.template_id,
        purpose=purpose,
        now=now,
        agent_id=agent_id,
    )
    return row, job.id


def deliver(ctx: MessagingContext, job: scheduler.ClaimedJob, now: datetime) -> str:
    """Run one send_message job: re-check compliance, hand the message to its gateway, record the
    outcome. GatewayUnavailable propagates, so the scheduler retries with backoff."""
    message_id = str(job.data.get("message_id", ""))
    purpose = str(job.data.get("purpose") or ContactPurpose.INFORMATIONAL.value)
    agent_id = job.data.get("agent_id")
    automatic = bool(job.data.get("automatic"))
    with transaction(ctx.sessions) as session:
        row, lead_row = _lock_message(session, message_id)
        scheduler.assert_owned(session, job)
        if row is None or lead_row is None or row.status != MessageStatus.QUEUED:
            result = f"skipped: message {message_id} is {row.status if row else 'gone'}"
            scheduler.finish(session, job, now, result)
            return result
        store = session.get(StoreRow, row.store_id)
        assert store is not None
        channel = Channel(row.channel)
        decision = check_send(
            session, ctx.rules, store, lead_of(lead_row), channel, now,
            purpose=purpose, to=row.to_address if channel is Channel.TEXT else None,
        )  # fmt: skip
        if not decision.allowed:
            refusal = refusal_of(decision)
            row.status = MessageStatus.REFUSED.value
            row.reason = refusal.stored_reason
            _record_message(session, row, lead_row.assigned_agent_id)
            scheduler.finish(session, job, now, f"refused: {refusal.stored_reason}")
            return f"refused: {refusal.code}"
        to, body, subject = row.to_address, row.body, row.subject or None

    gateway = ctx.gateways.for_channel(channel.value)
    try:
        provider_id = gateway.send(to, body, subject)
    except GatewayRefused as refused:
        with transaction(ctx.sessions) as session:
            row, lead_row = _lock_message(session, message_id)
            scheduler.assert_owned(session, job)
            assert row is not None and lead_row is not None
            _mark_refused_by_provider(session, row, lead_row, refused, now)
            scheduler.finish(session, job, now, f"refused by {gateway.name}: {refused}")
        return f"refused: {refused.code}"
    with transaction(ctx.sessions) as session:
        # A lease lost while the gateway was busy still records the send: it did happen.
        row, lead_row = _lock_message(session, message_id)
        assert row is not None and lead_row is not None
        _mark_sent(session, row, lead_row, provider_id, now, agent_id=agent_id, automatic=automatic)
        scheduler.finish(session, job, now, f"sent via {gateway.name}: {provider_id}", strict=False)
    return "sent"


def _lock_message(session: Session, message_id: str) -> tuple[MessageRow | None, LeadRow | None]:
    """The message and its lead, the lead row locked first: every writer locks a lead before the
    rows hanging off it (messages, jobs) and before the change log, so none can deadlock."""
    lead_id = session.scalar(select(MessageRow.lead_id).where(MessageRow.id == message_id))
    if lead_id is None:
        return None, None
    lead_row = session.scalar(select(LeadRow).where(LeadRow.id == lead_id).with_for_update())
    return session.get(MessageRow, message_id), lead_row


def _mark_sent(
    session: Session,
    row: MessageRow,
    lead_row: LeadRow,
    provider_id: str,
    now: datetime,
    *,
    agent_id: Any,
    automatic: bool,
) -> None:
    row.status = MessageStatus.SENT.value
    row.provider_id = provider_id
    row.sent_at = now
    channel = Channel(row.channel)
    activity = Activity(
        id=row.id,
        lead_id=row.lead_id,
        kind=ActivityKind.TEXT if channel is Channel.TEXT else ActivityKind.EMAIL,
        at=now,
        direction=Direction.OUTBOUND,
        automatic=automatic,
        agent_id=agent_id if isinstance(agent_id, str) else None,
        phone=row.to_address if channel is Channel.TEXT else None,
        body=f"{row.subject}\n\n{row.body}" if row.subject else row.body,
    )
    add_activity(session, lead_row, activity)
    if activity.is_agent_attempt and lead_row.first_attempt_at is None:
        lead = lead_of(lead_row)
        if lead.status is LeadStatus.NEW:
            lead = replace(lead, status=LeadStatus.WORKING)
        save_lead(session, lead_row, lead, first_attempt_at=now)
    _record_message(session, row, lead_row.assigned_agent_id)


def _mark_refused_by_provider(
    session: Session, row: MessageRow, lead_row: LeadRow, refused: GatewayRefused, now: datetime
) -> None:
    """Refused by the provider: an attempt that did not happen, so no TEXT/EMAIL activity (attempt
    counts stay honest) — a note says why. A carrier opt-out (Twilio 21610) is honoured at once."""
    code = "OPTED_OUT" if refused.code == OPTED_OUT_CODE else "GATEWAY_REFUSED"
    row.status = MessageStatus.REFUSED.value
    row.reason = f"{code}: {refused.reason} (provider code {refused.code})"
    what = "Text" if row.channel == Channel.TEXT.value else "Email"
    add_activity(
        session,
        lead_row,
        Activity(
            id=str(uuid.uuid4()),
            lead_id=row.lead_id,
            kind=ActivityKind.NOTE,
            at=now,
            automatic=True,
            body=f"{what} to {row.to_address} not sent: {refused.reason} "
            f"(provider code {refused.code}). Not counted as an attempt.",
        ),
    )
    if refused.code == OPTED_OUT_CODE:
        _add_block(session, row.store_id, row.to_address, f"carrier refusal {OPTED_OUT_CODE}", now)
    _record_message(session, row, lead_row.assigned_agent_id)


def _add_block(session: Session, store_id: str, address: str, source: str, now: datetime) -> bool:
    return add_block(session, store_id, address, "opt_out", source, now)


def provider_status(session: Session, provider_id: str, status: str, error_code: str) -> bool:
    """Apply a provider's delivery report (Twilio StatusCallback). False for unknown messages."""
    row = session.scalar(
        select(MessageRow).where(
            MessageRow.provider_id == provider_id, MessageRow.direction == "outbound"
        )
    )
    if row is None:
        return False
    mapped = {
        "delivered": MessageStatus.DELIVERED,
        "undelivered": MessageStatus.UNDELIVERED,
        "failed": MessageStatus.UNDELIVERED,
    }.get(status)
    if mapped is None or row.status == mapped.value:
        return True  # queued/sending/sent reports add nothing we do not know
    row.status = mapped.value
    if error_code:
        row.reason = f"UNDELIVERED: provider error {error_code}"
        if error_code == OPTED_OUT_CODE:
            source = f"carrier refusal {OPTED_OUT_CODE}"
            _add_block(session, row.store_id, row.to_address, source, row.created_at)
    lead_row = session.get(LeadRow, row.lead_id)
    _record_message(session, row, lead_row.assigned_agent_id if lead_row else None)
    return True


# --- Inbound texts -------------------------------------------------------------------------------


@dataclass
class InboundOutcome:
    duplicate: bool = False
    kind: str = ""
    lead_ids: list[str] = field(default_factory=list)
    jobs: list[int] = field(default_factory=list)  # replies queued, to run after commit


class MessageIdInUse(Exception):
    """A client message id already names a different message."""


class UnknownTemplate(Exception):
    """template_id names no template, or one for the other channel."""


class InboundError(ValueError):
    """A webhook request missing what it needs; the message names the field."""


def _stores_for(session: Session, to_number: str | None) -> list[StoreRow]:
    """The stores texting from `to_number`; a number no store claims is shared (the group's
    account number): an opt-out sent to it applies to every store that texts from it."""
    stores = list(session.scalars(select(StoreRow).order_by(StoreRow.id)))
    own = [s for s in stores if to_number and normalize_e164(s.phone) == to_number]
    return own or stores


def _leads_with_number(session: Session, store_id: str, number: str) -> list[LeadRow]:
    """Every lead of the store with `number` among its phones (not only the primary one)."""
    rows = session.scalars(
        select(LeadRow)
        .where(
            LeadRow.store_id == store_id,
            or_(
                LeadRow.phone_e164 == number,
                cast(LeadRow.data, String).like(f'%"{number}"%'),
            ),
        )
        .order_by(LeadRow.received_at.desc(), LeadRow.id)
        .with_for_update()
    ).all()
    return [r for r in rows if number in {p.e164 for p in lead_of(r).phones}]


def handle_inbound_sms(
    ctx: MessagingContext, form: dict[str, str], now: datetime
) -> InboundOutcome:
    """Apply one inbound text (Twilio form fields From, To, Body, MessageSid). The reply is
    classified before anything else; a replayed MessageSid changes nothing."""
    sid = (form.get("MessageSid") or form.get("SmsSid") or "").strip()
    if not sid or len(sid) > 200:
        raise InboundError("MessageSid: required (the provider's message id)")
    sender = normalize_e164(form.get("From", ""))
    if sender is None:
        raise InboundError(f"From: {form.get('From', '')!r} is not a phone number")
    to_number = normalize_e164(form.get("To", ""))
    body = form.get("Body", "")
    reply = classify_reply(body)
    for attempt in range(3):
        try:
            with transaction(ctx.sessions) as session:
                return _apply_inbound(ctx, session, sid, sender, to_number, body, reply, now)
        except IntegrityError:
            # A concurrent delivery of the same text, or a concurrent STOP from the same number,
            # committed first: run again and see what it did.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _apply_inbound(
    ctx: MessagingContext,
    session: Session,
    sid: str,
    sender: str,
    to_number: str | None,
    body: str,
    reply: Any,
    now: datetime,
) -> InboundOutcome:
    if session.get(IdempotencyRow, (WEBHOOK_PRINCIPAL, sid)) is not None:
        return InboundOutcome(duplicate=True)
    session.add(
        IdempotencyRow(
            principal=WEBHOOK_PRINCIPAL,
            key=sid,
            request_hash="",
            state="done",
            status_code=200,
            created_at=now,
        )
    )
    session.flush()
    stores = _stores_for(session, to_number)
    by_store = [(s, _leads_with_number(session, s.id, sender)) for s in stores]
    leads = [row for _, rows in by_store for row in rows]
    outcome = InboundOutcome(kind=reply.kind.value, lead_ids=[r.id for r in leads])
    for row in leads:
        session.add(
            MessageRow(
                id=str(uuid.uuid4()),
                lead_id=row.id,
                store_id=row.store_id,
                channel=Channel.TEXT.value,
                direction=Direction.INBOUND.value,
                to_address=sender,
                body=body[:MAX_TEXT_CHARS],
                status=MessageStatus.RECEIVED.value,
                provider_id=sid,
                created_at=now,
                sent_at=now,
            )
        )
    session.flush()

    kind = reply.kind
    if kind is ReplyKind.OPT_IN and not _is_opted_out(session, by_store, sender, now):
        kind = ReplyKind.ORDINARY  # START/YES from a subscribed number is just a reply ("yes!")
    if kind is ReplyKind.OPT_OUT:
        _opt_out(ctx, session, by_store, sender, sid, body, reply.matched, now, outcome)
    elif kind is ReplyKind.OPT_IN:
        _opt_in(ctx, session, by_store, sender, body, now, outcome)
    elif kind is ReplyKind.HELP:
        for row in leads:
            _inbound_text(ctx, session, row, sender, body, now, waiting=False)
        if leads:
            _keyword_reply(ctx, session, leads[0], "help_reply", sender, now, outcome)
    else:
        review = kind is ReplyKind.NEEDS_REVIEW
        for row in leads:
            _inbound_text(
                ctx, session, row, sender, body, now, waiting=True,
                needs_review=reply.reason if review else None,
            )  # fmt: skip
    outcome.kind = kind.value
    return outcome


def _is_opted_out(
    session: Session, by_store: list[tuple[StoreRow, list[LeadRow]]], sender: str, now: datetime
) -> bool:
    if _blocks_for(session, [s.id for s, _ in by_store], sender):
        return True
    return any(
        opted_out_since(lead_of(row), history_of(session, row.id), now) is not None
        for _, rows in by_store
        for row in rows
    )


def _blocks_for(session: Session, store_ids: list[str], number: str) -> list[ContactBlockRow]:
    return list(
        session.scalars(
            select(ContactBlockRow).where(
                ContactBlockRow.store_id.in_(store_ids),
                ContactBlockRow.address == number,
                ContactBlockRow.kind == "opt_out",
            )
        )
    )


def _opt_out(
    ctx: MessagingContext,
    session: Session,
    by_store: list[tuple[StoreRow, list[LeadRow]]],
    sender: str,
    sid: str,
    body: str,
    matched: str,
    now: datetime,
    outcome: InboundOutcome,
) -> None:
    """Stop every channel for every lead with the number, cancel their pending work, and queue the
    one confirmation — unless the number had already opted out (a repeated STOP is not
    confirmed twice)."""
    already_blocked = bool(_blocks_for(session, [s.id for s, _ in by_store], sender))
    newly: list[LeadRow] = []
    for store, rows in by_store:
        _add_block(session, store.id, sender, f"text reply {matched!r} ({sid})", now)
        for row in rows:
            lead = lead_of(row)
            was_out = opted_out_since(lead, history_of(session, row.id), now) is not None
            add_activity(
                session,
                row,
                Activity(
                    id=str(uuid.uuid4()),
                    lead_id=row.id,
                    kind=ActivityKind.OPT_OUT,
                    at=now,
                    direction=Direction.INBOUND,
                    phone=sender,
                    body=body[:MAX_TEXT_CHARS],
                ),
            )
            if lead.opted_out_at is None or not was_out:
                lead = replace(lead, opted_out_at=now)
                save_lead(session, row, lead)
                # Every client shows the cadence the server publishes: stopped, on every channel.
                history = history_of(session, row.id)
                cadence = cadence_summary(ctx.rules, store, lead, history, now)
                attach_to_lead_change(session, row.id, {"cadence": cadence})
            if not was_out:
                newly.append(row)
    lead_ids = [row.id for _, rows in by_store for row in rows]
    cancel_pending(session, lead_ids, now, "cancelled: the customer opted out")
    if newly and not already_blocked:
        _queue_auto_text(
            ctx, session, newly[0], "opt_out_confirmation", sender, now,
            ContactPurpose.OPT_OUT_CONFIRMATION.value, outcome,
        )  # fmt: skip


def cancel_pending(session: Session, lead_ids: list[str], now: datetime, why: str) -> int:
    """Cancel every job not yet done for these leads; their queued messages are refused."""
    if not lead_ids:
        return 0
    queued = session.scalars(
        select(MessageRow).where(
            MessageRow.lead_id.in_(lead_ids), MessageRow.status == MessageStatus.QUEUED.value
        )
    ).all()
    for message in queued:
        message.status = MessageStatus.REFUSED.value
        message.reason = "OPTED_OUT: the customer opted out before it was sent"
        _record_message(session, message, None)
    result = session.execute(
        update(JobRow)
        .where(JobRow.lead_id.in_(lead_ids), JobRow.done_at.is_(None))
        .values(done_at=now, result=why, lease_owner=None, lease_until=None)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def _opt_in(
    ctx: MessagingContext,
    session: Session,
    by_store: list[tuple[StoreRow, list[LeadRow]]],
    sender: str,
    body: str,
    now: datetime,
    outcome: InboundOutcome,
) -> None:
    remove_blocks(session, [s.id for s, _ in by_store], sender, "opt_out", now)
    rows = [row for _, each in by_store for row in each]
    for row in rows:
        add_activity(
            session,
            row,
            Activity(
                id=str(uuid.uuid4()),
                lead_id=row.id,
                kind=ActivityKind.OPT_IN,
                at=now,
                direction=Direction.INBOUND,
                phone=sender,
                body=body[:MAX_TEXT_CHARS],
            ),
        )
        lead = lead_of(row)
        if lead.opted_out_at is not None:
            save_lead(session, row, replace(lead, opted_out_at=None))
    if rows:
        _keyword_reply(ctx, session, rows[0], "opt_in_confirmation", sender, now, outcome)


def _keyword_reply(
    ctx: MessagingContext,
    session: Session,
    row: LeadRow,
    template_id: str,
    sender: str,
    now: datetime,
    outcome: InboundOutcome,
) -> None:
    _queue_auto_text(ctx, session, row, template_id, sender, now, KEYWORD_REPLY, outcome)


def _queue_auto_text(
    ctx: MessagingContext,
    session: Session,
    row: LeadRow,
    template_id: str,
    to: str,
    now: datetime,
    purpose: str,
    outcome: InboundOutcome,
) -> None:
    store = session.get(StoreRow, row.store_id)
    assert store is not None
    try:
        _, text = automatic_body(ctx.rules, template_id, lead_of(row), store, None)
    except MessageRefused as refused:
        log.error("store %s: %s", store.id, refused.message)
        _note(session, row, f"Automatic reply {template_id} not sent: {refused.message}", now)
        return
    _, job = queue_message(
        session, row, message_id=str(uuid.uuid4()), channel=Channel.TEXT, to=to, body=text,
        template_id=template_id, purpose=purpose, now=now, automatic=True,
    )  # fmt: skip
    outcome.jobs.append(job.id)


def _note(session: Session, row: LeadRow, text: str, now: datetime) -> None:
    add_activity(
        session,
        row,
        Activity(
            id=str(uuid.uuid4()),
            lead_id=row.id,
            kind=ActivityKind.NOTE,
            at=now,
            automatic=True,
            body=text,
        ),
    )


def _inbound_text(
    ctx: MessagingContext,
    session: Session,
    row: LeadRow,
    sender: str,
    body: str,
    now: datetime,
    *,
    waiting: bool,
    needs_review: str | None = None,
) -> None:
    """The reply as an inbound TEXT activity; the lead is rescored, and (for a reply waiting on
    the agent) its change carries `reply_waiting` so the agent's queue puts it on top."""
    activity = Activity(
        id=str(uuid.uuid4()),
        lead_id=row.id,
        kind=ActivityKind.TEXT,
        at=now,
        direction=Direction.INBOUND,
        phone=sender,
        body=body[:MAX_TEXT_CHARS],
    )
    add_activity(session, row, activity)
    lead = lead_of(row)
    store = session.get(StoreRow, row.store_id)
    assert store is not None
    history = history_of(session, row.id)
    after = score_lead(ctx.rules.scoring, lead, dealership_of(store), history)
    before = LeadScore(
        score=row.score,
        tier=Tier(row.tier),
        grade=Grade(row.grade),
        grade_reason="",
        reasons=(),
        unclamped=row.score,
    )
    if score_changed(before, after):
        from app.domain.scoring import score_change_activity

        add_activity(
            session,
            row,
            score_change_activity(
                before, after, lead_id=row.id, at=now, activity_id=str(uuid.uuid4())
            ),
        )
    save_lead(session, row, lead, score=after.score, tier=after.tier.value, grade=after.grade.value)
    if waiting:
        change = session.get(ChangeRow, session.info.get("last_change_seq"))
        if change is not None and change.entity == "lead" and change.entity_id == row.id:
            change.data = {
                **change.data,
                "reply_waiting": {
                    "activity_id": activity.id,
                    "at": now.isoformat(),
                    "preview": body[:160],
                    "needs_review": needs_review is not None,
                    "review_reason": needs_review,
                },
            }
            session.flush()


# --- Scheduled sends ------------------------------------------------------------------------------


def queue_automatic(
    ctx: MessagingContext,
    session: Session,
    lead_row: LeadRow,
    *,
    template_id: str,
    channel: Channel,
    now: datetime,
    message_id: str,
    appointment_at: datetime | None = None,
) -> tuple[str, int | None]:
    """An automatic message from a template (acknowledgment, reminder), checked now and queued:
    (outcome text, job id to run). A message id seen before is not queued twice."""
    if session.get(MessageRow, message_id) is not None:
        return "already queued", None
    store = session.get(StoreRow, lead_row.store_id)
    assert store is not None
    lead = lead_of(lead_row)
    purpose = ContactPurpose.INFORMATIONAL.value
    decision = check_send(session, ctx.rules, store, lead, channel, now, purpose=purpose)
    if not decision.allowed:
        return f"skipped: {refusal_of(decision).stored_reason}", None
    agent = session.get(UserRow, lead_row.assigned_agent_id) if lead_row.assigned_agent_id else None
    try:
        subject, body = automatic_body(
            ctx.rules, template_id, lead, store, agent, appointment_at=appointment_at
        )
    except (MessageRefused, DomainError) as exc:
        text = exc.message if isinstance(exc, MessageRefused) else str(exc)
        _note(session, lead_row, f"Automatic {template_id} not sent: {text}", now)
        return f"skipped: {text}", None
    assert decision.address is not None
    _, job = queue_message(
        session, lead_row, message_id=message_id, channel=channel, to=decision.address,
        body=body, subject=subject, template_id=template_id, purpose=purpose, now=now,
        automatic=True,
    )  # fmt: skip
    return f"queued message {message_id}", job.id


def appointment_outcome_known(history: Sequence[Activity], slot: datetime) -> str | None:
    """Why no no-show should be marked for `slot`: it was kept, cancelled or already marked, or
    the appointment moved to another slot (that slot has its own check). None: mark it."""
    set_at = max(
        (
            a.at
            for a in history
            if a.kind is ActivityKind.APPOINTMENT
            and a.appointment_status is AppointmentStatus.SET
            and a.scheduled_for == slot
        ),
        default=None,
    )
    for activity in history:
        if activity.kind is not ActivityKind.APPOINTMENT:
            continue
        status = activity.appointment_status
        if status is AppointmentStatus.SET:
            moved = activity.scheduled_for is not None and activity.scheduled_for != slot
            if moved and set_at is not None and activity.at > set_at:
                return "the appointment was moved to another time"
            continue
        # An outcome names its slot; one that does not counts when recorded near the slot.
        about_slot = activity.scheduled_for == slot or (
            activity.scheduled_for is None and activity.at >= slot - OUTCOME_WINDOW
        )
        if about_slot:
            return f"appointment already marked {status.value if status else 'done'}"
    return None
