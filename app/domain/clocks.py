"""Response clocks: business hours, response deadlines and the per-lead clocks of the queue.

The guide's rule: a lead received while the store is open gets its first agent attempt within 5
minutes; a lead received after hours is due 30 minutes after the next opening. Two clocks run per
lead: first touch (any outbound, automatic acknowledgment included) and first agent attempt (a call
or a personal text; only this one meets the rule). Time to the first real conversation is tracked.

Time handling, once for the whole module:
- Opening hours are local wall-clock times in the store's IANA zone; they become absolute instants
  through zoneinfo, day by day, so a 23- or 25-hour DST day is handled by the tz database.
- An opening that falls in a DST gap (spring forward) moves forward by the gap (02:30 -> 03:30); an
  opening in the repeated hour (fall back) is its first occurrence, a closing its last occurrence.
- All arithmetic is done on UTC instants and every returned datetime is aware and in UTC. Python
  compares and subtracts two datetimes that share a ZoneInfo by wall time (ignoring the DST fold),
  so local datetimes would give wrong answers around a transition. Display with
  `value.astimezone(hours.zone)`.
- Supported instants lie in the years 1900-2199; anything else is refused with a ClockError.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.domain.activities import Activity, in_order
from app.domain.errors import DomainError, ResourceError
from app.domain.leads import Lead
from app.domain.rules_file import Path, RulesDocument, parse_clock_time

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

_FIRST_YEAR = 1900
_LAST_YEAR = 2199
_INTERVAL = re.compile(r"^\s*(\d{1,2}:\d{2})\s*-\s*(\d{1,2}:\d{2})\s*$")


class ClockError(DomainError):
    """Bad clock input: inconsistent hours, an out-of-range instant, another lead's history."""


class NaiveDatetimeError(ClockError):
    """A datetime without a time zone was given where an instant is needed."""


def require_aware(value: object, name: str) -> datetime:
    """`value` as an aware datetime, or a ClockError naming `name`."""
    if not isinstance(value, datetime):
        raise ClockError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise NaiveDatetimeError(
            f"{name} must carry a time zone (got the naive datetime {value.isoformat()})"
        )
    if not _FIRST_YEAR <= value.year <= _LAST_YEAR:
        raise ClockError(
            f"{name} {value.isoformat()} is outside the supported years {_FIRST_YEAR}-{_LAST_YEAR}"
        )
    return value


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _whole_seconds(delta: timedelta) -> int:
    # Floor, so 0.3 s overdue reads as -1 (overdue), never as 0.
    return math.floor(delta.total_seconds())


# --- Business hours -------------------------------------------------------------------------------


def _clock_text(value: time) -> str:
    return "24:00" if value == time.max else value.strftime("%H:%M")


@dataclass(frozen=True, slots=True)
class OpenInterval:
    """One opening interval of a day, [opens, closes) in local wall time. `time.max` = 24:00."""

    opens: time
    closes: time

    def __post_init__(self) -> None:
        if not isinstance(self.opens, time) or not isinstance(self.closes, time):
            raise ClockError("an opening interval needs two times of day")
        if self.opens.tzinfo is not None or self.closes.tzinfo is not None:
            raise ClockError("opening hours are local wall-clock times: give times without tzinfo")
        if self.opens == time.max:
            raise ClockError("a day cannot open at 24:00")
        if self.closes <= self.opens:
            raise ClockError(
                f"interval {self}: closes at or before it opens (an interval cannot cross "
                "midnight: split it into '..-24:00' and '00:00-..' on the next day)"
            )

    def __str__(self) -> str:
        return f"{_clock_text(self.opens)}-{_clock_text(self.closes)}"


def _check_day(intervals: object, where: str) -> tuple[OpenInterval, ...]:
    if not isinstance(intervals, tuple) or not all(isinstance(i, OpenInterval) for i in intervals):
        raise ClockError(f"{where}: hours must be a tuple of OpenInterval")
    ordered = sorted(intervals, key=lambda i: i.opens)
    for before, after in pairwise(ordered):
        if after.opens < before.closes:
            raise ClockError(f"{where}: intervals {before} and {after} overlap")
    return tuple(ordered)


