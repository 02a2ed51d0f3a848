"""What the widgets need from the workstation core, and nothing the core already defines.

The widgets receive the core's own frozen types: `app.sync.engine.SyncStatus` / `Connectivity`,
`app.services.actions.DispositionResult` / `ActionResult` / `PresenceState`, the dialer events
of `app.telephony.model`, `app.domain.priority.WorkItem`, `app.services.workqueue.LeadDetail`.
This module only names the two roles the window is handed (reads and writes: satisfied by
`WorkQueue` and `ActionService` of a running `app.services.workstation.Workstation`, or by the
in-process preview in ui/demo_backend.py), and the few things that exist only on screen.

An action method may return its result or an awaitable of it: the window runs awaitables on the
asyncio loop (qasync) and shows the result when it arrives (see ui/asyncs.py). Nothing here
imports Qt.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from app.domain.compliance import ContactDecision
from app.domain.leads import Channel
from app.domain.priority import WorkItem
from app.services.actions import ActionResult, DispositionResult, PresenceState
from app.services.workqueue import LeadDetail
from app.telephony.record import CallRecord

Clock = Callable[[], datetime]

PAUSE_REASONS = ("Break", "Lunch", "Meeting", "Training", "Coaching", "Other")


@dataclass(frozen=True, slots=True)
class Presence:
    """The agent's state as the status bar shows it (with when it began, for the timer)."""

    state: PresenceState
    since: datetime
    reason: str = ""  # pause reason, one of PAUSE_REASONS


class LeadSource(Protocol):
    """Reads: the ranked queue and one lead's details (app.services.workqueue.WorkQueue)."""

    def items(self, now: datetime, *, search: str = "") -> list[WorkItem]: ...

    def ranked(
        self, now: datetime, *, search: str = ""
    ) -> tuple[list[WorkItem], list[tuple[Any, ...]]]:
        """`items()` with their sort keys (app.services.ranking): the queue model's
        incremental path."""
        ...

    def detail(self, lead_id: str, now: datetime) -> LeadDetail: ...

    def item_for(self, lead_id: str) -> WorkItem | None:
        """The lead's open work item now (None: nothing to do, or not in the queue): the queue
        model updates the rows of named leads with it."""
        ...

    @property
    def loading(self) -> bool:
        """Rows come from the start-up snapshot while the leads behind them are derived."""
        ...

    def __len__(self) -> int: ...


class LeadActions(Protocol):
    """Writes: the subset of app.services.actions.ActionService the window uses. A refusal the
    agent should read comes back as `ok=False` with the reason, never as an exception."""

    def check_contact(self, lead_id: str, channel: Channel) -> ContactDecision: ...

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
    ) -> DispositionResult | Awaitable[DispositionResult]: ...

    def undo_disposition(self, token: str) -> ActionResult | Awaitable[ActionResult]: ...

    def send_text(
        self, lead_id: str, body: str, *, template_id: str | None = None
    ) -> ActionResult | Awaitable[ActionResult]: ...

    def send_email(
        self, lead_id: str, subject: str, body: str, *, template_id: str | None = None
    ) -> ActionResult | Awaitable[ActionResult]: ...

    def add_note(self, lead_id: str, text: str) -> ActionResult | Awaitable[ActionResult]: ...

    def set_presence(
        self, state: PresenceState, *, reason: str | None = None, lead_id: str | None = None
    ) -> ActionResult | Awaitable[ActionResult]: ...


# --------------------------------------------------------------------------- sign-in


@dataclass(frozen=True, slots=True)
class SignInRequest:
    """What the sign-in form holds."""

    server_url: str
    username: str
    password: str
    remember: bool


@dataclass(frozen=True, slots=True)
class SignInResult:
    ok: bool
    message: str = ""
    agent_name: str = ""


SignIn = Callable[[SignInRequest], SignInResult | Awaitable[SignInResult]]

__all__ = [
    "PAUSE_REASONS",
    "ActionResult",
    "Clock",
    "DispositionResult",
    "LeadActions",
    "LeadSource",
    "Presence",
    "PresenceState",
    "SignIn",
    "SignInRequest",
    "SignInResult",
]
