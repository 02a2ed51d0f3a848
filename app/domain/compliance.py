"""May I call / text / email this lead now — and if not, why, and when next?

Rules (see ../shared/domain/compliance.md; not legal advice):
- Time: the federal 8:00–21:00 window plus each applicable state's rules from
  resources/calling_rules.toml (narrower windows, Sunday and holiday bans), applied in every zone
  the customer may be in and for every state tied to them; the intersection is the legal window
  ("most restrictive wins"). Email has no window unless the rules file gives it one.
- Opt-out (lead.opted_out_at, an OPT_OUT activity or a do-not-contact disposition not followed by
  an OPT_IN) stops every channel. Do-not-call (lead.do_not_call or the number in the scrub list)
  stops calls and texts.
- Texts need an active text consent: marketing texts need marketing scope; informational texts
  (about the customer's own inquiry) accept either scope; conversational replies also go out when
  the customer texted first, and within an hour of their text they may go out after hours (a
  reply is not a solicitation). Calls need no consent record: agents dial by hand, about the
  customer's own inquiry; the do-not-call and opt-out rules govern them.
- The single opt-out confirmation text (purpose OPT_OUT_CONFIRMATION) is allowed within five
  minutes of a STOP, once, whatever the hour: the number is not disabled before it goes out.
- Rolling 24-hour call caps per phone number where a state sets one (FL, OK, MD: 3).

The window for a day is a single interval: when zones far apart would leave two pieces, the longest
is kept, so the cadence engine and this check always agree (and err on the strict side).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from app.domain.activities import (
    Activity,
    ActivityKind,
    Direction,
    DispositionFlag,
    in_order,
    in_utc,
)
from app.domain.errors import DomainError
from app.domain.leads import Channel, ConsentScope, Lead, LeadStatus
from app.domain.phones import Phone, format_for_display, make_phone
from app.domain.rules_file import Path, RulesDocument
from app.domain.timezones import US_STATE_CODES, ZoneResolution, require_aware, zone_info

Interval = tuple[datetime, datetime]

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_PLURAL = {Channel.CALL: "calls", Channel.TEXT: "texts", Channel.EMAIL: "emails"}

CALL_CAP_PERIOD = timedelta(hours=24)
# A reply to a customer who just texted is part of their conversation, not a solicitation: it may
# go out outside the calling window, but only this soon after their message.
CONVERSATION_REPLY_WINDOW = timedelta(hours=1)
# The single opt-out confirmation must follow the STOP promptly (FCC: within five minutes).
OPT_OUT_CONFIRMATION_WINDOW = timedelta(minutes=5)
# How far ahead to look for the next legal window before answering "not under these rules".
_SEARCH_DAYS = 370


class ComplianceError(DomainError):
    """Bad input to a compliance check (wrong type, unknown channel or purpose)."""


class ContactPurpose(StrEnum):
    CONVERSATIONAL = "conversational"  # replying to a customer who wrote first
    INFORMATIONAL = "informational"  # about the customer's own inquiry (the lead itself)
    MARKETING = "marketing"  # promotions, equity-mining offers: needs marketing consent
    OPT_OUT_CONFIRMATION = "opt_out_confirmation"  # the one text confirming a STOP


class BlockCode(StrEnum):
    QUIET_HOURS = "quiet_hours"
    SUNDAY_BAN = "sunday_ban"
    DAY_BAN = "day_ban"  # a weekday other than Sunday with no contact at all
    HOLIDAY_BAN = "holiday_ban"
    CALL_CAP = "call_cap"
    OPTED_OUT = "opted_out"
    DO_NOT_CALL = "do_not_call"
    NO_CONSENT = "no_consent"
    BAD_NUMBER = "bad_number"
    NOT_TEXTABLE = "not_textable"  # a landline or fax cannot receive texts
    NO_ADDRESS = "no_address"  # no phone number / email address to use
    CONFIRMATION_NOT_DUE = "confirmation_not_due"  # no fresh opt-out to confirm


# Blocks that pass by themselves with time; any other block waits for something to change.
TIME_CODES = frozenset(
    {
        BlockCode.QUIET_HOURS,
        BlockCode.SUNDAY_BAN,
        BlockCode.DAY_BAN,
        BlockCode.HOLIDAY_BAN,
        BlockCode.CALL_CAP,
    }
)


@dataclass(frozen=True, slots=True)
class BlockReason:
    code: BlockCode
    message: str  # for the agent, e.g. "quiet hours: it is 21:30 in America/New_York; ..."


@dataclass(frozen=True, slots=True)
class ContactDecision:
    allowed: bool
    reasons: tuple[BlockReason, ...] = ()
    # When contact will next be allowed if nothing else happens; None when allowed now, or when it
    # waits on something changing (an opt-in, new consent, a corrected number).
    next_allowed_at: datetime | None = None
    address: str | None = None  # the E.164 number or email address the decision is about

    @property
    def codes(self) -> frozenset[BlockCode]:
        return frozenset(r.code for r in self.reasons)

    @property
    def message(self) -> str:
        return "; ".join(r.message for r in self.reasons) if self.reasons else "allowed"


# --- Rules --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DayWindow:
    """Allowed local time on a day: [start, end); end == time.max means until midnight."""

    start: time
    end: time

    def __post_init__(self) -> None:
        if not self.start < self.end:
            raise DomainError(f"window start {self.start} must be before its end {self.end}")

    def bounds(self, day: date, zone_name: str) -> Interval:
        zone = zone_info(zone_name)
        start = datetime.combine(day, self.start, tzinfo=zone)
        if self.end == time.max:
            end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
        else:
            end = datetime.combine(day, self.end, tzinfo=zone)
        return start.astimezone(UTC), end.astimezone(UTC)


WHOLE_DAY = DayWindow(time(0), time.max)


@dataclass(frozen=True, slots=True)
class JurisdictionRule:
    """The federal rules or one state's: when contact is allowed on each day, and the call cap."""

    name: str  # "federal" or a state code
    note: str
    channels: frozenset[Channel] = frozenset({Channel.CALL, Channel.TEXT})
    window: DayWindow = WHOLE_DAY
    weekday_windows: Mapping[int, DayWindow] = field(default_factory=dict)  # 0 = Monday
    banned_weekdays: frozenset[int] = frozenset()
    holidays: frozenset[date] = frozenset()
    call_cap_24h: int | None = None

    def ban_on(self, day: date) -> BlockCode | None:
        if day in self.holidays:
            return BlockCode.HOLIDAY_BAN
        if day.weekday() in self.banned_weekdays:
            return BlockCode.SUNDAY_BAN if day.weekday() == 6 else BlockCode.DAY_BAN
        return None

    def window_on(self, day: date) -> DayWindow | None:
        """The allowed window on `day` (that zone's calendar day), None when banned."""
        if self.ban_on(day) is not None:
            return None
        return self.weekday_windows.get(day.weekday(), self.window)


