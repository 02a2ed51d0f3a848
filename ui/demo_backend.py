"""The in-process preview's stand-in for app.services.actions.ActionService (same methods,
same frozen results), over generated leads in memory: no lead API, no local store.

The widget tests use it to drive the window at a fixed clock (e.g. 21:30 in the customer's zone)
in milliseconds; `bdc-workstation --demo` runs the real core against an in-process lead API
instead (ui/live.py). A disposition appends the attempt and the DISPOSITION activity to the
lead's history and re-derives the lead, so the cadence engine decides what comes next.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from app.domain.activities import Activity, ActivityKind, Direction, DispositionFlag
from app.domain.compliance import ContactDecision
from app.domain.dispositions import disposition_activity
from app.domain.leads import Channel, Lead, LeadStatus
from app.rulebook import Rulebook
from app.services.actions import ActionResult, DispositionResult, PresenceState
from app.services.workqueue import WorkQueue
from app.telephony.record import CallRecord
from ui.ports import Clock


@dataclass(frozen=True, slots=True)
class SentMessage:
    lead_id: str
    channel: Channel
    body: str
    subject: str = ""
    template_id: str | None = None


@dataclass(frozen=True, slots=True)
class _Snapshot:
    lead: Lead
    history: tuple[Activity, ...]
    at: datetime


def _new_id() -> str:
    return str(uuid.uuid4())


class DemoBackend:
    """LeadActions over the in-process WorkQueue."""

    def __init__(self, queue: WorkQueue, rules: Rulebook, agent_id: str, clock: Clock) -> None:
        self._queue = queue
        self._rules = rules
        self._agent_id = agent_id
        self._clock = clock
        self._undo: dict[str, _Snapshot] = {}
        self.presence_log: list[tuple[PresenceState, str | None]] = []
        self.sent: list[SentMessage] = []

    # -- helpers

    def _current(self, lead_id: str, now: datetime) -> tuple[Lead, list[Activity]]:
        detail = self._queue.detail(lead_id, now)
        return detail.lead, list(reversed(detail.timeline))

    def _store(self, lead: Lead, history: list[Activity], now: datetime) -> None:
        self._queue.upsert(lead, sorted(history, key=lambda a: a.at), now)

    # -- LeadActions

    def log_disposition(
        self,
        lead_id: str,
        code: str,
        *,
        scheduled_for: datetime | None = None,
        note: str = "",
        call: CallRecord | None = None,
        undo_window: timedelta | None = None,
        channel: Channel | None = None,
        **_: Any,
    ) -> DispositionResult:
        now = self._clock()
        catalog = self._rules.dispositions
        disposition = catalog.get(code)
        lead, history = self._current(lead_id, now)
        token = _new_id() if undo_window else None
        if token:
            self._undo[token] = _Snapshot(lead, tuple(history), now)
        added: list[Activity] = []
        phone = lead.primary_phone.e164 if lead.primary_phone else None
        if call is not None:
            if call.answered is None:
                call = replace(
                    call, answered=bool(disposition.flags & DispositionFlag.HUMAN_CONTACT)
                )
            added.append(call.activity(lead_id=lead.id, agent_id=self._agent_id))
        elif channel is Channel.CALL and disposition.flags & DispositionFlag.ATTEMPT:
            # Logged without a dialer record (e.g. dialled on a desk phone): record the attempt,
            # a moment before the outcome (a call at the same instant as a callback request
            # would count as already serving that callback).
            answered = bool(disposition.flags & DispositionFlag.HUMAN_CONTACT)
            added.append(
                Activity(
                    id=_new_id(),
                    lead_id=lead.id,
                    kind=ActivityKind.CALL,
                    at=now - timedelta(seconds=1),
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
                code,
                lead.id,
                now,
                activity_id=_new_id(),
                scheduled_for=scheduled_for,
                agent_id=self._agent_id,
                phone=phone,
                body=note,
            )
        )
        if disposition.flags & DispositionFlag.DO_NOT_CONTACT:
            lead = replace(lead, status=LeadStatus.DO_NOT_CONTACT)
        elif disposition.flags & DispositionFlag.SOLD:
            lead = replace(lead, status=LeadStatus.SOLD)
        self._store(lead, history + added, now)
        detail = self._queue.detail(lead.id, now)
        items = self._queue.items(now)
        return DispositionResult(
            ok=True,
            message=f"{disposition.label} logged",
            lead_id=lead.id,
            code=disposition.code,
            label=disposition.label,
            next_text=detail.next_text,
            lead_item=self._queue.item_for(lead.id),
            next_item=next((i for i in items if i.lead_id != lead.id), None),
            activity_ids=tuple(a.id for a in added),
            undo_token=token,
            undo_until=now + undo_window if undo_window else None,
        )

    def undo_disposition(self, token: str) -> ActionResult:
        snapshot = self._undo.pop(token, None)
        if snapshot is None:
            return ActionResult(False, "too late to undo")
        self._queue.upsert(snapshot.lead, list(snapshot.history), snapshot.at)
        return ActionResult(True, "undone", snapshot.lead.id)

    def check_contact(self, lead_id: str, channel: Channel) -> ContactDecision:
        detail = self._queue.detail(lead_id, self._clock())
        return dict(detail.contact)[channel]

    def send_text(self, lead_id: str, body: str, *, template_id: str | None = None) -> ActionResult:
        return self._send(SentMessage(lead_id, Channel.TEXT, body, "", template_id))

    def send_email(
        self, lead_id: str, subject: str, body: str, *, template_id: str | None = None
    ) -> ActionResult:
        return self._send(SentMessage(lead_id, Channel.EMAIL, body, subject, template_id))

    def _send(self, request: SentMessage) -> ActionResult:
        now = self._clock()
        if not request.body.strip():
            return ActionResult(False, "Nothing to send: the message is empty")
        decision = self.check_contact(request.lead_id, request.channel)
        if not decision.allowed:
            return ActionResult(False, f"Not sent: {decision.message}")
        lead, history = self._current(request.lead_id, now)
        body = request.body
        if request.channel is Channel.EMAIL and request.subject:
            body = f"{request.subject}\n\n{request.body}"
        kind = ActivityKind.TEXT if request.channel is Channel.TEXT else ActivityKind.EMAIL
        activity = Activity(
            id=_new_id(),
            lead_id=lead.id,
            kind=kind,
            at=now,
            direction=Direction.OUTBOUND,
            agent_id=self._agent_id,
            phone=decision.address if request.channel is Channel.TEXT else None,
            body=body,
        )
        self._store(lead, [*history, activity], now)
        self.sent.append(request)
        what = "Text" if request.channel is Channel.TEXT else "Email"
        return ActionResult(
            True, f"{what} sent to {decision.address}", lead.id, activity_ids=(activity.id,)
        )

    def add_note(self, lead_id: str, text: str) -> ActionResult:
        at = self._clock()
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
        return ActionResult(True, "Note saved", lead_id, activity_ids=(note.id,))

    def set_presence(
        self, state: PresenceState, *, reason: str | None = None, lead_id: str | None = None
    ) -> ActionResult:
        self.presence_log.append((state, reason))
        return ActionResult(True, state.value, lead_id)
