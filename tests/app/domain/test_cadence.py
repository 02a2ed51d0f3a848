"""The cadence engine: resources/cadences/*.toml, parsing errors, plans, and their invariants."""

from __future__ import annotations

import random
from collections.abc import Callable
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
from app.domain.cadence import (
    CALLBACK_STEP_ID,
    Cadence,
    CadenceError,
    CadencePlan,
    PlanState,
    SpanCache,
    StepChannel,
    describe_next,
    parse_cadence,
    parse_cadence_files,
    parse_offset,
    parse_window,
    plan,
    validate_cadence_set,
)
from app.domain.errors import DomainError, ResourceError
from app.domain.leads import Channel, Email, Lead, LeadSource, LeadStatus, Person, SourceType
from app.domain.phones import make_phone
from app.rulebook import list_resources, read_resource

F = DispositionFlag
CHI = ZoneInfo("America/Chicago")
NYC = ZoneInfo("America/New_York")
CADENCES = parse_cadence_files(read_resource(n) for n in list_resources("cadences", ".toml"))
SHIPPED = list(CADENCES.values())
MON = date(2024, 3, 4)  # a Monday, well before the March 10 DST change


def local(day: date, hh: int, mm: int = 0, zone: ZoneInfo = CHI) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=zone)


T0 = local(MON, 10)


def make_lead(
    received_at: datetime = T0,
    *,
    source_type: SourceType = SourceType.FIRST_PARTY,
    status: LeadStatus = LeadStatus.NEW,
    phone: str | None = "(312) 555-0134",
    email: str | None = "ann@example.com",
    **extra: object,
) -> Lead:
    return Lead(
        id="L1",
        store_id="S1",
        received_at=received_at,
        person=Person("Ann", "Lee"),
        source=LeadSource("Dealer website", source_type),
        phones=(make_phone(phone),) if phone else (),
        emails=(Email(email),) if email else (),
        status=status,
        **extra,  # type: ignore[arg-type]
    )


_ids = iter(range(1_000_000))


def act(kind: ActivityKind, at: datetime, **fields: object) -> Activity:
    if kind in (ActivityKind.CALL, ActivityKind.TEXT, ActivityKind.EMAIL):
        fields.setdefault("direction", Direction.OUTBOUND)
    return Activity(id=f"a{next(_ids)}", lead_id="L1", kind=kind, at=at, **fields)  # type: ignore[arg-type]


def call(at: datetime, *, answered: bool = False) -> Activity:
    return act(ActivityKind.CALL, at, answered=answered, agent_id="ag1")


def text(at: datetime) -> Activity:
    return act(ActivityKind.TEXT, at, agent_id="ag1")


def email(at: datetime, *, automatic: bool = False) -> Activity:
    return act(ActivityKind.EMAIL, at, automatic=automatic)


def dispo(at: datetime, flags: DispositionFlag, **fields: object) -> Activity:
    return act(ActivityKind.DISPOSITION, at, disposition="code", flags=flags, **fields)


def appointment(at: datetime, status: AppointmentStatus, slot: datetime | None = None) -> Activity:
    return act(ActivityKind.APPOINTMENT, at, appointment_status=status, scheduled_for=slot)


def due(result: CadencePlan, zone: ZoneInfo = CHI) -> list[tuple[str, str]]:
    return [(s.step_id, f"{s.due_at.astimezone(zone):%a %H:%M}") for s in result.next_steps]


def run(
    history: list[Activity], now: datetime, lead: Lead | None = None, **kw: object
) -> CadencePlan:
    return plan(SHIPPED, lead or make_lead(), history, now, zone=CHI, **kw)  # type: ignore[arg-type]


def daily(start: time, end: time, banned: set[int] | None = None) -> Callable[..., object]:
    """A legal_window the compliance module could give: hours every day, some weekdays banned."""

    def window(channel: Channel, day: date) -> tuple[datetime, datetime] | None:
        if channel is Channel.EMAIL:
            return (datetime.combine(day, time(0), CHI), datetime.combine(day, time(23, 59), CHI))
        if banned and day.weekday() in banned:
            return None
        return datetime.combine(day, start, CHI), datetime.combine(day, end, CHI)

    return window


# --- the shipped files --------------------------------------------------------------------------


def test_shipped_cadences_parse_and_form_a_valid_set() -> None:
    assert sorted(CADENCES) == ["appointment_set", "contacted_not_ready", "internet_new"]
    internet = CADENCES["internet_new"]
    assert (internet.name, internet.max_attempts, internet.max_days) == (
        "Internet lead — new",
        15,
        30,
    )
    first = internet.steps[:5]
    assert [(s.id, s.channel, s.anchor, s.offset.text) for s in first] == [
        ("acknowledgment", StepChannel.EMAIL, "start", "0s"),
        ("first_call", StepChannel.CALL, "start", "5m"),
        ("first_text", StepChannel.TEXT, "previous", "5m"),
        ("personal_email", StepChannel.EMAIL, "previous", "20m"),
        ("second_call", StepChannel.CALL, "first_call", "4h"),
    ]
    assert first[0].automatic and first[0].template == "ack_email"
    assert first[1].script == "internet-first-call"
    assert first[2].if_unanswered
    # 10-15 agent attempts, rotating morning/afternoon/evening on the later calls.
    assert sum(s.is_agent_attempt for s in internet.steps) == 15
    windows = [s.window.name for s in internet.steps if s.channel is StepChannel.CALL]
    assert {"morning", "afternoon", "evening"} <= set(windows)
    assert internet.transition_for("HUMAN_CONTACT").target == "contacted_not_ready"  # type: ignore[union-attr]
    assert internet.transition_for("BAD_NUMBER").action == "skip_phone"  # type: ignore[union-attr]


def test_shipped_appointment_and_nurture_cadences() -> None:
    appt = CADENCES["appointment_set"]
    by_id = {s.id: s for s in appt.steps}
    assert (by_id["confirmation_call"].anchor, by_id["confirmation_call"].offset.text) == (
        "appointment",
        "-24h",
    )
    assert (by_id["reminder_2h"].channel, by_id["reminder_2h"].offset.text) == (
        StepChannel.TEXT,
        "-2h",
    )
    assert by_id["no_show_call"].anchor == "no_show"
    assert appt.then == "contacted_not_ready"
    nurture = CADENCES["contacted_not_ready"]
    assert nurture.max_days == 60
    assert {s.channel for s in nurture.steps} == set(StepChannel)
    total_days = sum(s.offset.amount for s in nurture.steps if s.offset.calendar_days)
    assert 50 <= total_days <= 60