@dataclass(frozen=True, slots=True)
class CallingRules:
    federal: JurisdictionRule
    states: Mapping[str, JurisdictionRule] = field(default_factory=dict)
    holidays_through: date | None = None  # the last day the holiday lists cover
    source: str = ""

    def layers(self, states: Iterable[str], channel: Channel) -> tuple[JurisdictionRule, ...]:
        """Every rule binding `channel` for a customer tied to `states`."""
        found = [self.federal]
        for code in dict.fromkeys(states):
            rule = self.states.get(code)
            if rule is not None:
                found.append(rule)
        return tuple(rule for rule in found if channel in rule.channels)

    def call_cap(self, states: Iterable[str]) -> tuple[int, str] | None:
        """The strictest rolling-24-hour call cap among `states`, with the state setting it."""
        caps = [
            (rule.call_cap_24h, code)
            for code in states
            if (rule := self.states.get(code)) is not None and rule.call_cap_24h is not None
        ]
        return min(caps) if caps else None


_RULE_KEYS = {"note", "channels", "start", "end", "no_calls_on", "holidays", *WEEKDAYS}


def parse_calling_rules(text: str, source: str) -> CallingRules:
    """Parse resources/calling_rules.toml; a broken file raises ResourceError naming the file,
    line and field."""
    doc = RulesDocument(text, source)
    doc.check_keys(doc.data, (), {"federal", "states", "holidays_through"})
    through: date | None = None
    if "holidays_through" in doc.data:
        through = _date(doc, ("holidays_through",), doc.data["holidays_through"])
    if "federal" not in doc.data:
        raise doc.error((), "missing required table [federal]")
    federal = _parse_rule(doc, ("federal",), "federal", allow_cap=False)
    states: dict[str, JurisdictionRule] = {}
    for code in doc.table(("states",), doc.data.get("states", {})):
        if code not in US_STATE_CODES:
            raise doc.error(("states", code), f"unknown US state code {code!r}")
        states[code] = _parse_rule(doc, ("states", code), code, allow_cap=True)
    return CallingRules(federal=federal, states=states, holidays_through=through, source=source)


