"""Business hours, response deadlines (DST included) and the per-lead response clocks."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
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
)
from app.domain.clocks import (
    BusinessHours,
    ClockError,
    ClockState,
    Holiday,
    NaiveDatetimeError,
    OpenInterval,
    ResponsePolicy,
    is_open,
    next_opening,
    parse_business_hours,
    parse_response_policy,
    response_clocks,
    response_due,
)
from app.domain.errors import DomainError, ResourceError
from app.domain.leads import Lead, LeadSource, Person, SourceType
from app.rulebook import read_resource

CHICAGO = ZoneInfo("America/Chicago")
MIN = timedelta(minutes=1)


def shipped() -> BusinessHours:
    return parse_business_hours(*read_resource("store_hours.toml"))


def chi(*args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=CHICAGO).replace(fold=fold)  # type: ignore[misc]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def iv(text: str) -> OpenInterval:
    opens, closes = text.split("-")
    to_time = {"24:00": time.max}
    return OpenInterval(
        to_time.get(opens) or time.fromisoformat(opens),
        to_time.get(closes) or time.fromisoformat(closes),
    )


def weekly(*days: str, zone: str = "America/Chicago") -> BusinessHours:
    """Seven day specs, Monday first: "" closed, else comma-separated intervals."""
    week = tuple(tuple(iv(part) for part in day.split(",") if part) for day in days)
    return BusinessHours(time_zone=zone, week=week)


def lead_at(received: datetime, lead_id: str = "L1") -> Lead:
    return Lead(
        id=lead_id,
        store_id="S1",
        received_at=received,
        person=Person("Ana", "Ruiz"),
        source=LeadSource("Dealer website", SourceType.FIRST_PARTY),
    )


_counter = iter(range(1_000_000))


def act(
    at: datetime,
    kind: ActivityKind = ActivityKind.CALL,
    *,
    direction: Direction | None = Direction.OUTBOUND,
    automatic: bool = False,
    answered: bool | None = None,
    flags: DispositionFlag = DispositionFlag.NONE,
    lead_id: str = "L1",
) -> Activity:
    return Activity(
        id=f"A{next(_counter)}",
        lead_id=lead_id,
        kind=kind,
        at=at,
        direction=direction,
        automatic=automatic,
        agent_id=None if automatic else "agent-7",
        answered=answered,
        disposition="contacted" if kind is ActivityKind.DISPOSITION else None,
        flags=flags,
    )


# --- The shipped calendar -------------------------------------------------------------------------


def test_shipped_calendar_is_the_documented_default() -> None:
    hours = shipped()
    assert hours.time_zone == "America/Chicago"
    assert [tuple(str(i) for i in day) for day in hours.week] == [
        ("09:00-20:00",),
        ("09:00-20:00",),
        ("09:00-20:00",),
        ("09:00-20:00",),
        ("09:00-20:00",),
        ("09:00-18:00",),
        (),
    ]
    closed = {h.day for h in hours.holidays if h.closed}
    assert closed == {
        date(2026, 1, 1),
        date(2026, 5, 25),
        date(2026, 7, 4),
        date(2026, 9, 7),
        date(2026, 11, 26),
        date(2026, 12, 25),
        date(2027, 1, 1),
        date(2027, 5, 31),
        date(2027, 7, 4),
        date(2027, 9, 6),
        date(2027, 11, 25),
        date(2027, 12, 25),
    }
    eve = hours.holiday_on(date(2026, 12, 24))
    assert eve is not None and [str(i) for i in eve.hours] == ["09:00-15:00"]
    assert parse_response_policy(*read_resource("store_hours.toml")) == ResponsePolicy()


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (chi(2026, 3, 9, 9, 0), True),  # Monday opening, inclusive
        (chi(2026, 3, 9, 8, 59, 59), False),
        (chi(2026, 3, 9, 19, 59, 59), True),
        (chi(2026, 3, 9, 20, 0), False),  # closing time is closed
        (chi(2026, 3, 14, 17, 59), True),  # Saturday
        (chi(2026, 3, 14, 18, 0), False),
        (chi(2026, 3, 15, 12, 0), False),  # Sunday closed
        (chi(2026, 11, 26, 12, 0), False),  # Thanksgiving (a Thursday)
        (chi(2026, 12, 24, 14, 59), True),  # Christmas Eve special hours
        (chi(2026, 12, 24, 15, 0), False),
        (utc(2026, 3, 9, 14, 0), True),  # 09:00 CDT given in UTC
        (utc(2026, 3, 9, 13, 59), False),
    ],
)
def test_is_open_on_the_shipped_calendar(at: datetime, expected: bool) -> None:
    assert is_open(shipped(), at) is expected


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (chi(2026, 3, 13, 21, 0), chi(2026, 3, 14, 9, 0)),  # Friday night -> Saturday
        (chi(2026, 3, 14, 18, 30), chi(2026, 3, 16, 9, 0)),  # Saturday night -> Monday
        (chi(2026, 11, 25, 20, 30), chi(2026, 11, 27, 9, 0)),  # skips Thanksgiving
        (chi(2026, 12, 31, 20, 30), chi(2027, 1, 2, 9, 0)),  # skips New Year's Day
        (chi(2026, 12, 24, 16, 0), chi(2026, 12, 26, 9, 0)),  # closed early, then Christmas
        (chi(2026, 3, 10, 6, 0), chi(2026, 3, 10, 9, 0)),  # early morning, same day
        (chi(2026, 3, 10, 11, 15), chi(2026, 3, 10, 11, 15)),  # open now: the instant itself
    ],
)
def test_next_opening_on_the_shipped_calendar(at: datetime, expected: datetime) -> None:
    opening = next_opening(shipped(), at)
    assert opening == expected
    assert opening.tzinfo is UTC


def test_response_due_in_hours_and_after_hours() -> None:
    hours = shipped()
    assert response_due(hours, chi(2026, 3, 10, 11, 0)) == chi(2026, 3, 10, 11, 5)
    # Received in the last minutes before closing: still 5 minutes, past closing.
    assert response_due(hours, chi(2026, 3, 10, 19, 58)) == chi(2026, 3, 10, 20, 3)
    assert response_due(hours, chi(2026, 3, 10, 20, 0)) == chi(2026, 3, 11, 9, 30)
    custom = ResponsePolicy(in_hours=10 * MIN, after_hours=15 * MIN)
    assert response_due(hours, chi(2026, 3, 10, 11, 0), custom) == chi(2026, 3, 10, 11, 10)
    assert response_due(hours, chi(2026, 3, 10, 7, 0), custom) == chi(2026, 3, 10, 9, 15)


# --- DST ------------------------------------------------------------------------------------------


def test_lead_in_the_night_clocks_spring_forward_is_due_on_monday_morning() -> None:
    # 2026-03-08 02:00 CST -> 03:00 CDT. Sunday is closed, so Monday 09:30 CDT (14:30 UTC).
    hours = shipped()
    for received in (chi(2026, 3, 7, 23, 0), chi(2026, 3, 8, 1, 30), chi(2026, 3, 8, 3, 30)):
        assert response_due(hours, received) == utc(2026, 3, 9, 14, 30)
    # Real elapsed time is one hour less than the wall clock suggests (34.5 h on the wall).
    elapsed = response_due(hours, chi(2026, 3, 7, 23, 0)) - chi(2026, 3, 7, 23, 0)
    assert elapsed == timedelta(hours=33, minutes=30)


def test_lead_in_the_night_clocks_fall_back_gets_the_extra_hour() -> None:
    # 2026-11-01 02:00 CDT -> 01:00 CST. Sat 23:30 CDT is 04:30 UTC; Mon 09:30 CST is 15:30 UTC.
    received = chi(2026, 10, 31, 23, 30)
    due = response_due(shipped(), received)
    assert due == utc(2026, 11, 2, 15, 30)
    assert due - received == timedelta(hours=35)  # 34 h on the wall


def test_five_minutes_across_the_repeated_hour_are_five_real_minutes() -> None:
    always = weekly(*(["00:00-24:00"] * 7))
    received = chi(2026, 11, 1, 1, 58)  # first 01:58 (CDT) = 06:58 UTC
    due = response_due(always, received)
    assert due == utc(2026, 11, 1, 7, 3)
    assert due.astimezone(CHICAGO) == chi(2026, 11, 1, 1, 3, fold=1)  # the second 01:03 (CST)


def test_five_minutes_across_the_skipped_hour() -> None:
    sunday_night = weekly("", "", "", "", "", "", "01:00-04:00")
    due = response_due(sunday_night, chi(2026, 3, 8, 1, 58))  # 07:58 UTC
    assert due == utc(2026, 3, 8, 8, 3)
    assert due.astimezone(CHICAGO).hour == 3  # 03:03 CDT: 02:xx never happened


def test_opening_inside_the_skipped_hour_moves_forward_by_the_gap() -> None:
    hours = weekly("", "", "", "", "", "", "02:30-05:00")
    assert next_opening(hours, chi(2026, 3, 8, 0, 30)) == utc(2026, 3, 8, 8, 30)  # 03:30 CDT
    assert response_due(hours, chi(2026, 3, 8, 0, 30)) == utc(2026, 3, 8, 9, 0)


def test_closing_inside_the_repeated_hour_is_its_last_occurrence() -> None:
    hours = weekly("", "", "", "", "", "", "00:00-01:30")
    assert is_open(hours, chi(2026, 11, 1, 1, 15, fold=1))  # 01:15 CST, second pass
    assert not is_open(hours, chi(2026, 11, 1, 1, 30, fold=1))
    assert is_open(hours, utc(2026, 11, 1, 7, 29))
    assert not is_open(hours, utc(2026, 11, 1, 7, 30))


def test_store_zone_is_configurable() -> None:
    eastern = replace(shipped(), time_zone="America/New_York")
    assert is_open(eastern, utc(2026, 3, 10, 13, 0))  # 09:00 EDT
    assert not is_open(shipped(), utc(2026, 3, 10, 13, 0))  # 08:00 CDT


# --- Bad input ------------------------------------------------------------------------------------


def test_naive_datetimes_are_refused_by_name() -> None:
    naive = datetime(2026, 3, 10, 11, 0)
    hours = shipped()
    for call in (
        lambda: is_open(hours, naive),
        lambda: next_opening(hours, naive),
        lambda: response_due(hours, naive),
    ):
        with pytest.raises(NaiveDatetimeError, match="must carry a time zone"):
            call()
    lead = lead_at(chi(2026, 3, 10, 11, 0))
    with pytest.raises(NaiveDatetimeError, match="now must carry a time zone"):
        response_clocks(lead, [], hours, now=naive)
    with pytest.raises(ClockError, match="now is required"):
        response_clocks(lead, [], hours)


def test_out_of_range_and_non_datetimes_are_refused() -> None:
    with pytest.raises(ClockError, match="outside the supported years"):
        is_open(shipped(), datetime(1, 1, 1, tzinfo=UTC))
    with pytest.raises(ClockError, match="must be a datetime, got str"):
        response_due(shipped(), "2026-03-10T11:00")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: weekly("", "", "", "", "", "", ""), "never open"),
        (lambda: weekly("09:00-13:00,12:00-20:00", "", "", "", "", "", ""), "overlap"),
        (lambda: weekly("09:00-17:00", "", "", "", "", "", "", zone="Mars/Olympus"), "time zone"),
        (lambda: BusinessHours("UTC", ((iv("09:00-17:00"),),) * 6), "all seven days"),
        (lambda: iv("20:00-09:00"), "cross midnight"),
        (lambda: OpenInterval(time.max, time.max), "24:00"),
        (lambda: ResponsePolicy(in_hours=timedelta(0)), "longer than zero"),
        (lambda: ResponsePolicy(due_soon=-MIN), "between 0 and 24 hours"),
        (
            lambda: BusinessHours(
                "UTC",
                ((iv("09:00-17:00"),),) * 7,
                (Holiday(date(2026, 1, 1)), Holiday(date(2026, 1, 1))),
            ),
            "listed twice",
        ),
    ],
)
def test_inconsistent_hours_are_refused(build: object, message: str) -> None:
    with pytest.raises(DomainError, match=message):
        build()  # type: ignore[operator]


GOOD = """\
time_zone = "America/Chicago"

