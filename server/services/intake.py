"""Lead intake: documents from providers (JSON or ADF) in, scored, de-duplicated, routed leads out.

The JSON intake schema (`LeadIn`) is the documented contract for providers that do not speak ADF.
A document is all or nothing: every problem is collected and named, and a rejected document
stores no lead. Its raw bytes are kept in `raw_payloads` either way (see `record_payload`).

Per accepted lead (`ingest`):
- duplicates: the same reachable phone (E.164) or e-mail in the same store, received within
  `Settings.duplicate_window` (any age for an ADF `status="resend"`), merge into the newest such
  lead: its id stays, new phones, e-mails, vehicles, consents and comments are added, a NOTE says
  "Duplicate lead from <source> merged", and it is re-scored;
- otherwise: scored and graded, routed (round robin, else the pool), due_at set from the store's
  hours in its own zone, saved, and two jobs queued: the acknowledgment e-mail 30 s after receipt
  (when there is an address to write to) and the deadline escalation at due_at.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import Select, bindparam, or_, select
from sqlalchemy.orm import Session

from app.domain.activities import Activity, ActivityKind
from app.domain.clocks import response_due
from app.domain.codec import lead_from_dict, lead_to_dict
from app.domain.dealership import Dealership
from app.domain.errors import DomainError
from app.domain.leads import (
    Address,
    Channel,
    Consent,
    ConsentScope,
    Email,
    Lead,
    LeadSource,
    Person,
    SourceType,
    Timeframe,
    Vehicle,
    VehicleCondition,
    VehicleInterest,
    normalize_email,
)
from app.domain.phones import Phone, PhoneKind, TimeOfDay, make_phone
from app.domain.scoring import LeadScore, score_change_activity, score_changed, score_lead
from app.rulebook import Rulebook
from server.changes import batched, batching
from server.db import JobRow, LeadRow, RawPayloadRow, StoreRow
from server.intake.adf import guess_source_type
from server.rules import store_hours
from server.services import routing
from server.services.common import add_activity, dealership_of, history_of, lead_of, save_lead
from server.settings import Settings

ACK_DELAY = timedelta(seconds=30)
MAX_LEADS_PER_DOCUMENT = 50
MAX_COMMENTS = 4000
MAX_ITEMS = 10  # phones, e-mails, vehicles per lead (the wire format's limit)
NAMELESS = Person(business_name="(no name given)")
MANUAL_SOURCE = LeadSource("Manual entry", SourceType.PHONE)


class IntakeRejected(Exception):
    """The document is refused: nothing is stored but the raw payload. `problems` names all."""

    def __init__(self, status_code: int, problems: Sequence[str]) -> None:
        self.status_code = status_code
        self.problems = [clean_text(p) for p in problems] or ["the document was rejected"]
        super().__init__("; ".join(self.problems))


def clean_text(text: str, limit: int = 500) -> str:
    """A message safe to store and echo: no NUL or control characters, bounded length."""
    out = "".join(ch if ch.isprintable() or ch == " " else f"\\x{ord(ch):02x}" for ch in text)
    return out if len(out) <= limit else out[: limit - 1] + "…"


# --- The JSON intake schema -----------------------------------------------------------------------


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        # PostgreSQL cannot store NUL in text; refuse it here with the field's name.
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("contains a NUL character")
        return value


class PersonIn(_In):
    first_name: str = Field("", max_length=80)
    last_name: str = Field("", max_length=80)
    middle_name: str = Field("", max_length=80)
    business_name: str = Field("", max_length=120)


class PhoneIn(_In):
    """Any punctuation style; normalized to E.164 (an invalid number is kept, unreachable)."""

    number: str = Field(min_length=1, max_length=40)
    kind: PhoneKind = PhoneKind.UNKNOWN
    preferred_time: TimeOfDay | None = None
    preferred: bool = False


class EmailIn(_In):
    address: str = Field(min_length=1, max_length=254)
    preferred: bool = False


class AddressIn(_In):
    street: str = Field("", max_length=200)
    city: str = Field("", max_length=80)
    state: str = Field("", pattern=r"^([A-Za-z]{2})?$", description="two-letter code")
    postal_code: str = Field("", max_length=10)
    country: str = Field("US", pattern=r"^[A-Za-z]{2}$")


class VehicleIn(_In):
    year: int | None = Field(None, ge=1900, le=2100)
    make: str = Field("", max_length=60)
    model: str = Field("", max_length=60)
    trim: str = Field("", max_length=60)
    vin: str = Field("", max_length=17)
    stock_number: str = Field("", max_length=40)
    condition: VehicleCondition = VehicleCondition.UNKNOWN
    interest: VehicleInterest = VehicleInterest.BUY
    odometer: int | None = Field(None, ge=0, le=2_000_000)
    price: int | None = Field(None, ge=0, le=10_000_000, description="whole dollars")


class TimeframeIn(_In):
    description: str = Field("", max_length=200)
    within_days: int | None = Field(None, ge=0, le=3650)


class SourceIn(_In):
    name: str = Field(min_length=1, max_length=120)
    type: SourceType | None = Field(None, description="guessed from the name when absent")


class ConsentIn(_In):
    channel: Channel
    scope: ConsentScope
    granted_at: datetime = Field(description="ISO 8601 with a time zone offset")
    method: str = Field(min_length=1, max_length=200)
    text: str = Field("", max_length=2000)


class LeadIn(_In):
    """One lead as a provider (or a manager entering a phone-up) sends it to POST /v1/leads.

    The store is the API key's (or the signed-in manager's). At least one reachable phone or
    a valid e-mail is required, and a name (first, last or business). `source` defaults to the
    API key's name (its type guessed from it), or "Manual entry" for staff. `resend: true`
    marks a lead the provider already sent: it merges into the earlier one whatever its age.
    """

    person: PersonIn
    phones: list[PhoneIn] = Field(default_factory=list, max_length=MAX_ITEMS)
    emails: list[EmailIn] = Field(default_factory=list, max_length=MAX_ITEMS)
    address: AddressIn | None = None
    vehicles: list[VehicleIn] = Field(default_factory=list, max_length=MAX_ITEMS)
    trade_in: VehicleIn | None = Field(None, description="its interest is always trade-in")
    timeframe: TimeframeIn | None = None
    comments: str = Field("", max_length=MAX_COMMENTS)
    source: SourceIn | None = None
    consents: list[ConsentIn] = Field(default_factory=list, max_length=20)
    resend: bool = False


@dataclass(frozen=True, slots=True)
class IncomingLead:
    """A validated lead ready for `ingest`."""

    lead: Lead
    resend: bool = False
    warnings: tuple[str, ...] = ()


def error_location(loc: Sequence[Any]) -> str:
    """pydantic's ("phones", 0, "number") as "phones[0].number"."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "body"