def _parse_rule(doc: RulesDocument, path: Path, name: str, *, allow_cap: bool) -> JurisdictionRule:
    container: Any = doc.data
    for part in path:
        container = container[part]
    table = doc.table(path, container)
    doc.check_keys(table, path, _RULE_KEYS | ({"call_cap_24h"} if allow_cap else set()))
    note = doc.get(table, (*path, "note"), str).strip()
    if not note:
        raise doc.error((*path, "note"), "must say what the rule is and where it comes from")

    channels: set[Channel] = {Channel.CALL, Channel.TEXT}
    if "channels" in table:
        channels = set()
        for index, item in enumerate(doc.array((*path, "channels"), table["channels"])):
            if item not in {c.value for c in Channel}:
                allowed = ", ".join(c.value for c in Channel)
                raise doc.error((*path, "channels", index), f"unknown channel {item!r} ({allowed})")
            channels.add(Channel(item))

    window = WHOLE_DAY
    if "start" in table or "end" in table:
        window = _window(doc, table, path)

    banned: set[int] = set()
    for index, item in enumerate(doc.array((*path, "no_calls_on"), table.get("no_calls_on", []))):
        if not isinstance(item, str) or item.lower() not in WEEKDAYS:
            raise doc.error((*path, "no_calls_on", index), f"must be a weekday name, got {item!r}")
        banned.add(WEEKDAYS.index(item.lower()))

    weekday_windows: dict[int, DayWindow] = {}
    for index, day_name in enumerate(WEEKDAYS):
        if day_name not in table:
            continue
        day_path = (*path, day_name)
        if index in banned:
            raise doc.error(day_path, f"{day_name} has a window but is also in no_calls_on")
        day_table = doc.table(day_path, table[day_name])
        doc.check_keys(day_table, day_path, {"start", "end"})
        weekday_windows[index] = _window(doc, day_table, day_path)

    holidays = {
        _date(doc, (*path, "holidays", i), item)
        for i, item in enumerate(doc.array((*path, "holidays"), table.get("holidays", [])))
    }
    cap: int | None = None
    if "call_cap_24h" in table:
        cap = doc.get(table, (*path, "call_cap_24h"), int)
        if cap < 1:
            raise doc.error((*path, "call_cap_24h"), f"must be at least 1, got {cap}")
    return JurisdictionRule(
        name=name,
        note=note,
        channels=frozenset(channels),
        window=window,
        weekday_windows=weekday_windows,
        banned_weekdays=frozenset(banned),
        holidays=frozenset(holidays),
        call_cap_24h=cap,
    )


def _window(doc: RulesDocument, table: Mapping[str, Any], path: Path) -> DayWindow:
    start = doc.clock_time(table, (*path, "start"))
    end = doc.clock_time(table, (*path, "end"))
    if not start < end:
        raise doc.error((*path, "end"), f"end {end:%H:%M} must be after start {start:%H:%M}")
    return DayWindow(start, end)


def _date(doc: RulesDocument, path: Path, value: Any) -> date:
    if isinstance(value, datetime) or not isinstance(value, date):
        raise doc.error(path, f"must be a date like 2025-12-25, got {value!r}")
    return value


# --- Windows ------------------------------------------------------------------------------------


def _intersect(left: Sequence[Interval], right: Sequence[Interval]) -> list[Interval]:
    out: list[Interval] = []
    i = j = 0
    while i < len(left) and j < len(right):
        start = max(left[i][0], right[j][0])
        end = min(left[i][1], right[j][1])
        if start < end:
            out.append((start, end))
        if left[i][1] < right[j][1]:
            i += 1
        else:
            j += 1
    return out