@dataclass(frozen=True, slots=True)
class Holiday:
    """A date (local to the store) closed all day, or open only during `hours`."""

    day: date
    name: str = ""
    hours: tuple[OpenInterval, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.day, date) or isinstance(self.day, datetime):
            raise ClockError(f"holiday {self.name!r}: day must be a date")
        object.__setattr__(self, "hours", _check_day(self.hours, f"holiday {self.day}"))

    @property
    def closed(self) -> bool:
        return not self.hours


@dataclass(frozen=True, slots=True)
class BusinessHours:
    """The store's opening calendar: per-weekday intervals (Monday first), holidays, time zone."""

    time_zone: str
    week: tuple[tuple[OpenInterval, ...], ...]
    holidays: tuple[Holiday, ...] = ()
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)
    _holidays_by_day: dict[date, Holiday] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_zone", _zone_named(self.time_zone))
        if not isinstance(self.week, tuple) or len(self.week) != 7:
            raise ClockError("week must give the hours of all seven days, Monday first")
        week = tuple(_check_day(day, WEEKDAYS[n]) for n, day in enumerate(self.week))
        if not any(week):
            raise ClockError("the store is never open: give at least one weekday some hours")
        object.__setattr__(self, "week", week)
        by_day: dict[date, Holiday] = {}
        for holiday in self.holidays:
            if not isinstance(holiday, Holiday):
                raise ClockError("holidays must be Holiday records")
            if holiday.day in by_day:
                raise ClockError(f"holiday {holiday.day} is listed twice")
            by_day[holiday.day] = holiday
        object.__setattr__(self, "_holidays_by_day", by_day)

    @property
    def zone(self) -> ZoneInfo:
        return self._zone

    def holiday_on(self, day: date) -> Holiday | None:
        return self._holidays_by_day.get(day)

    def intervals_on(self, day: date) -> tuple[OpenInterval, ...]:
        """The opening intervals of a local date: the holiday's if it is one, else the weekday's."""
        holiday = self._holidays_by_day.get(day)
        return holiday.hours if holiday is not None else self.week[day.weekday()]

    def spans_on(self, day: date) -> list[tuple[datetime, datetime]]:
        """The day's intervals as UTC [start, end) instants; empty ones (DST oddities) dropped."""
        spans = []
        for interval in self.intervals_on(day):
            start = _local_instant(day, interval.opens, self._zone, closing=False)
            end = _local_instant(day, interval.closes, self._zone, closing=True)
            if start < end:
                spans.append((start, end))
        return spans


def _zone_named(name: object) -> ZoneInfo:
    if not isinstance(name, str) or not name.strip():
        raise ClockError(f"time zone must be an IANA name like 'America/Chicago', got {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ClockError(
            f"unknown time zone {name!r} (use an IANA name like 'America/Chicago')"
        ) from exc


def _local_instant(day: date, at: time, zone: ZoneInfo, *, closing: bool) -> datetime:
    """The UTC instant of local wall time `at` on `day` (see the module docstring for DST rules)."""
    if at == time.max:
        local = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    else:
        local = datetime.combine(day, at, tzinfo=zone)
    first = _utc(local)  # fold=0: first occurrence; in a gap, shifted forward
    if not closing:
        return first
    return max(first, _utc(local.replace(fold=1)))


def is_open(hours: BusinessHours, at: datetime) -> bool:
    """Whether the store is open at the instant `at` (half-open: closed at closing time)."""
    instant = _utc(require_aware(at, "at"))
    local_day = at.astimezone(hours.zone).date()
    for offset in (-1, 0, 1):
        for start, end in hours.spans_on(local_day + timedelta(days=offset)):
            if start <= instant < end:
                return True
    return False


