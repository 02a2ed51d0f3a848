"""The one dialer interface every backend speaks, and the call events it reports.

A backend (hand-off to the desktop's tel: handler, baresip over ctrl_tcp, the demo softphone)
takes a `DialRequest`, answers with a `CallHandle` at once, and then reports what happens as
frozen events, in this order for one call:

    CallDialing → [CallRinging] → [CallAnswered] → CallEnded (always last, exactly once)

Listeners are plain callables run on the asyncio loop that drives the backend (with qasync that is
the Qt thread, so the UI may touch widgets from a listener). A listener that raises is logged and
does not stop the others.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from app.domain.dispositions import AfterEvent
from app.domain.leads import Lead
from app.domain.phones import Phone, normalize_e164

log = logging.getLogger("bdc.telephony")

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class CallState(StrEnum):
    DIALING = "dialing"
    RINGING = "ringing"
    ANSWERED = "answered"
    ENDED = "ended"


class EndCause(StrEnum):
    """Why a call ended: what the agent sees and what pre-selects the disposition."""

    AGENT_HANGUP = "agent_hangup"  # answered, the agent hung up
    CUSTOMER_HANGUP = "customer_hangup"  # answered, the customer hung up
    CANCELLED = "cancelled"  # the agent hung up before anyone answered
    NO_ANSWER = "no_answer"  # rang out
    BUSY = "busy"  # the far end was busy or rejected the call (486/600)
    DECLINED = "declined"  # the far end declined (603)
    VOICEMAIL = "voicemail"  # a machine answered
    INVALID_NUMBER = "invalid_number"  # not in service, unallocated (404/410/484/604)
    UNREACHABLE = "unreachable"  # nothing answered on the network (refused, timed out)
    FAILED = "failed"  # the network or provider failed the call (5xx, other errors)
    SOFTPHONE_LOST = "softphone_lost"  # the softphone stopped or was restarted mid-call
    HANDED_OFF = "handed_off"  # given to another program: the outcome is not known here
    # Server-side calls (dialer "server"): the lead API's own words.
    COMPLETED = "completed"  # answered and ended; the provider did not say who hung up
    AGENT_UNREACHABLE = "agent_unreachable"  # the agent's own phone did not answer
    LOST = "lost"  # the calling service stopped reporting; the server ended the call

    @property
    def answered(self) -> bool:
        return self in (EndCause.AGENT_HANGUP, EndCause.CUSTOMER_HANGUP, EndCause.COMPLETED)

    @property
    def after_event(self) -> AfterEvent | None:
        """The disposition hint for this outcome (None: nothing is known)."""
        return _AFTER.get(self)

    @property
    def label(self) -> str:
        return _LABELS[self]


_AFTER = {
    EndCause.AGENT_HANGUP: AfterEvent.CALL_ANSWERED,
    EndCause.CUSTOMER_HANGUP: AfterEvent.CALL_ANSWERED,
    EndCause.CANCELLED: AfterEvent.CALL_UNANSWERED,
    EndCause.NO_ANSWER: AfterEvent.CALL_UNANSWERED,
    EndCause.BUSY: AfterEvent.CALL_BUSY,
    EndCause.DECLINED: AfterEvent.CALL_UNANSWERED,
    EndCause.VOICEMAIL: AfterEvent.CALL_VOICEMAIL,
    EndCause.INVALID_NUMBER: AfterEvent.CALL_FAILED,
    EndCause.UNREACHABLE: AfterEvent.CALL_FAILED,
    EndCause.FAILED: AfterEvent.CALL_FAILED,
    EndCause.COMPLETED: AfterEvent.CALL_ANSWERED,
}
_LABELS = {
    EndCause.AGENT_HANGUP: "ended (you hung up)",
    EndCause.CUSTOMER_HANGUP: "ended (customer hung up)",
    EndCause.CANCELLED: "cancelled before an answer",
    EndCause.NO_ANSWER: "no answer",
    EndCause.BUSY: "busy",
    EndCause.DECLINED: "declined",
    EndCause.VOICEMAIL: "voicemail",
    EndCause.INVALID_NUMBER: "number not in service",
    EndCause.UNREACHABLE: "could not be reached",
    EndCause.FAILED: "call failed",
    EndCause.SOFTPHONE_LOST: "softphone stopped during the call",
    EndCause.HANDED_OFF: "handed to the softphone",
    EndCause.COMPLETED: "ended",
    EndCause.AGENT_UNREACHABLE: "your phone did not answer",
    EndCause.LOST: "call lost (its end was never reported)",
}


class TelephonyError(Exception):
    """A dial or hang-up the backend could not do; the message is for the agent."""


class DialerUnavailable(TelephonyError):
    """The softphone or service is not reachable now (not running, wrong host/port)."""


class CallInProgress(TelephonyError):
    """One call at a time: hang up the current call first."""


@dataclass(frozen=True, slots=True)
class DialRequest:
    """Who to call. `number` is E.164; the lead and agent ids travel to the call's activity."""

    number: str
    lead_id: str | None = None
    agent_id: str | None = None
    display_name: str = ""  # "Pat Lee", for the softphone's screen and the manager view
    call_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def __post_init__(self) -> None:
        if normalize_e164(self.number, "US") != self.number:
            raise TelephonyError(f"not an E.164 phone number: {self.number!r}")

    @classmethod
    def for_lead(
        cls, lead: Lead, *, phone: Phone | str | None = None, agent_id: str | None = None
    ) -> DialRequest:
        """A request for `lead`'s primary phone (or `phone`). Raises TelephonyError if none."""
        if isinstance(phone, Phone):
            number = phone.e164
        elif isinstance(phone, str):
            number = normalize_e164(phone)
        else:
            primary = lead.primary_phone
            number = primary.e164 if primary is not None else None
        if number is None:
            raise TelephonyError(f"{lead.person.full_name or 'this lead'} has no number to dial")
        return cls(
            number=number,
            lead_id=lead.id,
            agent_id=agent_id,
            display_name=lead.person.full_name,
        )