def _allowed_in_zone(
    rule: JurisdictionRule, zone: str, low: datetime, high: datetime
) -> list[Interval]:
    """Where `rule` allows contact in `zone`, within [low, high), as sorted UTC intervals."""
    tz = zone_info(zone)
    first = low.astimezone(tz).date() - timedelta(days=1)
    last = high.astimezone(tz).date() + timedelta(days=1)
    out: list[Interval] = []
    day = first
    while day <= last:
        window = rule.window_on(day)
        if window is not None:
            start, end = window.bounds(day, zone)
            start, end = max(start, low), min(end, high)
            if start < end:
                if out and out[-1][1] >= start:  # whole days touch at midnight: merge
                    out[-1] = (out[-1][0], max(out[-1][1], end))
                else:
                    out.append((start, end))
        day += timedelta(days=1)
    return out


def _check_inputs(rules: object, resolution: object, channel: object) -> Channel:
    if not isinstance(rules, CallingRules):
        raise ComplianceError(f"calling rules expected, got {type(rules).__name__}")
    if not isinstance(resolution, ZoneResolution):
        raise ComplianceError(f"a ZoneResolution expected, got {type(resolution).__name__}")
    return _channel(channel)


def _channel(channel: object) -> Channel:
    if isinstance(channel, Channel):
        return channel
    if isinstance(channel, str) and channel in {c.value for c in Channel}:
        return Channel(channel)
    raise ComplianceError(f"unknown channel {channel!r} (call, text or email)")


def legal_window(
    rules: CallingRules, resolution: ZoneResolution, channel: Channel, local_day: date
) -> tuple[datetime, datetime] | None:
    """The allowed [start, end) on `local_day` (the customer's calendar day in the primary zone),
    as datetimes in the primary zone; None when no contact on that channel is allowed that day."""
    channel = _check_inputs(rules, resolution, channel)
    if isinstance(local_day, datetime) or not isinstance(local_day, date):
        raise ComplianceError(f"local_day must be a date, got {local_day!r}")
    primary = resolution.primary_zone
    low, high = WHOLE_DAY.bounds(local_day, resolution.primary)
    allowed: list[Interval] = [(low, high)]
    for rule in rules.layers(resolution.states, channel):
        for zone in resolution.zones:
            allowed = _intersect(allowed, _allowed_in_zone(rule, zone, low, high))
            if not allowed:
                return None
    start, end = max(allowed, key=lambda piece: (piece[1] - piece[0], -piece[0].timestamp()))
    return start.astimezone(primary), end.astimezone(primary)


def legal_window_fn(
    rules: CallingRules, resolution: ZoneResolution
) -> Callable[[Channel, date], tuple[datetime, datetime] | None]:
    """legal_window bound to one customer: the callable the cadence engine takes."""
    _check_inputs(rules, resolution, Channel.CALL)
    cache: dict[tuple[Channel, date], tuple[datetime, datetime] | None] = {}

    def window(channel: Channel, local_day: date) -> tuple[datetime, datetime] | None:
        key = (_channel(channel), local_day)
        if key not in cache:
            cache[key] = legal_window(rules, resolution, key[0], local_day)
        return cache[key]

    return window


def within_window(
    rules: CallingRules, resolution: ZoneResolution, channel: Channel, when: datetime
) -> bool:
    """Whether `when` falls inside that day's legal window."""
    when = require_aware(when, "when").astimezone(UTC)  # zoned comparisons ignore the DST fold
    window = legal_window(rules, resolution, channel, resolution.local_time(when).date())
    return window is not None and window[0] <= when < window[1]


def next_window_start(
    rules: CallingRules, resolution: ZoneResolution, channel: Channel, after: datetime
) -> datetime | None:
    """The first moment at or after `after` inside a legal window (in the primary zone), or None
    when the rules allow none in the coming year."""
    after = require_aware(after, "after").astimezone(UTC)  # zoned comparisons ignore the DST fold
    day = resolution.local_time(after).date()
    for _ in range(_SEARCH_DAYS):
        window = legal_window(rules, resolution, channel, day)
        if window is not None and after < window[1]:
            return max(after, window[0].astimezone(UTC)).astimezone(resolution.primary_zone)
        day += timedelta(days=1)
    return None


