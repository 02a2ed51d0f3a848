"""What the widgets need from the workstation core: frozen data in, plain callables out.

The composition root (ui/composition.py) hands each widget objects that satisfy these protocols.
Today the demo passes `ui.demo_backend.DemoBackend`; the real `app.services` / `app.sync` /
`app.telephony` objects plug in at the same places (thin adapters at most). Nothing here imports Qt.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from app.domain.compliance import ContactDecision
from app.domain.dispositions import AfterEvent
from app.domain.leads import Channel
from app.domain.priority import WorkItem
from app.services.workqueue import LeadDetail

Clock = Callable[[], datetime]

# --------------------------------------------------------------------------- sync and presence


class Connectivity(StrEnum):
    ONLINE = "online"
    SYNCING = "syncing"
    OFFLINE = "offline"
    SIGN_IN_EXPIRED = "sign_in_expired"
    LOCAL = "local"  # the demo: in-process data, no lead API


@dataclass(frozen=True, slots=True)
class SyncView:
    """What the status bar shows about sync (mirror of app.sync's SyncState)."""

    connectivity: Connectivity = Connectivity.ONLINE
    pending: int = 0  # local changes not yet acknowledged by the server
    last_sync: datetime | None = None
    last_error: str = ""


class PresenceState(StrEnum):
    AVAILABLE = "available"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    PAUSED = "paused"


PAUSE_REASONS = ("Break", "Lunch", "Meeting", "Training", "Coaching", "Personal")


@dataclass(frozen=True, slots=True)
class Presence:
    state: PresenceState
    since: datetime
    reason: str = ""  # pause reason


# --------------------------------------------------------------------------- calls


class CallPhase(StrEnum):
    DIALING = "dialing"
    RINGING = "ringing"
    CONNECTED = "connected"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class CallEvent:
    """A dialer's report on the current call. `outcome` is set when the call ends."""

    phase: CallPhase
    lead_id: str
    number: str  # E.164
    at: datetime
    outcome: AfterEvent | None = None  # what happened, when the backend knows
    message: str = ""


@dataclass(frozen=True, slots=True)
class CallRecord:
    """A finished call, passed along with the disposition that closes it."""

    lead_id: str
    number: str
    started_at: datetime
    ended_at: datetime
    answered: bool | None  # None: the backend cannot tell (a tel: hand-off)
    outcome: AfterEvent | None = None

    @property
    def duration_s(self) -> int:
        return max(0, int((self.ended_at - self.started_at).total_seconds()))


class Dialer(Protocol):
    """A telephony backend. It reports progress by calling the `on_event` it was given."""

    name: str

    def dial(self, lead_id: str, number: str) -> None: ...

    def hang_up(self) -> None: ...

    def set_listener(self, on_event: Callable[[CallEvent], None]) -> None: ...


# --------------------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class DispositionRequest:
    lead_id: str
    code: str
    at: datetime
    channel: Channel  # the channel the agent worked (decides which attempt is recorded)
    scheduled_for: datetime | None = None  # callbacks and appointments
    note: str = ""
    call: CallRecord | None = None


@dataclass(frozen=True, slots=True)
class DispositionResult:
    lead_id: str
    code: str
    label: str
    next_text: str  # "Text #1 in 10 min · call #2 at 4:30 PM their time"
    activity_ids: tuple[str, ...] = ()
    undo_token: str | None = None  # pass to `undo` while the Undo button shows


@dataclass(frozen=True, slots=True)
class MessageRequest:
    lead_id: str
    channel: Channel  # TEXT or EMAIL
    body: str
    at: datetime
    subject: str = ""
    template_id: str | None = None


@dataclass(frozen=True, slots=True)
class ActionResult:
    ok: bool
    message: str  # what to tell the agent, e.g. "Text sent" or the reason it was refused
    activity_ids: tuple[str, ...] = ()


class LeadSource(Protocol):
    """Reads: the ranked queue and one lead's details (WorkQueue satisfies this)."""

    def items(self, now: datetime, *, search: str = "") -> list[WorkItem]: ...

    def detail(self, lead_id: str, now: datetime) -> LeadDetail: ...

    def __len__(self) -> int: ...


class LeadActions(Protocol):
    """Writes: every use case the agent triggers. Each returns frozen data; none raises for a
    refusal the agent should read (that comes back as `ok=False` with the reason)."""

    def log_disposition(self, request: DispositionRequest) -> DispositionResult: ...

    def undo(self, token: str) -> bool: ...

    def send_message(self, request: MessageRequest) -> ActionResult: ...

    def add_note(self, lead_id: str, text: str, at: datetime) -> ActionResult: ...

    def check_contact(self, lead_id: str, channel: Channel, now: datetime) -> ContactDecision: ...

    def set_presence(self, presence: Presence) -> None: ...


# --------------------------------------------------------------------------- sign-in


@dataclass(frozen=True, slots=True)
class SignInRequest:
    server_url: str
    username: str
    password: str
    remember: bool


@dataclass(frozen=True, slots=True)
class SignInResult:
    ok: bool
    message: str = ""
    agent_name: str = ""


SignIn = Callable[[SignInRequest], SignInResult]