def next_opening(hours: BusinessHours, at: datetime) -> datetime:
    """The earliest instant >= `at` when the store is open (`at` itself if open), in UTC."""
    instant = _utc(require_aware(at, "at"))
    first_day = at.astimezone(hours.zone).date() - timedelta(days=1)
    # Every weekday with hours opens unless it is a holiday, so this many days always suffice.
    limit = 7 * (len(hours.holidays) + 1) + 3
    best: datetime | None = None
    found_at = 0
    for offset in range(limit):
        for start, end in hours.spans_on(first_day + timedelta(days=offset)):
            if start <= instant < end:
                return instant
            if start > instant and (best is None or start < best):
                best, found_at = start, offset
        # DST can nudge a span past midnight: look one day beyond the first hit, and always
        # cover the days around `at` before answering.
        if best is not None and offset >= max(found_at + 1, 2):
            return best
    if best is not None:
        return best
    raise ClockError(f"the store does not open within {limit} days after {at.isoformat()}")


# --- Deadlines ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResponsePolicy:
    """How long the BDC has to make the first agent attempt, and when the queue warns."""

    in_hours: timedelta = timedelta(minutes=5)  # after an in-hours receipt
    after_hours: timedelta = timedelta(minutes=30)  # after the next opening
    due_soon: timedelta = timedelta(minutes=2)  # "due soon" once this little time is left

    def __post_init__(self) -> None:
        for name in ("in_hours", "after_hours", "due_soon"):
            value = getattr(self, name)
            if not isinstance(value, timedelta):
                raise ClockError(f"response policy {name} must be a timedelta")
            if value < timedelta(0) or value > timedelta(days=1):
                raise ClockError(f"response policy {name} must be between 0 and 24 hours")
        if self.in_hours <= timedelta(0):
            raise ClockError("response policy in_hours must be longer than zero")


def response_due(
    hours: BusinessHours, received_at: datetime, policy: ResponsePolicy | None = None
) -> datetime:
    """When the first agent attempt is due (UTC): receipt + 5 min while open, else opening + 30."""
    rules = policy or ResponsePolicy()
    received = _utc(require_aware(received_at, "received_at"))
    if is_open(hours, received):
        return received + rules.in_hours
    return next_opening(hours, received) + rules.after_hours


# --- Per-lead clocks ------------------------------------------------------------------------------


class ClockState(StrEnum):
    ON_TRACK = "on_track"  # no attempt yet, more than the due-soon margin left
    DUE_SOON = "due_soon"  # no attempt yet, due within the margin
    BREACHED = "breached"  # no attempt and the deadline passed
    MET = "met"  # first agent attempt made by the deadline
    MET_LATE = "met_late"  # first agent attempt made, but after the deadline


@dataclass(frozen=True, slots=True)
class ResponseClocks:
    """A lead's clocks as of `now`. Instants in UTC; seconds are whole, floored."""

    lead_id: str
    received_at: datetime
    received_in_hours: bool
    clock_start: datetime  # receipt when in hours, else the next opening
    due_at: datetime
    first_touch_at: datetime | None
    first_attempt_at: datetime | None
    first_conversation_at: datetime | None
    seconds_to_first_touch: int | None  # from receipt
    seconds_to_first_attempt: int | None  # from receipt
    seconds_to_first_conversation: int | None  # from receipt
    response_seconds: int | None  # business response time: clock_start -> first attempt, >= 0
    met_5_minute_rule: bool | None  # None while no attempt was made and the deadline is ahead
    state: ClockState
    seconds_left: int  # due_at minus (first attempt, else now); negative = overdue / late
    ignored_activity_ids: tuple[str, ...] = ()  # stamped before receipt: data errors, left out


def split_history(
    lead: Lead, history: Iterable[Activity], now: datetime
) -> tuple[list[Activity], tuple[str, ...]]:
    """The lead's activities that count as of `now`, in order, and the ids left out as errors.

    An activity stamped before the lead's receipt cannot be a response to it (a wrong clock on
    the PC that logged it, or a record from a merged lead); it is left out of every clock and
    metric and its id reported, rather than rejecting the whole history. Activities after `now`
    have not happened yet as of `now` and are skipped silently (so replays are deterministic).
    An activity of another lead is a caller's mistake and raises ClockError.
    """
    instant = _utc(require_aware(now, "now"))
    received = _utc(lead.received_at)
    usable: list[Activity] = []
    early: list[str] = []
    for activity in in_order(_activities(history, lead.id)):
        at = _utc(activity.at)
        if at < received:
            early.append(activity.id)
        elif at <= instant:
            usable.append(activity)
    return usable, tuple(early)