def test_offsets_and_windows_syntax() -> None:
    assert parse_offset("5m").duration == timedelta(minutes=5)  # type: ignore[union-attr]
    assert parse_offset("-24h").duration == timedelta(hours=-24)  # type: ignore[union-attr]
    assert parse_offset("2d").calendar_days  # type: ignore[union-attr]
    assert parse_offset("30s").duration == timedelta(seconds=30)  # type: ignore[union-attr]
    for bad in ("5", "m5", "5 min", "1.5h", "", "5w", "--1h"):
        assert parse_offset(bad) is None, bad
    morning = parse_window("morning")
    assert (morning.start, morning.end) == (time(9), time(12))  # type: ignore[union-attr]
    explicit = parse_window("10:30-13:00")
    assert (explicit.start, explicit.end) == (time(10, 30), time(13))  # type: ignore[union-attr]
    assert parse_window("18:00-24:00").end == time.max  # type: ignore[union-attr]
    for bad in ("noon", "13:00-12:00", "25:00-26:00", "9-12", "12:00-12:00"):
        assert parse_window(bad) is None, bad


# --- broken files ---------------------------------------------------------------------------------

GOOD = """\
id = "demo"
name = "Demo"

[stop]
max_attempts = 5
max_days = 10

[transitions]
HUMAN_CONTACT = "demo"
DO_NOT_CONTACT = "stop"

[[steps]]
id = "call_1"
channel = "call"
offset = "5m"
script = "first"

[[steps]]
id = "text_1"
channel = "text"
offset = "10m"
window = "morning"
template = "first_text"
"""


def test_good_variant_parses() -> None:
    cadence = parse_cadence(GOOD, "demo.toml")
    assert [s.id for s in cadence.steps] == ["call_1", "text_1"]
    assert cadence.steps[1].note == "10 min after the previous step"


@pytest.mark.parametrize(
    ("old", "new", "line", "field", "words"),
    [
        ('channel = "call"', 'channel = "fax"', 14, "steps[0].channel", "unknown channel"),
        ('offset = "10m"', 'offset = "10 minutes"', 21, "steps[1].offset", "bad offset"),
        ('window = "morning"', 'window = "brunch"', 22, "steps[1].window", "bad window"),
        ('HUMAN_CONTACT = "demo"', 'HUMAN_TOUCH = "demo"', 9, "transitions.HUMAN_TOUCH", "flag"),
        (
            'DO_NOT_CONTACT = "stop"',
            'DO_NOT_CONTACT = "demo"',
            10,
            "transitions.DO_NOT_CONTACT",
            "always stops",
        ),
        ('script = "first"', 'template = "first"', 16, "steps[0].template", "takes a script"),
        ('offset = "5m"', 'offset = "-5m"', 15, "steps[0].offset", "negative"),
        ('offset = "5m"', 'offset = "5m"\nfrom = "text_1"', 16, "steps[0].from", "earlier step"),
        ('id = "text_1"', 'id = "call_1"', 19, "steps[1].id", "used twice"),
        ("max_days = 10", "max_days = 10\nmax_weeks = 2", 7, "stop.max_weeks", "unknown field"),
        ("max_days = 10", "max_days = 0", 6, "stop.max_days", "must be 1.."),
        (
            'template = "first_text"',
            'template = "t"\nautomatic = "yes"',
            24,
            "steps[1].automatic",
            "must be bool",
        ),
        (
            'template = "first_text"',
            'template = "t"\nif_unanswered = 1',
            24,
            "steps[1].if_unanswered",
            "must be bool",
        ),
        ('id = "demo"', 'id = "Demo Cadence"', 1, "id", "lower case"),
        ('name = "Demo"', 'name = "Demo', 2, "", "not valid TOML"),
    ],
)
def test_broken_variants_name_file_line_and_field(
    old: str, new: str, line: int, field: str, words: str
) -> None:
    assert old in GOOD
    with pytest.raises(ResourceError) as caught:
        parse_cadence(GOOD.replace(old, new, 1), "resources/cadences/demo.toml")
    err = caught.value
    assert (err.source, err.line, err.field) == ("resources/cadences/demo.toml", line, field)
    assert words in str(err)


def test_more_broken_steps() -> None:
    automatic_call = GOOD.replace('script = "first"', 'script = "first"\nautomatic = true')
    with pytest.raises(ResourceError, match="only texts and emails"):
        parse_cadence(automatic_call, "x.toml")
    unanswered_first = GOOD.replace('script = "first"', 'script = "first"\nif_unanswered = true')
    with pytest.raises(ResourceError, match="earlier call step"):
        parse_cadence(unanswered_first, "x.toml")
    no_steps = "steps = []\n" + GOOD.split("[[steps]]")[0]
    with pytest.raises(ResourceError, match="at least one step"):
        parse_cadence(no_steps, "x.toml")
    with pytest.raises(ResourceError, match="unknown field 'halt'"):
        parse_cadence(GOOD.replace("[stop]", "[halt]"), "x.toml")
    no_stop = GOOD.replace("[stop]\nmax_attempts = 5\nmax_days = 10\n", "")
    with pytest.raises(ResourceError, match=r"missing required table \[stop\]"):
        parse_cadence(no_stop, "x.toml")
    reserved = GOOD.replace('id = "text_1"', 'id = "callback"')
    with pytest.raises(ResourceError, match="reserved"):
        parse_cadence(reserved, "x.toml")
    task = GOOD.replace(
        'channel = "call"\noffset = "5m"\nscript = "first"', 'channel = "task"\noffset = "5m"'
    )
    with pytest.raises(ResourceError, match="needs a 'note'"):
        parse_cadence(task, "x.toml")
    bad_status = GOOD + '\n[[applies_to]]\nstatuses = ["fresh"]\n'
    with pytest.raises(ResourceError, match="unknown value 'fresh'"):
        parse_cadence(bad_status, "x.toml")


def test_set_validation_finds_unknown_targets_duplicates_and_overlaps() -> None:
    broken = parse_cadence(
        GOOD.replace('HUMAN_CONTACT = "demo"', 'HUMAN_CONTACT = "nurture"'), "d.toml"
    )
    with pytest.raises(ResourceError) as caught:
        validate_cadence_set([broken])
    assert (caught.value.source, caught.value.line, caught.value.field) == (
        "d.toml",
        9,
        "transitions.HUMAN_CONTACT",
    )
    assert "unknown cadence 'nurture'" in str(caught.value)
    good = parse_cadence(GOOD, "d.toml")
    with pytest.raises(ResourceError, match="already used by"):
        validate_cadence_set([good, good])
    clash = parse_cadence(
        GOOD.replace('id = "demo"', 'id = "other"').replace('"demo"', '"other"')
        + '\n[[applies_to]]\nsource_types = ["third_party"]\n',
        "o.toml",
    )
    with pytest.raises(ResourceError, match="already started by cadence 'internet_new'") as caught:
        validate_cadence_set([*SHIPPED, clash])
    assert caught.value.field == "applies_to[0]"
    then_missing = parse_cadence(
        GOOD.replace("max_days = 10", 'max_days = 10\nthen = "gone"'), "d.toml"
    )
    with pytest.raises(ResourceError, match="unknown cadence 'gone'"):
        validate_cadence_set([then_missing])
    with pytest.raises(ResourceError):
        plan([broken], make_lead(), [], T0, zone=CHI)


