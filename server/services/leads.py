"""Reading and editing leads for the staff routes: lists with cursors, details, versioned edits.

Edits are optimistic: the client sends the version it edited (`base_version`); a lead changed
since is refused (the route answers 409 with the server's lead), never silently overwritten.
Opt-outs and do-not-call are not editable here at all: they only ever come from the customer.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from dataclasses import asdict, replace
from datetime import datetime
from typing import Any, Literal

from pydantic import Field
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from app.domain.activities import Activity, ActivityKind
from app.domain.clocks import ClockError, response_clocks
from app.domain.codec import activity_to_dict
from app.domain.errors import DomainError
from app.domain.leads import (
    Address,
    Email,
    Lead,
    LeadStatus,
    Person,
    Timeframe,
    Vehicle,
    VehicleInterest,
    normalize_email,
)
from app.domain.phones import make_phone
from app.domain.scoring import score_change_activity, score_changed, score_lead
from app.rulebook import Rulebook
from server.auth import Principal, Role
from server.db import LeadRow, StoreRow
from server.rules import store_hours
from server.services.common import add_activity, dealership_of, history_of, lead_of, save_lead
from server.services.intake import (
    MAX_ITEMS,
    AddressIn,
    EmailIn,
    PersonIn,
    PhoneIn,
    TimeframeIn,
    VehicleIn,
    _In,
    checked,
)

MAX_PAGE = 500
Assigned = Literal["me", "pool", "all"]


class BadRequest(Exception):
    """A request field is wrong; `problems` name the field ("cursor: ...")."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class VersionConflict(Exception):
    def __init__(self, row: LeadRow) -> None:
        super().__init__(f"lead {row.id} is at version {row.version}")
        self.row = row


# --- Lists ----------------------------------------------------------------------------------------


def summary(row: LeadRow) -> dict[str, Any]:
    """The list form of a lead: its wire form plus the server's derived columns."""
    return {
        "id": row.id,
        "version": row.version,
        "status": row.status,
        "received_at": row.received_at.isoformat(),
        "assigned_agent_id": row.assigned_agent_id,
        "score": row.score,
        "tier": row.tier,
        "grade": row.grade,
        "due_at": row.due_at.isoformat() if row.due_at else None,
        "first_attempt_at": row.first_attempt_at.isoformat() if row.first_attempt_at else None,
        "lead": row.data,
    }


