"""Zoned datetimes near DST changes: the rules answer by instant, whatever zone times are in.

Python's `aware ± timedelta` is wall-clock arithmetic within one tzinfo, and two datetimes that
share a tzinfo compare and subtract by wall time, ignoring the DST fold: on the fall-back night
1:50 CDT sorts after 1:10 CST (forty minutes later), and 1:30 CDT + 1 h is 2:30 CST, two real
hours later. Durations ("5 minutes after", "within 24 hours", "4 h after the call") are real time;
"N days later at the same time of day" is wall-clock, built from a date and a time.

Each property writes the same instants once in UTC and once (mostly) in a US zone, near that zone's
DST changes, and asks for the same answer.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.domain.activities import (
    Activity,
    ActivityKind,
    AppointmentStatus,
    Direction,
    DispositionFlag,
    in_order,
    in_utc,
)
from app.domain.cadence import CadencePlan, parse_cadence, plan
from app.domain.clocks import BusinessHours, OpenInterval, response_clocks
from app.domain.compliance import (
    ContactDecision,
    ContactPurpose,
    check_contact,
    parse_calling_rules,
)
from app.domain.dispositions import disposition_activity, parse_dispositions
from app.domain.errors import InvalidActivityError
from app.domain.leads import (
    Address,
    Channel,
    Consent,
    ConsentScope,
    Email,
    Lead,
    LeadSource,
    Person,
    SourceType,
)
from app.domain.phones import make_phone
from app.domain.priority import WorkItem, WorkKind, countdown_text, rank, why_first
from app.domain.timezones import parse_zip_prefixes, resolve_zones
from app.rulebook import read_resource

F = DispositionFlag
ZONE_NAMES = ("America/Chicago", "America/New_York", "America/Phoenix", "Pacific/Honolulu")
ZONES = tuple(ZoneInfo(name) for name in ZONE_NAMES)
CHI = ZoneInfo("America/Chicago")
NY = ZoneInfo("America/New_York")
# The fall-back night in Chicago, 2025-11-02: 1:00-2:00 local happens twice.
FIRST_150 = datetime(2025, 11, 2, 1, 50, tzinfo=CHI)  # CDT, 06:50 UTC
SECOND_110 = datetime(2025, 11, 2, 1, 10, tzinfo=CHI, fold=1)  # CST, 07:10 UTC, 20 min later


def _changes(zone: ZoneInfo) -> list[datetime]:
    """The UTC instants in 2025-2026 when `zone`'s UTC offset changes."""
    found = []
    moment = datetime(2025, 1, 1, tzinfo=UTC)
    offset = moment.astimezone(zone).utcoffset()
    while moment.year < 2027:
        moment += timedelta(hours=1)
        now_offset = moment.astimezone(zone).utcoffset()
        if now_offset != offset:
            found.append(moment)
            offset = now_offset
    return found


# Phoenix and Honolulu keep one offset: they get the mainland's change instants (nothing moves).
CHANGES = {zone.key: _changes(zone) or _changes(CHI) for zone in ZONES}


@st.composite
def instants(draw: st.DrawFn, zone: ZoneInfo, minutes: int = 180) -> datetime:
    """A UTC instant within `minutes` of one of `zone`'s DST changes."""
    change = draw(st.sampled_from(CHANGES[zone.key]))
    return change + timedelta(minutes=draw(st.integers(-minutes, minutes)))


def _written(draw: st.DrawFn, instant: datetime, zone: ZoneInfo) -> datetime:
    """The instant written in `zone` (three times in four) or in UTC."""
    return instant.astimezone(zone) if draw(st.integers(0, 3)) else instant


def _utc_fields(value: Any) -> Any:
    """Every datetime in a (nested) result as UTC, so results written in two zones compare."""
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    if isinstance(value, (list, tuple)):
        return type(value)(_utc_fields(v) for v in value)
    return value


def _lead(received: datetime, **changes: Any) -> Lead:
    base: dict[str, Any] = {
        "id": "L1",
        "store_id": "S1",
        "received_at": received,
        "person": Person("Ann", "Lee"),
        "source": LeadSource("Dealer website", SourceType.FIRST_PARTY),
        "phones": (make_phone("(305) 555-0123"),),
        "emails": (Email("ann@example.com"),),
    }
    base.update(changes)
    return Lead(**base)