# --- History ------------------------------------------------------------------------------------


def _lead_numbers(lead: Lead) -> set[str]:
    return {p.e164 for p in lead.phones if p.e164}


def _about_lead(activity: Activity, lead: Lead, numbers: set[str]) -> bool:
    return activity.lead_id == lead.id or (activity.phone is not None and activity.phone in numbers)


def opted_out_since(lead: Lead, history: Iterable[Activity], now: datetime) -> datetime | None:
    """When the customer's standing opt-out began (None when they are not opted out at `now`).
    The latest of lead.opted_out_at, OPT_OUT activities and do-not-contact dispositions wins
    unless a later OPT_IN follows it; at the same instant the opt-out wins."""
    # In UTC: events sorted as zoned datetimes would ignore the DST fold.
    now = require_aware(now, "now").astimezone(UTC)
    numbers = _lead_numbers(lead)
    events: list[tuple[datetime, int]] = []  # (when, 1 = out / 0 = in)
    if lead.opted_out_at is not None:
        # The lead's standing opt-out counts even when dated after `now`: the server stamps it
        # with its own clock, and a PC whose clock runs behind must not reopen the customer.
        events.append((lead.opted_out_at.astimezone(UTC), 1))
    for activity in _known(history, now):
        if not _about_lead(activity, lead, numbers):
            continue
        if activity.kind is ActivityKind.OPT_OUT or (
            activity.kind is ActivityKind.DISPOSITION
            and activity.flags & DispositionFlag.DO_NOT_CONTACT
        ):
            events.append((activity.at, 1))
        elif activity.kind is ActivityKind.OPT_IN:
            events.append((activity.at, 0))
    if not events:
        return None
    events.sort()
    last_at, last_kind = events[-1]
    return last_at if last_kind == 1 else None


def _known(history: Iterable[Activity], now: datetime) -> list[Activity]:
    """The history as known at `now`, in order and in UTC; later records have not happened yet.
    (In UTC because timedelta arithmetic and comparisons on zoned datetimes are wall-clock.)"""
    if isinstance(history, (str, bytes)) or not isinstance(history, Iterable):
        raise ComplianceError(f"history must be a list of activities, got {type(history).__name__}")
    items = list(history)
    for item in items:
        if not isinstance(item, Activity):
            raise ComplianceError(f"history holds a {type(item).__name__}, not an Activity")
    return [in_utc(a) for a in in_order(items) if a.at <= now]


# --- The check ----------------------------------------------------------------------------------


def _clock(moment: datetime) -> str:
    return f"{moment.hour}:{moment.minute:02d}"


def _when_text(moment: datetime, now_local: datetime) -> str:
    """'8:00', '8:00 tomorrow' or '8:00 on Mon 2025-06-02', in the primary zone."""
    days = (moment.date() - now_local.date()).days
    if days == 0:
        return _clock(moment)
    if days == 1:
        return f"{_clock(moment)} tomorrow"
    return f"{_clock(moment)} on {moment:%a %Y-%m-%d}"


def _display(number: str) -> str:
    try:
        return format_for_display(number)
    except Exception:  # a number that parsed once always formats; never fail a message on it
        return number


@dataclass(slots=True)
class _Target:
    address: str | None = None
    reasons: list[BlockReason] = field(default_factory=list)


def _phone_target(
    lead: Lead, channel: Channel, phone: Phone | str | None, fallback: str | None
) -> _Target:
    if isinstance(phone, str):
        phone = make_phone(phone)
    elif phone is not None and not isinstance(phone, Phone):
        raise ComplianceError(f"phone must be a Phone or a number, got {type(phone).__name__}")
    if phone is None and fallback is not None:
        phone = make_phone(fallback)
    if phone is None:
        phone = lead.primary_phone if channel is Channel.CALL else lead.text_phone
        if phone is None:
            if channel is Channel.TEXT and lead.primary_phone is not None:
                shown = _display(lead.primary_phone.e164 or "")
                code, text = BlockCode.NOT_TEXTABLE, f"{shown} cannot receive texts (not a cell)"
            elif lead.phones:
                code, text = BlockCode.BAD_NUMBER, "no valid phone number on file"
            else:
                code, text = BlockCode.NO_ADDRESS, "no phone number on file"
            return _Target(None, [BlockReason(code, text)])
    if phone.e164 is None:
        return _Target(
            None, [BlockReason(BlockCode.BAD_NUMBER, f"{phone.raw!r} is not a valid number")]
        )
    if channel is Channel.TEXT and not phone.textable:
        text = f"{_display(phone.e164)} cannot receive texts ({phone.kind.value})"
        return _Target(phone.e164, [BlockReason(BlockCode.NOT_TEXTABLE, text)])
    return _Target(phone.e164)


