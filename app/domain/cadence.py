"""The cadence engine: which follow-up step is next for a lead, when, and why.

A cadence is a rules file in resources/cadences/ (see `parse_cadence` for the layout). Given a lead,
its history and "now", `plan` replays the history through the cadences and returns the active one,
the steps already done and the next steps with due times. It is a pure function of its inputs, so
the offline desktop and the server always agree.

Timing rules (the file format documents them too):
- Each step has an offset counted from its anchor: by default the PREVIOUS step (its done time when
  it was done, else its planned time), or "start" (when the cadence began), "appointment" (the
  appointment slot), "no_show" (when the no-show was recorded) or an earlier step's id.
- Offsets in s/m/h are exact durations. "Nd" means N calendar days later in the customer's zone, at
  the anchor's time of day when that fits the step's window, else when the window opens. A run's
  max_days count the same way, so a step on its last day is kept across a DST change.
- Instants are handled in UTC (activities are converted on the way in): timedelta arithmetic and
  comparisons on zoned datetimes are wall-clock, an hour off across a DST change.
- A step waits for the next moment inside (its window ∩ the legal window); because later steps
  count from it, they shift by the same delay and nothing bunches up. A step not done by "now" is
  re-timed to the first allowed moment from now on.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import StrEnum
from typing import Any

from app.domain.activities import (
    Activity,
    ActivityKind,
    AppointmentStatus,
    Direction,
    DispositionFlag,
    in_order,
    in_utc,
)
from app.domain.errors import DomainError, ResourceError
from app.domain.leads import Channel, Lead, LeadStatus, SourceType
from app.domain.rules_file import Path, RulesDocument, parse_clock_time

LegalWindow = Callable[[Channel, date], tuple[datetime, datetime] | None]


class CadenceError(DomainError):
    """Bad input to the cadence engine: a naive datetime, another lead's history, a bad zone."""


class StepChannel(StrEnum):
    CALL = "call"
    TEXT = "text"
    EMAIL = "email"
    TASK = "task"  # an agent to-do; done by the agent's next note

    @property
    def contact_channel(self) -> Channel | None:
        return None if self is StepChannel.TASK else Channel(self.value)


class Action(StrEnum):
    SWITCH = "switch"  # start another cadence (or restart this one) at the event
    STOP = "stop"
    SKIP_PHONE = "skip_phone"  # skip call and text steps from now on, keep email
    CALLBACK = "callback"  # insert a call at the time the customer asked for


class PlanState(StrEnum):
    ACTIVE = "active"  # steps are planned
    WAITING = "waiting"  # nothing to plan until something happens (an appointment outcome)
    COMPLETE = "complete"  # every step done or skipped: retire the lead
    STOPPED = "stopped"  # opt-out, do-not-contact, sold, not interested ...
    NO_CADENCE = "no_cadence"  # no cadence applies to this lead


START = "start"
PREVIOUS = "previous"
APPOINTMENT = "appointment"
NO_SHOW = "no_show"
_SPECIAL_ANCHORS = (START, PREVIOUS, APPOINTMENT, NO_SHOW)
CALLBACK_STEP_ID = "callback"

# Appointment outcomes are events too, next to the disposition flags.
APPOINTMENT_EVENTS = ("APPOINTMENT_KEPT", "APPOINTMENT_NO_SHOW", "APPOINTMENT_CANCELLED")
_APPOINTMENT_EVENT = {
    AppointmentStatus.SET: "APPOINTMENT_SET",
    AppointmentStatus.KEPT: "APPOINTMENT_KEPT",
    AppointmentStatus.NO_SHOW: "APPOINTMENT_NO_SHOW",
    AppointmentStatus.CANCELLED: "APPOINTMENT_CANCELLED",
}
# Which flag of a multi-flag disposition decides when several would switch the cadence.
_FLAG_PRECEDENCE = (
    DispositionFlag.DO_NOT_CONTACT,
    DispositionFlag.SOLD,
    DispositionFlag.NOT_INTERESTED,
    DispositionFlag.APPOINTMENT_SET,
    DispositionFlag.HUMAN_CONTACT,
    DispositionFlag.CALLBACK,
    DispositionFlag.BAD_NUMBER,
    DispositionFlag.ATTEMPT,
)
EVENTS = tuple(str(f.name) for f in _FLAG_PRECEDENCE) + APPOINTMENT_EVENTS

NAMED_WINDOWS: Mapping[str, tuple[time, time]] = {
    "any": (time(0, 0), time.max),
    "morning": (time(9, 0), time(12, 0)),
    "afternoon": (time(12, 0), time(17, 0)),
    "evening": (time(17, 0), time(20, 0)),
}
DEFAULT_LEGAL_HOURS = (time(8, 0), time(21, 0))  # federal TCPA hours, calls and texts
_SEARCH_DAYS = 400  # how far ahead a step may wait for an allowed day before it is given up
_BUMP = timedelta(minutes=1)  # spacing when two steps of one channel would share an instant
_MAX_DAYS = 3650