@dataclass(frozen=True, slots=True)
class CallDialing:
    call_id: str
    at: datetime
    number: str
    lead_id: str | None
    backend: str
    state: CallState = CallState.DIALING


@dataclass(frozen=True, slots=True)
class CallRinging:
    call_id: str
    at: datetime
    state: CallState = CallState.RINGING


@dataclass(frozen=True, slots=True)
class CallAnswered:
    call_id: str
    at: datetime
    state: CallState = CallState.ANSWERED


@dataclass(frozen=True, slots=True)
class CallEnded:
    call_id: str
    at: datetime
    cause: EndCause
    detail: str  # what the backend said, e.g. "486 Rejected" or "Connection refused"
    started_at: datetime  # when dialing began
    answered_at: datetime | None
    recording: str | None = None  # a URL or path of the recording, when the backend made one
    state: CallState = CallState.ENDED

    @property
    def answered(self) -> bool:
        return self.answered_at is not None

    @property
    def duration_s(self) -> int:
        """Talk time (answer to end) when answered; else 0."""
        if self.answered_at is None:
            return 0
        return max(0, round((self.at - self.answered_at).total_seconds()))

    @property
    def total_s(self) -> int:
        """Dial to end, ringing included."""
        return max(0, round((self.at - self.started_at).total_seconds()))


CallEvent = CallDialing | CallRinging | CallAnswered | CallEnded
Listener = Callable[[CallEvent], None]


@dataclass(frozen=True, slots=True)
class CallHandle:
    call_id: str
    request: DialRequest
    started_at: datetime
    backend: str


@runtime_checkable
class Dialer(Protocol):
    """What the services layer calls. Every backend implements exactly this."""

    name: str  # "handoff", "baresip", "demo", "server"
    reports_state: bool  # False: no ringing/answered/ended comes back (hand-off)
    # True: the lead API writes the call's CALL activity itself (server-side calls), so the
    # services must not log one from this dialer's events. Default False.
    records_calls: bool

    async def dial(self, request: DialRequest) -> CallHandle:
        """Start a call; events follow. Raises DialerUnavailable, CallInProgress or
        TelephonyError (nothing was dialed) — never for what the far end does."""
        ...

    async def hang_up(self, call_id: str | None = None) -> None:
        """End the call (the current one when None). A call already ended is not an error."""
        ...

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` with every event; returns a function that unsubscribes it."""
        ...

    @property
    def active_call(self) -> CallHandle | None: ...

    def on_call_change(self, payload: Mapping[str, Any]) -> None:
        """A "call" entity from the sync feed (`SyncEngine.on_entity("call", ...)`): how
        server-side calls report their progress. Default: ignore it (local backends)."""
        ...

    async def close(self) -> None: ...


class EventHub:
    """Listener bookkeeping shared by the backends, and the per-call event order guarantee
    (nothing after CallEnded, one CallEnded per call)."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._ended: set[str] = set()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def emit(self, event: CallEvent) -> bool:
        """Deliver `event`; False (and nothing delivered) when its call already ended."""
        if event.call_id in self._ended:
            return False
        if isinstance(event, CallEnded):
            self._ended.add(event.call_id)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("call event listener failed on %s", type(event).__name__)
        return True