def _marked_bad(lead: Lead, known: Sequence[Activity], number: str) -> datetime | None:
    """When `number` was last dispositioned as a bad number with no conversation on it since."""
    primary = lead.primary_phone.e164 if lead.primary_phone else None
    bad_at: datetime | None = None
    for activity in known:
        on_number = activity.phone == number or (
            activity.phone is None and activity.lead_id == lead.id and number == primary
        )
        if not on_number:
            continue
        if (
            activity.kind is ActivityKind.DISPOSITION
            and activity.flags & DispositionFlag.BAD_NUMBER
        ):
            bad_at = activity.at
        elif activity.direction is Direction.INBOUND or (
            activity.kind is ActivityKind.CALL and activity.answered
        ):
            bad_at = None
    return bad_at


def _text_consent(
    lead: Lead,
    known: Sequence[Activity],
    now: datetime,
    purpose: ContactPurpose,
    since: datetime | None,
) -> BlockReason | None:
    active = lead.consent_for(Channel.TEXT, now)
    if purpose is ContactPurpose.MARKETING:
        if any(c.scope is ConsentScope.MARKETING for c in active):
            return None
        found = ", ".join(sorted({c.scope.value for c in active})) or "none"
        return BlockReason(
            BlockCode.NO_CONSENT,
            f"marketing texts need written marketing consent (active text consent: {found})",
        )
    if active:
        return None
    if purpose is ContactPurpose.CONVERSATIONAL and _customer_texted(lead, known, since):
        return None
    return BlockReason(BlockCode.NO_CONSENT, "no active consent to text this customer on file")


def _customer_texted(lead: Lead, known: Sequence[Activity], since: datetime | None) -> bool:
    numbers = _lead_numbers(lead)
    return any(
        a.kind in (ActivityKind.TEXT, ActivityKind.OPT_IN)
        and a.direction is Direction.INBOUND
        and _about_lead(a, lead, numbers)
        and (since is None or a.at > since)
        for a in known
    )


def _last_inbound_text(lead: Lead, known: Sequence[Activity]) -> datetime | None:
    numbers = _lead_numbers(lead)
    times = [
        a.at
        for a in known
        if a.kind is ActivityKind.TEXT
        and a.direction is Direction.INBOUND
        and _about_lead(a, lead, numbers)
    ]
    return max(times) if times else None


def _call_cap(
    rules: CallingRules,
    resolution: ZoneResolution,
    lead: Lead,
    known: Sequence[Activity],
    number: str,
    now: datetime,
) -> tuple[BlockReason, datetime] | None:
    """The cap block and when it lifts (the oldest counted call leaving the 24 hours)."""
    cap = rules.call_cap(resolution.states)
    if cap is None:
        return None
    limit, state = cap
    now = now.astimezone(UTC)  # real hours, whatever zone the caller's `now` is in
    calls = sorted(
        a.at.astimezone(UTC)
        for a in known
        if a.kind is ActivityKind.CALL
        and a.direction is Direction.OUTBOUND
        and now - CALL_CAP_PERIOD < a.at <= now
        # a call with no number recorded is counted against this lead's number, to be safe
        and (a.phone == number or (a.phone is None and a.lead_id == lead.id))
    )
    if len(calls) < limit:
        return None
    lifts = calls[len(calls) - limit] + CALL_CAP_PERIOD
    local = lifts.astimezone(resolution.primary_zone)
    message = (
        f"call cap: {len(calls)} calls to {_display(number)} in the last 24 hours "
        f"({state} allows {limit}); the next call is allowed from "
        f"{_when_text(local, resolution.local_time(now))} {resolution.primary}"
    )
    return BlockReason(BlockCode.CALL_CAP, message), lifts