# --- planning: the internet lead ------------------------------------------------------------------


def test_new_lead_gets_the_whole_first_hour_and_the_rotation() -> None:
    result = run([], T0)
    assert (result.state, result.cadence_id, result.started_at) == (
        PlanState.ACTIVE,
        "internet_new",
        T0.astimezone(UTC),
    )
    assert due(result) == [
        ("acknowledgment", "Mon 10:00"),
        ("first_call", "Mon 10:05"),
        ("first_text", "Mon 10:10"),
        ("personal_email", "Mon 10:30"),
        ("second_call", "Mon 14:05"),
        ("second_text", "Mon 14:15"),
        ("call_3", "Tue 09:00"),
        ("third_text", "Tue 09:10"),
        ("call_4", "Wed 17:00"),
        ("value_email", "Thu 09:00"),
        ("call_5", "Fri 12:00"),
        ("call_6", "Mon 09:00"),
        ("nurture_text", "Thu 12:00"),
        ("call_7", "Mon 17:00"),
        ("call_8", "Sun 12:00"),
        ("last_email", "Mon 09:00"),
    ]
    first_text = result.next_steps[2]
    assert (first_text.attempt, first_text.template, first_text.automatic) == (
        1,
        "first_text",
        False,
    )
    assert first_text.reason.startswith("Text #1 — right after an unanswered first call")
    assert result.next_steps[0].automatic and result.next_steps[0].attempt == 1
    assert all(s.due_at.tzinfo is UTC for s in result.next_steps)
    assert result.next_steps[-1].due_at.astimezone(CHI).date() == date(2024, 4, 1)  # day 28


def test_agent_call_counts_and_later_steps_follow_the_real_time() -> None:
    history = [email(T0 + timedelta(seconds=20), automatic=True), call(local(MON, 10, 3))]
    result = run(history, local(MON, 10, 4))
    assert [(d.step_id, d.activity_id) for d in result.done] == [
        ("acknowledgment", history[0].id),
        ("first_call", history[1].id),
    ]
    assert due(result)[:3] == [
        ("first_text", "Mon 10:08"),
        ("personal_email", "Mon 10:28"),
        ("second_call", "Mon 14:03"),
    ]
    assert describe_next(result, CHI) == "Text #1 in 4 min · email #2 at 10:28 AM their time"


def test_answered_call_skips_the_unanswered_text() -> None:
    result = run([call(local(MON, 10, 2), answered=True)], local(MON, 10, 3))
    skipped = {s.step_id: s.reason for s in result.skipped}
    assert skipped == {"first_text": "the call was answered"}
    # The skipped text keeps its place in time, so the email still comes 25 min after the call.
    assert due(result)[:2] == [("acknowledgment", "Mon 10:03"), ("personal_email", "Mon 10:27")]


def test_automatic_email_does_not_count_as_the_personal_email() -> None:
    history = [email(T0, automatic=True), email(T0 + timedelta(minutes=1), automatic=True)]
    result = run(history, local(MON, 10, 2))
    assert [d.step_id for d in result.done] == ["acknowledgment"]
    assert "personal_email" in [s.step_id for s in result.next_steps]
    # But an agent's email counts for the next email step, personal email included.
    result = run([email(T0, automatic=True), email(local(MON, 10, 1))], local(MON, 10, 2))
    assert [d.step_id for d in result.done] == ["acknowledgment", "personal_email"]


def test_an_extra_early_call_counts_for_the_next_call_step() -> None:
    history = [call(local(MON, 10, 1)), call(local(MON, 10, 20))]
    result = run(history, local(MON, 10, 21))
    assert [d.step_id for d in result.done] == ["first_call", "second_call"]
    assert [d.attempt for d in result.done] == [1, 2]


def test_after_hours_lead_waits_for_legal_hours_and_later_steps_shift() -> None:
    late = local(MON, 23, 30)
    result = run([], late, make_lead(late))
    assert due(result)[:6] == [
        ("acknowledgment", "Mon 23:30"),  # email: any time
        ("first_call", "Tue 08:00"),
        ("first_text", "Tue 08:05"),
        ("personal_email", "Tue 08:25"),
        ("second_call", "Tue 12:00"),
        ("second_text", "Tue 12:10"),
    ]
    assert "waits for the allowed window: 8:00 AM" in result.next_steps[1].reason


def test_state_window_and_sunday_ban_from_the_legal_window() -> None:
    # Friday 19:58 with an 8:00-20:00 state window: the call waits for Saturday morning.
    friday = local(date(2024, 3, 8), 19, 58)
    florida = daily(time(8), time(20))
    result = run([], friday, make_lead(friday), legal_window=florida)
    assert due(result)[1:3] == [("first_call", "Sat 08:00"), ("first_text", "Sat 08:05")]
    # Saturday 20:58 with Sundays banned: Monday 8:00, never Sunday.
    saturday = local(date(2024, 3, 9), 20, 58)
    sunday_ban = daily(time(8), time(21), banned={6})
    result = run([], saturday, make_lead(saturday), legal_window=sunday_ban)
    assert due(result)[1:3] == [("first_call", "Mon 08:00"), ("first_text", "Mon 08:05")]
    assert all(
        s.due_at.astimezone(CHI).weekday() != 6
        for s in result.next_steps
        if s.channel in (StepChannel.CALL, StepChannel.TEXT)
    )


def test_customer_zone_is_used_for_windows() -> None:
    # 7:30 in New York is before legal hours there even though it is 6:30 in Chicago.
    at = local(MON, 7, 30, NYC)
    result = plan(SHIPPED, make_lead(at), [], at, zone=NYC)
    assert due(result, NYC)[1] == ("first_call", "Mon 08:00")