def validation_problems(exc: ValidationError, prefix: str = "") -> list[str]:
    problems = []
    for err in exc.errors(include_url=False, include_input=False):
        where = error_location([*([prefix] if prefix else []), *err.get("loc", ())])
        if err.get("type") == "extra_forbidden":
            problems.append(f"{where}: unknown field")
        else:
            problems.append(f"{where}: {err.get('msg')}")
    return problems


def parse_json_document(body: bytes) -> list[Any]:
    """The lead objects of a JSON body: one object, or an array of up to 50."""
    if not body.strip():
        raise IntakeRejected(422, ["body: empty; send a JSON lead object"])
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise IntakeRejected(422, [f"body: not UTF-8 (byte {exc.start})"]) from None
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise IntakeRejected(
            422, [f"body: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"]
        ) from None
    except (ValueError, RecursionError) as exc:
        raise IntakeRejected(422, [f"body: not valid JSON ({exc})"]) from None
    if isinstance(data, dict):
        return [data]
    if isinstance(data, list):
        if not data:
            raise IntakeRejected(422, ["body: the array holds no lead"])
        if len(data) > MAX_LEADS_PER_DOCUMENT:
            raise IntakeRejected(
                422, [f"body: {len(data)} leads; at most {MAX_LEADS_PER_DOCUMENT} per request"]
            )
        return data
    raise IntakeRejected(422, ["body: must be a JSON object (one lead) or an array of leads"])


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def nul_problems(data: Any, path: str = "") -> list[str]:
    """Strings holding NUL characters (PostgreSQL cannot store them), by field path."""
    found: list[str] = []
    if isinstance(data, str):
        if "\x00" in data:
            found.append(f"{path or 'body'}: contains a NUL character")
    elif isinstance(data, dict):
        for key, value in data.items():
            where = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                found.append(f"{clean_text(where)}: field name contains a NUL character")
            else:
                found.extend(nul_problems(value, where))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found.extend(nul_problems(value, f"{path}[{index}]"))
    return found


