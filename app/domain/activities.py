"""Append-only activity records: everything that happened to a lead, in order.

Clocks, scoring, cadences, compliance caps and funnel metrics are all computed from these.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import Flag, StrEnum, auto

from app.domain.errors import InvalidActivityError
from app.domain.leads import Channel


class ActivityKind(StrEnum):
    CALL = "call"  # a dial attempt, answered or not
    TEXT = "text"
    EMAIL = "email"
    NOTE = "note"
    DISPOSITION = "disposition"  # the agent's logged outcome of an attempt
    APPOINTMENT = "appointment"  # set / kept / no-show / cancelled, see AppointmentStatus
    SCORE_CHANGE = "score_change"
    ASSIGNMENT = "assignment"
    WEB_VISIT = "web_visit"  # behaviour signals reported by the website
    EMAIL_OPEN = "email_open"
    OPT_OUT = "opt_out"  # consent revoked on every channel
    OPT_IN = "opt_in"  # consent given back (START)


class Direction(StrEnum):
    OUTBOUND = "outbound"
    INBOUND = "inbound"


class AppointmentStatus(StrEnum):
    SET = "set"
    KEPT = "kept"  # the customer showed
    NO_SHOW = "no_show"
    CANCELLED = "cancelled"


class DispositionFlag(Flag):
    """What a disposition means for the funnel and the cadence. A disposition carries several."""

    NONE = 0
    ATTEMPT = auto()  # a contact attempt was made
    HUMAN_CONTACT = auto()  # a real conversation with the customer
    APPOINTMENT_SET = auto()
    CALLBACK = auto()  # the customer asked to be called at a time
    NOT_INTERESTED = auto()
    BAD_NUMBER = auto()
    DO_NOT_CONTACT = auto()
    SOLD = auto()


@dataclass(frozen=True, slots=True)
class Activity:
    id: str  # client-generated UUID
    lead_id: str
    kind: ActivityKind
    at: datetime  # timezone-aware
    direction: Direction | None = None
    automatic: bool = False  # sent by the system (e.g. the acknowledgment email), not an agent
    agent_id: str | None = None
    phone: str | None = None  # E.164 number dialled or texted
    duration_s: int | None = None  # call length once answered
    answered: bool | None = None  # for calls
    disposition: str | None = None  # disposition code, for DISPOSITION
    flags: DispositionFlag = DispositionFlag.NONE  # the disposition's flags when it was logged
    appointment_status: AppointmentStatus | None = None
    scheduled_for: datetime | None = None  # appointment slot or callback time
    body: str = ""
    score: int | None = None  # for SCORE_CHANGE

    def __post_init__(self) -> None:
        if self.at.tzinfo is None or self.at.utcoffset() is None:
            raise InvalidActivityError(f"activity {self.id}: 'at' must carry a time zone")
        if self.duration_s is not None and self.duration_s < 0:
            raise InvalidActivityError(f"activity {self.id}: duration cannot be negative")
        if self.kind is ActivityKind.DISPOSITION and not self.disposition:
            raise InvalidActivityError(f"activity {self.id}: a disposition needs its code")
        if self.kind is ActivityKind.APPOINTMENT and self.appointment_status is None:
            raise InvalidActivityError(f"activity {self.id}: an appointment needs its status")
        if self.scheduled_for is not None and self.scheduled_for.tzinfo is None:
            raise InvalidActivityError(f"activity {self.id}: scheduled_for must carry a time zone")

    @property
    def channel(self) -> Channel | None:
        return _CHANNEL_OF.get(self.kind)

    @property
    def is_outbound_touch(self) -> bool:
        """Any outbound contact, automatic acknowledgment included (the first-touch clock)."""
        return self.channel is not None and self.direction is Direction.OUTBOUND

    @property
    def is_agent_attempt(self) -> bool:
        """A call or a personal text by an agent: only these meet the 5-minute rule."""
        return (
            self.kind in (ActivityKind.CALL, ActivityKind.TEXT)
            and self.direction is Direction.OUTBOUND
            and not self.automatic
        )

    @property
    def is_conversation(self) -> bool:
        """A real conversation: an answered call, or a disposition flagged human contact."""
        if self.kind is ActivityKind.CALL and self.answered:
            return True
        return self.kind is ActivityKind.DISPOSITION and bool(
            self.flags & DispositionFlag.HUMAN_CONTACT
        )


_CHANNEL_OF = {
    ActivityKind.CALL: Channel.CALL,
    ActivityKind.TEXT: Channel.TEXT,
    ActivityKind.EMAIL: Channel.EMAIL,
}


def in_order(activities: Iterable[Activity]) -> list[Activity]:
    """Activities sorted by time, ties kept in the order given (append order).

    Sorted by instant (UTC): Python compares two datetimes that share a tzinfo by wall time,
    ignoring the DST fold, so 1:50 CDT would sort after 1:10 CST, forty minutes later.
    """
    return sorted(activities, key=_instant)


def _instant(activity: Activity) -> datetime:
    return activity.at.astimezone(UTC)


def in_utc(activity: Activity) -> Activity:
    """`activity` with `at` and `scheduled_for` in UTC (itself when they already are).

    Rules that add durations to activity times or compare them call this first: timedelta
    arithmetic on a zoned datetime is wall-clock arithmetic (1:30 CDT + 1 h is 2:30 CST, two real
    hours later on the fall-back night), and zoned comparisons ignore the DST fold.
    """
    scheduled = activity.scheduled_for
    if activity.at.tzinfo is UTC and (scheduled is None or scheduled.tzinfo is UTC):
        return activity
    return replace(
        activity,
        at=activity.at.astimezone(UTC),
        scheduled_for=None if scheduled is None else scheduled.astimezone(UTC),
    )