def test_overdue_step_is_due_now_and_says_since_when() -> None:
    result = run([email(T0, automatic=True)], local(MON, 10, 20))
    first = result.next_steps[0]
    assert (first.step_id, first.due_at) == ("first_call", local(MON, 10, 20).astimezone(UTC))
    assert first.late_since == local(MON, 10, 5).astimezone(UTC)
    assert "overdue since Mon Mar 4 10:05 AM their time" in first.reason
    # Overdue past the legal window: it moves to the next morning instead of "now".
    evening = local(MON, 20, 50)
    result = run([], local(MON, 21, 10), make_lead(evening))
    assert due(result)[1] == ("first_call", "Tue 08:00")


def test_no_two_steps_of_a_channel_at_one_instant() -> None:
    text = GOOD.replace('offset = "5m"', 'offset = "0s"').replace(
        'offset = "10m"\nwindow = "morning"', 'offset = "0s"\nwindow = "morning"'
    )
    text += '\n[[steps]]\nid = "text_2"\nchannel = "text"\noffset = "0s"\ntemplate = "t"\n'
    text += '\n[[applies_to]]\nsource_types = ["first_party"]\n'
    cadence = parse_cadence(text, "d.toml")
    at = local(MON, 6)
    result = plan([cadence], make_lead(at), [], at, zone=CHI)
    assert due(result) == [
        ("call_1", "Mon 08:00"),
        ("text_1", "Mon 09:00"),
        ("text_2", "Mon 09:01"),
    ]


# --- course changes ---------------------------------------------------------------------------


def test_opt_out_stops_everything_and_opt_in_resumes() -> None:
    out = act(ActivityKind.OPT_OUT, local(MON, 10, 1))
    result = run([out], local(MON, 10, 2))
    assert (result.state, result.next_steps) == (PlanState.STOPPED, ())
    assert "opted out" in result.reason
    assert describe_next(result, CHI).startswith("Stopped: the customer opted out")
    back_in = act(ActivityKind.OPT_IN, local(MON, 11))
    assert run([out, back_in], local(MON, 11, 1)).state is PlanState.ACTIVE
    opted = make_lead(opted_out_at=local(MON, 10, 1))
    assert run([], local(MON, 10, 2), opted).state is PlanState.STOPPED


def test_do_not_contact_always_wins() -> None:
    history = [dispo(local(MON, 10, 3), F.ATTEMPT | F.HUMAN_CONTACT | F.DO_NOT_CONTACT)]
    result = run(history, local(MON, 10, 4))
    assert result.state is PlanState.STOPPED and not result.next_steps
    later = [*history, dispo(local(MON, 12), F.APPOINTMENT_SET, scheduled_for=local(MON, 15))]
    assert run(later, local(MON, 12, 1)).state is PlanState.STOPPED


def test_not_interested_stops_but_a_later_appointment_revives() -> None:
    history = [dispo(local(MON, 10, 3), F.ATTEMPT | F.HUMAN_CONTACT | F.NOT_INTERESTED)]
    result = run(history, local(MON, 10, 4))
    assert (result.state, result.reason) == (
        PlanState.STOPPED,
        "not interested logged Mon Mar 4 10:03 AM",
    )
    slot = local(date(2024, 3, 6), 14)
    revived = [*history, appointment(local(date(2024, 3, 5), 10), AppointmentStatus.SET, slot)]
    assert run(revived, local(date(2024, 3, 5), 10, 1)).cadence_id == "appointment_set"


def test_contact_switches_to_nurture_from_the_conversation() -> None:
    talk = local(MON, 10, 30)
    result = run(
        [call(local(MON, 10, 29), answered=True), dispo(talk, F.ATTEMPT | F.HUMAN_CONTACT)], talk
    )
    assert (result.cadence_id, result.started_at) == ("contacted_not_ready", talk.astimezone(UTC))
    assert due(result)[:3] == [
        ("thank_you_email", "Tue 10:30"),  # next day, the conversation's time fits the morning
        ("check_in_text", "Fri 12:00"),  # afternoon window opens
        ("week_1_call", "Mon 17:00"),
    ]
    assert result.ends_at == (talk + timedelta(days=60)).astimezone(UTC)


def test_bad_number_keeps_only_email() -> None:
    history = [
        call(local(MON, 10, 2)),
        dispo(local(MON, 10, 3), F.ATTEMPT | F.BAD_NUMBER, phone="+13125550134"),
    ]
    result = run(history, local(MON, 10, 4))
    assert result.state is PlanState.ACTIVE
    assert {s.channel for s in result.next_steps} == {StepChannel.EMAIL}
    assert "the phone number was marked bad" in {s.reason for s in result.skipped}
    # A bad-number disposition about a number the lead no longer has changes nothing.
    other = [call(local(MON, 10, 2)), dispo(local(MON, 10, 3), F.BAD_NUMBER, phone="+13125550199")]
    assert StepChannel.CALL in {s.channel for s in run(other, local(MON, 10, 4)).next_steps}


def test_unreachable_channels_are_skipped_with_a_reason() -> None:
    result = run([], T0, make_lead(phone=None))
    assert {s.channel for s in result.next_steps} == {StepChannel.EMAIL}
    assert result.skipped[0].reason == "no reachable phone number"
    assert {s.channel for s in run([], T0, make_lead(email=None)).next_steps} == {
        StepChannel.CALL,
        StepChannel.TEXT,
    }
    dnc = run([], T0, make_lead(do_not_call=True))
    assert StepChannel.CALL not in {s.channel for s in dnc.next_steps}


def test_callback_request_puts_a_call_at_the_asked_time() -> None:
    asked = local(MON, 10, 4)
    history = [
        call(local(MON, 10, 2), answered=True),
        dispo(asked, F.ATTEMPT | F.HUMAN_CONTACT | F.CALLBACK, scheduled_for=local(MON, 16, 30)),
    ]
    result = run(history, local(MON, 10, 5))
    assert result.cadence_id == "contacted_not_ready"
    callback = result.next_steps[0]
    assert (callback.step_id, callback.channel, callback.window) == (
        CALLBACK_STEP_ID,
        StepChannel.CALL,
        None,
    )
    assert f"{callback.due_at.astimezone(CHI):%a %H:%M}" == "Mon 16:30"
    assert (
        callback.reason
        == "Call #1 — callback the customer asked for (Mon Mar 4 4:30 PM their time)"
    )
    # The nurture continues from the callback: next morning, when the window opens.
    assert due(result)[1] == ("thank_you_email", "Tue 09:00")
    # Once the agent calls back, the callback is done.
    made = run([*history, call(local(MON, 16, 31))], local(MON, 16, 40))
    assert [d.step_id for d in made.done] == [CALLBACK_STEP_ID]
    assert CALLBACK_STEP_ID not in [s.step_id for s in made.next_steps]