def leads_from_json(
    items: Sequence[Any],
    *,
    store_id: str,
    received_at: datetime,
    default_source: LeadSource,
) -> list[IncomingLead]:
    """Validate every lead object; IntakeRejected lists every problem of every lead."""
    problems: list[str] = []
    leads: list[IncomingLead] = []
    many = len(items) > 1
    for index, item in enumerate(items):
        prefix = f"[{index}]" if many else ""
        found = nul_problems(item, prefix)
        if found:
            problems.extend(found)
            continue
        try:
            model = LeadIn.model_validate(item)
        except ValidationError as exc:
            problems.extend(validation_problems(exc, prefix))
            continue
        lead_problems: list[str] = []
        incoming = _lead_from_model(
            model, store_id, received_at, default_source, lead_problems, prefix
        )
        problems.extend(lead_problems)
        if incoming is not None:
            leads.append(incoming)
    if problems:
        raise IntakeRejected(422, problems)
    return leads


def _lead_from_model(
    model: LeadIn,
    store_id: str,
    received_at: datetime,
    default_source: LeadSource,
    problems: list[str],
    prefix: str,
) -> IncomingLead | None:
    def where(field: str) -> str:
        return f"{prefix}.{field}" if prefix else field

    start = len(problems)
    person = Person(**model.person.model_dump())
    if not person.full_name:
        problems.append(f"{where('person')}: a first, last or business name is required")
    emails: list[Email] = []
    for n, item in enumerate(model.emails):
        try:
            emails.append(Email(normalize_email(item.address), item.preferred))
        except DomainError as exc:
            problems.append(f"{where(f'emails[{n}].address')}: {exc}")
    phones = [
        make_phone(p.number, p.kind, preferred_time=p.preferred_time, preferred=p.preferred)
        for p in model.phones
    ]
    warnings = [
        f"{where(f'phones[{n}].number')}: {p.raw!r} is not a valid phone number; kept, unreachable"
        for n, p in enumerate(phones)
        if p.e164 is None
    ]
    if not any(p.reachable for p in phones) and not emails and len(problems) == start:
        problems.append(f"{where('phones')}: no phone or e-mail to reach the customer")
    consents = []
    for n, c in enumerate(model.consents):
        if c.granted_at.tzinfo is None or c.granted_at.utcoffset() is None:
            problems.append(f"{where(f'consents[{n}].granted_at')}: must include a time zone")
            continue
        consents.append(Consent(c.channel, c.scope, c.granted_at, c.method, c.text))
    if len(problems) > start:
        return None
    if model.source is not None:
        name = model.source.name
        source = LeadSource(name, model.source.type or guess_source_type(name))
    else:
        source = default_source
    trade_in = None
    if model.trade_in is not None:
        trade_in = Vehicle(**{**model.trade_in.model_dump(), "interest": VehicleInterest.TRADE_IN})
    lead = Lead(
        id=str(uuid.uuid4()),
        store_id=store_id,
        received_at=received_at,
        person=person,
        source=source,
        phones=tuple(phones),
        emails=tuple(emails),
        address=Address(**{**model.address.model_dump(), "state": model.address.state.upper()})
        if model.address
        else Address(),
        vehicles=tuple(Vehicle(**v.model_dump()) for v in model.vehicles),
        trade_in=trade_in,
        timeframe=Timeframe(**model.timeframe.model_dump()) if model.timeframe else Timeframe(),
        comments=model.comments,
        consents=tuple(consents),
    )
    try:
        lead = checked(lead)
    except DomainError as exc:
        problems.append(f"{where('lead')}: {exc}")
        return None
    return IncomingLead(lead, model.resend, tuple(warnings))


def default_source_for(principal_name: str, integration: bool) -> LeadSource:
    if not integration:
        return MANUAL_SOURCE
    name = principal_name.strip()[:120] or "API"
    return LeadSource(name, guess_source_type(name))


def checked(lead: Lead) -> Lead:
    """`lead` as the wire format reads it back: anything stored must be readable again."""
    return lead_from_dict(lead_to_dict(lead))


def from_adf_lead(lead: Lead) -> tuple[Lead, list[str]]:
    """An ADF prospect's Lead made storable: a name placeholder, comments within the limit."""
    notes: list[str] = []
    if not lead.person.full_name:
        lead = replace(lead, person=NAMELESS)
    if len(lead.comments) > MAX_COMMENTS:
        lead = replace(lead, comments=lead.comments[: MAX_COMMENTS - 1] + "…")
        notes.append(f"comments cut to {MAX_COMMENTS} characters")
    if len(lead.vehicles) > MAX_ITEMS:
        lead = replace(lead, vehicles=lead.vehicles[:MAX_ITEMS])
        notes.append(f"only the first {MAX_ITEMS} vehicles kept")
    return checked(lead), notes


