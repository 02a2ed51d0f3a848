"""What a BDC manager looks at besides the floor: queue health, calls to review, QA scorecards.

- Queue health: every unworked lead of the store (no agent attempt yet, not closed, not spam or
  a duplicate) with its response deadline, soonest first.
- Calls: the agents' calls in a period (newest first) with the lead, the agent, the talk time,
  the outcome (the disposition the agent logged for the lead after the call) and the recording
  link when a server-bridged call has one; plus the call's QA scorecard when it was reviewed.
- QA scorecards (the guide's criteria, 1–5 each with a comment) are stored as a NOTE activity on
  the call's lead, in the reviewed agent's name, so they show in the lead's history the agent sees
  and travel on the change feed like every activity. The note's text is both readable and parsed
  back here (`parse_scorecard`).
"""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.activities import Activity, ActivityKind
from app.domain.codec import activity_from_dict, activity_to_dict, lead_from_dict
from app.domain.errors import DomainError
from app.domain.leads import LeadStatus
from app.rulebook import Rulebook
from server.auth import Principal
from server.db import ActivityRow, CallRow, LeadRow, StoreRow, UserRow
from server.rules import store_hours
from server.services.floor_metrics import resolve_period

QUEUE_LIMIT = 1000
CALLS_LIMIT = 500
OPEN_STATUSES = (LeadStatus.NEW.value, LeadStatus.WORKING.value)
SCORECARD_TITLE = "QA scorecard"
# The guide's call-review criteria, in the order a reviewer fills them in.
CRITERIA: tuple[tuple[str, str], ...] = (
    ("greeting", "Greeting & professionalism"),
    ("needs_assessment", "Needs assessment"),
    ("product_knowledge", "Product knowledge"),
    ("objection_handling", "Objection handling"),
    ("appointment_setting", "Appointment setting"),
    ("crm_notes", "CRM notes"),
)
_LABEL_TO_KEY = {label: key for key, label in CRITERIA}
_LINE = re.compile(r"^(?P<label>[^:]+): (?P<score>[1-5])/5(?: — (?P<comment>.*))?$")
_HEAD = re.compile(r"^QA scorecard · (?P<total>\d+)/(?P<max>\d+) · call (?P<call>\S+)")


