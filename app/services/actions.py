"""The use cases the agent triggers. Each writes its local effect and its outbox row in one
transaction (so it is done the moment it returns, online or not), refreshes the queue, nudges
the sync engine and returns a plain frozen result.

A refusal the agent should read (quiet hours, opted out, stale do-not-call data, offline claim)
comes back as `ok=False` with the reason; programming errors (unknown disposition code, unknown
lead) raise.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from app.domain.activities import Activity, ActivityKind, Direction, DispositionFlag
from app.domain.cadence import describe_next
from app.domain.compliance import BlockCode, BlockReason, ContactDecision, check_contact
from app.domain.dispositions import disposition_activity
from app.domain.leads import Channel, Lead, LeadStatus
from app.domain.priority import WorkItem
from app.domain.timezones import resolve_zones
from app.rulebook import Rulebook
from app.services.queue import QueueService
from app.store.db import LocalStore
from app.store.repository import Dataset
from app.sync.api import ApiError, LeadApi, NetworkError, Rejected, SignInExpired
from app.telephony.record import CallRecord as DialerCallRecord

Clock = Callable[[], datetime]

# Calls stay allowed offline while the local opt-out / do-not-call data is at most this old.
DEFAULT_BLOCKLIST_MAX_AGE = timedelta(minutes=30)
UNDO_MARGIN = timedelta(seconds=2)
WILL_SEND = "will send when online"
_NO_DNC: frozenset[str] = frozenset()


class UnknownLead(LookupError):
    """The lead is not in the local store."""


class PresenceState(StrEnum):
    AVAILABLE = "available"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    PAUSED = "paused"


@dataclass(frozen=True, slots=True)
class ActionResult:
    ok: bool
    message: str  # what to tell the agent
    lead_id: str | None = None
    activity_ids: tuple[str, ...] = ()
    outbox_ids: tuple[str, ...] = ()
    queued: bool = False  # saved here; "will send when online"


@dataclass(frozen=True, slots=True)
class DispositionResult:
    ok: bool
    message: str
    lead_id: str
    code: str
    label: str
    next_text: str  # "Text #1 in 10 min · call #2 at 4:30 PM their time"
    lead_item: WorkItem | None  # this lead's next step (None: nothing more to do)
    next_item: WorkItem | None  # what to work next (the top of the queue)
    activity_ids: tuple[str, ...] = ()
    queued: bool = False
    undo_token: str | None = None  # pass to `undo_disposition` until `undo_until`
    undo_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class _Undoable:
    lead_id: str
    label: str
    outbox_ids: tuple[str, ...]
    lead_before: Lead
    until: datetime


@dataclass(frozen=True, slots=True)
class CallRecord:
    """A finished call, logged with the disposition that closes it."""

    number: str  # E.164
    started_at: datetime
    ended_at: datetime
    answered: bool | None

    @property
    def duration_s(self) -> int:
        return max(0, int((self.ended_at - self.started_at).total_seconds()))


class ActionService:
    def __init__(
        self,
        store: LocalStore,
        queue: QueueService,
        rules: Rulebook,
        *,
        agent_id: str,
        clock: Clock,
        outbox_changed: Callable[[], None],
        is_online: Callable[[], bool],
        may_reach_server: Callable[[], bool] | None = None,
        api: LeadApi | None = None,
        blocklist_max_age: timedelta = DEFAULT_BLOCKLIST_MAX_AGE,
        fallback_zone: str = "America/Chicago",
    ) -> None:
        self._fallback_zone = fallback_zone
        self._store = store
        self._queue = queue
        self._rules = rules
        self._agent_id = agent_id
        self._clock = clock
        self._outbox_changed = outbox_changed
        self._is_online = is_online
        # Worth trying a request (online, or catching up after a reconnect or on the first
        # download), as opposed to known to be offline.
        self._may_reach_server = may_reach_server or is_online
        self._api = api
        self._blocklist_max_age = blocklist_max_age
        self._undoable: dict[str, _Undoable] = {}

    # Helpers

    def _lead(self, lead_id: str) -> Lead:
        lead = self._store.repository.get_lead(lead_id)
        if lead is None:
            raise UnknownLead(f"lead {lead_id} is not in the local store")
        return lead

    def _done(self, lead_ids: tuple[str, ...]) -> bool:
        """After a local write: refresh the queue, push. Returns whether it waits for the
        network ("will send when online")."""
        self._queue.refresh(lead_ids)
        self._outbox_changed()
        return not self._is_online()

    def _next_item(self, exclude: str) -> WorkItem | None:
        items = self._queue.items()
        for item in items:
            if item.lead_id != exclude:
                return item
        return items[0] if items else None

    # Compliance at the moment of the click

    def blocklist_age(self) -> timedelta | None:
        """How old the local opt-out / do-not-call data is (None: never synced)."""
        repository = self._store.repository
        stamps = [repository.freshness(Dataset.OPT_OUTS), repository.freshness(Dataset.DNC)]
        if None in stamps:
            return None  # never downloaded whole: nothing to vouch for an offline call
        return self._clock() - min(stamp for stamp in stamps if stamp is not None)

    def check_contact(self, lead_id: str, channel: Channel) -> ContactDecision:
        """May the agent contact this lead on `channel` now? Calls also need fresh local
        opt-out / do-not-call data (offline, the last sync must be recent)."""
        now = self._clock()
        lead = self._lead(lead_id)
        history = self._store.repository.history(lead_id)
        # The zones as the queue resolves them (same rules, same fallback), without deriving the
        # lead's whole detail (its cadence plan) for them.
        zone = resolve_zones(lead, self._rules.zip_table, fallback_zone=self._fallback_zone)
        decision = check_contact(
            self._rules.calling_rules,
            lead,
            history,
            channel,
            now,
            resolution=zone,
            # The list holds phone numbers: an email address is never on it.
            dnc_numbers=self._store.repository.dnc() if channel is not Channel.EMAIL else _NO_DNC,
        )
        if channel is Channel.CALL and not self._is_online():
            age = self.blocklist_age()
            if age is None or age > self._blocklist_max_age:
                when = "never" if age is None else f"{int(age.total_seconds() // 60)} min ago"
                stale = BlockReason(
                    BlockCode.DO_NOT_CALL,
                    "offline, and the opt-out and do-not-call lists were last updated "
                    f"{when}: calls wait until the connection is back",
                )
                decision = replace(decision, allowed=False, reasons=(*decision.reasons, stale))
        return decision

    # Dispositions, calls, appointments, callbacks

    async def log_disposition(
        self,
        lead_id: str,
        code: str,
        *,
        scheduled_for: datetime | None = None,
        note: str = "",
        call: CallRecord | DialerCallRecord | None = None,
        at: datetime | None = None,
        undo_window: timedelta | None = None,
        channel: Channel | None = None,
    ) -> DispositionResult:
        """Record the outcome (and the call it closes, if any); the cadence moves on at once.

        `call` is the dialer's record (app.telephony.record.CallRecord; a hand-off call that
        cannot tell whether anyone answered takes it from the disposition) or a plain one.
        With `undo_window`, the outbox holds the action back that long: `undo_disposition`
        with the result's `undo_token` takes it back (locally and before the server sees it).
        `channel` CALL without a `call`: the agent dialled some other way (a desk phone), so an
        attempt disposition records that call too (answered when the outcome says so)."""
        at = at or self._clock()
        lead = self._lead(lead_id)
        disposition = self._rules.dispositions.get(code)
        activities: list[Activity] = []
        if isinstance(call, DialerCallRecord):
            if call.answered is None:
                answered = bool(disposition.flags & DispositionFlag.HUMAN_CONTACT)
                call = replace(call, answered=answered)
            activities.append(call.activity(lead_id=lead_id, agent_id=self._agent_id))
        elif (
            call is None and channel is Channel.CALL and disposition.flags & DispositionFlag.ATTEMPT
        ):
            # A moment before the outcome: a call at the same instant as a callback request
            # would count as already serving that callback.
            answered = bool(disposition.flags & DispositionFlag.HUMAN_CONTACT)
            phone = lead.primary_phone
            activities.append(
                Activity(
                    id=str(uuid.uuid4()),
                    lead_id=lead_id,
                    kind=ActivityKind.CALL,
                    at=at - timedelta(seconds=1),
                    direction=Direction.OUTBOUND,
                    agent_id=self._agent_id,
                    phone=phone.e164 if phone else None,
                    answered=answered,
                    duration_s=0 if answered else None,
                )
            )
        elif call is not None:
            activities.append(
                Activity(
                    id=str(uuid.uuid4()),
                    lead_id=lead_id,
                    kind=ActivityKind.CALL,
                    at=call.started_at,
                    direction=Direction.OUTBOUND,
                    agent_id=self._agent_id,
                    phone=call.number,
                    answered=call.answered,
                    duration_s=call.duration_s if call.answered else None,
                )
            )
        activities.append(
            disposition_activity(
                self._rules.dispositions,
                code,
                lead_id,
                at,
                activity_id=str(uuid.uuid4()),
                scheduled_for=scheduled_for,
                agent_id=self._agent_id,
                phone=call.number if call else None,
                body=note,
            )
        )
        updated = _lead_after(lead, disposition.flags)
        hold = undo_window if undo_window and undo_window > timedelta(0) else None
        # The hold runs on this PC's clock (the outbox's); a little margin over the window
        # shown, so an undo clicked in its last second still finds the items here.
        not_before = datetime.now(UTC) + hold + UNDO_MARGIN if hold else None
        items = self._store.outbox.record_activities(
            activities, lead_update=updated if updated != lead else None, not_before=not_before
        )
        token: str | None = None
        until: datetime | None = None
        if hold is not None:
            token = str(uuid.uuid4())
            until = at + hold
            self._forget_expired()
            self._undoable[token] = _Undoable(
                lead_id, disposition.label, tuple(i.id for i in items), lead, until
            )
        queued = self._done((lead_id,))
        lead_item = self._queue.item_for(lead_id)
        next_text = ""
        if lead_id in self._queue:
            detail = self._queue.detail(lead_id)
            next_text = describe_next(detail.plan, detail.zone.primary_zone)
        return DispositionResult(
            ok=True,
            message=f"{disposition.label} logged" + (f" ({WILL_SEND})" if queued else ""),
            lead_id=lead_id,
            code=code,
            label=disposition.label,
            next_text=next_text,
            lead_item=lead_item,
            next_item=self._next_item(lead_id),
            activity_ids=tuple(a.id for a in activities),
            queued=queued,
            undo_token=token,
            undo_until=until,
        )

    def _forget_expired(self) -> None:
        now = self._clock()
        for token, entry in list(self._undoable.items()):
            if entry.until + UNDO_MARGIN < now:
                del self._undoable[token]

    async def undo_disposition(self, token: str) -> ActionResult:
        """Take back a disposition logged with an `undo_window`, while the server has not seen
        it: its activities and outbox items go, and the lead is as it was — in one transaction.
        Refused (ok=False) once the window passed or the items were sent."""
        entry = self._undoable.pop(token, None)
        if entry is None or self._clock() > entry.until + UNDO_MARGIN:
            return ActionResult(False, "too late to undo: it was already sent")
        if not self._store.outbox.withdraw(list(entry.outbox_ids), lead_before=entry.lead_before):
            return ActionResult(False, "too late to undo: it was already sent", entry.lead_id)
        self._queue.refresh((entry.lead_id,))
        self._outbox_changed()
        return ActionResult(True, f"{entry.label} undone", entry.lead_id)

    def _code_with(self, flag: DispositionFlag) -> str:
        for disposition in self._rules.dispositions.with_flag(flag):
            if disposition.needs_time:
                return disposition.code
        raise LookupError(f"the disposition catalog has no timed {flag.name} disposition")

    async def set_appointment(
        self, lead_id: str, when: datetime, *, note: str = ""
    ) -> DispositionResult:
        """The customer agreed to come in at `when` (the server schedules the reminders)."""
        code = self._code_with(DispositionFlag.APPOINTMENT_SET)
        return await self.log_disposition(lead_id, code, scheduled_for=when, note=note)

    async def set_callback(
        self, lead_id: str, when: datetime, *, note: str = ""
    ) -> DispositionResult:
        """The customer asked to be called back at `when`."""
        code = self._code_with(DispositionFlag.CALLBACK)
        return await self.log_disposition(lead_id, code, scheduled_for=when, note=note)

    async def add_note(self, lead_id: str, text: str) -> ActionResult:
        if not text.strip():
            return ActionResult(False, "a note needs some text", lead_id)
        self._lead(lead_id)
        activity = Activity(
            id=str(uuid.uuid4()),
            lead_id=lead_id,
            kind=ActivityKind.NOTE,
            at=self._clock(),
            agent_id=self._agent_id,
            body=text.strip(),
        )
        item = self._store.outbox.record_activity(activity)
        queued = self._done((lead_id,))
        return ActionResult(
            True,
            "Note saved" + (f" ({WILL_SEND})" if queued else ""),
            lead_id,
            (activity.id,),
            (item.id,),
            queued,
        )

    # Texts and e-mails

    async def send_text(
        self, lead_id: str, body: str, *, template_id: str | None = None
    ) -> ActionResult:
        return await self._send(lead_id, Channel.TEXT, body, None, template_id)

    async def send_email(
        self, lead_id: str, subject: str, body: str, *, template_id: str | None = None
    ) -> ActionResult:
        if not subject.strip():
            return ActionResult(False, "an e-mail needs a subject", lead_id)
        return await self._send(lead_id, Channel.EMAIL, body, subject, template_id)

    async def _send(
        self,
        lead_id: str,
        channel: Channel,
        body: str,
        subject: str | None,
        template_id: str | None,
    ) -> ActionResult:
        name = "Text" if channel is Channel.TEXT else "E-mail"
        if not body.strip():
            return ActionResult(False, f"the {name.lower()} is empty", lead_id)
        lead = self._lead(lead_id)
        decision = self.check_contact(lead_id, channel)
        if not decision.allowed:
            return ActionResult(False, f"{name} not sent: {decision.message}", lead_id)
        message_id = str(uuid.uuid4())
        target = lead.text_phone if channel is Channel.TEXT else None
        local = Activity(
            id=message_id,
            lead_id=lead_id,
            kind=ActivityKind.TEXT if channel is Channel.TEXT else ActivityKind.EMAIL,
            at=self._clock(),
            direction=Direction.OUTBOUND,
            agent_id=self._agent_id,
            phone=target.e164 if target else None,
            body=body,
        )
        item = self._store.outbox.record_message(
            lead_id=lead_id,
            channel=channel,
            body=body,
            subject=subject,
            template_id=template_id,
            message_id=message_id,
            local_activity=local,
        )
        queued = self._done((lead_id,))
        message = f"{name} {WILL_SEND}" if queued else f"{name} sending"
        return ActionResult(True, message, lead_id, (message_id,), (item.id,), queued)

    # Presence

    async def pause(self, reason: str) -> ActionResult:
        """Pause (break, lunch, meeting, training, coaching, other): no new leads routed."""
        reason = reason.strip().lower()
        if not reason:
            return ActionResult(False, "choose a reason to pause")
        item = self._store.outbox.record_presence(PresenceState.PAUSED.value, reason)
        queued = self._done(())
        return ActionResult(True, f"Paused: {reason}", None, (), (item.id,), queued)

    async def resume(self) -> ActionResult:
        item = self._store.outbox.record_presence(PresenceState.AVAILABLE.value)
        queued = self._done(())
        return ActionResult(True, "Available", None, (), (item.id,), queued)

    async def set_presence(
        self, state: PresenceState, *, reason: str | None = None, lead_id: str | None = None
    ) -> ActionResult:
        item = self._store.outbox.record_presence(state.value, reason, lead_id=lead_id)
        queued = self._done(())
        return ActionResult(True, state.value, lead_id, (), (item.id,), queued)

    # Lead edits

    async def edit_lead(self, lead_id: str, fields: Mapping[str, Any]) -> ActionResult:
        """Change name, contacts, address, vehicles, timeframe or comments (PATCH on the base
        version this PC holds; a 409 later becomes a conflict the agent resolves)."""
        stored = self._store.repository.stored_lead(lead_id)
        if stored is None:
            raise UnknownLead(f"lead {lead_id} is not in the local store")
        item = self._store.outbox.record_lead_edit(lead_id, stored.lead.version, fields)
        queued = self._done((lead_id,))
        return ActionResult(
            True, "Saved" + (f" ({WILL_SEND})" if queued else ""), lead_id, (), (item.id,), queued
        )

    # The pool

    async def claim(self, lead_id: str) -> ActionResult:
        """Take a lead from the unassigned pool. Needs the server (first claim wins)."""
        if self._api is None or not self._may_reach_server():
            return ActionResult(False, "claiming a lead needs a connection to the server", lead_id)
        try:
            summary = await self._api.claim(lead_id)
        except Rejected as exc:
            if exc.status in (404, 409):
                # Somebody else has it: it leaves this queue now (the server does not tell
                # other agents when a pool lead is claimed).
                self._store.repository.apply_changes(
                    [
                        {
                            "entity": "lead_removed",
                            "data": {"lead_id": lead_id, "reason": "claimed by somebody else"},
                        }
                    ],
                    None,  # learnt from the claim, not the feed: the cursor stays
                )
                self._queue.refresh((lead_id,))
                return ActionResult(False, f"somebody else took this lead: {exc}", lead_id)
            return ActionResult(False, f"could not claim the lead: {exc}", lead_id)
        except SignInExpired:
            return ActionResult(False, "your sign-in expired: sign in again to claim", lead_id)
        except NetworkError:
            return ActionResult(False, "claiming a lead needs a connection to the server", lead_id)
        except ApiError as exc:
            return ActionResult(False, f"could not claim the lead: {exc}", lead_id)
        if isinstance(summary.get("lead"), Mapping):
            self._store.repository.apply_changes([{"entity": "lead", "data": summary}], None)
        self._queue.refresh((lead_id,))
        return ActionResult(True, "The lead is yours", lead_id)


def _lead_after(lead: Lead, flags: DispositionFlag) -> Lead:
    """The lead's local state after a disposition: opt-outs and do-not-call win at once."""
    if flags & DispositionFlag.DO_NOT_CONTACT:
        return replace(lead, status=LeadStatus.DO_NOT_CONTACT, do_not_call=True)
    if flags & DispositionFlag.SOLD:
        return replace(lead, status=LeadStatus.SOLD)
    if flags & DispositionFlag.NOT_INTERESTED and lead.status is not LeadStatus.SOLD:
        return replace(lead, status=LeadStatus.LOST)
    if flags & DispositionFlag.APPOINTMENT_SET:
        return replace(lead, status=LeadStatus.APPOINTMENT)
    if flags & DispositionFlag.HUMAN_CONTACT and lead.status in (
        LeadStatus.NEW,
        LeadStatus.WORKING,
    ):
        return replace(lead, status=LeadStatus.CONTACTED)
    if flags & DispositionFlag.ATTEMPT and lead.status is LeadStatus.NEW:
        return replace(lead, status=LeadStatus.WORKING)
    return lead
