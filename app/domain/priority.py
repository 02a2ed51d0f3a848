"""The queue's order: what the agent should do next, and why.

The order is the product's core rule, so it is a pure function with its reason in words. Buckets
first (a waiting customer beats a running 5-minute clock beats a promised callback beats routine
follow-up), then the deadline, then the score.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import IntEnum, StrEnum

from app.domain.leads import Channel


class WorkKind(StrEnum):
    CUSTOMER_REPLY = "reply"  # the customer wrote or called back and nobody answered yet
    NEW_LEAD = "new_lead"  # the response clock is running: first agent attempt not made
    CALLBACK = "callback"  # the customer asked to be called at a time
    APPOINTMENT = "appointment"  # confirmation or reminder of a set appointment
    FOLLOW_UP = "follow_up"  # the next cadence step


class Bucket(IntEnum):
    """Lower sorts first."""

    WAITING_CUSTOMER = 0
    RESPONSE_CLOCK = 1
    PROMISED_TIME = 2
    DUE_NOW = 3
    UPCOMING = 4


_BUCKET_OF_KIND = {
    WorkKind.CUSTOMER_REPLY: Bucket.WAITING_CUSTOMER,
    WorkKind.NEW_LEAD: Bucket.RESPONSE_CLOCK,
    WorkKind.CALLBACK: Bucket.PROMISED_TIME,
    WorkKind.APPOINTMENT: Bucket.PROMISED_TIME,
    WorkKind.FOLLOW_UP: Bucket.DUE_NOW,
}

# A callback or appointment call comes forward a little before its time, so it is made on time.
PROMISED_LEAD_TIME = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One row of the agent's queue: a lead and the thing to do for it now."""

    lead_id: str
    kind: WorkKind
    due_at: datetime  # the deadline the countdown shows
    score: int
    tier: str
    grade: str
    name: str
    vehicle: str
    source: str
    action: str  # e.g. "Call #2", "Text #1", "Reply to text"
    channel: Channel | None = None
    detail: str = ""  # why this step exists, e.g. "4 h after the first call, afternoon window"

    def __post_init__(self) -> None:
        # Kept in UTC: the queue subtracts `now` from it and sorts by it, and two datetimes that
        # share a zone compare and subtract by wall time (an hour off across a DST change).
        if self.due_at.tzinfo is not None and self.due_at.tzinfo is not UTC:
            object.__setattr__(self, "due_at", self.due_at.astimezone(UTC))

    def bucket(self, now: datetime) -> Bucket:
        bucket = _BUCKET_OF_KIND[self.kind]
        if bucket is Bucket.PROMISED_TIME and self.due_at - now > PROMISED_LEAD_TIME:
            return Bucket.UPCOMING
        if bucket is Bucket.DUE_NOW and self.due_at > now:
            return Bucket.UPCOMING
        return bucket

    def sort_key(self, now: datetime) -> tuple[int, datetime, int, str]:
        return (self.bucket(now), self.due_at, -self.score, self.lead_id)


def rank(items: Iterable[WorkItem], now: datetime) -> list[WorkItem]:
    """Items in the order the agent should work them. Deterministic: ties break on lead id."""
    return sorted(items, key=lambda item: item.sort_key(now))


def why_first(item: WorkItem, now: datetime) -> str:
    """The tooltip answer to "why is this here?", in the agent's words."""
    left = item.due_at - now
    when = _relative(left)
    bucket = item.bucket(now)
    if bucket is Bucket.WAITING_CUSTOMER:
        reason = f"{item.name} replied and is waiting for an answer ({when})."
    elif bucket is Bucket.RESPONSE_CLOCK:
        reason = f"New lead: first call or text due {when} (5-minute rule)."
    elif bucket is Bucket.PROMISED_TIME:
        reason = f"{item.action} promised for {when}."
    elif bucket is Bucket.DUE_NOW:
        reason = f"{item.action} is due ({when})."
    else:
        reason = f"Not due yet: {item.action} {when}."
    ranking = "Ranked by: waiting customers, then new-lead clocks, then promised times, "
    ranking += "then due follow-ups; within each, the earliest deadline, then the higher score."
    extra = f" {item.detail}" if item.detail else ""
    return f"{reason}{extra} Score {item.score} ({item.tier}, grade {item.grade}). {ranking}"


def _relative(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if abs(seconds) < 60:
        return "now" if seconds >= 0 else "just now (overdue)"
    minutes = abs(seconds) // 60
    text = f"{minutes} min" if minutes < 120 else f"{minutes // 60} h {minutes % 60:02d} min"
    return f"in {text}" if seconds > 0 else f"{text} ago (overdue)"


def countdown_text(due_at: datetime, now: datetime) -> str:
    """mm:ss until the deadline; '+mm:ss' counting up once breached; hours as h:mm:ss."""
    seconds = int((due_at.astimezone(UTC) - now.astimezone(UTC)).total_seconds())
    sign = "" if seconds >= 0 else "+"
    seconds = abs(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours >= 48:
        return f"{sign}{hours // 24}d"
    if hours:
        return f"{sign}{hours}:{minutes:02d}:{secs:02d}"
    return f"{sign}{minutes:02d}:{secs:02d}"
