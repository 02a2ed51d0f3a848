"""Append-only activities and what they do to a lead, in one transaction.

`post_activities` takes one activity (the wire format of app.domain.codec) or a batch
{"activities": [...]} of at most MAX_BATCH, all or nothing. Each has a client-generated id: the
same id again with the same content is "unchanged" (nothing re-applied), with other content a 409.

Effects, per lead, after its new activities are appended:
- status from disposition flags (DO_NOT_CONTACT > SOLD > NOT_INTERESTED > APPOINTMENT_SET >
  HUMAN_CONTACT > ATTEMPT; see `status_after`) and from appointment activities; an agent's first
  call or personal text moves a new lead to working and sets LeadRow.first_attempt_at. An activity
  older than the newest disposition/appointment already recorded (an offline client catching up)
  changes status only for do-not-contact and sold — later outcomes are not overwritten;
- DO_NOT_CONTACT: lead.do_not_call and ContactBlockRow("dnc") for its phones and e-mails;
  OPT_OUT: lead.opted_out_at and ContactBlockRow("opt_out"). Both always apply;
- appointment set (APPOINTMENT "set" or a disposition flagged APPOINTMENT_SET, with
  scheduled_for): earlier pending reminder jobs for the lead are superseded and JobRows queued —
  "appointment_confirm_call" 24 h before, "appointment_reminder_text" 2 h before (each only when
  still ahead), "no_show_check" 60 min after; dedupe key "<kind>:<activity id>". Kept, no-show and
  cancelled close the pending ones;
- rescoring (app.domain.scoring) with a SCORE_CHANGE activity when the score, tier or grade moved;
- the cadence re-planned with the domain engine (customer's zone and legal windows), stored in the
  lead's change record as data["cadence"] (see `cadence_summary`) so every client shows the same
  next steps.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from fastapi import HTTPException
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.activities import (
    Activity,
    ActivityKind,
    AppointmentStatus,
    Direction,
    DispositionFlag,
    in_order,
)
from app.domain.cadence import PlannedStep, describe_next, plan
from app.domain.codec import activity_from_dict, activity_to_dict
from app.domain.compliance import legal_window_fn
from app.domain.errors import DomainError
from app.domain.leads import Lead, LeadStatus
from app.domain.scoring import Grade, LeadScore, Tier, score_change_activity, score_changed
from app.domain.scoring import score_lead as domain_score_lead
from app.domain.timezones import resolve_zones
from app.rulebook import Rulebook
from server.auth import Principal, Role
from server.db import ActivityRow, ChangeRow, JobRow, LeadRow, StoreRow, UserRow
from server.services.blocks import add_block
from server.services.common import (
    add_activity,
    dealership_of,
    get_lead_for,
    held_at,
    history_of,
    lead_of,
    save_lead,
)

MAX_BATCH = 200
# Clients' clocks drift; an activity further in the future than this is refused.
FUTURE_TOLERANCE = timedelta(minutes=10)
# Recorded by the server itself (rescoring, routing), never posted by clients.
SERVER_ONLY_KINDS = frozenset({ActivityKind.SCORE_CHANGE, ActivityKind.ASSIGNMENT})
CONFIRM_CALL = "appointment_confirm_call"
REMINDER_TEXT = "appointment_reminder_text"
NO_SHOW_CHECK = "no_show_check"
APPOINTMENT_JOBS = (CONFIRM_CALL, REMINDER_TEXT, NO_SHOW_CHECK)
CONFIRM_BEFORE = timedelta(hours=24)
REMIND_BEFORE = timedelta(hours=2)
NO_SHOW_AFTER = timedelta(minutes=60)
_SCORE_NAMESPACE = uuid.UUID("5d0e6b52-5a43-4c39-9d8e-6f1f0d6a7c11")


class ActivityProblem(Exception):
    """A refused request: HTTP status and a message naming the field."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


@dataclass(frozen=True, slots=True)
class PostOutcome:
    results: list[dict[str, Any]]  # per posted activity: id, outcome, activity
    added: list[dict[str, Any]]  # activities the server added (score changes)
    leads: list[dict[str, Any]]  # per lead touched: version, status, score, cadence

    @property
    def created(self) -> bool:
        return any(r["outcome"] == "created" for r in self.results)

    def as_dict(self) -> dict[str, Any]:
        return {"activities": self.results, "added": self.added, "leads": self.leads}