def _activities(history: Iterable[Activity], lead_id: str) -> list[Activity]:
    if isinstance(history, str | bytes) or not isinstance(history, Iterable):
        raise ClockError(f"history of lead {lead_id} must be a sequence of activities")
    items = list(history)
    for item in items:
        if not isinstance(item, Activity):
            raise ClockError(
                f"history of lead {lead_id} holds {type(item).__name__}, not an Activity"
            )
        if item.lead_id != lead_id:
            raise ClockError(
                f"activity {item.id} belongs to lead {item.lead_id!r}, not to lead {lead_id!r}"
            )
    return items


def response_clocks(
    lead: Lead,
    history: Iterable[Activity],
    hours: BusinessHours,
    policy: ResponsePolicy | None = None,
    now: datetime | None = None,
) -> ResponseClocks:
    """The lead's response clocks as of `now` (required: the clocks never read the system time)."""
    if not isinstance(lead, Lead):
        raise ClockError(f"lead must be a Lead, got {type(lead).__name__}")
    if now is None:
        raise ClockError("now is required: pass the current instant explicitly")
    rules = policy or ResponsePolicy()
    instant = _utc(require_aware(now, "now"))
    received = _utc(require_aware(lead.received_at, f"lead {lead.id} received_at"))
    usable, ignored = split_history(lead, history, instant)

    in_hours = is_open(hours, received)
    clock_start = received if in_hours else next_opening(hours, received)
    due = clock_start + (rules.in_hours if in_hours else rules.after_hours)

    first_touch = _first(usable, lambda a: a.is_outbound_touch)
    first_attempt = _first(usable, lambda a: a.is_agent_attempt)
    first_talk = _first(usable, lambda a: a.is_conversation)

    left = due - (first_attempt if first_attempt is not None else instant)
    met: bool | None
    if first_attempt is not None:
        met = first_attempt <= due
        state = ClockState.MET if met else ClockState.MET_LATE
    elif instant > due:
        met, state = False, ClockState.BREACHED
    else:
        met = None
        state = ClockState.DUE_SOON if left <= rules.due_soon else ClockState.ON_TRACK

    return ResponseClocks(
        lead_id=lead.id,
        received_at=received,
        received_in_hours=in_hours,
        clock_start=clock_start,
        due_at=due,
        first_touch_at=first_touch,
        first_attempt_at=first_attempt,
        first_conversation_at=first_talk,
        seconds_to_first_touch=_since(received, first_touch),
        seconds_to_first_attempt=_since(received, first_attempt),
        seconds_to_first_conversation=_since(received, first_talk),
        response_seconds=(
            None
            if first_attempt is None
            # An agent calling before the opening answered an after-hours lead instantly.
            else max(0, _whole_seconds(first_attempt - clock_start))
        ),
        met_5_minute_rule=met,
        state=state,
        seconds_left=_whole_seconds(left),
        ignored_activity_ids=ignored,
    )


def _first(activities: Sequence[Activity], wanted: Any) -> datetime | None:
    for activity in activities:
        if wanted(activity):
            return _utc(activity.at)
    return None


def _since(start: datetime, end: datetime | None) -> int | None:
    return None if end is None else _whole_seconds(end - start)


# --- The rules file -------------------------------------------------------------------------------

_TOP_KEYS = {"time_zone", "week", "response", "holiday"}
_RESPONSE_KEYS = {"in_hours_minutes", "after_hours_minutes", "due_soon_minutes"}