# --- Ingesting ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IntakeOutcome:
    lead_id: str
    merged_into: str | None
    score: int
    tier: str
    grade: str
    assigned_agent_id: str | None
    due_at: datetime | None
    warnings: tuple[str, ...] = ()


def ingest(
    session: Session,
    *,
    store: StoreRow,
    leads: Sequence[IncomingLead],
    rules: Rulebook,
    settings: Settings,
    now: datetime,
) -> list[IntakeOutcome]:
    """Store every lead (merging duplicates) in the caller's transaction.

    A DomainError here means the caller must roll back and reject the document.
    """
    routing.lock_floor(session, store.id)  # before any change is recorded (see routing)
    with batched(session):  # the rows are written together at the caller's next flush
        return _ingest(session, store, leads, rules, settings, now)


def _ingest(
    session: Session,
    store: StoreRow,
    leads: Sequence[IncomingLead],
    rules: Rulebook,
    settings: Settings,
    now: datetime,
) -> list[IntakeOutcome]:
    dealership = dealership_of(store)
    hours = store_hours(rules, store)
    outcomes = []
    for incoming in leads:
        existing = find_duplicate(session, store.id, incoming.lead, now, settings, incoming.resend)
        if existing is not None:
            outcomes.append(_merge(session, existing, incoming, rules, dealership, now))
            continue
        lead = incoming.lead
        score = score_lead(rules.scoring, lead, dealership, ())
        agent_id = routing.pick_agent(session, store.id, now, settings)
        lead = replace(lead, assigned_agent_id=agent_id)
        due_at = response_due(hours, lead.received_at, rules.response_policy)
        row = save_lead(
            session,
            None,
            lead,
            score=score.score,
            tier=score.tier.value,
            grade=score.grade.value,
            due_at=due_at,
        )
        add_activity(
            session,
            row,
            score_change_activity(
                None, score, lead_id=row.id, at=now, activity_id=str(uuid.uuid4())
            ),
        )
        if agent_id is not None:
            add_activity(session, row, _routing_note(session, row.id, agent_id, now))
        if lead.primary_email is not None and lead.opted_out_at is None:
            enqueue(session, "ack_email", f"ack:{row.id}", row, lead.received_at + ACK_DELAY)
        enqueue(session, "escalate", f"escalate:{row.id}", row, due_at)
        outcomes.append(
            IntakeOutcome(
                row.id,
                None,
                score.score,
                score.tier.value,
                score.grade.value,
                agent_id,
                due_at,
                incoming.warnings,
            )
        )
    return outcomes


def _routing_note(session: Session, lead_id: str, agent_id: str, now: datetime) -> Activity:
    return Activity(
        id=str(uuid.uuid4()),
        lead_id=lead_id,
        kind=ActivityKind.ASSIGNMENT,
        at=now,
        automatic=True,
        body=f"Assigned to {routing.agent_name(session, agent_id)} (round robin)",
    )


def enqueue(session: Session, kind: str, dedupe_key: str, row: LeadRow, due_at: datetime) -> None:
    session.add(
        JobRow(
            kind=kind, dedupe_key=dedupe_key, store_id=row.store_id, lead_id=row.id, due_at=due_at
        )
    )
    if not batching(session):
        session.flush()


def find_duplicate(
    session: Session,
    store_id: str,
    lead: Lead,
    now: datetime,
    settings: Settings,
    resend: bool = False,
) -> LeadRow | None:
    """The newest lead of the store with one of `lead`'s phones or e-mails, within the window."""
    phones = sorted({p.e164 for p in lead.phones if p.reachable and p.e164})
    emails = sorted({e.address.lower() for e in lead.emails if e.valid})
    if not phones and not emails:
        return None
    params: dict[str, Any] = {"store_id": store_id}
    if phones:
        params["phones"] = phones
    if emails:
        params["emails"] = emails
    if not resend:
        params["since"] = now - settings.duplicate_window
    return session.scalar(_duplicate_query(bool(phones), bool(emails), resend), params)


@functools.cache
def _duplicate_query(phones: bool, emails: bool, resend: bool) -> Select[tuple[LeadRow]]:
    """find_duplicate's statement, built once per shape (with bind parameters)."""
    matches = []
    if phones:
        matches.append(LeadRow.phone_e164.in_(bindparam("phones", expanding=True)))
    if emails:
        matches.append(LeadRow.email.in_(bindparam("emails", expanding=True)))
    query = select(LeadRow).where(LeadRow.store_id == bindparam("store_id"), or_(*matches))
    if not resend:
        query = query.where(LeadRow.received_at >= bindparam("since"))
    return query.order_by(LeadRow.received_at.desc(), LeadRow.id).limit(1).with_for_update()