def encode_cursor(row: LeadRow) -> str:
    raw = json.dumps([row.received_at.isoformat(), row.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        at_text, lead_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        at = datetime.fromisoformat(at_text)
        if at.tzinfo is None or not isinstance(lead_id, str):
            raise ValueError("bad cursor")
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise BadRequest(["cursor: not a cursor this server gave out"]) from None
    return at, lead_id


def list_leads(
    session: Session,
    principal: Principal,
    *,
    assigned: Assigned = "all",
    statuses: Sequence[LeadStatus] = (),
    limit: int = 100,
    cursor: str | None = None,
) -> tuple[list[LeadRow], str | None]:
    """A page of the leads `principal` may see, newest first, and the cursor of the next page.

    Agents see their own leads and the pool; managers and admins the whole store.
    `assigned`: "me" (assigned to the caller), "pool" (unassigned), "all" (everything visible).
    """
    if not 1 <= limit <= MAX_PAGE:
        raise BadRequest([f"limit: must be 1 to {MAX_PAGE}"])
    query = select(LeadRow).where(LeadRow.store_id == principal.store_id)
    if assigned == "me":
        query = query.where(LeadRow.assigned_agent_id == principal.id)
    elif assigned == "pool":
        query = query.where(LeadRow.assigned_agent_id.is_(None))
    elif principal.role is Role.AGENT:
        query = query.where(
            or_(LeadRow.assigned_agent_id == principal.id, LeadRow.assigned_agent_id.is_(None))
        )
    if statuses:
        query = query.where(LeadRow.status.in_(sorted({s.value for s in statuses})))
    if cursor:
        at, lead_id = decode_cursor(cursor)
        query = query.where(
            or_(
                LeadRow.received_at < at,
                and_(LeadRow.received_at == at, LeadRow.id < lead_id),
            )
        )
    rows = list(
        session.scalars(
            query.order_by(LeadRow.received_at.desc(), LeadRow.id.desc()).limit(limit + 1)
        )
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (encode_cursor(rows[-1]) if more and rows else None)


# --- Detail ---------------------------------------------------------------------------------------


def detail(
    session: Session, row: LeadRow, rules: Rulebook, store: StoreRow, now: datetime
) -> dict[str, Any]:
    """The lead with its activities, its score reasons and its response clocks as of `now`."""
    lead = lead_of(row)
    history = history_of(session, row.id)
    score = score_lead(rules.scoring, lead, dealership_of(store), history)
    try:
        clocks: dict[str, Any] | None = _jsonable(
            asdict(
                response_clocks(
                    lead, history, store_hours(rules, store), rules.response_policy, now
                )
            )
        )
    except ClockError:
        clocks = None  # e.g. a receipt outside the supported years: show the lead anyway
    return {
        **summary(row),
        "grade_reason": score.grade_reason,
        "score_reasons": [
            {"points": r.points, "text": r.text, "dimension": r.dimension.value}
            for r in score.reasons
        ],
        "clocks": clocks,
        "activities": [activity_to_dict(a) for a in history],
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "value") and not isinstance(value, int | str | float | bool):
        return value.value
    return value


# --- Edits ----------------------------------------------------------------------------------------


class LeadPatch(_In):
    """Mutable lead fields; send only those that change, with the version you edited.

    Lists (phones, emails, vehicles) replace the whole list. Status, assignment, consents,
    do_not_call and opt-outs are not editable here (dispositions, assignment and the customer's
    own words change them).
    """

    base_version: int = Field(ge=1, description="the lead version the edit was made on")
    person: PersonIn | None = None
    phones: list[PhoneIn] | None = Field(None, max_length=MAX_ITEMS)
    emails: list[EmailIn] | None = Field(None, max_length=MAX_ITEMS)
    address: AddressIn | None = None
    vehicles: list[VehicleIn] | None = Field(None, max_length=MAX_ITEMS)
    trade_in: VehicleIn | None = None
    timeframe: TimeframeIn | None = None
    comments: str | None = Field(None, max_length=4000)


EDITABLE = (
    "person",
    "phones",
    "emails",
    "address",
    "vehicles",
    "trade_in",
    "timeframe",
    "comments",
)


def apply_patch(lead: Lead, patch: LeadPatch) -> tuple[Lead, list[str]]:
    """`lead` with the patch applied and the names of the fields it changed."""
    given = patch.model_fields_set
    problems: list[str] = []
    changes: dict[str, Any] = {}
    if "person" in given:
        if patch.person is None:
            problems.append("person: cannot be null")
        else:
            person = Person(**patch.person.model_dump())
            if not person.full_name:
                problems.append("person: a first, last or business name is required")
            changes["person"] = person
    if "phones" in given:
        changes["phones"] = tuple(
            make_phone(p.number, p.kind, preferred_time=p.preferred_time, preferred=p.preferred)
            for p in patch.phones or ()
        )
    if "emails" in given:
        emails = []
        for n, item in enumerate(patch.emails or ()):
            try:
                emails.append(Email(normalize_email(item.address), item.preferred))
            except DomainError as exc:
                problems.append(f"emails[{n}].address: {exc}")
        changes["emails"] = tuple(emails)
    if "address" in given:
        address = patch.address
        changes["address"] = (
            Address(**{**address.model_dump(), "state": address.state.upper()})
            if address
            else Address()
        )
    if "vehicles" in given:
        changes["vehicles"] = tuple(Vehicle(**v.model_dump()) for v in patch.vehicles or ())
    if "trade_in" in given:
        changes["trade_in"] = (
            Vehicle(**{**patch.trade_in.model_dump(), "interest": VehicleInterest.TRADE_IN})
            if patch.trade_in
            else None
        )
    if "timeframe" in given:
        timeframe = patch.timeframe
        changes["timeframe"] = Timeframe(**timeframe.model_dump()) if timeframe else Timeframe()
    if "comments" in given:
        changes["comments"] = patch.comments or ""
    if problems:
        raise BadRequest(problems)
    updated = replace(lead, **changes)
    if not updated.reachable:
        raise BadRequest(["phones: the lead would have no reachable phone and no e-mail left"])
    changed = [name for name in EDITABLE if getattr(updated, name) != getattr(lead, name)]
    try:
        return checked(updated), changed
    except DomainError as exc:
        raise BadRequest([str(exc)]) from None


def patch_lead(
    session: Session,
    row: LeadRow,
    patch: LeadPatch,
    *,
    principal: Principal,
    rules: Rulebook,
    store: StoreRow,
    now: datetime,
) -> LeadRow:
    """Apply an edit made on `patch.base_version`; VersionConflict when the lead moved on."""
    if patch.base_version != row.version:
        raise VersionConflict(row)
    lead = lead_of(row)
    updated, changed = apply_patch(lead, patch)
    if not changed:
        return row
    history = history_of(session, row.id)
    dealership = dealership_of(store)
    before = score_lead(rules.scoring, lead, dealership, history)
    after = score_lead(rules.scoring, updated, dealership, history)
    save_lead(
        session, row, updated, score=after.score, tier=after.tier.value, grade=after.grade.value
    )
    add_activity(
        session,
        row,
        Activity(
            id=str(uuid.uuid4()),
            lead_id=row.id,
            kind=ActivityKind.NOTE,
            at=now,
            agent_id=principal.id,
            body=f"Edited by {principal.name}: {', '.join(changed)}",
        ),
    )
    if score_changed(before, after):
        add_activity(
            session,
            row,
            score_change_activity(
                before, after, lead_id=row.id, at=now, activity_id=str(uuid.uuid4())
            ),
        )
    return row