def test_callback_asked_for_after_hours_waits_for_legal_hours() -> None:
    history = [dispo(local(MON, 10, 4), F.CALLBACK, scheduled_for=local(MON, 22))]
    result = run(history, local(MON, 10, 5))
    callback = next(s for s in result.next_steps if s.step_id == CALLBACK_STEP_ID)
    assert f"{callback.due_at.astimezone(CHI):%a %H:%M}" == "Tue 08:00"


def test_max_days_ends_the_cadence() -> None:
    result = run([], T0 + timedelta(days=31))
    assert result.state is PlanState.COMPLETE and not result.next_steps
    assert describe_next(result, CHI) == "Cadence complete"
    assert {s.reason for s in result.skipped} == {"falls after the cadence's 30-day limit"}


def test_max_attempts_caps_planned_steps() -> None:
    text = GOOD.replace("max_attempts = 5", "max_attempts = 2")
    text += '\n[[steps]]\nid = "call_2"\nchannel = "call"\noffset = "1h"\nscript = "s"\n'
    text += '\n[[applies_to]]\nsource_types = ["first_party"]\n'
    cadence = parse_cadence(text, "d.toml")
    result = plan([cadence], make_lead(), [], T0, zone=CHI)
    assert [s.step_id for s in result.next_steps] == ["call_1", "text_1"]
    assert result.skipped[0].reason == "the cadence's limit of 2 attempts is reached"


def test_task_steps_are_done_by_a_note() -> None:
    source = (
        GOOD + '\n[[steps]]\nid = "review"\nchannel = "task"\noffset = "1h"\nnote = "check stock"\n'
    )
    source += '\n[[applies_to]]\nsource_types = ["first_party"]\n'
    cadence = parse_cadence(source, "d.toml")
    result = plan([cadence], make_lead(), [], T0, zone=CHI)
    assert due(result) == [
        ("call_1", "Mon 10:05"),
        ("text_1", "Mon 10:15"),
        ("review", "Mon 11:15"),
    ]
    assert result.next_steps[2].reason == "Task #1 — check stock"
    history = [
        call(local(MON, 10, 5)),
        text(local(MON, 10, 20)),
        act(ActivityKind.NOTE, local(MON, 10, 30), body="checked stock"),
    ]
    done = plan([cadence], make_lead(), history, local(MON, 11), zone=CHI)
    assert [d.step_id for d in done.done] == ["call_1", "text_1", "review"]
    assert done.state is PlanState.COMPLETE


# --- appointments --------------------------------------------------------------------------------

WED = date(2024, 3, 6)


def test_appointment_steps_count_back_from_the_slot() -> None:
    set_at = local(MON, 10, 30)
    history = [appointment(set_at, AppointmentStatus.SET, local(WED, 14))]
    result = run(history, local(MON, 10, 31))
    assert (result.cadence_id, result.appointment_at) == (
        "appointment_set",
        local(WED, 14).astimezone(UTC),
    )
    assert due(result) == [
        ("confirmation_email", "Mon 10:31"),
        ("confirmation_call", "Tue 14:00"),
        ("reminder_2h", "Wed 12:00"),
    ]
    assert result.state is PlanState.ACTIVE
    # A call right after setting it is not the confirmation call; one the day before is.
    early = run([*history, call(local(MON, 10, 40))], local(MON, 10, 41))
    assert "confirmation_call" in [s.step_id for s in early.next_steps]
    confirmed = run([*history, call(local(date(2024, 3, 5), 11))], local(date(2024, 3, 5), 11, 1))
    assert "confirmation_call" in [d.step_id for d in confirmed.done]


def test_short_notice_appointment_skips_the_24h_call() -> None:
    history = [
        dispo(local(MON, 10, 30), F.HUMAN_CONTACT | F.APPOINTMENT_SET, scheduled_for=local(MON, 15))
    ]
    result = run(history, local(MON, 10, 31))
    assert result.cadence_id == "appointment_set"
    assert {s.step_id: s.reason for s in result.skipped} == {
        "confirmation_call": "the appointment was less than 24 h away"
    }
    assert due(result) == [("confirmation_email", "Mon 10:31"), ("reminder_2h", "Mon 13:00")]


def test_early_morning_appointment_reminder_waits_for_legal_hours_or_is_skipped() -> None:
    set_at = local(MON, 10, 30)
    nine = run([appointment(set_at, AppointmentStatus.SET, local(WED, 9))], local(MON, 10, 31))
    assert due(nine)[2] == ("reminder_2h", "Wed 08:00")
    eight = run([appointment(set_at, AppointmentStatus.SET, local(WED, 8))], local(MON, 10, 31))
    assert {s.step_id: s.reason for s in eight.skipped} == {
        "reminder_2h": "no allowed time before the appointment"
    }


def test_no_show_follow_up_then_nurture() -> None:
    slot = local(WED, 14)
    history = [
        appointment(local(MON, 10, 30), AppointmentStatus.SET, slot),
        appointment(local(WED, 14, 30), AppointmentStatus.NO_SHOW),
    ]
    result = run(history, local(WED, 14, 31))
    assert due(result)[1:] == [
        ("no_show_call", "Wed 14:45"),
        ("no_show_text", "Wed 15:00"),
        ("no_show_email", "Thu 09:00"),
    ]
    assert result.next_steps[1].reason == "Call #1 — soon after the no-show: reschedule"
    # Before the outcome is known the cadence waits.
    waiting = run(
        [
            history[0],
            email(local(MON, 10, 31), automatic=True),
            call(local(date(2024, 3, 5), 14)),
            text(local(WED, 12, 1)),
        ],
        local(WED, 16),
    )
    assert (waiting.state, waiting.reason) == (
        PlanState.WAITING,
        "waits for the appointment outcome",
    )
    assert describe_next(waiting, CHI) == "Waits for the appointment outcome"
    # Every no-show step done: the lead moves on to nurture from the last touch.
    finished = [
        *history,
        email(local(MON, 10, 31), automatic=True),
        call(local(WED, 14, 40)),
        text(local(WED, 14, 55)),
        email(local(date(2024, 3, 7), 9, 5)),
    ]
    result = run(finished, local(date(2024, 3, 7), 9, 10))
    assert (result.cadence_id, result.started_at) == (
        "contacted_not_ready",
        local(date(2024, 3, 7), 9, 5).astimezone(UTC),
    )


def test_kept_stops_and_cancelled_goes_to_nurture() -> None:
    set_ = appointment(local(MON, 10, 30), AppointmentStatus.SET, local(WED, 14))
    kept = run([set_, appointment(local(WED, 14, 5), AppointmentStatus.KEPT)], local(WED, 15))
    assert kept.state is PlanState.STOPPED
    cancelled = run(
        [set_, appointment(local(MON, 12), AppointmentStatus.CANCELLED)], local(MON, 12, 1)
    )
    assert (cancelled.cadence_id, cancelled.state) == ("contacted_not_ready", PlanState.ACTIVE)


