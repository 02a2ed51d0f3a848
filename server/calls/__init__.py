"""Server-side call control: the lead API rings the agent's phone and bridges it to the customer
through a provider, and the provider's call events come back as call changes, presence and, at the
end, one CALL activity on the change feed.

Every provider answers `start(call) -> provider call id` (raising ProviderRefused or
ProviderUnavailable) and `hang_up(provider_call_id)`; it reports progress by calling the sink it
was built with (`apply_event`, server/calls/service.py) with ProviderEvents — the Twilio adapter
from its status-callback webhook, the AMI adapter from its event stream, the demo provider from
its simulation threads.

A call the provider stops reporting on never stays open: open_call schedules a "call_watch" job
(server/scheduler.py) that ends a call still unanswered after Settings.call_setup_timeout as
"failed", and one still "answered" after Settings.call_max_duration as "lost"; the AMI adapter
ends its calls as "lost" at once when its manager connection drops.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

# The end causes, the same words as the workstation's app.telephony.EndCause.
AGENT_HANGUP = "agent_hangup"
CUSTOMER_HANGUP = "customer_hangup"
CANCELLED = "cancelled"
NO_ANSWER = "no_answer"
BUSY = "busy"
DECLINED = "declined"
VOICEMAIL = "voicemail"
INVALID_NUMBER = "invalid_number"
UNREACHABLE = "unreachable"
FAILED = "failed"
AGENT_UNREACHABLE = "agent_unreachable"  # the agent's own phone did not answer
COMPLETED = "completed"  # answered and ended; who hung up is not known
LOST = "lost"  # the provider stopped reporting (connection dropped, events never came)

RINGING = "ringing"
ANSWERED = "answered"
ENDED = "ended"
DIALING = "dialing"
STATE_ORDER = {DIALING: 0, RINGING: 1, ANSWERED: 2, ENDED: 3}


class ProviderRefused(Exception):
    """The provider will not place this call (bad number, account not allowed)."""


class ProviderUnavailable(Exception):
    """The provider could not be reached; nothing was dialed."""


@dataclass(frozen=True, slots=True)
class OutboundCall:
    id: str  # our call id
    agent_phone: str  # what rings first: a phone number (Twilio) or the agent's device (AMI)
    customer_phone: str  # E.164
    caller_id: str  # the store's number the customer sees


@dataclass(frozen=True, slots=True)
class ProviderEvent:
    call_id: str | None  # ours, when the provider echoes it back
    provider_call_id: str | None
    state: str  # ringing | answered | ended
    at: datetime
    cause: str = ""  # for ended: one of the causes above
    detail: str = ""  # the provider's own words (status, SIP or Q.850 code)
    duration_s: int | None = None  # the provider's talk time, when it reports one
    recording: str | None = None
    # Who answered, when the provider detects it (Twilio AMD: human, machine_start,
    # machine_end_beep, fax, unknown ...). A machine's answer ends the call as voicemail.
    answered_by: str = ""


def machine_answered(answered_by: str) -> bool:
    """An answering machine or fax picked up (Twilio's AnsweredBy values)."""
    return answered_by.startswith("machine_") or answered_by == "fax"


EventSink = Callable[[ProviderEvent], None]


class CallProvider(Protocol):
    name: str

    def start(self, call: OutboundCall) -> str: ...

    def hang_up(self, provider_call_id: str) -> None: ...

    def close(self) -> None: ...