class ReviewError(ValueError):
    """Bad input; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _names(session: Session, store_id: str) -> dict[str, str]:
    return {
        user.id: user.display_name or user.username
        for user in session.scalars(select(UserRow).where(UserRow.store_id == store_id))
    }


def _customer(row: LeadRow) -> tuple[str, str]:
    try:
        lead = lead_from_dict(row.data)
    except DomainError:
        return "", ""
    return lead.person.full_name, lead.source.name


# --- Queue health ---------------------------------------------------------------------------------


def queue_health(session: Session, store_id: str, *, now: datetime) -> dict[str, Any]:
    """Unworked leads, soonest deadline first (breached ones first of all)."""
    names = _names(session, store_id)
    rows = session.scalars(
        select(LeadRow)
        .where(
            LeadRow.store_id == store_id,
            LeadRow.first_attempt_at.is_(None),
            LeadRow.status.in_(OPEN_STATUSES),
            LeadRow.grade != "D",
        )
        .order_by(LeadRow.due_at, LeadRow.received_at)
        .limit(QUEUE_LIMIT)
    ).all()
    leads = []
    for row in rows:
        name, source = _customer(row)
        due = row.due_at
        leads.append(
            {
                "lead_id": row.id,
                "version": row.version,
                "customer_name": name,
                "source": source,
                "received_at": row.received_at.isoformat(),
                "due_at": due.isoformat() if due else None,
                "seconds_left": int((due - now).total_seconds()) if due else None,
                "assigned_agent_id": row.assigned_agent_id,
                "assigned_agent_name": names.get(row.assigned_agent_id or "", ""),
                "score": row.score,
                "tier": row.tier,
                "status": row.status,
            }
        )
    leads.sort(key=lambda item: (item["seconds_left"] is None, item["seconds_left"] or 0))
    return {"server_time": now.isoformat(), "store_id": store_id, "leads": leads}


# --- Calls ----------------------------------------------------------------------------------------


def parse_scorecard(activity: Activity) -> dict[str, Any] | None:
    """The scorecard a NOTE carries, or None when it is not one."""
    if activity.kind is not ActivityKind.NOTE or not activity.body.startswith(SCORECARD_TITLE):
        return None
    lines = activity.body.splitlines()
    head = _HEAD.match(lines[0])
    if head is None:
        return None
    scores: dict[str, int] = {}
    comments: dict[str, str] = {}
    summary = ""
    for line in lines[1:]:
        match = _LINE.match(line)
        if match and match["label"] in _LABEL_TO_KEY:
            key = _LABEL_TO_KEY[match["label"]]
            scores[key] = int(match["score"])
            if match["comment"]:
                comments[key] = match["comment"]
        elif line.startswith("Reviewer: "):
            continue
        elif line.strip():
            summary = (summary + "\n" + line).strip()
    reviewer = next((ln[10:] for ln in lines if ln.startswith("Reviewer: ")), "")
    return {
        "id": activity.id,
        "lead_id": activity.lead_id,
        "call_id": head["call"],
        "agent_id": activity.agent_id,
        "at": activity.at.isoformat(),
        "reviewer": reviewer,
        "scores": scores,
        "comments": comments,
        "summary": summary,
        "total": int(head["total"]),
        "max": int(head["max"]),
    }


def _decoded(rows: Any) -> list[Activity]:
    out = []
    for row in rows:
        try:
            out.append(activity_from_dict(row.data))
        except DomainError:
            continue
    return out


def calls(
    session: Session,
    store_id: str,
    rules: Rulebook,
    *,
    period_name: str,
    agent_id: str | None,
    now: datetime,
) -> dict[str, Any]:
    """The agents' calls in the period, newest first, with outcome, recording and scorecard."""
    store = session.get(StoreRow, store_id)
    if store is None:
        raise LookupError(f"store {store_id!r} not found")
    period = resolve_period(period_name, None, None, store_hours(rules, store).zone, now)
    query = select(ActivityRow).where(
        ActivityRow.store_id == store_id,
        ActivityRow.kind == ActivityKind.CALL.value,
        ActivityRow.at >= period.start,
        ActivityRow.at < period.end,
    )
    if agent_id:
        query = query.where(ActivityRow.agent_id == agent_id)
    found = [
        a
        for a in _decoded(session.scalars(query.order_by(ActivityRow.at.desc())))
        if a.is_agent_attempt and a.agent_id
    ][:CALLS_LIMIT]
    lead_ids = sorted({a.lead_id for a in found})
    leads = (
        {r.id: r for r in session.scalars(select(LeadRow).where(LeadRow.id.in_(lead_ids)))}
        if lead_ids
        else {}
    )
    later: dict[str, list[Activity]] = defaultdict(list)
    if lead_ids:
        for activity in _decoded(
            session.scalars(
                select(ActivityRow)
                .where(
                    ActivityRow.lead_id.in_(lead_ids),
                    ActivityRow.kind.in_((ActivityKind.DISPOSITION.value, ActivityKind.NOTE.value)),
                )
                .order_by(ActivityRow.at)
            )
        ):
            later[activity.lead_id].append(activity)
    recordings = (
        dict(
            session.execute(
                select(CallRow.id, CallRow.recording).where(
                    CallRow.id.in_([a.id for a in found]), CallRow.recording.is_not(None)
                )
            ).all()
        )
        if found
        else {}
    )
    names = _names(session, store_id)
    out = []
    for call in found:
        outcome = ""
        for activity in later[call.lead_id]:
            if (
                activity.kind is ActivityKind.DISPOSITION
                and activity.agent_id == call.agent_id
                and call.at <= activity.at <= call.at + timedelta(hours=2)
            ):
                code = activity.disposition or ""
                outcome = rules.dispositions.get(code).label if code in rules.dispositions else code
                break
        if not outcome:
            outcome = "Answered" if call.answered else "No answer"
        scorecard = next(
            (
                card
                for card in (parse_scorecard(a) for a in later[call.lead_id])
                if card and card["call_id"] == call.id
            ),
            None,
        )
        lead_row = leads.get(call.lead_id)
        name, source = _customer(lead_row) if lead_row else ("", "")
        out.append(
            {
                "call_id": call.id,
                "lead_id": call.lead_id,
                "customer_name": name,
                "source": source,
                "agent_id": call.agent_id,
                "agent_name": names.get(call.agent_id or "", call.agent_id or ""),
                "at": call.at.isoformat(),
                "duration_s": call.duration_s or 0,
                "answered": bool(call.answered),
                "outcome": outcome,
                "recording_url": recordings.get(call.id),
                "scorecard": scorecard,
            }
        )
    return {
        "server_time": now.isoformat(),
        "period": {"start": period.start.isoformat(), "end": period.end.isoformat()},
        "criteria": [{"key": k, "label": label} for k, label in CRITERIA],
        "calls": out,
    }