def _act(n: int, kind: ActivityKind, at: datetime, **fields: Any) -> Activity:
    if kind in (ActivityKind.CALL, ActivityKind.TEXT, ActivityKind.EMAIL):
        fields.setdefault("direction", Direction.OUTBOUND)
    if kind is ActivityKind.DISPOSITION:
        fields.setdefault("disposition", "code")
    if kind is ActivityKind.APPOINTMENT:
        fields.setdefault("appointment_status", AppointmentStatus.SET)
    return Activity(id=f"a{n}", lead_id="L1", kind=kind, at=at, **fields)


def _rewritten(activity: Activity, draw: st.DrawFn, zone: ZoneInfo) -> Activity:
    scheduled = activity.scheduled_for
    return replace(
        activity,
        at=_written(draw, activity.at, zone),
        scheduled_for=None if scheduled is None else _written(draw, scheduled, zone),
    )


# --- activities ---------------------------------------------------------------------------------


def test_in_order_sorts_the_repeated_hour_by_instant() -> None:
    later = _act(1, ActivityKind.TEXT, SECOND_110)
    earlier = _act(2, ActivityKind.CALL, FIRST_150)
    assert [a.id for a in in_order([later, earlier])] == ["a2", "a1"]


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_property_in_order_sorts_by_instant_whatever_zone_a_time_is_written_in(
    data: st.DataObject,
) -> None:
    zone = data.draw(st.sampled_from(ZONES))
    moments = data.draw(st.lists(instants(zone), min_size=2, max_size=8))
    history = [
        _rewritten(_act(n, ActivityKind.NOTE, moment), data.draw, zone)
        for n, moment in enumerate(moments)
    ]
    ordered = [a.at.astimezone(UTC) for a in in_order(history)]
    assert ordered == sorted(ordered)
    assert all(in_utc(a).at == a.at.astimezone(UTC) and in_utc(a).at.tzinfo is UTC for a in history)


# --- response clocks ----------------------------------------------------------------------------

ALWAYS_OPEN_WEEK = tuple((OpenInterval(time(0), time.max),) for _ in range(7))


@st.composite
def clock_scenarios(draw: st.DrawFn) -> tuple[ZoneInfo, Lead, list[Activity], datetime]:
    zone = draw(st.sampled_from(ZONES))
    received = draw(instants(zone)) - timedelta(minutes=draw(st.integers(0, 30)))
    kinds = [ActivityKind.CALL, ActivityKind.TEXT, ActivityKind.EMAIL, ActivityKind.DISPOSITION]
    history = []
    for n in range(draw(st.integers(1, 6))):
        at = received + timedelta(minutes=draw(st.integers(0, 240)))
        kind = draw(st.sampled_from(kinds))
        fields: dict[str, Any] = {}
        if kind is ActivityKind.DISPOSITION:
            fields["flags"] = draw(st.sampled_from([F.ATTEMPT, F.ATTEMPT | F.HUMAN_CONTACT]))
        else:
            fields["automatic"] = draw(st.booleans())
            fields["answered"] = draw(st.booleans())
        history.append(_act(n, kind, at, **fields))
    now = received + timedelta(minutes=draw(st.integers(0, 300)))
    return zone, _lead(received), history, now


@settings(max_examples=200, deadline=None)
@given(clock_scenarios(), st.data())
def test_property_response_clocks_do_not_depend_on_the_zone_times_are_written_in(
    scenario: tuple[ZoneInfo, Lead, list[Activity], datetime], data: st.DataObject
) -> None:
    zone, lead, history, now = scenario
    hours = BusinessHours(time_zone=zone.key, week=ALWAYS_OPEN_WEEK)
    in_utc_terms = response_clocks(lead, history, hours, now=now)
    zoned = response_clocks(
        replace(lead, received_at=_written(data.draw, lead.received_at, zone)),
        [_rewritten(a, data.draw, zone) for a in history],
        hours,
        now=_written(data.draw, now, zone),
    )
    assert zoned == in_utc_terms


# --- cadences -----------------------------------------------------------------------------------

DST_CADENCE = parse_cadence(
    """
id = "dst"
name = "Night shift"

[[applies_to]]

[stop]
max_attempts = 10
max_days = 2

[transitions]
HUMAN_CONTACT = "dst"
CALLBACK = "callback"

[[steps]]
id = "ack"
channel = "email"
from = "start"
offset = "30m"
template = "t"
automatic = true

[[steps]]
id = "call"
channel = "call"
offset = "1h"
script = "s"

[[steps]]
id = "note"
channel = "task"
offset = "90m"
note = "check the trade-in"

[[steps]]
id = "mail"
channel = "email"
offset = "2h"
template = "t"

[[steps]]
id = "next_day"
channel = "email"
offset = "1d"
template = "t"
""",
    "dst.toml",
)