[week]
monday = ["09:00-20:00"]
tuesday = ["09:00-20:00"]
wednesday = ["09:00-20:00"]
thursday = ["09:00-20:00"]
friday = ["09:00-20:00"]
saturday = ["09:00-12:00", "13:00-18:00"]
sunday = []

[response]
in_hours_minutes = 5
after_hours_minutes = 30
due_soon_minutes = 2

[[holiday]]
date = 2026-12-25
name = "Christmas Day"

[[holiday]]
date = 2026-12-24
name = "Christmas Eve"
hours = ["09:00-15:00"]
"""


def test_a_valid_file_with_a_lunch_break_parses() -> None:
    hours = parse_business_hours(GOOD, "test.toml")
    assert [str(i) for i in hours.week[5]] == ["09:00-12:00", "13:00-18:00"]
    assert not is_open(hours, chi(2026, 3, 14, 12, 30))
    assert next_opening(hours, chi(2026, 3, 14, 12, 30)) == chi(2026, 3, 14, 13, 0)
    assert parse_response_policy("", "empty.toml") == ResponsePolicy()


@pytest.mark.parametrize(
    ("old", "new", "line", "field", "message"),
    [
        ("sunday = []\n", "sunday = [\n", None, "", "not valid TOML"),
        ('"America/Chicago"', '"Mars/Olympus"', 1, "time_zone", "unknown time zone"),
        ("time_zone", "timezone", 1, "timezone", "unknown field"),
        ('monday = ["09:00-20:00"]', 'monday = ["9-20"]', 4, "week.monday[0]", "interval like"),
        ('monday = ["09:00-20:00"]', 'monday = "09:00-20:00"', 4, "week.monday", "an array"),
        ('monday = ["09:00-20:00"]', 'monday = ["20:00-09:00"]', 4, "week.monday[0]", "midnight"),
        ('monday = ["09:00-20:00"]', 'monday = ["09:00-25:00"]', 4, "week.monday[0]", "a time"),
        ('monday = ["09:00-20:00"]', 'mondy = ["09:00-20:00"]', 4, "week.mondy", "unknown field"),
        (
            '"09:00-12:00", "13:00-18:00"',
            '"09:00-13:00", "12:00-18:00"',
            9,
            "week.saturday",
            "overlap",
        ),
        ("sunday = []\n", "", 3, "week", "missing required field 'sunday'"),
        (
            "in_hours_minutes = 5",
            "in_hours_minutes = 0",
            13,
            "response.in_hours_minutes",
            "1..1440",
        ),
        ("due_soon_minutes = 2", 'due_soon_minutes = "2"', 15, "response.due_soon_minutes", "int"),
        ("date = 2026-12-24", 'date = "2026-13-24"', 22, "holiday[1].date", "a date like"),
        ("date = 2026-12-24", "date = 2026-12-25", 22, "holiday[1].date", "already listed"),
        ('name = "Christmas Eve"', 'nme = "Christmas Eve"', 23, "holiday[1].nme", "unknown field"),
        ('hours = ["09:00-15:00"]', 'hours = ["15:00"]', 24, "holiday[1].hours[0]", "like"),
    ],
)
def test_broken_files_name_file_line_and_field(
    old: str, new: str, line: int | None, field: str, message: str
) -> None:
    assert old in GOOD
    text = GOOD.replace(old, new, 1)

    def parse_both() -> None:
        parse_business_hours(text, "resources/store_hours.toml")
        parse_response_policy(text, "resources/store_hours.toml")

    with pytest.raises(ResourceError) as caught:
        parse_both()
    err = caught.value
    assert err.source == "resources/store_hours.toml"
    assert message in err.detail
    assert err.field == field
    if line is not None:
        assert err.line == line
        assert str(err).startswith(f"resources/store_hours.toml:{line} [{field}]")


def test_a_file_where_the_store_never_opens_is_refused() -> None:
    closed = GOOD
    for name in ("monday", "tuesday", "wednesday", "thursday", "friday"):
        closed = closed.replace(f'{name} = ["09:00-20:00"]', f"{name} = []")
    closed = closed.replace('["09:00-12:00", "13:00-18:00"]', "[]")
    with pytest.raises(ResourceError, match="never open") as caught:
        parse_business_hours(closed, "x.toml")
    assert caught.value.line == 3


# --- Per-lead clocks ------------------------------------------------------------------------------

RECEIVED = chi(2026, 3, 10, 10, 0)  # a Tuesday, open


def test_clocks_of_a_lead_worked_in_time() -> None:
    history = [
        act(RECEIVED + timedelta(seconds=30), ActivityKind.EMAIL, automatic=True),
        act(RECEIVED + 4 * MIN, answered=False),
        act(RECEIVED + 6 * MIN, ActivityKind.TEXT),
        act(RECEIVED + 60 * MIN, answered=True),
    ]
    clocks = response_clocks(lead_at(RECEIVED), history, shipped(), now=RECEIVED + 120 * MIN)
    assert clocks.received_in_hours
    assert clocks.clock_start == RECEIVED
    assert clocks.due_at == RECEIVED + 5 * MIN
    assert clocks.first_touch_at == RECEIVED + timedelta(seconds=30)
    assert clocks.first_attempt_at == RECEIVED + 4 * MIN
    assert clocks.first_conversation_at == RECEIVED + 60 * MIN
    assert (
        clocks.seconds_to_first_touch,
        clocks.seconds_to_first_attempt,
        clocks.seconds_to_first_conversation,
        clocks.response_seconds,
    ) == (30, 240, 3600, 240)
    assert clocks.met_5_minute_rule is True
    assert clocks.state is ClockState.MET
    assert clocks.seconds_left == 60  # the stopwatch stopped at the attempt
    assert clocks.ignored_activity_ids == ()


def test_the_automatic_acknowledgment_is_a_touch_but_not_an_attempt() -> None:
    history = [act(RECEIVED + timedelta(seconds=20), ActivityKind.EMAIL, automatic=True)]
    clocks = response_clocks(lead_at(RECEIVED), history, shipped(), now=RECEIVED + 6 * MIN)
    assert clocks.seconds_to_first_touch == 20
    assert clocks.first_attempt_at is None
    assert clocks.state is ClockState.BREACHED
    assert clocks.met_5_minute_rule is False
    assert clocks.seconds_left == -60


@pytest.mark.parametrize(
    ("elapsed", "state", "left", "met"),
    [
        (timedelta(0), ClockState.ON_TRACK, 300, None),
        (2 * MIN + timedelta(seconds=59), ClockState.ON_TRACK, 121, None),
        (3 * MIN, ClockState.DUE_SOON, 120, None),
        (5 * MIN, ClockState.DUE_SOON, 0, None),
        (5 * MIN + timedelta(milliseconds=300), ClockState.BREACHED, -1, False),
        (65 * MIN, ClockState.BREACHED, -3600, False),
    ],
)
def test_pending_states_count_down(
    elapsed: timedelta, state: ClockState, left: int, met: bool | None
) -> None:
    clocks = response_clocks(lead_at(RECEIVED), [], shipped(), now=RECEIVED + elapsed)
    assert (clocks.state, clocks.seconds_left, clocks.met_5_minute_rule) == (state, left, met)


def test_a_late_attempt_is_met_late_and_fails_the_rule() -> None:
    history = [act(RECEIVED + 7 * MIN, ActivityKind.TEXT)]
    clocks = response_clocks(lead_at(RECEIVED), history, shipped(), now=RECEIVED + 8 * MIN)
    assert clocks.state is ClockState.MET_LATE
    assert clocks.met_5_minute_rule is False
    assert clocks.seconds_left == -120
    assert clocks.response_seconds == 420


def test_after_hours_lead_counts_from_the_opening() -> None:
    received = chi(2026, 3, 14, 21, 0)  # Saturday night; Sunday closed
    lead = lead_at(received)
    call = act(chi(2026, 3, 16, 9, 10))
    clocks = response_clocks(lead, [call], shipped(), now=chi(2026, 3, 16, 12, 0))
    assert not clocks.received_in_hours
    assert clocks.clock_start == chi(2026, 3, 16, 9, 0)
    assert clocks.due_at == chi(2026, 3, 16, 9, 30)
    assert clocks.response_seconds == 600
    assert clocks.seconds_to_first_attempt == 36 * 3600 + 600
    assert clocks.state is ClockState.MET
    # An agent who calls on Sunday answered before the store even opened: zero business time.
    sunday_call = act(chi(2026, 3, 15, 11, 0))
    early = response_clocks(lead, [sunday_call], shipped(), now=chi(2026, 3, 16, 12, 0))
    assert (early.response_seconds, early.state) == (0, ClockState.MET)
    # Before the deadline and with nothing done, a weekend lead is simply on track.
    waiting = response_clocks(lead, [], shipped(), now=chi(2026, 3, 15, 12, 0))
    assert waiting.state is ClockState.ON_TRACK
    assert waiting.seconds_left == 21 * 3600 + 1800


def test_conversations_inbound_calls_and_dispositions() -> None:
    inbound = act(RECEIVED + 2 * MIN, direction=Direction.INBOUND, answered=True)
    logged = act(
        RECEIVED + 9 * MIN,
        ActivityKind.DISPOSITION,
        direction=None,
        flags=DispositionFlag.ATTEMPT | DispositionFlag.HUMAN_CONTACT,
    )
    clocks = response_clocks(
        lead_at(RECEIVED), [logged, inbound], shipped(), now=RECEIVED + MIN * 10
    )
    # The customer called us: a conversation, but neither a touch nor an agent attempt.
    assert clocks.first_conversation_at == RECEIVED + 2 * MIN
    assert clocks.first_touch_at is None
    assert clocks.first_attempt_at is None
    assert clocks.state is ClockState.BREACHED


def test_activities_before_receipt_are_ignored_and_reported() -> None:
    early_call = act(RECEIVED - MIN)
    later_call = act(RECEIVED + 8 * MIN)
    clocks = response_clocks(
        lead_at(RECEIVED), [later_call, early_call], shipped(), now=RECEIVED + 10 * MIN
    )
    assert clocks.ignored_activity_ids == (early_call.id,)
    assert clocks.first_attempt_at == RECEIVED + 8 * MIN
    assert clocks.state is ClockState.MET_LATE


def test_activities_after_now_have_not_happened_yet() -> None:
    history = [act(RECEIVED + 3 * MIN)]
    clocks = response_clocks(lead_at(RECEIVED), history, shipped(), now=RECEIVED + 2 * MIN)
    assert clocks.first_attempt_at is None
    assert clocks.state is ClockState.ON_TRACK
    assert clocks.ignored_activity_ids == ()


def test_garbage_histories_are_refused_by_name() -> None:
    lead = lead_at(RECEIVED)
    with pytest.raises(ClockError, match="belongs to lead 'L2', not to lead 'L1'"):
        response_clocks(lead, [act(RECEIVED, lead_id="L2")], shipped(), now=RECEIVED)
    with pytest.raises(ClockError, match="holds str, not an Activity"):
        response_clocks(lead, ["call"], shipped(), now=RECEIVED)  # type: ignore[list-item]
    with pytest.raises(ClockError, match="must be a sequence"):
        response_clocks(lead, "call", shipped(), now=RECEIVED)  # type: ignore[arg-type]
    with pytest.raises(ClockError, match="lead must be a Lead"):
        response_clocks("L1", [], shipped(), now=RECEIVED)  # type: ignore[arg-type]


# --- Properties -----------------------------------------------------------------------------------

ZONES = [
    ZoneInfo(name)
    for name in (
        "America/Chicago",
        "America/New_York",
        "America/Phoenix",
        "Europe/London",
        "Australia/Lord_Howe",  # 30-minute DST shift
        "America/Santiago",  # transitions at midnight
        "Asia/Kolkata",
        "UTC",
    )
]
instants = st.datetimes(
    min_value=datetime(2025, 1, 1),
    max_value=datetime(2028, 12, 31),
    timezones=st.sampled_from(ZONES),
)


@st.composite
def day_hours(draw: st.DrawFn) -> tuple[OpenInterval, ...]:
    # Quarter-hour boundaries, each interval at least 90 minutes, so that even after losing a DST
    # gap (at most an hour) every interval keeps more than the 30 minutes an after-hours lead gets.
    intervals: list[OpenInterval] = []
    start = draw(st.integers(0, 24 * 4 - 6))
    for _ in range(draw(st.integers(0, 2))):
        if start > 24 * 4 - 6:
            break
        end = draw(st.integers(start + 6, min(start + 60, 24 * 4)))
        intervals.append(
            OpenInterval(
                time(start // 4, start % 4 * 15),
                time.max if end == 96 else time(end // 4, end % 4 * 15),
            )
        )
        start = end + draw(st.integers(0, 12))
    return tuple(intervals)


@st.composite
def calendars(draw: st.DrawFn) -> BusinessHours:
    week = list(draw(st.lists(day_hours(), min_size=7, max_size=7)))
    if not any(week):
        week[draw(st.integers(0, 6))] = (OpenInterval(time(9), time(17)),)
    days = draw(st.lists(st.dates(date(2024, 12, 1), date(2029, 1, 31)), max_size=25, unique=True))
    holidays = tuple(
        Holiday(day, "h", draw(st.sampled_from([(), (OpenInterval(time(10), time(14)),)])))
        for day in days
    )
    zone = draw(st.sampled_from(ZONES)).key
    return BusinessHours(time_zone=zone, week=tuple(week), holidays=holidays)


def check_deadline(hours: BusinessHours, received_local: datetime) -> None:
    # Arithmetic on local datetimes is wall-clock arithmetic (wrong across DST): go through UTC.
    received = received_local.astimezone(UTC)
    due = response_due(hours, received_local)
    assert due >= received
    if is_open(hours, received):
        assert due == received + 5 * MIN
        return
    opening = next_opening(hours, received)
    assert opening > received
    assert is_open(hours, opening)
    assert not is_open(hours, opening - timedelta(microseconds=1))
    assert due == opening + 30 * MIN
    assert is_open(hours, due)


@settings(max_examples=200, deadline=None)
@given(received=instants)
def test_property_deadlines_on_the_shipped_calendar(received: datetime) -> None:
    check_deadline(shipped(), received)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hours=calendars(), received=instants)
def test_property_deadlines_on_any_calendar(hours: BusinessHours, received: datetime) -> None:
    check_deadline(hours, received)


@st.composite
def histories(draw: st.DrawFn, received: datetime) -> list[Activity]:
    items = []
    for n in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(list(ActivityKind)))
        items.append(
            Activity(
                id=f"H{n}",
                lead_id="L1",
                kind=kind,
                at=received + timedelta(seconds=draw(st.integers(-2 * 86400, 10 * 86400))),
                direction=draw(st.sampled_from([None, *Direction])),
                automatic=draw(st.booleans()),
                answered=draw(st.sampled_from([None, True, False])),
                disposition="code" if kind is ActivityKind.DISPOSITION else None,
                flags=draw(st.sampled_from(list(DispositionFlag))),
                appointment_status=(
                    draw(st.sampled_from(list(AppointmentStatus)))
                    if kind is ActivityKind.APPOINTMENT
                    else None
                ),
            )
        )
    return items


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), received=instants, now_offset=st.integers(-3600, 12 * 86400))
def test_property_clocks_never_crash_and_stay_consistent(
    data: st.DataObject, received: datetime, now_offset: int
) -> None:
    hours = shipped()
    received = received.astimezone(UTC)
    history = data.draw(histories(received))
    now = received + timedelta(seconds=now_offset)
    clocks = response_clocks(lead_at(received), history, hours, now=now)

    assert clocks.due_at == response_due(hours, received)
    early = {a.id for a in history if a.at < received}
    assert set(clocks.ignored_activity_ids) == early
    for seconds in (
        clocks.seconds_to_first_touch,
        clocks.seconds_to_first_attempt,
        clocks.seconds_to_first_conversation,
        clocks.response_seconds,
    ):
        assert seconds is None or seconds >= 0
    if clocks.first_attempt_at is not None:
        # An agent attempt is an outbound touch too, so the touch clock never stops later.
        assert clocks.first_touch_at is not None
        assert clocks.first_touch_at <= clocks.first_attempt_at <= now
        assert clocks.met_5_minute_rule is (clocks.first_attempt_at <= clocks.due_at)
        assert clocks.state in (ClockState.MET, ClockState.MET_LATE)
    else:
        assert clocks.state in (ClockState.ON_TRACK, ClockState.DUE_SOON, ClockState.BREACHED)
        assert (clocks.state is ClockState.BREACHED) is (now > clocks.due_at)
        assert (clocks.seconds_left < 0) is (clocks.state is ClockState.BREACHED)