def parse_business_hours(text: str, source: str) -> BusinessHours:
    """BusinessHours from resources/store_hours.toml text; ResourceError names file, line, field."""
    doc = RulesDocument(text, source)
    data = doc.data
    doc.check_keys(data, (), _TOP_KEYS)
    zone_name = doc.get(data, ("time_zone",), str)
    try:
        _zone_named(zone_name)
    except ClockError as exc:
        raise doc.error(("time_zone",), str(exc)) from exc

    week_table = doc.table(("week",), doc.get(data, ("week",), dict))
    doc.check_keys(week_table, ("week",), set(WEEKDAYS))
    week = tuple(_parse_day(doc, week_table, ("week", name)) for name in WEEKDAYS)
    if not any(week):
        raise doc.error(("week",), "the store is never open: give at least one weekday hours")

    holidays: list[Holiday] = []
    seen: dict[date, int] = {}
    raw_holidays = doc.array(("holiday",), data.get("holiday", []))
    for index, raw in enumerate(raw_holidays):
        path: Path = ("holiday", index)
        entry = doc.table(path, raw)
        doc.check_keys(entry, path, {"date", "name", "hours"})
        day = _parse_date(doc, entry, (*path, "date"))
        if day in seen:
            raise doc.error((*path, "date"), f"{day} is already listed as holiday #{seen[day] + 1}")
        seen[day] = index
        name = doc.get(entry, (*path, "name"), str, required=False) or ""
        hours = _parse_day(doc, entry, (*path, "hours")) if "hours" in entry else ()
        holidays.append(Holiday(day=day, name=name, hours=hours))

    try:
        return BusinessHours(time_zone=zone_name, week=week, holidays=tuple(holidays))
    except ClockError as exc:  # checked above already; keeps the promise of a ResourceError
        raise ResourceError(source, str(exc)) from exc


def parse_response_policy(text: str, source: str) -> ResponsePolicy:
    """ResponsePolicy from the optional [response] table of store_hours.toml (else defaults)."""
    doc = RulesDocument(text, source)
    if "response" not in doc.data:
        return ResponsePolicy()
    table = doc.table(("response",), doc.data["response"])
    doc.check_keys(table, ("response",), _RESPONSE_KEYS)
    defaults = ResponsePolicy()
    minutes: dict[str, timedelta] = {}
    for key, default, lowest in (
        ("in_hours_minutes", defaults.in_hours, 1),
        ("after_hours_minutes", defaults.after_hours, 0),
        ("due_soon_minutes", defaults.due_soon, 0),
    ):
        if key not in table:
            minutes[key] = default
            continue
        value = doc.get(table, ("response", key), int)
        if not lowest <= value <= 24 * 60:
            raise doc.error(("response", key), f"must be {lowest}..1440 minutes, got {value}")
        minutes[key] = timedelta(minutes=value)
    return ResponsePolicy(
        in_hours=minutes["in_hours_minutes"],
        after_hours=minutes["after_hours_minutes"],
        due_soon=minutes["due_soon_minutes"],
    )


def _parse_day(
    doc: RulesDocument, container: Mapping[str, Any], path: Path
) -> tuple[OpenInterval, ...]:
    key = path[-1]
    assert isinstance(key, str)
    if key not in container:
        raise doc.error(path[:-1], f"missing required field '{key}' (use [] for closed)")
    items = doc.array(path, container[key])
    intervals: list[OpenInterval] = []
    for index, item in enumerate(items):
        item_path: Path = (*path, index)
        intervals.append(_parse_interval(doc, item, item_path))
    ordered = sorted(intervals, key=lambda i: i.opens)
    for before, after in pairwise(ordered):
        if after.opens < before.closes:
            raise doc.error(path, f"intervals {before} and {after} overlap")
    return tuple(ordered)


def _parse_interval(doc: RulesDocument, value: object, path: Path) -> OpenInterval:
    match = _INTERVAL.match(value) if isinstance(value, str) else None
    if match is None:
        raise doc.error(path, f'must be an interval like "09:00-20:00", got {value!r}')

    def fail(message: str) -> ResourceError:
        return doc.error(path, message)

    opens = parse_clock_time(match.group(1), fail)
    closes = parse_clock_time(match.group(2), fail)
    try:
        return OpenInterval(opens, closes)
    except ClockError as exc:
        raise doc.error(path, str(exc)) from exc


def _parse_date(doc: RulesDocument, container: Mapping[str, Any], path: Path) -> date:
    key = path[-1]
    assert isinstance(key, str)
    if key not in container:
        raise doc.error(path[:-1], f"missing required field '{key}'")
    value = container[key]
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value.strip())
        except ValueError:
            raise doc.error(path, f"must be a date like 2026-12-25, got {value!r}") from None
    if not isinstance(value, date) or isinstance(value, datetime):
        raise doc.error(path, f"must be a date like 2026-12-25, got {value!r}")
    return value