def _time_reasons(
    rules: CallingRules,
    resolution: ZoneResolution,
    channel: Channel,
    now: datetime,
    next_start: datetime | None,
) -> list[BlockReason]:
    now_local = resolution.local_time(now)
    plural = _PLURAL[channel]
    if next_start is None:
        then = f"no {plural} allowed in the coming year under the current rules"
    else:
        then = f"{plural} allowed from {_when_text(next_start, now_local)}"
    reasons: list[BlockReason] = []
    seen: set[tuple[BlockCode, str, date]] = set()
    for rule in rules.layers(resolution.states, channel):
        who = "federal rules" if rule.name == "federal" else rule.name
        for zone in resolution.zones:
            day = now.astimezone(zone_info(zone)).date()
            code = rule.ban_on(day)
            if code is None or (code, rule.name, day) in seen:
                continue
            seen.add((code, rule.name, day))
            if code is BlockCode.HOLIDAY_BAN:
                what = f"{day.isoformat()} is a state holiday in {who}: no {plural}"
            else:
                what = f"no {plural} on {day:%A}s in {who}"
            reasons.append(BlockReason(code, f"{what} ({zone}); {then}"))
    if reasons:
        return reasons
    strictest = ""
    if len(resolution.zones) > 1:
        strictest = f" (strictest of {', '.join(resolution.zones)})"
    message = f"quiet hours: it is {_clock(now_local)} in {resolution.primary}{strictest}; {then}"
    return [BlockReason(BlockCode.QUIET_HOURS, message)]