_ID = re.compile(r"^[a-z][a-z0-9_]*$")
_OFFSET = re.compile(r"^(-?)(\d{1,6})(s|m|h|d)$")
_WINDOW = re.compile(r"^(\d{1,2}:\d{2})\s*-\s*(\d{1,2}:\d{2})$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_UNIT_WORDS = {"s": "s", "m": " min", "h": " h", "d": " days"}


# --------------------------------------------------------------------------- rule types


@dataclass(frozen=True, slots=True)
class Offset:
    amount: int  # signed; negative only before an appointment
    unit: str  # "s", "m", "h" or "d" (calendar days)
    text: str

    @property
    def calendar_days(self) -> bool:
        return self.unit == "d"

    @property
    def duration(self) -> timedelta:
        return timedelta(seconds=self.amount * _UNIT_SECONDS[self.unit])

    @property
    def human(self) -> str:
        amount = abs(self.amount)
        if self.unit == "d" and amount == 1:
            return "1 day"
        return f"{amount}{_UNIT_WORDS[self.unit]}"


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """A time-of-day window in the customer's local time; `end` time.max means midnight."""

    name: str
    start: time
    end: time

    def contains(self, moment: time) -> bool:
        return self.start <= moment and (self.end == time.max or moment < self.end)

    @property
    def label(self) -> str:
        if self.name == "any":
            return "any time"
        span = f"{_clock(self.start)}–{'midnight' if self.end == time.max else _clock(self.end)}"
        return span if self.name == span else f"{self.name} ({span})"


@dataclass(frozen=True, slots=True)
class AppliesTo:
    """Leads this cadence starts on; an empty tuple means any."""

    source_types: tuple[SourceType, ...] = ()
    statuses: tuple[LeadStatus, ...] = ()
    line: int | None = None

    def matches(self, source_type: SourceType, status: LeadStatus) -> bool:
        return (not self.source_types or source_type in self.source_types) and (
            not self.statuses or status in self.statuses
        )


@dataclass(frozen=True, slots=True)
class Transition:
    event: str  # a DispositionFlag name or one of APPOINTMENT_EVENTS
    action: Action
    target: str | None = None  # the cadence id for SWITCH
    line: int | None = None


@dataclass(frozen=True, slots=True)
class Step:
    index: int
    id: str
    kind: str  # what templates and scripts call this step (e.g. "first_call"); defaults to id
    channel: StepChannel
    offset: Offset
    anchor: str  # "previous", "start", "appointment", "no_show" or an earlier step's id
    window: TimeWindow
    template: str | None = None  # texts and emails
    script: str | None = None  # calls
    automatic: bool = False  # sent by the system, not the agent
    if_unanswered: bool = False  # only when the latest call step went unanswered
    early: timedelta = timedelta(0)  # how early before its time an activity still counts for it
    note: str = ""

    @property
    def is_agent_attempt(self) -> bool:
        """Counts toward max_attempts: a call, text or email the agent makes."""
        return self.channel is not StepChannel.TASK and not self.automatic


@dataclass(frozen=True, slots=True)
class Cadence:
    id: str
    name: str
    source: str  # the file it came from, for error messages
    steps: tuple[Step, ...]
    max_attempts: int
    max_days: int
    applies_to: tuple[AppliesTo, ...] = ()
    transitions: tuple[Transition, ...] = ()
    then: str | None = None  # the cadence that follows when this one runs out
    then_line: int | None = None
    description: str = ""

    def transition_for(self, event: str) -> Transition | None:
        for transition in self.transitions:
            if transition.event == event:
                return transition
        return None

    def step(self, step_id: str) -> Step | None:
        for candidate in self.steps:
            if candidate.id == step_id:
                return candidate
        return None


# --------------------------------------------------------------------------- plan types


@dataclass(frozen=True, slots=True)
class DoneStep:
    step_index: int  # -1 for a callback
    step_id: str
    channel: StepChannel
    attempt: int  # per channel: Call #1, Call #2 ...
    done_at: datetime
    activity_id: str


@dataclass(frozen=True, slots=True)
class SkippedStep:
    step_index: int
    step_id: str
    channel: StepChannel
    reason: str


@dataclass(frozen=True, slots=True)
class PlannedStep:
    cadence_id: str
    step_index: int  # index in Cadence.steps; -1 for a callback the customer asked for
    step_id: str
    channel: StepChannel
    due_at: datetime  # aware, UTC; never before the plan's `now`
    window: TimeWindow | None  # the step's time-of-day window (None: callback, legal hours only)
    allowed_from: datetime  # the allowed span (step window ∩ legal window) due_at falls in, UTC
    allowed_until: datetime
    template: str | None
    script: str | None
    automatic: bool
    attempt: int
    reason: str
    late_since: datetime | None = None  # when it was first due, if that has passed (overdue)
    kind: str = ""


@dataclass(frozen=True, slots=True)
class CadencePlan:
    lead_id: str
    now: datetime
    state: PlanState
    cadence_id: str | None
    cadence_name: str
    started_at: datetime | None
    ends_at: datetime | None  # started_at + max_days calendar days in the customer's zone
    done: tuple[DoneStep, ...]
    skipped: tuple[SkippedStep, ...]
    next_steps: tuple[PlannedStep, ...]  # in order; due times non-decreasing
    reason: str  # why stopped / waiting / complete, or what is next
    appointment_at: datetime | None = None

    @property
    def next(self) -> PlannedStep | None:
        return self.next_steps[0] if self.next_steps else None


# --------------------------------------------------------------------------- parsing


def parse_offset(text: str) -> Offset | None:
    """'5m', '4h', '2d', '-24h' -> Offset; None when the syntax is wrong."""
    match = _OFFSET.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        return None
    sign, digits, unit = match.groups()
    amount = int(digits) * (-1 if sign else 1)
    return Offset(amount=amount, unit=unit, text=text.strip())


def parse_window(text: str) -> TimeWindow | None:
    """'morning' / 'afternoon' / 'evening' / 'any' or 'HH:MM-HH:MM'; None when invalid."""
    if not isinstance(text, str):
        return None
    name = text.strip().lower()
    if name in NAMED_WINDOWS:
        start, end = NAMED_WINDOWS[name]
        return TimeWindow(name, start, end)
    match = _WINDOW.match(name)
    if match is None:
        return None

    def fail(_message: str) -> Exception:
        return ValueError(_message)

    try:
        start = parse_clock_time(match.group(1), fail)
        end = parse_clock_time(match.group(2), fail)
    except ValueError:
        return None
    if start == time.max or (end != time.max and end <= start):
        return None
    return TimeWindow(f"{match.group(1)}-{match.group(2)}", start, end)


_TOP_KEYS = {"id", "name", "description", "applies_to", "stop", "transitions", "steps"}
_STEP_KEYS = {
    "id",
    "kind",
    "channel",
    "from",
    "offset",
    "window",
    "template",
    "script",
    "automatic",
    "if_unanswered",
    "early",
    "note",
}


def parse_cadence(text: str, source: str) -> Cadence:
    """A validated Cadence from a TOML file's text; ResourceError names file, line and field.

    Layout (see resources/cadences/internet_new.toml for a commented example):
        id, name, description
        [[applies_to]] source_types = [...], statuses = [...]      (repeatable; empty = any)
        [stop] max_attempts, max_days, then (optional cadence id to continue with)
        [transitions] FLAG = "stop" | "skip_phone" | "callback" | "<cadence id>"
        [[steps]] id, channel, offset, from, window, template | script, automatic,
                  if_unanswered, early, kind, note
    """
    if not isinstance(text, str):
        raise ResourceError(str(source), "cadence text must be a string")
    doc = RulesDocument(text, source)
    data = doc.data
    doc.check_keys(data, (), _TOP_KEYS)
    cadence_id = _identifier(doc, data, ("id",))
    name = doc.get(data, ("name",), str).strip()
    if not name:
        raise doc.error(("name",), "must not be empty")
    description = doc.get(data, ("description",), str, required=False) or ""

    applies = _parse_applies(doc, data)
    if "stop" not in data:
        raise doc.error((), "missing required table [stop] (max_attempts, max_days)")
    stop = doc.table(("stop",), data["stop"])
    doc.check_keys(stop, ("stop",), {"max_attempts", "max_days", "then"})
    max_attempts = doc.get(stop, ("stop", "max_attempts"), int)
    if not 1 <= max_attempts <= 1000:
        raise doc.error(("stop", "max_attempts"), f"must be 1..1000, got {max_attempts}")
    max_days = doc.get(stop, ("stop", "max_days"), int)
    if not 1 <= max_days <= _MAX_DAYS:
        raise doc.error(("stop", "max_days"), f"must be 1..{_MAX_DAYS}, got {max_days}")
    then: str | None = None
    if "then" in stop:
        then = _identifier(doc, stop, ("stop", "then"))
    transitions = _parse_transitions(doc, data)
    steps = _parse_steps(doc, data)
    return Cadence(
        id=cadence_id,
        name=name,
        source=source,
        steps=steps,
        max_attempts=max_attempts,
        max_days=max_days,
        applies_to=applies,
        transitions=transitions,
        then=then,
        then_line=doc.line_of(("stop", "then")) if then else None,
        description=description.strip(),
    )


def _identifier(doc: RulesDocument, container: Mapping[str, Any], path: Path) -> str:
    value = doc.get(container, path, str)
    if not _ID.match(value):
        raise doc.error(path, f"must be lower case letters, digits and '_', got {value!r}")
    return value


def _enum_list(
    doc: RulesDocument, container: Mapping[str, Any], path: Path, enum: type[StrEnum]
) -> tuple[Any, ...]:
    key = str(path[-1])
    if key not in container:
        return ()
    values = doc.array(path, container[key])
    allowed = {member.value for member in enum}
    result = []
    for position, value in enumerate(values):
        if not isinstance(value, str) or value not in allowed:
            raise doc.error(
                path, f"item {position + 1}: unknown value {value!r} (allowed: {sorted(allowed)})"
            )
        result.append(enum(value))
    return tuple(result)


def _parse_applies(doc: RulesDocument, data: Mapping[str, Any]) -> tuple[AppliesTo, ...]:
    if "applies_to" not in data:
        return ()
    items = doc.array(("applies_to",), data["applies_to"])
    result = []
    for index, item in enumerate(items):
        path: Path = ("applies_to", index)
        table = doc.table(path, item)
        doc.check_keys(table, path, {"source_types", "statuses"})
        result.append(
            AppliesTo(
                source_types=_enum_list(doc, table, (*path, "source_types"), SourceType),
                statuses=_enum_list(doc, table, (*path, "statuses"), LeadStatus),
                line=doc.line_of(path),
            )
        )
    return tuple(result)


def _parse_transitions(doc: RulesDocument, data: Mapping[str, Any]) -> tuple[Transition, ...]:
    if "transitions" not in data:
        return ()
    table = doc.table(("transitions",), data["transitions"])
    result = []
    for event, value in table.items():
        path: Path = ("transitions", event)
        if event not in EVENTS:
            raise doc.error(path, f"unknown flag '{event}' (allowed: {', '.join(EVENTS)})")
        if not isinstance(value, str) or not value.strip():
            raise doc.error(path, "must be a cadence id, 'stop', 'skip_phone' or 'callback'")
        target = value.strip()
        if target in (Action.STOP, Action.SKIP_PHONE, Action.CALLBACK):
            action, target_id = Action(target), None
        elif _ID.match(target):
            action, target_id = Action.SWITCH, target
        else:
            raise doc.error(path, f"{target!r} is not a cadence id or an action")
        if event == "DO_NOT_CONTACT" and action is not Action.STOP:
            raise doc.error(path, 'DO_NOT_CONTACT always stops the cadence: write "stop"')
        if action is Action.CALLBACK and event != "CALLBACK":
            raise doc.error(path, "'callback' only applies to the CALLBACK flag")
        result.append(Transition(event, action, target_id, doc.line_of(path)))
    return tuple(result)


def _parse_steps(doc: RulesDocument, data: Mapping[str, Any]) -> tuple[Step, ...]:
    items = doc.array(("steps",), data.get("steps"))
    if not items:
        raise doc.error(("steps",), "a cadence needs at least one step")
    if len(items) > 200:
        raise doc.error(("steps",), "at most 200 steps")
    steps: list[Step] = []
    for index, item in enumerate(items):
        steps.append(_parse_step(doc, index, doc.table(("steps", index), item), steps))
    return tuple(steps)


def _parse_step(
    doc: RulesDocument, index: int, table: Mapping[str, Any], earlier: list[Step]
) -> Step:
    base: Path = ("steps", index)
    doc.check_keys(table, base, _STEP_KEYS)
    step_id = _identifier(doc, table, (*base, "id"))
    if step_id in _SPECIAL_ANCHORS or step_id == CALLBACK_STEP_ID:
        raise doc.error((*base, "id"), f"'{step_id}' is reserved; pick another step id")
    if any(step.id == step_id for step in earlier):
        raise doc.error((*base, "id"), f"step id '{step_id}' is used twice")
    kind = doc.get(table, (*base, "kind"), str, required=False) or step_id

    channel_text = doc.get(table, (*base, "channel"), str)
    if channel_text not in {c.value for c in StepChannel}:
        raise doc.error(
            (*base, "channel"),
            f"unknown channel {channel_text!r} (allowed: call, text, email, task)",
        )
    channel = StepChannel(channel_text)

    offset_text = doc.get(table, (*base, "offset"), str)
    offset = parse_offset(offset_text)
    if offset is None:
        raise doc.error(
            (*base, "offset"), f'bad offset {offset_text!r}: write a number and s/m/h/d, like "5m"'
        )
    if abs(offset.duration) > timedelta(days=_MAX_DAYS):
        raise doc.error(
            (*base, "offset"), f"offset {offset_text!r} is longer than {_MAX_DAYS} days"
        )

    anchor = doc.get(table, (*base, "from"), str, required=False) or PREVIOUS
    if anchor not in _SPECIAL_ANCHORS and not any(step.id == anchor for step in earlier):
        raise doc.error(
            (*base, "from"),
            f"'{anchor}' is not previous, start, appointment, no_show or an earlier step's id",
        )
    if offset.amount < 0 and anchor != APPOINTMENT:
        raise doc.error((*base, "offset"), "a negative offset only counts back from an appointment")

    window_text = doc.get(table, (*base, "window"), str, required=False) or "any"
    window = parse_window(window_text)
    if window is None:
        raise doc.error(
            (*base, "window"),
            f'bad window {window_text!r}: morning, afternoon, evening, any or "HH:MM-HH:MM"',
        )

    template = doc.get(table, (*base, "template"), str, required=False)
    script = doc.get(table, (*base, "script"), str, required=False)
    if channel is StepChannel.CALL:
        if template is not None:
            raise doc.error((*base, "template"), "a call step takes a script, not a template")
        if not script:
            raise doc.error(base, "a call step needs a 'script' id")
    elif channel is StepChannel.TASK:
        if template is not None or script is not None:
            raise doc.error(base, "a task step takes neither template nor script, only a note")
    else:
        if script is not None:
            raise doc.error((*base, "script"), f"a {channel} step takes a template, not a script")
        if not template:
            raise doc.error(base, f"a {channel} step needs a 'template' id")

    automatic = doc.get(table, (*base, "automatic"), bool, required=False) or False
    if automatic and channel not in (StepChannel.TEXT, StepChannel.EMAIL):
        raise doc.error((*base, "automatic"), "only texts and emails can be sent automatically")
    if_unanswered = doc.get(table, (*base, "if_unanswered"), bool, required=False) or False
    if if_unanswered and (
        channel is StepChannel.CALL or not any(s.channel is StepChannel.CALL for s in earlier)
    ):
        raise doc.error((*base, "if_unanswered"), "needs an earlier call step, on a non-call step")
    early_text = doc.get(table, (*base, "early"), str, required=False) or "0m"
    early = parse_offset(early_text)
    if early is None or early.amount < 0 or early.calendar_days:
        raise doc.error((*base, "early"), f'bad duration {early_text!r}: write like "12h"')
    note = (doc.get(table, (*base, "note"), str, required=False) or "").strip()
    if channel is StepChannel.TASK and not note:
        raise doc.error(base, "a task step needs a 'note' saying what to do")
    if not note:
        note = f"{offset.human} after {'the previous step' if anchor == PREVIOUS else anchor}"
    return Step(
        index=index,
        id=step_id,
        kind=kind,
        channel=channel,
        offset=offset,
        anchor=anchor,
        window=window,
        template=template,
        script=script,
        automatic=automatic,
        if_unanswered=if_unanswered,
        early=early.duration,
        note=note,
    )


def validate_cadence_set(cadences: Iterable[Cadence]) -> dict[str, Cadence]:
    """Cross-file checks; returns the cadences by id.

    Ids are unique, every transition target and `then` exists, and no lead (source type, status)
    is claimed by two cadences' applies_to.
    """
    by_id = _index_cadences(cadences)
    claimed: dict[tuple[SourceType, LeadStatus], str] = {}
    for cadence in by_id.values():
        for number, rule in enumerate(cadence.applies_to):
            for source_type in SourceType:
                for status in LeadStatus:
                    if not rule.matches(source_type, status):
                        continue
                    other = claimed.setdefault((source_type, status), cadence.id)
                    if other != cadence.id:
                        raise ResourceError(
                            cadence.source,
                            f"{source_type} leads with status {status} are already started by "
                            f"cadence '{other}'",
                            line=rule.line,
                            field=f"applies_to[{number}]",
                        )
    return by_id


def _index_cadences(cadences: Iterable[Cadence]) -> dict[str, Cadence]:
    """The cadences by id, after the checks planning relies on (unique ids, known targets)."""
    if isinstance(cadences, (str, bytes)) or not isinstance(cadences, Iterable):
        raise CadenceError("cadences must be a list of Cadence objects")
    by_id: dict[str, Cadence] = {}
    for cadence in cadences:
        if not isinstance(cadence, Cadence):
            raise CadenceError(f"expected a Cadence, got {type(cadence).__name__}")
        if cadence.id in by_id:
            raise ResourceError(
                cadence.source,
                f"cadence id '{cadence.id}' is already used by {by_id[cadence.id].source}",
                field="id",
            )
        by_id[cadence.id] = cadence
    for cadence in by_id.values():
        for transition in cadence.transitions:
            if transition.target is not None and transition.target not in by_id:
                raise ResourceError(
                    cadence.source,
                    f"transition to unknown cadence '{transition.target}' "
                    f"(known: {', '.join(sorted(by_id))})",
                    line=transition.line,
                    field=f"transitions.{transition.event}",
                )
        if cadence.then is not None and cadence.then not in by_id:
            raise ResourceError(
                cadence.source,
                f"'then' names unknown cadence '{cadence.then}'",
                line=cadence.then_line,
                field="stop.then",
            )
    return by_id


def parse_cadence_files(files: Iterable[tuple[str, str]]) -> dict[str, Cadence]:
    """Parse (text, source) pairs (as read_resource returns them) and check them as a set."""
    return validate_cadence_set(parse_cadence(text, source) for text, source in files)


# --------------------------------------------------------------------------- planning


@dataclass(slots=True)
class _Instance:
    """One run of a cadence: it restarts on every switch."""

    cadence: Cadence
    started_at: datetime
    appointment_at: datetime | None = None
    no_show_at: datetime | None = None
    callback: tuple[datetime, datetime] | None = None  # (asked at, call at)


@dataclass(slots=True)
class _Timeline:
    done: list[DoneStep] = field(default_factory=list)
    skipped: list[SkippedStep] = field(default_factory=list)
    pending: list[PlannedStep] = field(default_factory=list)
    waiting: list[SkippedStep] = field(default_factory=list)  # steps that wait for an event
    complete_at: datetime | None = None


_Span = tuple[datetime, datetime] | None


class SpanCache:
    """The allowed spans of days, shared by the plans of every lead with one zone and legal
    window: a queue plans thousands of leads, and a span depends on nothing else (not on the
    lead, its history or "now"), so each (channel, window, day) is worked out once, not per lead.
    Emptied when it grows past `limit` (the days move on over a long shift)."""

    def __init__(
        self, zone: tzinfo, legal_window: LegalWindow | None, *, limit: int = 20_000
    ) -> None:
        self.zone = zone
        self.legal_window = legal_window
        self.limit = limit
        self.legal: dict[tuple[StepChannel, date], _Span] = {}
        self.allowed: dict[tuple[StepChannel, TimeWindow | None, date], _Span] = {}

    def trim(self) -> None:
        if len(self.allowed) + len(self.legal) > self.limit:
            self.allowed.clear()
            self.legal.clear()


def _keep_within_attempts(cadence: Cadence, result: _Timeline) -> None:
    """Steps are matched and planned in the cadence's order, so a step can be planned before a
    later one matches an attempt already made (a call logged before the text meant to come
    first): then the latest planned attempts give way to the limit."""

    def attempt(index: int) -> bool:
        return index >= 0 and cadence.steps[index].is_agent_attempt

    made = sum(1 for done in result.done if attempt(done.step_index))
    planned = [step for step in result.pending if attempt(step.step_index)]
    excess = made + len(planned) - cadence.max_attempts
    if excess <= 0:
        return
    for step in planned[-excess:]:
        result.pending.remove(step)
        result.skipped.append(
            SkippedStep(
                step.step_index,
                step.step_id,
                step.channel,
                f"the cadence's limit of {cadence.max_attempts} attempts is reached",
            )
        )


class _Planner:
    def __init__(
        self,
        lead: Lead,
        activities: list[Activity],
        zone: tzinfo,
        legal_window: LegalWindow | None,
        spans: SpanCache | None = None,
    ) -> None:
        self.lead = lead
        self.zone = zone
        self.legal_window = legal_window
        self.activities = activities
        self.phone_dropped = False
        if spans is None:
            spans = SpanCache(zone, legal_window)
        else:
            spans.trim()
        self._legal_cache = spans.legal
        self._allowed_cache = spans.allowed
        self._by_channel: dict[StepChannel, list[Activity]] = {c: [] for c in StepChannel}
        for activity in activities:
            if activity.kind is ActivityKind.NOTE:
                self._by_channel[StepChannel.TASK].append(activity)
            elif activity.channel is not None and activity.direction is Direction.OUTBOUND:
                self._by_channel[StepChannel(activity.channel.value)].append(activity)

    # ----- windows

    def _local(self, day: date, at: time) -> datetime:
        if at == time.max:
            return datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.zone).astimezone(
                UTC
            )
        return datetime.combine(day, at, tzinfo=self.zone).astimezone(UTC)

    def _legal(self, channel: StepChannel, day: date) -> tuple[datetime, datetime] | None:
        key = (channel, day)
        if key in self._legal_cache:
            return self._legal_cache[key]
        contact = channel.contact_channel
        result: tuple[datetime, datetime] | None
        if contact is None:  # tasks are the agent's chores, not contact
            result = (self._local(day, time(0)), self._local(day, time.max))
        elif self.legal_window is not None:
            result = _checked_legal(self.legal_window(contact, day), contact, day)
        elif contact is Channel.EMAIL:
            result = (self._local(day, time(0)), self._local(day, time.max))
        else:
            start, end = DEFAULT_LEGAL_HOURS
            result = (self._local(day, start), self._local(day, end))
        self._legal_cache[key] = result
        return result

    def allowed(
        self, channel: StepChannel, window: TimeWindow | None, day: date
    ) -> tuple[datetime, datetime] | None:
        """The span of `day` (customer's zone) when the step may happen, in UTC."""
        key = (channel, window, day)
        if key not in self._allowed_cache:
            self._allowed_cache[key] = self._compute_allowed(channel, window, day)
        return self._allowed_cache[key]

    def _compute_allowed(
        self, channel: StepChannel, window: TimeWindow | None, day: date
    ) -> tuple[datetime, datetime] | None:
        legal = self._legal(channel, day)
        if legal is None:
            return None
        low, high = self._local(day, time(0)), self._local(day, time.max)
        if window is not None:
            low, high = self._local(day, window.start), self._local(day, window.end)
        low, high = max(low, legal[0]), min(high, legal[1])
        return (low, high) if low < high else None

    def _inside(self, moment: datetime, window: TimeWindow | None, day: date) -> bool:
        local = moment.astimezone(self.zone)
        return local.date() == day and (window is None or window.contains(local.time()))

    def fit(
        self, earliest: datetime, channel: StepChannel, window: TimeWindow | None, last_day: date
    ) -> tuple[datetime, datetime, datetime] | None:
        """First moment >= earliest inside the allowed span of some day, with that span."""
        day = earliest.astimezone(self.zone).date()
        for _ in range(_SEARCH_DAYS):
            if day > last_day:
                return None
            span = self.allowed(channel, window, day)
            if span is not None:
                candidate = max(earliest, span[0])
                # The wall-clock check guards against DST folds making a span's local view odd.
                if candidate < span[1] and self._inside(candidate, window, day):
                    return candidate, span[0], span[1]
            day += timedelta(days=1)
        return None

    def nominal(self, anchor: datetime, step: Step) -> datetime:
        """When the step would be due, before windows, legal hours and "now" move it."""
        if not step.offset.calendar_days:
            return anchor + step.offset.duration
        local = anchor.astimezone(self.zone)
        day = local.date() + timedelta(days=step.offset.amount)
        wanted = self._local(day, local.time().replace(tzinfo=None))
        span = self.allowed(step.channel, step.window, day)
        if span is not None and not span[0] <= wanted < span[1]:
            wanted = span[0]  # the anchor's time of day is outside the window: when it opens
        return wanted

    def ends_at(self, inst: _Instance) -> datetime:
        """When the run's max_days are over: that many calendar days later in the customer's
        zone, at the start's time of day (as "Nd" offsets count), in UTC."""
        local = inst.started_at.astimezone(self.zone)
        day = local.date() + timedelta(days=inst.cadence.max_days)
        return self._local(day, local.time())

    # ----- matching and timeline

    def reachable(self, channel: StepChannel) -> str | None:
        """None when the channel can be used, else why not."""
        lead = self.lead
        if channel is StepChannel.CALL:
            if self.phone_dropped:
                return "the phone number was marked bad"
            if lead.do_not_call:
                return "the number is on the do-not-call list"
            if lead.primary_phone is None:
                return "no reachable phone number"
        elif channel is StepChannel.TEXT:
            if self.phone_dropped:
                return "the phone number was marked bad"
            if lead.text_phone is None:
                return "no number that can receive texts"
        elif channel is StepChannel.EMAIL and lead.primary_email is None:
            return "no valid email address"
        return None

    def timeline(self, inst: _Instance, until: datetime) -> _Timeline:
        """Steps done, skipped, waiting and planned for one cadence run, as of `until`."""
        cadence = inst.cadence
        result = _Timeline()
        ends_at = self.ends_at(inst)
        last_day = ends_at.astimezone(self.zone).date() + timedelta(days=1)
        used: set[str] = set()
        taken: set[tuple[StepChannel, datetime]] = set()
        counts: dict[StepChannel, int] = dict.fromkeys(StepChannel, 0)
        times: dict[str, datetime | None] = {}
        attempts = 0  # made and planned
        made_attempts = 0
        last_due: datetime | None = None
        prev_time: datetime | None = inst.started_at
        last_call_answered: bool | None = None

        def candidates(channel: StepChannel) -> list[Activity]:
            return [
                a
                for a in self._by_channel[channel]
                if inst.started_at <= a.at <= until and a.id not in used
            ]

        def place(
            earliest: datetime, channel: StepChannel, window: TimeWindow | None, horizon: date
        ) -> tuple[datetime, datetime, datetime] | None:
            moment = earliest
            for _ in range(10_000):
                fitted = self.fit(moment, channel, window, horizon)
                if fitted is None or (channel, fitted[0]) not in taken:
                    return fitted
                moment = fitted[0] + _BUMP
            return None

        # A callback is served by the first agent call made after it was asked for.
        callback_done: Activity | None = None
        callback_placed = inst.callback is None
        if inst.callback is not None:
            for activity in candidates(StepChannel.CALL):
                if activity.at >= inst.callback[0] and not activity.automatic:
                    callback_done = activity
                    used.add(activity.id)
                    break

        def place_callback() -> None:
            nonlocal prev_time, last_due, callback_placed, last_call_answered
            callback_placed = True
            assert inst.callback is not None
            call_at = inst.callback[1]
            if callback_done is not None:
                counts[StepChannel.CALL] += 1
                result.done.append(
                    DoneStep(
                        -1,
                        CALLBACK_STEP_ID,
                        StepChannel.CALL,
                        counts[StepChannel.CALL],
                        callback_done.at,
                        callback_done.id,
                    )
                )
                last_call_answered = callback_done.answered is True
                prev_time = max(prev_time or callback_done.at, callback_done.at)
                return
            blocked = self.reachable(StepChannel.CALL)
            earliest = max(call_at, until, last_due or call_at)
            horizon = max(earliest, ends_at).astimezone(self.zone).date() + timedelta(days=1)
            fitted = None if blocked else place(earliest, StepChannel.CALL, None, horizon)
            if fitted is None:
                why = blocked or "no allowed calling time"
                result.skipped.append(SkippedStep(-1, CALLBACK_STEP_ID, StepChannel.CALL, why))
                return
            due, low, high = fitted
            counts[StepChannel.CALL] += 1
            asked_for = _when_text(call_at, self.zone)
            result.pending.append(
                PlannedStep(
                    cadence_id=cadence.id,
                    step_index=-1,
                    step_id=CALLBACK_STEP_ID,
                    channel=StepChannel.CALL,
                    due_at=due,
                    window=None,
                    allowed_from=low,
                    allowed_until=high,
                    template=None,
                    script=None,
                    automatic=False,
                    attempt=counts[StepChannel.CALL],
                    reason=f"Call #{counts[StepChannel.CALL]} — callback the customer asked for "
                    f"({asked_for} their time)" + _moved_suffix(due, call_at, until, self.zone),
                    late_since=call_at if call_at < until else None,
                    kind=CALLBACK_STEP_ID,
                )
            )
            taken.add((StepChannel.CALL, due))
            last_due = due
            last_call_answered = None
            prev_time = due

        for step in cadence.steps:
            anchor = self._anchor(inst, step, times, prev_time)
            if anchor is None:
                times[step.id] = None
                prev_time = None
                result.waiting.append(
                    SkippedStep(step.index, step.id, step.channel, _waiting_reason(step))
                )
                continue
            nominal = self.nominal(anchor, step)
            # Any activity of the channel since the start counts for the next step in the chain;
            # steps tied to an appointment only count activities from shortly before their time.
            opens = inst.started_at
            if step.anchor in (APPOINTMENT, NO_SHOW):
                opens = max(min(anchor, nominal) - step.early, inst.started_at)

            # A step before an appointment only counts what happened before the appointment.
            closes = until
            if step.offset.amount < 0 and inst.appointment_at is not None:
                closes = min(until, inst.appointment_at - timedelta(microseconds=1))
            match = None
            # An attempt made past the cap is not a step of this cadence (attempts made outrank
            # planned ones, which _keep_within_attempts trims): the step is skipped for the limit.
            capped = step.is_agent_attempt and made_attempts >= cadence.max_attempts
            for activity in () if capped else candidates(step.channel):
                if opens <= activity.at <= closes and (step.automatic or not activity.automatic):
                    match = activity
                    break
            if match is not None:
                used.add(match.id)
                counts[step.channel] += 1
                result.done.append(
                    DoneStep(
                        step.index, step.id, step.channel, counts[step.channel], match.at, match.id
                    )
                )
                if step.is_agent_attempt:
                    attempts += 1
                    made_attempts += 1
                if step.channel is StepChannel.CALL:
                    last_call_answered = match.answered is True
                times[step.id] = match.at
                prev_time = match.at
                continue

            if not callback_placed:
                place_callback()
                if step.anchor == PREVIOUS:
                    anchor = prev_time if prev_time is not None else anchor
                    nominal = self.nominal(anchor, step)

            skip = self._skip_reason(inst, step, nominal, until, last_call_answered)
            if skip is None and step.is_agent_attempt and attempts >= cadence.max_attempts:
                skip = f"the cadence's limit of {cadence.max_attempts} attempts is reached"
            if skip is not None:
                result.skipped.append(SkippedStep(step.index, step.id, step.channel, skip))
                times[step.id] = nominal
                prev_time = nominal
                continue

            earliest = max(nominal, until, last_due or nominal)
            horizon = last_day
            if step.anchor == APPOINTMENT and inst.appointment_at is not None:
                horizon = max(last_day, inst.appointment_at.astimezone(self.zone).date())
            fitted = place(earliest, step.channel, step.window, horizon)
            if fitted is None or (fitted[0] > ends_at and step.anchor != APPOINTMENT):
                why = f"falls after the cadence's {cadence.max_days}-day limit"
                if fitted is None and horizon > last_day:
                    why = "no allowed time before the appointment"
                result.skipped.append(SkippedStep(step.index, step.id, step.channel, why))
                times[step.id] = nominal
                prev_time = nominal
                continue
            due, low, high = fitted
            if (
                step.offset.amount < 0
                and inst.appointment_at is not None
                and due >= inst.appointment_at
            ):
                result.skipped.append(
                    SkippedStep(
                        step.index, step.id, step.channel, "no allowed time before the appointment"
                    )
                )
                times[step.id] = nominal
                prev_time = nominal
                continue
            counts[step.channel] += 1
            if step.is_agent_attempt:
                attempts += 1
            if step.channel is StepChannel.CALL:
                last_call_answered = None
            label = _CHANNEL_LABEL[step.channel]
            result.pending.append(
                PlannedStep(
                    cadence_id=cadence.id,
                    step_index=step.index,
                    step_id=step.id,
                    channel=step.channel,
                    due_at=due,
                    window=step.window,
                    allowed_from=low,
                    allowed_until=high,
                    template=step.template,
                    script=step.script,
                    automatic=step.automatic,
                    attempt=counts[step.channel],
                    reason=f"{label} #{counts[step.channel]} — {step.note}"
                    + _moved_suffix(due, nominal, until, self.zone),
                    late_since=nominal if nominal < until else None,
                    kind=step.kind,
                )
            )
            taken.add((step.channel, due))
            last_due = due
            times[step.id] = due
            prev_time = due

        if not callback_placed:
            place_callback()
        _keep_within_attempts(cadence, result)
        done_times = [d.done_at for d in result.done]
        if result.waiting and until >= ends_at:
            # An event that never came within the cadence's days (no outcome recorded): over.
            for waited in result.waiting:
                why = f"nothing happened within the cadence's {cadence.max_days} days"
                result.skipped.append(replace(waited, reason=why))
            result.waiting.clear()
            done_times.append(ends_at)
        if not result.pending and not result.waiting:
            result.complete_at = max([inst.started_at, *done_times])
        return result

    def _anchor(
        self,
        inst: _Instance,
        step: Step,
        times: Mapping[str, datetime | None],
        prev_time: datetime | None,
    ) -> datetime | None:
        if step.anchor == PREVIOUS:
            return prev_time
        if step.anchor == START:
            return inst.started_at
        if step.anchor == APPOINTMENT:
            return inst.appointment_at
        if step.anchor == NO_SHOW:
            return inst.no_show_at
        return times.get(step.anchor)

    def _skip_reason(
        self,
        inst: _Instance,
        step: Step,
        nominal: datetime,
        until: datetime,
        last_call_answered: bool | None,
    ) -> str | None:
        blocked = self.reachable(step.channel)
        if blocked is not None:
            return blocked
        if step.if_unanswered and last_call_answered:
            return "the call was answered"
        if step.anchor in (APPOINTMENT, NO_SHOW) and nominal < inst.started_at:
            return f"the {step.anchor.replace('_', '-')} was less than {step.offset.human} away"
        appointment = inst.appointment_at
        if step.offset.amount < 0 and appointment is not None and until >= appointment:
            return "the appointment time has passed"
        return None