def test_appointment_without_an_outcome_moves_on_after_max_days() -> None:
    set_ = appointment(local(MON, 10, 30), AppointmentStatus.SET, local(WED, 14))
    confirmed = email(local(MON, 10, 31), automatic=True)
    waiting = run([set_, confirmed], local(MON, 10, 30) + timedelta(days=89))
    assert (waiting.cadence_id, waiting.state) == ("appointment_set", PlanState.WAITING)
    moved = run([set_, confirmed], local(MON, 10, 30) + timedelta(days=91))
    assert (moved.cadence_id, moved.started_at) == (
        "contacted_not_ready",
        (local(MON, 10, 30) + timedelta(days=90)).astimezone(UTC),
    )


def test_wall_clock_windows_hold_across_the_dst_change() -> None:
    friday = local(date(2024, 3, 8), 10)  # DST starts Sunday March 10 at 2:00 in Chicago
    result = run([], friday, make_lead(friday))
    steps = dict(due(result))
    assert (steps["call_3"], steps["call_4"], steps["value_email"]) == (
        "Sat 09:00",
        "Sun 17:00",
        "Mon 09:00",
    )
    value_email = next(s for s in result.next_steps if s.step_id == "value_email")
    assert value_email.due_at == datetime(2024, 3, 11, 14, 0, tzinfo=UTC)  # 9:00 CDT


def test_reschedule_moves_the_steps() -> None:
    first = appointment(local(MON, 10, 30), AppointmentStatus.SET, local(WED, 14))
    moved = appointment(local(MON, 11), AppointmentStatus.SET, local(date(2024, 3, 7), 10))
    result = run([first, moved], local(MON, 11, 1))
    assert due(result)[1:] == [("confirmation_call", "Wed 10:00"), ("reminder_2h", "Thu 08:00")]


def test_lead_created_with_status_selects_its_cadence() -> None:
    walk_in = make_lead(source_type=SourceType.WALK_IN)
    assert run([], T0, walk_in).cadence_id == "contacted_not_ready"
    assert run([], T0, make_lead(status=LeadStatus.CONTACTED)).cadence_id == "contacted_not_ready"
    no_slot = run([], T0, make_lead(status=LeadStatus.APPOINTMENT))
    assert (no_slot.cadence_id, no_slot.state) == ("appointment_set", PlanState.ACTIVE)
    assert [s.step_id for s in no_slot.next_steps] == ["confirmation_email"]
    assert run([], T0, make_lead(status=LeadStatus.SOLD)).state is PlanState.STOPPED
    only_internet = parse_cadence(GOOD + '[[applies_to]]\nsource_types = ["first_party"]\n', "d")
    result = plan([only_internet], walk_in, [], T0, zone=CHI)
    assert (result.state, describe_next(result, CHI)) == (PlanState.NO_CADENCE, "No cadence")
    assert run([], T0, make_lead(duplicate_of="L0")).reason == "merged into lead L0"


# --- describe_next -------------------------------------------------------------------------------


def test_describe_next_phrases() -> None:
    assert describe_next(run([], T0), CHI) == "Auto email #1 now · call #1 at 10:05 AM their time"
    history = [email(T0, automatic=True), call(local(MON, 10, 3)), text(local(MON, 10, 8))]
    history.append(email(local(MON, 10, 28)))
    assert describe_next(run(history, local(MON, 10, 30)), CHI) == (
        "Call #2 at 2:03 PM their time · text #2 at 2:13 PM their time"
    )
    friday = local(date(2024, 3, 8), 20, 58)
    later = run([email(friday, automatic=True)], friday, make_lead(friday))
    assert describe_next(later, CHI, limit=1) == "Call #1 tomorrow at 8:00 AM their time"
    assert describe_next(later, NYC, limit=1) == "Call #1 tomorrow at 9:00 AM their time"


# --- bad input -----------------------------------------------------------------------------------


def test_bad_input_gets_typed_errors() -> None:
    with pytest.raises(CadenceError, match="naive"):
        run([], datetime(2024, 3, 4, 10))
    with pytest.raises(CadenceError, match="zone must be a tzinfo"):
        plan(SHIPPED, make_lead(), [], T0, zone="America/Chicago")  # type: ignore[arg-type]
    stranger = Activity(id="x", lead_id="L2", kind=ActivityKind.NOTE, at=T0)
    with pytest.raises(CadenceError, match="belongs to lead L2"):
        run([stranger], T0)
    with pytest.raises(CadenceError, match="not an Activity"):
        run(["call"], T0)  # type: ignore[list-item]
    with pytest.raises(CadenceError, match="naive datetime"):
        run([], T0, legal_window=lambda c, d: (datetime(2024, 3, 4, 8), datetime(2024, 3, 4, 21)))
    with pytest.raises(CadenceError, match="must return"):
        run([], T0, legal_window=lambda c, d: "8-21")
    with pytest.raises(CadenceError, match="callable"):
        run([], T0, legal_window=42)
    with pytest.raises(CadenceError, match="outside the years"):
        run([], datetime(9999, 1, 1, tzinfo=UTC))
    with pytest.raises(CadenceError):
        validate_cadence_set(["internet_new"])  # type: ignore[list-item]
    with pytest.raises(DomainError):
        describe_next("plan", CHI)  # type: ignore[arg-type]


def test_same_inputs_same_plan_whatever_the_history_order() -> None:
    history = [
        email(T0, automatic=True),
        call(local(MON, 10, 3)),
        text(local(MON, 10, 9)),
        dispo(local(MON, 10, 4), F.ATTEMPT),
        call(local(MON, 14, 10)),
    ]
    now = local(MON, 15)
    expected = run(history, now)
    shuffled = history[:]
    random.Random(7).shuffle(shuffled)
    assert run(shuffled, now) == expected
    assert run(list(reversed(history)), now) == expected


def test_shared_spans_give_the_same_plans_as_each_lead_alone() -> None:
    """A queue shares one SpanCache per zone and legal window across its leads' plans."""
    from app.demo.generator import demo_leads

    legal = daily(time(9), time(20), banned={6})
    spans = {zone: SpanCache(zone, legal) for zone in (CHI, NYC)}  # type: ignore[arg-type]
    leads = demo_leads(local(MON, 15), 120, seed=3)
    for now in (local(MON, 15), local(MON + timedelta(days=3), 8)):
        for index, (lead, history) in enumerate(leads):
            zone = (CHI, NYC)[index % 2]
            alone = plan(SHIPPED, lead, history, now, zone=zone, legal_window=legal)  # type: ignore[arg-type]
            shared = plan(
                SHIPPED,
                lead,
                history,
                now,
                zone=zone,
                legal_window=legal,
                spans=spans[zone],  # type: ignore[arg-type]
            )
            assert shared == alone
    assert spans[CHI].allowed, "the spans were shared"
    with pytest.raises(CadenceError, match="SpanCache made for this zone"):
        plan(SHIPPED, leads[0][0], leads[0][1], local(MON, 15), zone=CHI, spans=spans[NYC])