def check_contact(
    rules: CallingRules,
    lead: Lead,
    history: Iterable[Activity],
    channel: Channel,
    now: datetime,
    *,
    resolution: ZoneResolution,
    dnc_numbers: frozenset[str] = frozenset(),
    phone: Phone | str | None = None,
    purpose: ContactPurpose = ContactPurpose.INFORMATIONAL,
) -> ContactDecision:
    """May this lead be contacted on `channel` at `now` — and if not, every reason why and when
    next (None when it waits for something to change). `phone` defaults to the lead's primary
    phone (calls) or textable phone (texts). History records after `now` are ignored."""
    channel = _check_inputs(rules, resolution, channel)
    if not isinstance(lead, Lead):
        raise ComplianceError(f"a Lead expected, got {type(lead).__name__}")
    # In UTC: timedelta arithmetic on a zoned datetime is wall-clock arithmetic, so "24 hours
    # before" a local time would span 25 real hours across a DST change.
    now = require_aware(now, "now").astimezone(UTC)
    if isinstance(purpose, str) and not isinstance(purpose, ContactPurpose):
        if purpose not in {p.value for p in ContactPurpose}:
            raise ComplianceError(f"unknown contact purpose {purpose!r}")
        purpose = ContactPurpose(purpose)
    if not isinstance(purpose, ContactPurpose):
        raise ComplianceError(f"unknown contact purpose {purpose!r}")
    if not isinstance(dnc_numbers, (frozenset, set)) or not all(
        isinstance(n, str) for n in dnc_numbers
    ):
        raise ComplianceError("dnc_numbers must be a set of E.164 numbers")
    known = _known(history, now)
    opted_out = opted_out_since(lead, known, now)
    confirming = purpose is ContactPurpose.OPT_OUT_CONFIRMATION

    reasons: list[BlockReason] = []
    last_stop: Activity | None = None
    if confirming:
        last_stop, problem = _confirmation_due(lead, known, channel, now, opted_out)
        if problem is not None:
            reasons.append(BlockReason(BlockCode.CONFIRMATION_NOT_DUE, problem))
    elif lead.status is LeadStatus.DO_NOT_CONTACT:
        reasons.append(
            BlockReason(BlockCode.OPTED_OUT, "the lead is marked do-not-contact: no contact at all")
        )
    elif opted_out is not None:
        when = opted_out.astimezone(resolution.primary_zone)
        reasons.append(
            BlockReason(
                BlockCode.OPTED_OUT,
                f"opted out on {when:%Y-%m-%d} at {_clock(when)} {resolution.primary}: "
                "no calls, texts or emails until they opt back in",
            )
        )

    address: str | None
    if channel is Channel.EMAIL:
        email = lead.primary_email
        address = email.address if email else None
        if email is None:
            text = (
                f"email address {lead.emails[0].address!r} is not valid"
                if lead.emails
                else "no email address on file"
            )
            reasons.append(BlockReason(BlockCode.NO_ADDRESS, text))
    else:
        stop_phone = last_stop.phone if last_stop is not None else None
        target = _phone_target(lead, channel, phone, stop_phone)
        address = target.address
        reasons.extend(target.reasons)
        if address is not None and not target.reasons:
            bad_at = _marked_bad(lead, known, address)
            if bad_at is not None:
                reasons.append(
                    BlockReason(
                        BlockCode.BAD_NUMBER,
                        f"{_display(address)} was marked a bad number on "
                        f"{bad_at.astimezone(resolution.primary_zone):%Y-%m-%d}",
                    )
                )
        if not confirming:
            if lead.do_not_call:
                reasons.append(
                    BlockReason(
                        BlockCode.DO_NOT_CALL,
                        f"the lead is on the do-not-call list: no {_PLURAL[channel]}",
                    )
                )
            elif address is not None and address in dnc_numbers:
                reasons.append(
                    BlockReason(
                        BlockCode.DO_NOT_CALL,
                        f"{_display(address)} is on the do-not-call list: no {_PLURAL[channel]}",
                    )
                )
        if channel is Channel.TEXT and not confirming:
            consent = _text_consent(lead, known, now, purpose, opted_out)
            if consent is not None:
                reasons.append(consent)

    cap_lifts: datetime | None = None
    if channel is Channel.CALL and address is not None:
        capped = _call_cap(rules, resolution, lead, known, address, now)
        if capped is not None:
            reasons.append(capped[0])
            cap_lifts = capped[1]

    exempt_from_clock = confirming or (
        channel is Channel.TEXT
        and purpose is ContactPurpose.CONVERSATIONAL
        and (last_in := _last_inbound_text(lead, known)) is not None
        and now - last_in <= CONVERSATION_REPLY_WINDOW
    )
    earliest = max(now, cap_lifts) if cap_lifts is not None else now
    next_start: datetime | None = earliest
    if not exempt_from_clock:
        if not within_window(rules, resolution, channel, now):
            next_start = next_window_start(rules, resolution, channel, earliest)
            reasons.extend(_time_reasons(rules, resolution, channel, now, next_start))
        elif cap_lifts is not None:
            next_start = next_window_start(rules, resolution, channel, earliest)

    if not reasons:
        return ContactDecision(allowed=True, address=address)
    waits_on_change = any(r.code not in TIME_CODES for r in reasons)
    next_allowed = None if waits_on_change or next_start is None else next_start
    if next_allowed is not None:
        next_allowed = next_allowed.astimezone(resolution.primary_zone)
    return ContactDecision(
        allowed=False, reasons=tuple(reasons), next_allowed_at=next_allowed, address=address
    )


def _confirmation_due(
    lead: Lead,
    known: Sequence[Activity],
    channel: Channel,
    now: datetime,
    opted_out: datetime | None,
) -> tuple[Activity | None, str | None]:
    """The STOP being confirmed, or why no confirmation may go out now."""
    if channel is not Channel.TEXT:
        return None, "an opt-out is confirmed by text only"
    if opted_out is None:
        return None, "there is no opt-out to confirm"
    numbers = _lead_numbers(lead)
    stops = [
        a
        for a in known
        if a.kind is ActivityKind.OPT_OUT and a.at == opted_out and _about_lead(a, lead, numbers)
    ]
    if not stops:
        return None, "the opt-out was not a text reply: there is no text to confirm"
    stop = stops[-1]
    if now - stop.at > OPT_OUT_CONFIRMATION_WINDOW:
        return stop, "the opt-out confirmation is only sent within 5 minutes of the request"
    already = any(
        a.kind is ActivityKind.TEXT and a.direction is Direction.OUTBOUND and a.at >= stop.at
        for a in known
        if _about_lead(a, lead, numbers)
    )
    if already:
        return stop, "the opt-out was already confirmed: only one confirmation is allowed"
    return stop, None