@dataclass
class _Item:
    path: str  # "" or "activities[3]." — prefixes field names in errors
    activity: Activity


@dataclass
class _LeadWork:
    row: LeadRow
    created: list[Activity] = field(default_factory=list)


# --------------------------------------------------------------------------- decoding


def split_body(body: Any) -> list[tuple[str, Any]]:
    """The posted items with their error-path prefix; raises ActivityProblem(422)."""
    if not isinstance(body, dict):
        raise ActivityProblem(422, 'body: must be one activity object or {"activities": [...]}')
    if "activities" not in body:
        return [("", body)]
    extra = sorted(set(body) - {"activities"})
    if extra:
        raise ActivityProblem(422, f"{extra[0]}: unknown field next to 'activities'")
    items = body["activities"]
    if not isinstance(items, list):
        raise ActivityProblem(422, "activities: must be an array of activities")
    if not items:
        raise ActivityProblem(422, "activities: the batch is empty")
    if len(items) > MAX_BATCH:
        raise ActivityProblem(
            422, f"activities: at most {MAX_BATCH} activities per batch (got {len(items)})"
        )
    return [(f"activities[{i}].", item) for i, item in enumerate(items)]


def _decode(
    session: Session,
    principal: Principal,
    path: str,
    raw: Any,
    rules: Rulebook,
    now: datetime,
    known_agents: dict[str, bool],
) -> Activity:
    try:
        activity = activity_from_dict(raw)
    except DomainError as exc:
        raise ActivityProblem(422, f"{path}{exc}") from None
    if activity.kind in SERVER_ONLY_KINDS:
        raise ActivityProblem(
            422, f"{path}kind: '{activity.kind.value}' activities are recorded by the server"
        )
    try:
        uuid.UUID(activity.id)
    except ValueError:
        raise ActivityProblem(422, f"{path}id: must be a UUID (got {activity.id!r})") from None
    if activity.at > now + FUTURE_TOLERANCE:
        raise ActivityProblem(
            422,
            f"{path}at: {activity.at.isoformat()} is in the future (server time {now:%H:%M} UTC)",
        )
    if principal.role is Role.AGENT or activity.agent_id is None:
        activity = replace(activity, agent_id=principal.id)
    elif not _is_store_user(session, principal.store_id, activity.agent_id, known_agents):
        raise ActivityProblem(422, f"{path}agent_id: no user {activity.agent_id!r} in this store")
    if activity.kind is ActivityKind.DISPOSITION:
        activity = _checked_disposition(path, activity, rules)
    if (
        activity.kind is ActivityKind.APPOINTMENT
        and activity.appointment_status is AppointmentStatus.SET
        and activity.scheduled_for is None
    ):
        raise ActivityProblem(
            422, f"{path}scheduled_for: an appointment being set needs its date and time"
        )
    return activity


def _checked_disposition(path: str, activity: Activity, rules: Rulebook) -> Activity:
    code = activity.disposition or ""
    if code not in rules.dispositions:
        known = ", ".join(rules.dispositions.codes)
        raise ActivityProblem(422, f"{path}disposition: unknown code {code!r} (known: {known})")
    disposition = rules.dispositions.get(code)
    if activity.flags == DispositionFlag.NONE:
        # An older client may send the code alone: the catalog says what it means.
        activity = replace(activity, flags=disposition.flags)
    if disposition.needs_time and activity.scheduled_for is None:
        raise ActivityProblem(
            422, f"{path}scheduled_for: disposition {code!r} ({disposition.label}) needs a time"
        )
    return activity


def _is_store_user(session: Session, store_id: str, user_id: str, cache: dict[str, bool]) -> bool:
    if user_id not in cache:
        user = session.get(UserRow, user_id)
        cache[user_id] = user is not None and user.store_id == store_id
    return cache[user_id]


# --------------------------------------------------------------------------- posting


