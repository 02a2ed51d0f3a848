"""A finished call as the domain records it: one CALL activity, whatever the backend.

`CallRecord.from_events` folds one call's events (dialing … ended) into start, ring, answer, end,
talk time and outcome; `.activity(...)` is the domain Activity to append (direction outbound,
at = dial time, answered, duration_s = talk time, the number, and a one-line summary in `body`).

Hand-off calls report no state: their end is the agent's disposition time (`ended_at`), and whether
anyone answered comes from the disposition's HUMAN_CONTACT flag.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from app.domain.activities import Activity, ActivityKind, Direction, DispositionFlag
from app.domain.dispositions import AfterEvent
from app.telephony.model import (
    CallAnswered,
    CallDialing,
    CallEnded,
    CallEvent,
    CallRinging,
    EndCause,
    TelephonyError,
)


@dataclass(frozen=True, slots=True)
class CallRecord:
    call_id: str
    number: str
    lead_id: str | None
    backend: str
    started_at: datetime
    ringing_at: datetime | None
    answered_at: datetime | None
    ended_at: datetime
    outcome: EndCause
    detail: str
    answered: bool | None  # None: not known (hand-off without a disposition saying so)
    recording: str | None = None

    @property
    def duration_s(self) -> int:
        """Talk time; for a hand-off call known to be answered, dial to disposition."""
        start = self.answered_at
        if start is None and self.answered and self.outcome is EndCause.HANDED_OFF:
            start = self.started_at
        if start is None:
            return 0
        return max(0, round((self.ended_at - start).total_seconds()))

    @property
    def total_s(self) -> int:
        return max(0, round((self.ended_at - self.started_at).total_seconds()))

    @property
    def after_event(self) -> AfterEvent | None:
        """The disposition to pre-select after this call (None: nothing known)."""
        if self.outcome is EndCause.HANDED_OFF:
            if self.answered is None:
                return None
            return AfterEvent.CALL_ANSWERED if self.answered else AfterEvent.CALL_UNANSWERED
        return self.outcome.after_event

    @property
    def summary(self) -> str:
        """'Call: busy (486 Busy Here) · rang 4 s' — one line for the lead's timeline."""
        parts = [f"Call: {self.outcome.label}"]
        if self.detail and self.outcome is not EndCause.HANDED_OFF:
            parts[0] += f" ({self.detail})"
        if self.answered_at is not None:
            parts.append(f"talk {_clock(self.duration_s)}")
            ring_s = round((self.answered_at - self.started_at).total_seconds())
            parts.append(f"answered after {ring_s} s")
        elif self.outcome is EndCause.HANDED_OFF:
            parts.append(f"{_clock(self.total_s)} until the disposition")
        else:
            parts.append(f"rang {self.total_s} s")
        if self.recording:
            parts.append(f"recording {self.recording}")
        return " · ".join(parts)

    @classmethod
    def from_events(
        cls,
        events: Iterable[CallEvent],
        *,
        ended_at: datetime | None = None,
        disposition_flags: DispositionFlag | None = None,
    ) -> CallRecord:
        """Fold one call's events. For a hand-off call, `ended_at` (the disposition time) ends it
        when no CallEnded came, and `disposition_flags` say whether anyone answered."""
        dialing: CallDialing | None = None
        ringing: CallRinging | None = None
        answered: CallAnswered | None = None
        ended: CallEnded | None = None
        call_ids = set()
        for event in events:
            call_ids.add(event.call_id)
            if isinstance(event, CallDialing):
                dialing = event
            elif isinstance(event, CallRinging):
                ringing = ringing or event
            elif isinstance(event, CallAnswered):
                answered = answered or event
            elif isinstance(event, CallEnded):
                ended = event
        if len(call_ids) > 1:
            raise TelephonyError(f"events of several calls given: {sorted(call_ids)}")
        if dialing is None:
            raise TelephonyError("a call record needs the call's dialing event")
        if ended is not None:
            outcome, detail, end_at = ended.cause, ended.detail, ended.at
            if outcome is EndCause.HANDED_OFF and ended_at is not None:
                end_at = max(ended_at, dialing.at)
            recording = ended.recording
        elif ended_at is not None:
            outcome, detail, end_at, recording = EndCause.HANDED_OFF, "", ended_at, None
            end_at = max(end_at, dialing.at)
        else:
            raise TelephonyError("the call has not ended: give ended_at (the disposition time)")
        was_answered: bool | None
        if answered is not None or outcome.answered:
            was_answered = True
        elif outcome is EndCause.HANDED_OFF:
            was_answered = (
                None
                if disposition_flags is None
                else bool(disposition_flags & DispositionFlag.HUMAN_CONTACT)
            )
        else:
            was_answered = False
        return cls(
            call_id=dialing.call_id,
            number=dialing.number,
            lead_id=dialing.lead_id,
            backend=dialing.backend,
            started_at=dialing.at,
            ringing_at=ringing.at if ringing else None,
            answered_at=answered.at if answered else None,
            ended_at=end_at,
            outcome=outcome,
            detail=detail,
            answered=was_answered,
            recording=recording,
        )

    def activity(
        self, *, lead_id: str | None = None, agent_id: str | None = None, activity_id: str = ""
    ) -> Activity:
        """The CALL activity to append. Its id defaults to the call id (a UUID), so recording
        the same call twice is the same append-only record."""
        lead = lead_id or self.lead_id
        if not lead:
            raise TelephonyError("the call has no lead: give lead_id")
        return Activity(
            id=activity_id or _as_uuid(self.call_id),
            lead_id=lead,
            kind=ActivityKind.CALL,
            at=self.started_at,
            direction=Direction.OUTBOUND,
            agent_id=agent_id,
            phone=self.number,
            duration_s=self.duration_s,
            answered=self.answered,
            body=self.summary,
        )


def _as_uuid(call_id: str) -> str:
    try:
        return str(uuid.UUID(call_id))
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"bdc-call:{call_id}"))


def _clock(seconds: int) -> str:
    return f"{seconds // 60}:{seconds % 60:02d}"