def _plan_facts(result: CadencePlan) -> tuple[Any, ...]:
    return _utc_fields(
        (
            result.state,
            result.cadence_id,
            result.reason,
            result.started_at,
            result.ends_at,
            [(d.step_id, d.activity_id, d.done_at) for d in result.done],
            result.skipped,
            [(s.step_id, s.due_at, s.late_since, s.reason) for s in result.next_steps],
        )
    )


@st.composite
def cadence_scenarios(draw: st.DrawFn) -> tuple[ZoneInfo, Lead, list[Activity], datetime]:
    zone = draw(st.sampled_from(ZONES))
    received = draw(instants(zone))
    kinds = [ActivityKind.CALL, ActivityKind.EMAIL, ActivityKind.NOTE, ActivityKind.DISPOSITION]
    history = []
    for n in range(draw(st.integers(0, 5))):
        at = received + timedelta(minutes=draw(st.integers(0, 240)))
        kind = draw(st.sampled_from(kinds))
        fields: dict[str, Any] = {}
        if kind is ActivityKind.DISPOSITION:
            flags = draw(st.sampled_from([F.ATTEMPT, F.HUMAN_CONTACT, F.CALLBACK]))
            fields["flags"] = flags
            if flags is F.CALLBACK:
                fields["scheduled_for"] = at + timedelta(minutes=draw(st.integers(0, 180)))
        history.append(_act(n, kind, at, **fields))
    now = received + timedelta(minutes=draw(st.integers(0, 300)))
    return zone, _lead(received), history, now


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cadence_scenarios(), st.data())
def test_property_cadence_plan_does_not_depend_on_the_zone_times_are_written_in(
    scenario: tuple[ZoneInfo, Lead, list[Activity], datetime], data: st.DataObject
) -> None:
    zone, lead, history, now = scenario
    in_utc_terms = plan([DST_CADENCE], lead, history, now, zone=zone)
    zoned = plan(
        [DST_CADENCE],
        replace(lead, received_at=_written(data.draw, lead.received_at, zone)),
        [_rewritten(a, data.draw, zone) for a in history],
        _written(data.draw, now, zone),
        zone=zone,
    )
    assert _plan_facts(zoned) == _plan_facts(in_utc_terms)


def test_an_hours_offset_after_a_call_in_the_repeated_hour_is_real_time() -> None:
    lead = _lead(FIRST_150 - timedelta(hours=1))
    history = [_act(1, ActivityKind.EMAIL, FIRST_150 - timedelta(minutes=30), automatic=True)]
    history.append(_act(2, ActivityKind.CALL, FIRST_150))  # 1:50 CDT; the note is due 90 min later
    result = plan([DST_CADENCE], lead, history, FIRST_150, zone=CHI)
    note = next(s for s in result.next_steps if s.step_id == "note")
    assert note.due_at == FIRST_150.astimezone(UTC) + timedelta(minutes=90)  # 2:20 CST


def _last_day_cadence(days: int) -> Any:
    return parse_cadence(
        f"""
id = "month"
name = "Month"

[[applies_to]]

[stop]
max_attempts = 5
max_days = {days}

[[steps]]
id = "last"
channel = "email"
from = "start"
offset = "{days}d"
template = "t"
""",
        "month.toml",
    )


@pytest.mark.parametrize(
    "received",
    [
        datetime(2025, 10, 20, 10, 0, tzinfo=CHI),  # 30 days later is after the fall-back
        datetime(2025, 3, 1, 10, 0, tzinfo=CHI),  # ... after the spring-forward
    ],
)
def test_a_step_on_the_last_calendar_day_of_a_cadence_is_kept_across_dst(
    received: datetime,
) -> None:
    result = plan([_last_day_cadence(30)], _lead(received), [], received, zone=CHI)
    last_day = datetime.combine(received.date() + timedelta(days=30), time(10), CHI)
    assert [(s.step_id, s.due_at) for s in result.next_steps] == [("last", last_day)]
    assert result.ends_at == last_day


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(ZONES),
    st.integers(0, 2 * 365 * 24 * 60),
    st.integers(1, 60),
)
def test_property_max_days_are_calendar_days_like_day_offsets(
    zone: ZoneInfo, minutes: int, days: int
) -> None:
    received = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes)
    result = plan([_last_day_cadence(days)], _lead(received), [], received, zone=zone)
    assert [s.step_id for s in result.next_steps] == ["last"], result.skipped
    assert result.next_steps[0].due_at == result.ends_at