def post_activities(
    session: Session, principal: Principal, body: Any, *, rules: Rulebook, now: datetime
) -> PostOutcome:
    """Append the posted activities and apply their effects in the caller's transaction.

    Raises ActivityProblem (422 bad input, 409 id conflict) or HTTPException (404 lead)."""
    known_agents: dict[str, bool] = {}
    items = [
        _Item(path, _decode(session, principal, path, raw, rules, now, known_agents))
        for path, raw in split_body(body)
    ]
    # Row locks first, in id order, before any change is recorded: record() then takes the
    # global change lock, and locking rows after it could deadlock with another writer.
    leads: dict[str, _LeadWork] = {}
    for lead_id in sorted({item.activity.lead_id for item in items}):
        mine = [i for i in items if i.activity.lead_id == lead_id]
        leads[lead_id] = _LeadWork(_lead_for_posting(session, principal, lead_id, mine))
    results: list[dict[str, Any]] = []
    history_before = {lead_id: history_of(session, lead_id) for lead_id in leads}
    for item in items:
        activity = item.activity
        existing = session.get(ActivityRow, activity.id)
        if existing is not None:
            if (
                existing.lead_id != activity.lead_id
                or activity_from_dict(existing.data) != activity
            ):
                raise ActivityProblem(
                    409,
                    f"{item.path}id: activity {activity.id} is already recorded with other "
                    "content (activities are append-only: use a new id)",
                )
            results.append({"id": activity.id, "outcome": "unchanged", "activity": existing.data})
            continue
        work = leads[activity.lead_id]
        row = add_activity(session, work.row, activity)
        work.created.append(activity)
        results.append({"id": activity.id, "outcome": "created", "activity": row.data})
    store = session.get(StoreRow, principal.store_id)
    assert store is not None
    added: list[dict[str, Any]] = []
    summaries: list[dict[str, Any]] = []
    for lead_id, work in leads.items():
        if work.created:
            summaries.append(
                _apply_effects(session, store, work, history_before[lead_id], rules, now, added)
            )
    return PostOutcome(results, added, summaries)


def _lead_for_posting(
    session: Session, principal: Principal, lead_id: str, items: list[_Item]
) -> LeadRow:
    """The locked lead row the items may be recorded on. An agent may post on their own leads and
    the pool's, and on a lead that was theirs (or in the pool) at each activity's `at`: a lead
    reassigned while they were offline still gets what they did while it was theirs. Another
    store's lead, or one that does not exist, is 404; a lead of the store the agent did not
    hold at that time is 403."""
    try:
        return get_lead_for(session, principal, lead_id, lock=True)
    except HTTPException as exc:
        refused = exc
    row = session.get(LeadRow, lead_id)  # locked by get_lead_for's query when it exists
    if row is None or row.store_id != principal.store_id or principal.role is not Role.AGENT:
        raise HTTPException(refused.status_code, f"{items[0].path}lead_id: {refused.detail}")
    for item in items:
        at = item.activity.at
        if not held_at(session, lead_id, principal.id, at):
            raise ActivityProblem(
                403,
                f"{item.path}lead_id: lead '{lead_id}' was not assigned to you at "
                f"{at.isoformat()} (it is another agent's lead now, and was not yours then)",
            )
    return row


def _apply_effects(
    session: Session,
    store: StoreRow,
    work: _LeadWork,
    before: Sequence[Activity],
    rules: Rulebook,
    now: datetime,
    added: list[dict[str, Any]],
) -> dict[str, Any]:
    row = work.row
    lead = lead_of(row)
    latest_outcome = max(
        (a.at for a in before if a.kind in (ActivityKind.DISPOSITION, ActivityKind.APPOINTMENT)),
        default=None,
    )
    first_attempt = row.first_attempt_at
    for activity in in_order(work.created):
        late = latest_outcome is not None and activity.at < latest_outcome
        lead = _apply_one(session, row, lead, activity, late=late, now=now)
        if activity.is_agent_attempt and (first_attempt is None or activity.at < first_attempt):
            first_attempt = activity.at
    history = history_of(session, row.id)
    dealership = dealership_of(store)
    after = domain_score_lead(rules.scoring, lead, dealership, history)
    previous = LeadScore(
        score=row.score,
        tier=Tier(row.tier),
        grade=Grade(row.grade),
        grade_reason="",
        reasons=(),
        unclamped=row.score,
    )
    if score_changed(previous, after):
        trigger = work.created[-1].id
        change = score_change_activity(
            previous,
            after,
            lead_id=row.id,
            at=now,
            activity_id=str(uuid.uuid5(_SCORE_NAMESPACE, f"score:{trigger}")),
        )
        add_activity(session, row, change)
        added.append(activity_to_dict(change))
        history = [*history, change]
    row = save_lead(
        session,
        row,
        lead,
        score=after.score,
        tier=after.tier.value,
        grade=after.grade.value,
        first_attempt_at=first_attempt,
    )
    cadence = cadence_summary(rules, store, lead, history, now)
    attach_to_lead_change(session, row.id, {"cadence": cadence})
    return {
        "id": row.id,
        "version": row.version,
        "status": row.status,
        "score": row.score,
        "tier": row.tier,
        "grade": row.grade,
        "first_attempt_at": row.first_attempt_at.isoformat() if row.first_attempt_at else None,
        "do_not_call": lead.do_not_call,
        "opted_out_at": lead.opted_out_at.isoformat() if lead.opted_out_at else None,
        "cadence": cadence,
    }