def merge_leads(existing: Lead, new: Lead) -> Lead:
    """`existing` with what `new` adds: contacts, vehicles, trade-in, timeframe, consents, words.

    Never removes anything and never touches status, assignment or opt-outs (they always win).
    """
    known_phones = {p.e164 or p.raw for p in existing.phones}
    phones = existing.phones + tuple(p for p in new.phones if (p.e164 or p.raw) not in known_phones)
    known_emails = {e.address.lower() for e in existing.emails}
    emails = existing.emails + tuple(
        Email(e.address) for e in new.emails if e.address.lower() not in known_emails
    )
    vehicles = existing.vehicles + tuple(v for v in new.vehicles if v not in existing.vehicles)
    comments = existing.comments
    if new.comments.strip() and new.comments.strip() not in comments:
        comments = f"{comments}\n\n{new.comments.strip()}" if comments else new.comments.strip()
    if len(comments) > MAX_COMMENTS:
        comments = comments[: MAX_COMMENTS - 1] + "…"
    timeframe = existing.timeframe
    if new.timeframe.within_days is not None and (
        timeframe.within_days is None or new.timeframe.within_days < timeframe.within_days
    ):
        timeframe = new.timeframe  # the shopper's latest, sooner word counts
    address = existing.address
    if not address.street and new.address.street:
        address = new.address
    return replace(
        existing,
        phones=_dedupe_preferred(phones[:MAX_ITEMS]),
        emails=emails[:MAX_ITEMS],
        vehicles=vehicles[:MAX_ITEMS],
        trade_in=existing.trade_in or new.trade_in,
        timeframe=timeframe,
        comments=comments,
        address=address,
        consents=existing.consents + tuple(c for c in new.consents if c not in existing.consents),
    )


def _dedupe_preferred(phones: tuple[Phone, ...]) -> tuple[Phone, ...]:
    # The existing lead's preferred number stays the one to dial.
    seen = False
    out = []
    for phone in phones:
        if phone.preferred and seen:
            phone = replace(phone, preferred=False)
        seen = seen or phone.preferred
        out.append(phone)
    return tuple(out)


def _merge(
    session: Session,
    row: LeadRow,
    incoming: IncomingLead,
    rules: Rulebook,
    dealership: Dealership,
    now: datetime,
) -> IntakeOutcome:
    existing = lead_of(row)
    history = history_of(session, row.id)
    before = score_lead(rules.scoring, existing, dealership, history)
    merged = checked(merge_leads(existing, incoming.lead))
    resent = " (the provider marked it a resend)" if incoming.resend else ""
    note = Activity(
        id=str(uuid.uuid4()),
        lead_id=row.id,
        kind=ActivityKind.NOTE,
        at=now,
        automatic=True,
        body=f"Duplicate lead from {incoming.lead.source.name} merged{resent}",
    )
    after: LeadScore = score_lead(rules.scoring, merged, dealership, [*history, note])
    save_lead(
        session, row, merged, score=after.score, tier=after.tier.value, grade=after.grade.value
    )
    add_activity(session, row, note)
    if score_changed(before, after):
        add_activity(
            session,
            row,
            score_change_activity(
                before, after, lead_id=row.id, at=now, activity_id=str(uuid.uuid4())
            ),
        )
    return IntakeOutcome(
        row.id,
        row.id,
        after.score,
        after.tier.value,
        after.grade.value,
        row.assigned_agent_id,
        row.due_at,
        incoming.warnings,
    )


def record_payload(
    session: Session,
    *,
    store_id: str,
    principal: str,
    content_type: str,
    body: bytes,
    outcome: str,
    problems: Sequence[str] = (),
    lead_ids: Sequence[str] = (),
    received_at: datetime,
) -> RawPayloadRow:
    """Keep the payload as received, for audit: accepted or rejected, with the problems."""
    row = RawPayloadRow(
        store_id=store_id,
        received_at=received_at,
        content_type=clean_text(content_type, 100),
        principal=clean_text(principal, 120),
        body=body,
        outcome=outcome,
        detail="\n".join(problems),
        lead_ids=",".join(lead_ids),
    )
    session.add(row)
    session.flush()
    return row