# --- properties ----------------------------------------------------------------------------------

ZONES = [
    CHI,
    NYC,
    ZoneInfo("America/Denver"),
    ZoneInfo("America/Los_Angeles"),
    ZoneInfo("Pacific/Honolulu"),
]
BASE = datetime(2024, 1, 1, tzinfo=UTC)


def _legal_factory(kind: int, zone: ZoneInfo, banned: frozenset[int], start_h: int, end_h: int):  # type: ignore[no-untyped-def]
    if kind == 0:
        return None

    def window(channel: Channel, day: date) -> tuple[datetime, datetime] | None:
        if channel is not Channel.EMAIL and day.weekday() in banned:
            return None
        if kind == 1:
            return datetime.combine(day, time(8), zone), datetime.combine(day, time(21), zone)
        return datetime.combine(day, time(start_h), zone), datetime.combine(day, time(end_h), zone)

    return window


def _default_legal(channel: Channel, day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    if channel is Channel.EMAIL:
        return datetime.combine(day, time(0), zone), datetime.combine(
            day + timedelta(days=1), time(0), zone
        )
    return datetime.combine(day, time(8), zone), datetime.combine(day, time(21), zone)


KINDS = [
    ActivityKind.CALL,
    ActivityKind.TEXT,
    ActivityKind.EMAIL,
    ActivityKind.NOTE,
    ActivityKind.DISPOSITION,
    ActivityKind.APPOINTMENT,
    ActivityKind.OPT_OUT,
    ActivityKind.OPT_IN,
    ActivityKind.WEB_VISIT,
]


@st.composite
def histories(draw: st.DrawFn, received: datetime) -> list[Activity]:
    items = []
    for n in range(draw(st.integers(0, 14))):
        kind = draw(st.sampled_from(KINDS))
        at = received + timedelta(minutes=draw(st.integers(-600, 45 * 24 * 60)))
        fields: dict[str, object] = {}
        if kind is ActivityKind.DISPOSITION:
            flags = F.NONE
            for flag in draw(st.lists(st.sampled_from(list(F)[1:]), max_size=3)):
                flags |= flag
            fields.update(disposition="x", flags=flags)
            if draw(st.booleans()):
                fields["scheduled_for"] = at + timedelta(minutes=draw(st.integers(-60, 20_000)))
            if draw(st.booleans()):
                fields["phone"] = draw(st.sampled_from(["+13125550134", "+13125550199"]))
        elif kind is ActivityKind.APPOINTMENT:
            fields["appointment_status"] = draw(st.sampled_from(list(AppointmentStatus)))
            if draw(st.integers(0, 3)):
                fields["scheduled_for"] = at + timedelta(minutes=draw(st.integers(-120, 20_000)))
        elif kind in (ActivityKind.CALL, ActivityKind.TEXT, ActivityKind.EMAIL):
            fields["direction"] = draw(
                st.sampled_from([Direction.OUTBOUND, Direction.OUTBOUND, Direction.INBOUND, None])
            )
            fields["automatic"] = draw(st.booleans())
            fields["answered"] = draw(st.sampled_from([True, False, None]))
        items.append(Activity(id=f"p{n}", lead_id="L1", kind=kind, at=at, **fields))  # type: ignore[arg-type]
    return items


@st.composite
def scenarios(
    draw: st.DrawFn,
) -> tuple[Lead, list[Activity], datetime, ZoneInfo, object, list[Cadence]]:
    zone = draw(st.sampled_from(ZONES))
    received = BASE + timedelta(minutes=draw(st.integers(0, 365 * 24 * 60)))
    lead = make_lead(
        received,
        source_type=draw(st.sampled_from(list(SourceType))),
        status=draw(st.sampled_from(list(LeadStatus))),
        phone=draw(st.sampled_from(["(312) 555-0134", "555", None])),
        email=draw(st.sampled_from(["ann@example.com", None])),
        do_not_call=draw(st.booleans()),
    )
    history = draw(histories(received))
    now = received + timedelta(minutes=draw(st.integers(-60, 50 * 24 * 60)))
    legal = _legal_factory(
        draw(st.integers(0, 2)),
        zone,
        frozenset(draw(st.lists(st.integers(0, 6), max_size=6))),
        draw(st.integers(6, 12)),
        draw(st.integers(13, 22)),
    )
    return lead, history, now, zone, legal, SHIPPED


def check_invariants(
    result: CadencePlan, cadences: list[Cadence], now: datetime, zone: ZoneInfo, legal: object
) -> None:
    by_id = {c.id: c for c in cadences}
    steps = result.next_steps
    seen = set()
    previous = None
    for step in steps:
        assert step.due_at.tzinfo is UTC
        assert step.due_at >= now, step
        if previous is not None:
            assert step.due_at >= previous, "due times go back"
        previous = step.due_at
        assert (step.channel, step.due_at) not in seen, "two steps of a channel at one instant"
        seen.add((step.channel, step.due_at))
        assert step.allowed_from <= step.due_at < step.allowed_until
        local_time = step.due_at.astimezone(zone)
        if step.window is not None:
            assert step.window.contains(local_time.time()), (step, local_time)
        if step.channel in (StepChannel.CALL, StepChannel.TEXT):
            contact = Channel(step.channel.value)
            bounds = (
                legal(contact, local_time.date())
                if callable(legal)
                else _default_legal(contact, local_time.date(), zone)
            )
            assert bounds is not None, f"{step.step_id} on a banned day {local_time}"
            assert bounds[0] <= step.due_at < bounds[1], (step, local_time)
        if step.step_id != CALLBACK_STEP_ID and result.cadence_id:
            cadence = by_id[result.cadence_id]
            if cadence.steps[step.step_index].anchor != "appointment":
                assert result.ends_at is not None and step.due_at <= result.ends_at
    if result.cadence_id and result.state is not PlanState.STOPPED:
        cadence = by_id[result.cadence_id]
        attempts = [
            s
            for s in (*result.done, *steps)
            if s.step_index >= 0 and cadence.steps[s.step_index].is_agent_attempt
        ]
        assert len(attempts) <= cadence.max_attempts
    if result.state is not PlanState.ACTIVE:
        assert steps == ()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_property_never_outside_windows_and_never_crashes(
    scenario: tuple[Lead, list[Activity], datetime, ZoneInfo, object, list[Cadence]],
) -> None:
    lead, history, now, zone, legal, cadences = scenario
    result = plan(cadences, lead, history, now, zone=zone, legal_window=legal)  # type: ignore[arg-type]
    check_invariants(result, cadences, now.astimezone(UTC), zone, legal)
    assert plan(
        cadences, lead, list(reversed(history)), now, zone=zone, legal_window=legal
    ) == result or len({a.at for a in history}) < len(history)
    describe_next(result, zone)
    stopped_by = [
        a
        for a in history
        if a.at <= now and a.kind is ActivityKind.DISPOSITION and a.flags & F.DO_NOT_CONTACT
    ]
    if stopped_by or lead.opted_out_at:
        assert result.next_steps == ()
    last_opt = [
        a.kind
        for a in sorted(history, key=lambda a: a.at)
        if a.at <= now and a.kind in (ActivityKind.OPT_OUT, ActivityKind.OPT_IN)
    ]
    if last_opt and last_opt[-1] is ActivityKind.OPT_OUT:
        assert result.state is PlanState.STOPPED and result.next_steps == ()


def test_a_call_logged_before_the_text_meant_first_keeps_the_attempt_limit() -> None:
    """Found by the generated-cadence property test: the text (step 1) was planned before the
    call (step 2) matched the call already made, so a 1-attempt cadence offered a second."""
    lines = ['id = "gen"', 'name = "Generated"', "", "[[applies_to]]", "", "[stop]"]
    lines += ["max_attempts = 1", "max_days = 1", "", "[transitions]", 'CALLBACK = "callback"', ""]
    for n, channel in enumerate(["text", "call", "call"]):
        lines += ["[[steps]]", f'id = "s{n}"', f'channel = "{channel}"', 'from = "previous"']
        lines += ['offset = "0s"', 'window = "any"']
        lines += ['script = "s"' if channel == "call" else 'template = "t"', ""]
    cadence = parse_cadence("\n".join(lines), "gen.toml")
    now = datetime(2024, 1, 1, 14, 0, tzinfo=UTC)
    lead = make_lead(now, phone="(312) 555-0134", email="ann@example.com")
    result = plan([cadence], lead, [call(now)], now, zone=CHI)
    assert [d.step_id for d in result.done] == ["s1"]
    assert result.next_steps == ()
    assert {s.step_id for s in result.skipped} >= {"s0", "s2"}
    assert all("limit of 1 attempts" in s.reason for s in result.skipped)


def test_calls_past_the_attempt_limit_do_not_count_as_steps() -> None:
    """Found by the generated-cadence property test: two calls already made matched two call
    steps of a 1-attempt cadence; the second is past the limit, so its step is skipped."""
    lines = ['id = "gen"', 'name = "Generated"', "", "[[applies_to]]", "", "[stop]"]
    lines += ["max_attempts = 1", "max_days = 1", "", "[transitions]", 'CALLBACK = "callback"', ""]
    for n in range(2):
        lines += ["[[steps]]", f'id = "s{n}"', 'channel = "call"', 'from = "previous"']
        lines += ['offset = "0s"', 'window = "any"', 'script = "s"', ""]
    cadence = parse_cadence("\n".join(lines), "gen.toml")
    now = datetime(2024, 1, 1, 14, 0, tzinfo=UTC)
    lead = make_lead(now - timedelta(minutes=5), phone="(312) 555-0134", email="ann@example.com")
    history = [call(now - timedelta(minutes=2)), call(now - timedelta(minutes=1))]
    result = plan([cadence], lead, history, now, zone=CHI)
    assert [d.step_id for d in result.done] == ["s0"]
    assert result.next_steps == ()
    assert [(s.step_id, s.reason) for s in result.skipped] == [
        ("s1", "the cadence's limit of 1 attempts is reached")
    ]


WINDOW_TEXTS = [
    "any",
    "morning",
    "afternoon",
    "evening",
    "07:00-10:00",
    "10:30-11:15",
    "19:30-23:00",
    "12:00-24:00",
]


@st.composite
def cadence_texts(draw: st.DrawFn) -> str:
    lines = ['id = "gen"', 'name = "Generated"', "", "[[applies_to]]", "", "[stop]"]
    lines += [
        f"max_attempts = {draw(st.integers(1, 8))}",
        f"max_days = {draw(st.integers(1, 20))}",
        "",
    ]
    lines += [
        "[transitions]",
        'HUMAN_CONTACT = "gen"',
        'BAD_NUMBER = "skip_phone"',
        'CALLBACK = "callback"',
        "",
    ]
    has_call = False
    ids: list[str] = []
    for n in range(draw(st.integers(1, 7))):
        channel = draw(st.sampled_from(["call", "text", "email", "task"]))
        anchor = draw(st.sampled_from(["previous", "start", "appointment", "no_show", *ids]))
        amount = draw(st.integers(0, 3))
        unit = draw(st.sampled_from(["s", "m", "h", "d"]))
        sign = "-" if anchor == "appointment" and draw(st.booleans()) else ""
        lines += ["[[steps]]", f'id = "s{n}"', f'channel = "{channel}"', f'from = "{anchor}"']
        lines += [f'offset = "{sign}{amount * draw(st.sampled_from([1, 5, 30]))}{unit}"']
        lines += [f'window = "{draw(st.sampled_from(WINDOW_TEXTS))}"']
        if channel == "call":
            lines.append('script = "s"')
        elif channel == "task":
            lines.append('note = "do it"')
        else:
            lines.append('template = "t"')
            if draw(st.booleans()):
                lines.append("automatic = true")
            if has_call and draw(st.booleans()):
                lines.append("if_unanswered = true")
        has_call = has_call or channel == "call"
        ids.append(f"s{n}")
        lines.append("")
    return "\n".join(lines)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cadence_texts(), scenarios())
def test_property_generated_cadences_keep_the_invariants(
    text: str, scenario: tuple[Lead, list[Activity], datetime, ZoneInfo, object, list[Cadence]]
) -> None:
    cadence = parse_cadence(text, "gen.toml")
    lead, history, now, zone, legal, _ = scenario
    lead = make_lead(lead.received_at, phone="(312) 555-0134", email="ann@example.com")
    result = plan([cadence], lead, history, now, zone=zone, legal_window=legal)  # type: ignore[arg-type]
    check_invariants(result, [cadence], now.astimezone(UTC), zone, legal)
    assert result == plan([cadence], lead, history, now, zone=zone, legal_window=legal)  # type: ignore[arg-type]