# --- compliance ---------------------------------------------------------------------------------

RULES = parse_calling_rules(*read_resource("calling_rules.toml"))
ZIPS = parse_zip_prefixes(*read_resource("us_zip_prefixes.toml"))
FL_CELL = "+13055550123"


@st.composite
def contact_scenarios(draw: st.DrawFn) -> tuple[Lead, list[Activity], datetime]:
    start = draw(instants(NY, minutes=120))
    kinds = [
        (ActivityKind.CALL, Direction.OUTBOUND),
        (ActivityKind.TEXT, Direction.OUTBOUND),
        (ActivityKind.TEXT, Direction.INBOUND),
        (ActivityKind.OPT_OUT, Direction.INBOUND),
        (ActivityKind.OPT_IN, Direction.INBOUND),
        (ActivityKind.DISPOSITION, None),
    ]
    history = []
    for n in range(draw(st.integers(1, 7))):
        kind, direction = draw(st.sampled_from(kinds))
        at = start + timedelta(minutes=draw(st.integers(0, 150)))
        fields: dict[str, Any] = {"direction": direction, "phone": FL_CELL}
        if kind is ActivityKind.DISPOSITION:
            fields["flags"] = draw(st.sampled_from([F.ATTEMPT, F.BAD_NUMBER, F.DO_NOT_CONTACT]))
        history.append(_act(n, kind, at, **fields))
    now = start + timedelta(minutes=draw(st.integers(0, 180)))
    consent_from = start + timedelta(minutes=draw(st.integers(-60, 180)))
    lead = _lead(
        start - timedelta(days=1),
        address=Address(state="FL", postal_code="33101"),
        consents=(Consent(Channel.TEXT, ConsentScope.INFORMATIONAL, consent_from, "web form"),),
    )
    return lead, history, now


def _decision_facts(decision: ContactDecision) -> tuple[Any, ...]:
    return _utc_fields(
        (decision.allowed, decision.reasons, decision.next_allowed_at, decision.address)
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    contact_scenarios(),
    st.sampled_from(list(Channel)),
    st.sampled_from(list(ContactPurpose)),
    st.data(),
)
def test_property_contact_decision_does_not_depend_on_the_zone_times_are_written_in(
    scenario: tuple[Lead, list[Activity], datetime],
    channel: Channel,
    purpose: ContactPurpose,
    data: st.DataObject,
) -> None:
    lead, history, now = scenario
    resolution = resolve_zones(lead, ZIPS)
    in_utc_terms = check_contact(
        RULES, lead, history, channel, now, resolution=resolution, purpose=purpose
    )
    consent = lead.consents[0]
    zoned_lead = replace(
        lead, consents=(replace(consent, granted_at=_written(data.draw, consent.granted_at, NY)),)
    )
    zoned = check_contact(
        RULES,
        zoned_lead,
        [_rewritten(a, data.draw, NY) for a in history],
        channel,
        _written(data.draw, now, NY),
        resolution=resolution,
        purpose=purpose,
    )
    assert _decision_facts(zoned) == _decision_facts(in_utc_terms)


def test_opt_in_twenty_minutes_after_an_opt_out_in_the_repeated_hour_wins() -> None:
    lead = _lead(FIRST_150 - timedelta(days=1), address=Address(state="IL", postal_code="60601"))
    history = [
        _act(1, ActivityKind.OPT_OUT, FIRST_150, direction=Direction.INBOUND),
        _act(2, ActivityKind.OPT_IN, SECOND_110, direction=Direction.INBOUND),
    ]
    decision = check_contact(
        RULES,
        lead,
        history,
        Channel.EMAIL,
        SECOND_110.astimezone(UTC) + timedelta(minutes=1),  # (zoned + 1 min would be CDT)
        resolution=resolve_zones(lead, ZIPS),
    )
    assert decision.allowed, decision.reasons