# --- Scorecards -----------------------------------------------------------------------------------


def scorecard_body(
    call_id: str, reviewer: str, scores: dict[str, int], comments: dict[str, str], summary: str
) -> str:
    total = sum(scores.values())
    lines = [f"{SCORECARD_TITLE} · {total}/{5 * len(CRITERIA)} · call {call_id}"]
    for key, label in CRITERIA:
        comment = " ".join(comments.get(key, "").split())
        lines.append(f"{label}: {scores[key]}/5" + (f" — {comment}" if comment else ""))
    if summary.strip():
        lines.append(summary.strip())
    lines.append(f"Reviewer: {reviewer}")
    return "\n".join(lines)


def scorecard_activity(
    session: Session,
    principal: Principal,
    body: dict[str, Any],
    *,
    now: datetime,
) -> dict[str, Any]:
    """The NOTE activity (wire format) for a posted scorecard; raises ReviewError or LookupError."""
    call_id = str(body.get("call_id") or "")
    call_row = session.get(ActivityRow, call_id) if call_id else None
    if (
        call_row is None
        or call_row.store_id != principal.store_id
        or call_row.kind != ActivityKind.CALL.value
    ):
        raise LookupError(f"call '{call_id[:64]}' not found")
    call = activity_from_dict(call_row.data)
    raw_scores = body.get("scores")
    if not isinstance(raw_scores, dict):
        raise ReviewError("scores", "must be an object of criterion: 1..5")
    unknown = sorted(set(raw_scores) - {k for k, _ in CRITERIA})
    if unknown:
        raise ReviewError(f"scores.{unknown[0]}", "unknown criterion")
    scores: dict[str, int] = {}
    for key, label in CRITERIA:
        value = raw_scores.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 5:
            raise ReviewError(f"scores.{key}", f"{label}: a whole number from 1 to 5")
        scores[key] = value
    raw_comments = body.get("comments") or {}
    if not isinstance(raw_comments, dict) or not all(
        isinstance(v, str) for v in raw_comments.values()
    ):
        raise ReviewError("comments", "must be an object of criterion: text")
    comments = {k: str(v)[:500] for k, v in raw_comments.items() if k in dict(CRITERIA)}
    summary = str(body.get("summary") or "")[:2000]
    activity_id = str(body.get("id") or uuid.uuid4())
    try:
        uuid.UUID(activity_id)
    except ValueError:
        raise ReviewError("id", "must be a UUID") from None
    reviewer = session.get(UserRow, principal.id)
    reviewer_name = (reviewer.display_name or reviewer.username) if reviewer else principal.name
    note = Activity(
        id=activity_id,
        lead_id=call.lead_id,
        kind=ActivityKind.NOTE,
        at=now,
        agent_id=call.agent_id,
        body=scorecard_body(call.id, reviewer_name, scores, comments, summary),
    )
    return activity_to_dict(note)


def existing_scorecard(
    session: Session, store_id: str, body: dict[str, Any]
) -> dict[str, Any] | None:
    """The scorecard already saved under the posted id (a retry), else None."""
    activity_id = body.get("id") if isinstance(body, dict) else None
    if not isinstance(activity_id, str) or not activity_id:
        return None
    row = session.get(ActivityRow, activity_id[:64])
    if row is None or row.store_id != store_id:
        return None
    try:
        return parse_scorecard(activity_from_dict(row.data))
    except DomainError:
        return None


def scorecards(
    session: Session, store_id: str, *, agent_id: str | None, limit: int = 200
) -> list[dict[str, Any]]:
    """QA scorecards of the store (or one agent), newest first."""
    query = select(ActivityRow).where(
        ActivityRow.store_id == store_id, ActivityRow.kind == ActivityKind.NOTE.value
    )
    if agent_id:
        query = query.where(ActivityRow.agent_id == agent_id)
    cards = []
    for activity in _decoded(session.scalars(query.order_by(ActivityRow.at.desc()))):
        card = parse_scorecard(activity)
        if card is not None:
            cards.append(card)
        if len(cards) >= limit:
            break
    return cards