def _checked_legal(value: object, channel: Channel, day: date) -> tuple[datetime, datetime] | None:
    if value is None:
        return None
    if (
        not isinstance(value, tuple)
        or len(value) != 2
        or not all(isinstance(v, datetime) for v in value)
    ):
        raise CadenceError(
            f"legal_window({channel}, {day}) must return (start, end) datetimes or None, "
            f"got {value!r}"
        )
    start, end = value
    if start.utcoffset() is None or end.utcoffset() is None:
        raise CadenceError(
            f"legal_window({channel}, {day}) returned a naive datetime; it must carry a time zone"
        )
    return start.astimezone(UTC), end.astimezone(UTC)


def _waiting_reason(step: Step) -> str:
    if step.anchor == APPOINTMENT:
        return "waits for the appointment time"
    if step.anchor == NO_SHOW:
        return "waits for the appointment outcome"
    return f"waits for step '{step.anchor}'"


_CHANNEL_LABEL = {
    StepChannel.CALL: "Call",
    StepChannel.TEXT: "Text",
    StepChannel.EMAIL: "Email",
    StepChannel.TASK: "Task",
}


def _clock(moment: time) -> str:
    hour = moment.hour % 12 or 12
    return f"{hour}:{moment.minute:02d} {'AM' if moment.hour < 12 else 'PM'}"


