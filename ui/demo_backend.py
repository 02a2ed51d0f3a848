"""The demo's stand-in for app.services: actions applied in memory through the domain rules.

A disposition appends the attempt and the DISPOSITION activity to the lead's history and re-derives
the lead, so the cadence engine decides what comes next — exactly what the real service does
before it writes to the local store and the outbox. Swap this for the services object in
ui/composition.py once they land; the widgets only see `ui.ports.LeadActions`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from app.domain.activities import Activity, ActivityKind, Direction, DispositionFlag
from app.domain.compliance import ContactDecision
from app.domain.dispositions import disposition_activity
from app.domain.leads import Channel, Lead, LeadStatus
from app.rulebook import Rulebook
from app.services.workqueue import WorkQueue
from ui.ports import (
    ActionResult,
    DispositionRequest,
    DispositionResult,
    MessageRequest,
    Presence,
)


@dataclass(frozen=True, slots=True)
class _Snapshot:
    lead: Lead
    history: tuple[Activity, ...]
    at: datetime


def _new_id() -> str:
    return str(uuid.uuid4())


class DemoBackend:
    """LeadActions over the in-process WorkQueue."""

    def __init__(self, queue: WorkQueue, rules: Rulebook, agent_id: str) -> None:
        self._queue = queue
        self._rules = rules
        self._agent_id = agent_id
        self._undo: dict[str, _Snapshot] = {}
        self.presence_log: list[Presence] = []
        self.sent: list[MessageRequest] = []

    # -- helpers

    def _current(self, lead_id: str, now: datetime) -> tuple[Lead, list[Activity]]:
        detail = self._queue.detail(lead_id, now)
        return detail.lead, list(reversed(detail.timeline))

    def _store(self, lead: Lead, history: list[Activity], now: datetime) -> None:
        self._queue.upsert(lead, sorted(history, key=lambda a: a.at), now)

    # -- LeadActions

    def log_disposition(self, request: DispositionRequest) -> DispositionResult:
        catalog = self._rules.dispositions
        disposition = catalog.get(request.code)
        lead, history = self._current(request.lead_id, request.at)
        token = _new_id()
        self._undo[token] = _Snapshot(lead, tuple(history), request.at)
        added: list[Activity] = []
        call = request.call
        phone = lead.primary_phone.e164 if lead.primary_phone else None
        if call is not None:
            answered = call.answered
            if answered is None:
                answered = bool(disposition.flags & DispositionFlag.HUMAN_CONTACT)
            added.append(
                Activity(
                    id=_new_id(),
                    lead_id=lead.id,
                    kind=ActivityKind.CALL,
                    at=call.started_at,
                    direction=Direction.OUTBOUND,
                    agent_id=self._agent_id,
                    phone=call.number,
                    answered=answered,
                    duration_s=call.duration_s if answered else None,
                )
            )
        elif request.channel is Channel.CALL and disposition.flags & DispositionFlag.ATTEMPT:
            # Logged without a dialer record (e.g. dialled on a desk phone): record the attempt,
            # a moment before the outcome (a call at the same instant as a callback request
            # would count as already serving that callback).
            answered = bool(disposition.flags & DispositionFlag.HUMAN_CONTACT)
            added.append(
                Activity(
                    id=_new_id(),
                    lead_id=lead.id,
                    kind=ActivityKind.CALL,
                    at=request.at - timedelta(seconds=1),
                    direction=Direction.OUTBOUND,
                    agent_id=self._agent_id,
                    phone=phone,
                    answered=answered,
                    duration_s=0 if answered else None,
                )
            )
        added.append(
            disposition_activity(
                catalog,
                request.code,
                lead.id,
                request.at,
                activity_id=_new_id(),
                scheduled_for=request.scheduled_for,
                agent_id=self._agent_id,
                phone=phone,
                body=request.note,
            )
        )
        if disposition.flags & DispositionFlag.DO_NOT_CONTACT:
            lead = replace(lead, status=LeadStatus.DO_NOT_CONTACT)
        elif disposition.flags & DispositionFlag.SOLD:
            lead = replace(lead, status=LeadStatus.SOLD)
        self._store(lead, history + added, request.at)
        detail = self._queue.detail(lead.id, request.at)
        return DispositionResult(
            lead_id=lead.id,
            code=disposition.code,
            label=disposition.label,
            next_text=detail.next_text,
            activity_ids=tuple(a.id for a in added),
            undo_token=token,
        )

    def undo(self, token: str) -> bool:
        snapshot = self._undo.pop(token, None)
        if snapshot is None:
            return False
        self._queue.upsert(snapshot.lead, list(snapshot.history), snapshot.at)
        return True

    def check_contact(self, lead_id: str, channel: Channel, now: datetime) -> ContactDecision:
        detail = self._queue.detail(lead_id, now)
        return dict(detail.contact)[channel]

    def send_message(self, request: MessageRequest) -> ActionResult:
        if not request.body.strip():
            return ActionResult(False, "Nothing to send: the message is empty")
        decision = self.check_contact(request.lead_id, request.channel, request.at)
        if not decision.allowed:
            return ActionResult(False, f"Not sent: {decision.message}")
        lead, history = self._current(request.lead_id, request.at)
        body = request.body
        if request.channel is Channel.EMAIL and request.subject:
            body = f"{request.subject}\n\n{request.body}"
        kind = ActivityKind.TEXT if request.channel is Channel.TEXT else ActivityKind.EMAIL
        activity = Activity(
            id=_new_id(),
            lead_id=lead.id,
            kind=kind,
            at=request.at,
            direction=Direction.OUTBOUND,
            agent_id=self._agent_id,
            phone=decision.address if request.channel is Channel.TEXT else None,
            body=body,
        )
        self._store(lead, [*history, activity], request.at)
        self.sent.append(request)
        what = "Text" if request.channel is Channel.TEXT else "Email"
        return ActionResult(True, f"{what} sent to {decision.address}", (activity.id,))

    def add_note(self, lead_id: str, text: str, at: datetime) -> ActionResult:
        if not text.strip():
            return ActionResult(False, "The note is empty")
        lead, history = self._current(lead_id, at)
        note = Activity(
            id=_new_id(),
            lead_id=lead_id,
            kind=ActivityKind.NOTE,
            at=at,
            agent_id=self._agent_id,
            body=text.strip(),
        )
        self._store(lead, [*history, note], at)
        return ActionResult(True, "Note saved", (note.id,))

    def set_presence(self, presence: Presence) -> None:
        self.presence_log.append(presence)