def _apply_one(
    session: Session, row: LeadRow, lead: Lead, activity: Activity, *, late: bool, now: datetime
) -> Lead:
    kind = activity.kind
    if kind is ActivityKind.OPT_OUT:
        if lead.opted_out_at is None:
            lead = replace(lead, opted_out_at=activity.at)
        _block(session, row.store_id, lead, "opt_out", f"opt-out activity {activity.id}")
    elif kind is ActivityKind.DISPOSITION:
        flags = activity.flags
        if flags & DispositionFlag.DO_NOT_CONTACT:
            lead = replace(lead, do_not_call=True)
            _block(session, row.store_id, lead, "dnc", f"disposition activity {activity.id}")
        if late:
            flags &= DispositionFlag.DO_NOT_CONTACT | DispositionFlag.SOLD
        lead = replace(lead, status=status_after(lead.status, flags))
        if (
            not late
            and flags & DispositionFlag.APPOINTMENT_SET
            and activity.scheduled_for is not None
        ):
            _schedule_appointment(session, row, activity, activity.scheduled_for, now)
    elif kind is ActivityKind.APPOINTMENT and not late:
        status = activity.appointment_status
        if status is AppointmentStatus.SET and activity.scheduled_for is not None:
            lead = replace(lead, status=status_after(lead.status, DispositionFlag.APPOINTMENT_SET))
            _schedule_appointment(session, row, activity, activity.scheduled_for, now)
        elif status is not None:
            _close_appointment_jobs(session, row.id, now, f"appointment {status.value}")
            if status is AppointmentStatus.CANCELLED and lead.status is LeadStatus.APPOINTMENT:
                lead = replace(lead, status=LeadStatus.CONTACTED)
    if activity.is_agent_attempt and lead.status is LeadStatus.NEW:
        lead = replace(lead, status=LeadStatus.WORKING)
    return lead


def status_after(status: LeadStatus, flags: DispositionFlag) -> LeadStatus:
    """The lead status after a disposition with `flags`. Do-not-contact is final; sold stays
    sold; not interested closes the lead; contact and appointments move it forward (and revive a
    lost lead); an attempt moves a new lead to working."""
    if status is LeadStatus.DO_NOT_CONTACT or flags & DispositionFlag.DO_NOT_CONTACT:
        return LeadStatus.DO_NOT_CONTACT
    if status is LeadStatus.SOLD or flags & DispositionFlag.SOLD:
        return LeadStatus.SOLD
    if flags & DispositionFlag.NOT_INTERESTED:
        return LeadStatus.LOST
    if flags & DispositionFlag.APPOINTMENT_SET:
        return LeadStatus.APPOINTMENT
    if flags & DispositionFlag.HUMAN_CONTACT:
        if status in (LeadStatus.NEW, LeadStatus.WORKING, LeadStatus.LOST):
            return LeadStatus.CONTACTED
        return status
    if flags & DispositionFlag.ATTEMPT and status is LeadStatus.NEW:
        return LeadStatus.WORKING
    return status


def _addresses(lead: Lead) -> list[str]:
    found = [p.e164 for p in lead.phones if p.e164]
    found += [e.address.lower() for e in lead.emails if e.address]
    return list(dict.fromkeys(found))


def _block(session: Session, store_id: str, lead: Lead, kind: str, source: str) -> None:
    for address in _addresses(lead):
        add_block(session, store_id, address, kind, source)


def _close_appointment_jobs(session: Session, lead_id: str, now: datetime, why: str) -> None:
    pending = session.scalars(
        select(JobRow).where(
            JobRow.lead_id == lead_id,
            JobRow.kind.in_(APPOINTMENT_JOBS),
            JobRow.done_at.is_(None),
        )
    ).all()
    for job in pending:
        job.done_at = now
        job.result = f"cancelled: {why}"