def _when_text(moment: datetime, zone: tzinfo) -> str:
    local = moment.astimezone(zone)
    return f"{local:%a %b} {local.day} {_clock(local.time())}"


def _moved_suffix(due: datetime, nominal: datetime, now: datetime, zone: tzinfo) -> str:
    if nominal < now:
        return f" (overdue since {_when_text(nominal, zone)} their time)"
    if due > nominal + _BUMP:
        return f" (waits for the allowed window: {_clock(due.astimezone(zone).time())} their time)"
    return ""


def _require_aware(value: object, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise CadenceError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise CadenceError(f"{name} must carry a time zone (got a naive datetime {value})")
    return _in_range(value.astimezone(UTC), name)


_EARLIEST = datetime(1971, 1, 1, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)  # far enough from datetime.max to add offsets safely


def _in_range(moment: datetime, name: str) -> datetime:
    if not _EARLIEST <= moment < _LATEST:
        raise CadenceError(f"{name} {moment.isoformat()} is outside the years 1971–8999")
    return moment


def _initial_cadence(by_id: Mapping[str, Cadence], lead: Lead) -> Cadence | None:
    for cadence_id in sorted(by_id):
        cadence = by_id[cadence_id]
        if any(rule.matches(lead.source.type, lead.status) for rule in cadence.applies_to):
            return cadence
    return None


_CLOSED_STATUS = {
    LeadStatus.SOLD: "the lead is sold",
    LeadStatus.LOST: "the lead is closed as lost",
    LeadStatus.DO_NOT_CONTACT: "the lead is marked do-not-contact",
}


def plan(
    cadences: Iterable[Cadence],
    lead: Lead,
    history: Iterable[Activity],
    now: datetime,
    *,
    zone: tzinfo,
    legal_window: LegalWindow | None = None,
    spans: SpanCache | None = None,
) -> CadencePlan:
    """The active cadence for `lead` as of `now`, the steps done and the next steps.

    `zone` is the customer's time zone; windows are read in it. `legal_window(channel, local_day)`
    gives the legally allowed (start, end) for that day or None (no contact that day); without it,
    calls and texts are allowed 8:00–21:00 local and emails any time. Activities after `now` are
    ignored. Deterministic: same inputs, same plan. `spans`: a SpanCache made for this `zone`
    and `legal_window`, to share their spans with other leads' plans (the result is the same).
    """
    by_id = _index_cadences(cadences)
    if not isinstance(lead, Lead):
        raise CadenceError(f"lead must be a Lead, got {type(lead).__name__}")
    now = _require_aware(now, "now")
    if not isinstance(zone, tzinfo):
        raise CadenceError(f"zone must be a tzinfo such as ZoneInfo, got {type(zone).__name__}")
    if legal_window is not None and not callable(legal_window):
        raise CadenceError("legal_window must be a callable (channel, local_day) or None")
    _in_range(_utc(lead.received_at), "lead received_at")
    if spans is not None and (spans.zone != zone or spans.legal_window is not legal_window):
        raise CadenceError("spans must be a SpanCache made for this zone and legal_window")
    activities = _checked_history(history, lead.id, now)
    planner = _Planner(lead, activities, zone, legal_window, spans)

    def closed(reason: str) -> CadencePlan:
        return CadencePlan(
            lead_id=lead.id,
            now=now,
            state=PlanState.STOPPED,
            cadence_id=None,
            cadence_name="",
            started_at=None,
            ends_at=None,
            done=(),
            skipped=(),
            next_steps=(),
            reason=reason,
        )

    if lead.opted_out_at is not None:
        return closed(f"the customer opted out ({_when_text(lead.opted_out_at, zone)})")
    if lead.status in _CLOSED_STATUS:
        return closed(_CLOSED_STATUS[lead.status])
    if lead.duplicate_of:
        return closed(f"merged into lead {lead.duplicate_of}")
    if lead.is_spam:
        return closed("the lead is spam")
    first = _initial_cadence(by_id, lead)
    if first is None:
        return CadencePlan(
            lead_id=lead.id,
            now=now,
            state=PlanState.NO_CADENCE,
            cadence_id=None,
            cadence_name="",
            started_at=None,
            ends_at=None,
            done=(),
            skipped=(),
            next_steps=(),
            reason=f"no cadence starts on {lead.source.type} leads with status {lead.status}",
        )

    replay = _Replay(planner, by_id, _Instance(first, _utc(lead.received_at)))
    for activity in activities:
        replay.advance(activity.at)
        replay.apply(activity)
    replay.advance(now)
    inst = replay.inst
    timeline = planner.timeline(inst, now)
    cadence = inst.cadence
    stop_reason = replay.stop_reason()
    pending: tuple[PlannedStep, ...] = ()
    if stop_reason is not None:
        state, reason = PlanState.STOPPED, stop_reason
    elif timeline.pending:
        pending = tuple(timeline.pending)
        state, reason = PlanState.ACTIVE, pending[0].reason
    elif timeline.waiting:
        state, reason = PlanState.WAITING, timeline.waiting[0].reason
    else:
        state = PlanState.COMPLETE
        reason = f"{cadence.name}: every step is done or skipped — retire the lead"
    return CadencePlan(
        lead_id=lead.id,
        now=now,
        state=state,
        cadence_id=cadence.id,
        cadence_name=cadence.name,
        started_at=inst.started_at,
        ends_at=planner.ends_at(inst),
        done=tuple(timeline.done),
        skipped=tuple(timeline.skipped),
        next_steps=pending,
        reason=reason,
        appointment_at=inst.appointment_at,
    )


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def _checked_history(history: Iterable[Activity], lead_id: str, now: datetime) -> list[Activity]:
    if isinstance(history, (str, bytes)) or not isinstance(history, Iterable):
        raise CadenceError("history must be a list of Activity records")
    items = list(history)
    for item in items:
        if not isinstance(item, Activity):
            raise CadenceError(f"history holds a {type(item).__name__}, not an Activity")
        if item.lead_id != lead_id:
            raise CadenceError(
                f"activity {item.id} belongs to lead {item.lead_id}, not to lead {lead_id}"
            )
        _in_range(item.at.astimezone(UTC), f"activity {item.id} 'at'")
        if item.scheduled_for is not None:
            _in_range(item.scheduled_for.astimezone(UTC), f"activity {item.id} 'scheduled_for'")
    # In UTC from here on: step offsets in s/m/h are real durations, and timedelta arithmetic or
    # comparison on zoned datetimes would be wall-clock (an hour off across a DST change).
    return [in_utc(a) for a in in_order(items) if a.at <= now]


class _Replay:
    """Walks the history in order, switching and stopping cadences as events arrive."""

    def __init__(self, planner: _Planner, by_id: Mapping[str, Cadence], first: _Instance) -> None:
        self.planner = planner
        self.by_id = by_id
        self.inst = first
        self.opted_out_at: datetime | None = None
        self.dnc_at: datetime | None = None
        self.ended: str | None = None  # why a "stop" transition ended the cadence

    def stop_reason(self) -> str | None:
        zone = self.planner.zone
        if self.dnc_at is not None:
            return f"do-not-contact logged {_when_text(self.dnc_at, zone)}"
        if self.opted_out_at is not None:
            return f"the customer opted out {_when_text(self.opted_out_at, zone)}"
        return self.ended

    def advance(self, until: datetime) -> None:
        """Move on to the `then` cadence when the current run completed before `until`."""
        if self.stop_reason() is not None:
            return
        for _ in range(len(self.by_id) + 1):
            cadence = self.inst.cadence
            if cadence.then is None:
                return
            timeline = self.planner.timeline(self.inst, until)
            if timeline.complete_at is None or timeline.complete_at > until:
                return
            self.inst = _Instance(self.by_id[cadence.then], timeline.complete_at)

    def apply(self, activity: Activity) -> None:
        kind = activity.kind
        if kind is ActivityKind.OPT_OUT:
            self.opted_out_at = activity.at
        elif kind is ActivityKind.OPT_IN:
            self.opted_out_at = None
        elif kind is ActivityKind.DISPOSITION:
            flags = activity.flags
            if flags & DispositionFlag.DO_NOT_CONTACT:
                self.dnc_at = self.dnc_at or activity.at
            events = [str(f.name) for f in _FLAG_PRECEDENCE if flags & f]
            if "BAD_NUMBER" in events and not self._about_current_number(activity):
                events.remove("BAD_NUMBER")
            self._transition(events, activity)
        elif kind is ActivityKind.APPOINTMENT and activity.appointment_status is not None:
            self._transition([_APPOINTMENT_EVENT[activity.appointment_status]], activity)

    def _about_current_number(self, activity: Activity) -> bool:
        # A bad-number disposition about a number the lead no longer has changes nothing.
        return activity.phone is None or any(
            p.e164 == activity.phone for p in self.planner.lead.phones
        )

    def _transition(self, events: list[str], activity: Activity) -> None:
        if not events or self.dnc_at is not None:
            return
        cadence = self.inst.cadence
        rules = [t for t in (cadence.transition_for(e) for e in events) if t is not None]
        stop = next((t for t in rules if t.action is Action.STOP), None)
        if stop is not None:
            self.ended = f"{stop.event.replace('_', ' ').lower()} logged " + _when_text(
                activity.at, self.planner.zone
            )
            return
        switch = next((t for t in rules if t.action is Action.SWITCH), None)
        if switch is not None and switch.target is not None:
            self.inst = _Instance(self.by_id[switch.target], activity.at)
            self.ended = None
        elif self.ended is not None:
            return
        for rule in rules:
            if rule.action is Action.SKIP_PHONE:
                self.planner.phone_dropped = True
            elif rule.action is Action.CALLBACK and activity.scheduled_for is not None:
                self.inst.callback = (activity.at, max(_utc(activity.scheduled_for), activity.at))
        if "APPOINTMENT_SET" in events and activity.scheduled_for is not None:
            self.inst.appointment_at = _utc(activity.scheduled_for)
        if "APPOINTMENT_NO_SHOW" in events and switch is None:
            self.inst.no_show_at = activity.at


# --------------------------------------------------------------------------- describing


def describe_next(plan: CadencePlan, zone: tzinfo, *, limit: int = 2) -> str:
    """'Text #1 in 10 min · call #2 at 4:30 PM their time' for the queue and the lead panel."""
    if not isinstance(plan, CadencePlan):
        raise CadenceError(f"plan must be a CadencePlan, got {type(plan).__name__}")
    if not isinstance(zone, tzinfo):
        raise CadenceError(f"zone must be a tzinfo such as ZoneInfo, got {type(zone).__name__}")
    if plan.state is PlanState.STOPPED:
        return f"Stopped: {plan.reason}"
    if plan.state is PlanState.NO_CADENCE:
        return "No cadence"
    if plan.state is PlanState.COMPLETE:
        return "Cadence complete"
    if not plan.next_steps:
        return _capitalized(plan.reason)
    parts = []
    for position, step in enumerate(plan.next_steps[: max(1, limit)]):
        automatic = "auto " if step.automatic else ""
        what = f"{automatic}{_CHANNEL_LABEL[step.channel].lower()} #{step.attempt}"
        if step.step_id == CALLBACK_STEP_ID:
            what = f"callback (call #{step.attempt})"
        parts.append(f"{what} {_due_text(step.due_at, plan.now, zone, relative=position == 0)}")
    return _capitalized(" · ".join(parts))


def _capitalized(text: str) -> str:
    return text[:1].upper() + text[1:]


def _due_text(due: datetime, now: datetime, zone: tzinfo, *, relative: bool) -> str:
    seconds = (due - now).total_seconds()
    if relative and seconds < 60:
        return "now"
    if relative and seconds < 90 * 60:
        return f"in {int(-(-seconds // 60))} min"
    local, today = due.astimezone(zone), now.astimezone(zone).date()
    clock = _clock(local.time())
    days = (local.date() - today).days
    if days == 0:
        return f"at {clock} their time"
    if days == 1:
        return f"tomorrow at {clock} their time"
    if 1 < days < 7:
        return f"{local:%a} at {clock} their time"
    return f"{local:%b} {local.day} at {clock} their time"