def test_consent_granted_in_the_repeated_hour_is_active_by_instant() -> None:
    consent = Consent(Channel.TEXT, ConsentScope.INFORMATIONAL, FIRST_150, "web form")
    assert consent.active_at(SECOND_110)  # 20 minutes after it was given
    revoked = replace(consent, granted_at=FIRST_150 - timedelta(hours=1), revoked_at=SECOND_110)
    assert not revoked.active_at(SECOND_110.astimezone(UTC) + timedelta(minutes=5))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(ZONES), st.data())
def test_property_consent_is_active_by_instant(zone: ZoneInfo, data: st.DataObject) -> None:
    granted, when, revoked = (data.draw(instants(zone, minutes=90)) for _ in range(3))
    expected = granted <= when < revoked
    consent = Consent(
        Channel.TEXT,
        ConsentScope.INFORMATIONAL,
        _written(data.draw, granted, zone),
        "web form",
        revoked_at=_written(data.draw, revoked, zone),
    )
    assert consent.active_at(_written(data.draw, when, zone)) == expected


# --- dispositions -------------------------------------------------------------------------------

CATALOG = parse_dispositions(*read_resource("dispositions.toml"))


def test_a_callback_twenty_minutes_later_in_the_repeated_hour_is_not_in_the_past() -> None:
    activity = disposition_activity(
        CATALOG,
        "callback_requested",
        "L1",
        FIRST_150,
        activity_id="d1",
        scheduled_for=SECOND_110,
    )
    assert activity.scheduled_for == SECOND_110


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(ZONES), st.data())
def test_property_a_callback_time_is_refused_only_when_it_is_before_the_logging(
    zone: ZoneInfo, data: st.DataObject
) -> None:
    logged, wanted = (data.draw(instants(zone, minutes=90)) for _ in range(2))

    def log() -> Activity:
        return disposition_activity(
            CATALOG,
            "callback_requested",
            "L1",
            _written(data.draw, logged, zone),
            activity_id="d1",
            scheduled_for=_written(data.draw, wanted, zone),
        )

    if wanted < logged:
        with pytest.raises(InvalidActivityError, match="before the time it was logged"):
            log()
    else:
        log()


# --- queue priority -----------------------------------------------------------------------------


def _item(lead_id: str, kind: WorkKind, due_at: datetime) -> WorkItem:
    return WorkItem(
        lead_id=lead_id,
        kind=kind,
        due_at=due_at,
        score=50,
        tier="medium",
        grade="B",
        name="Ann Lee",
        vehicle="",
        source="Web",
        action="Call #2",
    )


def test_countdown_across_the_fall_back_counts_real_minutes() -> None:
    assert countdown_text(SECOND_110, FIRST_150) == "20:00"
    assert _item("L1", WorkKind.FOLLOW_UP, SECOND_110).bucket(FIRST_150).name == "UPCOMING"


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(ZONES), st.data())
def test_property_queue_order_and_countdowns_do_not_depend_on_the_zone_times_are_written_in(
    zone: ZoneInfo, data: st.DataObject
) -> None:
    now = data.draw(instants(zone, minutes=90))
    specs = data.draw(
        st.lists(
            st.tuples(st.sampled_from(list(WorkKind)), instants(zone, minutes=90)),
            min_size=1,
            max_size=6,
        )
    )
    in_utc_terms = [_item(f"L{n}", kind, due) for n, (kind, due) in enumerate(specs)]
    zoned = [_item(i.lead_id, i.kind, _written(data.draw, i.due_at, zone)) for i in in_utc_terms]
    zoned_now = _written(data.draw, now, zone)
    assert [i.lead_id for i in rank(zoned, zoned_now)] == [
        i.lead_id for i in rank(in_utc_terms, now)
    ]
    for plain, written in zip(in_utc_terms, zoned, strict=True):
        assert why_first(written, zoned_now) == why_first(plain, now)
        assert countdown_text(_written(data.draw, plain.due_at, zone), zoned_now) == (
            countdown_text(plain.due_at, now)
        )


# --- the helper itself --------------------------------------------------------------------------


def test_the_generated_instants_straddle_real_dst_changes() -> None:
    chicago = CHANGES["America/Chicago"]
    assert [c.astimezone(CHI).date() for c in chicago] == [
        date(2025, 3, 9),
        date(2025, 11, 2),
        date(2026, 3, 8),
        date(2026, 11, 1),
    ]
    assert CHANGES["America/Phoenix"] == chicago