def _schedule_appointment(
    session: Session, row: LeadRow, activity: Activity, slot: datetime, now: datetime
) -> None:
    _close_appointment_jobs(session, row.id, now, f"superseded by activity {activity.id}")
    plan_jobs = [
        (CONFIRM_CALL, slot - CONFIRM_BEFORE),
        (REMINDER_TEXT, slot - REMIND_BEFORE),
        (NO_SHOW_CHECK, slot + NO_SHOW_AFTER),
    ]
    for kind, due in plan_jobs:
        if kind != NO_SHOW_CHECK and due <= now:
            continue  # too late for this reminder
        session.add(
            JobRow(
                kind=kind,
                dedupe_key=f"{kind}:{activity.id}",
                store_id=row.store_id,
                lead_id=row.id,
                due_at=due,
                data={"activity_id": activity.id, "appointment_at": slot.isoformat()},
            )
        )
    session.flush()


def attach_to_lead_change(session: Session, lead_id: str, extra: dict[str, Any]) -> None:
    """Add `extra` to the lead change save_lead just recorded (we hold the lead's row lock, so
    the newest lead change for it is ours)."""
    change = session.scalar(
        select(ChangeRow)
        .where(ChangeRow.entity == "lead", ChangeRow.entity_id == lead_id)
        .order_by(ChangeRow.seq.desc())
        .limit(1)
    )
    if change is not None:
        change.data = {**change.data, **extra}
        session.flush()


# --------------------------------------------------------------------------- the cadence


def cadence_summary(
    rules: Rulebook, store: StoreRow, lead: Lead, history: Iterable[Activity], now: datetime
) -> dict[str, Any]:
    """The lead's cadence as the server plans it: state, reason and the next steps (UTC times),
    planned in the customer's zone within their legal calling windows. JSON-ready."""
    history = list(history)
    try:
        resolution = resolve_zones(lead, rules.zip_table, fallback_zone=store.time_zone)
        zone = resolution.primary_zone
        result = plan(
            rules.cadences.values(),
            lead,
            history,
            now,
            zone=zone,
            legal_window=legal_window_fn(rules.calling_rules, resolution),
        )
        summary = describe_next(result, zone)
    except DomainError as exc:
        return {"state": "unavailable", "reason": str(exc), "next_steps": [], "bad_numbers": []}
    return {
        "state": result.state.value,
        "cadence_id": result.cadence_id,
        "cadence_name": result.cadence_name,
        "reason": result.reason,
        "summary": summary,
        "zone": resolution.primary,
        "planned_at": now.isoformat(),
        "started_at": _iso(result.started_at),
        "ends_at": _iso(result.ends_at),
        "appointment_at": _iso(result.appointment_at),
        "next_steps": [_step(step) for step in result.next_steps],
        "bad_numbers": bad_numbers(lead, history),
    }


def _step(step: PlannedStep) -> dict[str, Any]:
    return {
        "cadence_id": step.cadence_id,
        "step_index": step.step_index,
        "step_id": step.step_id,
        "channel": step.channel.value,
        "due_at": step.due_at.isoformat(),
        "allowed_from": step.allowed_from.isoformat(),
        "allowed_until": step.allowed_until.isoformat(),
        "template": step.template,
        "script": step.script,
        "automatic": step.automatic,
        "attempt": step.attempt,
        "reason": step.reason,
        "late_since": _iso(step.late_since),
        "kind": step.kind,
    }


def bad_numbers(lead: Lead, history: Iterable[Activity]) -> list[str]:
    """The lead's numbers dispositioned as bad with no conversation on them since (as the
    compliance check reads them)."""
    primary = lead.primary_phone.e164 if lead.primary_phone else None
    bad: dict[str, bool] = {}
    for activity in in_order(history):
        number = activity.phone or primary
        if number is None:
            continue
        if (
            activity.kind is ActivityKind.DISPOSITION
            and activity.flags & DispositionFlag.BAD_NUMBER
        ):
            bad[number] = True
        elif activity.direction is Direction.INBOUND or (
            activity.kind is ActivityKind.CALL and activity.answered
        ):
            bad[number] = False
    numbers = {p.e164 for p in lead.phones if p.e164}
    return sorted(n for n, is_bad in bad.items() if is_bad and n in numbers)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
