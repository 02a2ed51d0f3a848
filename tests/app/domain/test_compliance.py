from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.domain.activities import Activity, ActivityKind, Direction, DispositionFlag
from app.domain.compliance import (
    TIME_CODES,
    BlockCode,
    BlockReason,
    CallingRules,
    ComplianceError,
    ContactDecision,
    ContactPurpose,
    JurisdictionRule,
    check_contact,
    legal_window,
    legal_window_fn,
    next_window_start,
    opted_out_since,
    parse_calling_rules,
    within_window,
)
from app.domain.errors import ResourceError
from app.domain.leads import (
    Address,
    Channel,
    Consent,
    ConsentScope,
    Email,
    Lead,
    LeadSource,
    LeadStatus,
    Person,
    SourceType,
)
from app.domain.phones import PhoneKind, make_phone
from app.domain.timezones import (
    NaiveDatetimeError,
    ZoneCandidate,
    ZoneResolution,
    ZoneSource,
    parse_zip_prefixes,
    resolve_zones,
)
from app.rulebook import read_resource

RULES = parse_calling_rules(*read_resource("calling_rules.toml"))
ZIPS = parse_zip_prefixes(*read_resource("us_zip_prefixes.toml"))
NY = ZoneInfo("America/New_York")
CHI = ZoneInfo("America/Chicago")
FL_CELL = "+13055550123"


def at(day: int, hour: int, minute: int = 0, zone: ZoneInfo = NY, month: int = 6) -> datetime:
    """A moment in 2025; June 2 2025 is a Monday."""
    return datetime(2025, month, day, hour, minute, tzinfo=zone)


def _lead(
    state: str = "FL",
    zip_code: str = "33101",
    phones: tuple[str, ...] = ("305-555-0123",),
    **changes: object,
) -> Lead:
    base: dict[str, object] = {
        "id": "L1",
        "store_id": "S1",
        "received_at": at(1, 9),
        "person": Person("Ann", "Lee"),
        "source": LeadSource("Dealer website", SourceType.FIRST_PARTY),
        "phones": tuple(make_phone(p) for p in phones),
        "emails": (Email("ann@example.com"),),
        "address": Address(state=state, postal_code=zip_code),
        "consents": (
            Consent(Channel.TEXT, ConsentScope.INFORMATIONAL, at(1, 9), "web form checkbox"),
        ),
    }
    base.update(changes)
    return Lead(**base)  # type: ignore[arg-type]


_counter = iter(range(1_000_000))


def _act(kind: ActivityKind, when: datetime, **changes: object) -> Activity:
    base: dict[str, object] = {
        "id": f"A{next(_counter)}",
        "lead_id": "L1",
        "kind": kind,
        "at": when,
    }
    base.update(changes)
    return Activity(**base)  # type: ignore[arg-type]


def _call(when: datetime, phone: str | None = FL_CELL, **changes: object) -> Activity:
    return _act(ActivityKind.CALL, when, direction=Direction.OUTBOUND, phone=phone, **changes)


def _check(
    lead: Lead,
    channel: Channel,
    now: datetime,
    history: tuple[Activity, ...] = (),
    **kwargs: Any,
) -> ContactDecision:
    resolution = resolve_zones(lead, ZIPS)
    return check_contact(RULES, lead, history, channel, now, resolution=resolution, **kwargs)


# --- The rules file -----------------------------------------------------------------------------


def _window_of(code: str) -> tuple[time, time]:
    rule = RULES.states[code]
    return rule.window.start, rule.window.end


def test_shipped_rules_carry_the_published_windows() -> None:
    assert (RULES.federal.window.start, RULES.federal.window.end) == (time(8), time(21))
    assert RULES.federal.channels == frozenset({Channel.CALL, Channel.TEXT})
    for code in ("FL", "OK", "MD", "MA"):
        assert _window_of(code) == (time(8), time(20)), code
    assert _window_of("CT") == (time(9), time(20))
    assert _window_of("KY") == (time(10), time(21))
    for code in ("MI", "MN", "NM"):
        assert _window_of(code) == (time(9), time(21)), code
    for code in ("AL", "LA", "MS", "RI", "UT"):
        assert RULES.states[code].banned_weekdays == frozenset({6}), code
        assert date(2025, 12, 25) in RULES.states[code].holidays, code
    assert RULES.states["TX"].weekday_windows[6].start == time(12)
    assert RULES.states["RI"].weekday_windows[5].end == time(17)
    assert RULES.states["FL"].call_cap_24h == 3
    assert RULES.states["OK"].call_cap_24h == 3
    assert all(rule.note for rule in RULES.states.values())


def test_shipped_holiday_lists_are_current() -> None:
    assert RULES.holidays_through is not None
    last_listed = max(d for rule in RULES.states.values() for d in rule.holidays)
    assert last_listed <= RULES.holidays_through
    # Stale state holiday lists silently stop blocking calls: extend calling_rules.toml.
    assert date.today() <= RULES.holidays_through, (
        "state holiday lists in calling_rules.toml ran out"
    )


BASE = '[federal]\nnote = "x"\nstart = "08:00"\nend = "21:00"\n'


@pytest.mark.parametrize(
    ("text", "line", "field", "words"),
    [
        (BASE + '[states.ZZ]\nnote = "x"\n', 5, "states.ZZ", "unknown US state code"),
        ('[federal]\nnote = "x"\nstart = "8am"\nend = "21:00"\n', 3, "federal.start", "time"),
        ('[federal]\nnote = "x"\nstart = "25:00"\nend = "21:00"\n', 3, "federal.start", "time"),
        ('[federal]\nnote = "x"\nstart = "21:00"\nend = "08:00"\n', 4, "federal.end", "after"),
        ('[federal]\nnote = "x"\nstart = "08:00"\n', 1, "federal", "missing required field 'end'"),
        (BASE + '[states.FL]\nnote = "x"\nstrat = "09:00"\n', 7, "states.FL.strat",
         "unknown field 'strat'"),
        (BASE + 'channels = ["call", "fax"]\n', 5, "federal.channels[1]", "unknown channel"),
        (BASE + 'no_calls_on = ["funday"]\n', 5, "federal.no_calls_on[0]", "weekday"),
        (BASE + "call_cap_24h = 3\n", 5, "federal.call_cap_24h", "unknown field"),
        (BASE + '[states.FL]\nnote = "x"\nholidays = ["2025-12-25"]\n', 7, "states.FL.holidays[0]",
         "must be a date"),
        (BASE + '[states.FL]\nnote = "x"\nholidays = [2025-12-25T10:00:00]\n', 7,
         "states.FL.holidays[0]", "must be a date"),
        (BASE + '[states.FL]\nnote = "x"\ncall_cap_24h = 0\n', 7, "states.FL.call_cap_24h",
         "at least 1"),
        (BASE + '[states.FL]\nnote = "x"\ncall_cap_24h = "3"\n', 7, "states.FL.call_cap_24h",
         "must be int"),
        (BASE + '[states.FL]\nstart = "08:00"\nend = "20:00"\n', 5, "states.FL",
         "missing required field 'note'"),
        (BASE + '[states.FL]\nnote = "  "\n', 6, "states.FL.note", "where it comes from"),
        ('[states.FL]\nnote = "x"\n', None, "", "missing required table [federal]"),
        (BASE + '[states.AL]\nnote = "x"\nno_calls_on = ["sunday"]\nsunday = { start = "12:00", '
         'end = "21:00" }\n', 8, "states.AL.sunday", "also in no_calls_on"),
        (BASE + '[states.TX]\nnote = "x"\nsunday = { start = "12:00" }\n', 7, "states.TX.sunday",
         "missing required field 'end'"),
        (BASE + '[states.TX]\nnote = "x"\nsunday = { start = "12:00", end = "21:00", x = 1 }\n',
         7, "states.TX.sunday.x", "unknown field"),
        ('holidays_through = "2027"\n' + BASE, 1, "holidays_through", "must be a date"),
        ("rules = 1\n" + BASE, 1, "rules", "unknown field"),
        (BASE + "[states]\nFL = 3\n", 6, "states.FL", "must be a table"),
    ],
)  # fmt: skip
def test_broken_rules_files_name_line_and_field(
    text: str, line: int | None, field: str, words: str
) -> None:
    with pytest.raises(ResourceError) as caught:
        parse_calling_rules(text, "resources/calling_rules.toml")
    assert caught.value.source == "resources/calling_rules.toml"
    assert caught.value.line == line
    assert caught.value.field == field
    assert words in caught.value.detail


def test_minimal_rules_file_parses_with_defaults() -> None:
    rules = parse_calling_rules('[federal]\nnote = "none"\n', "r.toml")
    assert rules.states == {}
    assert rules.federal.window.end == time.max
    assert rules.holidays_through is None


# --- Windows ------------------------------------------------------------------------------------


def _resolution(*zones: str, states: tuple[str, ...] = ()) -> ZoneResolution:
    return ZoneResolution(
        primary=zones[0],
        candidates=tuple(ZoneCandidate(z, ZoneSource.FALLBACK, "test") for z in zones),
        states=states,
    )


def _window(resolution: ZoneResolution, day: date, channel: Channel = Channel.CALL) -> tuple:  # type: ignore[type-arg]
    window = legal_window(RULES, resolution, channel, day)
    if window is None:
        return ()
    start, end = window
    assert start.tzinfo == resolution.primary_zone
    return start.strftime("%Y-%m-%d %H:%M"), end.strftime("%Y-%m-%d %H:%M")


MONDAY = date(2025, 6, 2)


def test_federal_window_in_one_zone() -> None:
    assert _window(_resolution("America/New_York"), MONDAY) == (
        "2025-06-02 08:00",
        "2025-06-02 21:00",
    )
    assert _window(_resolution("America/New_York"), MONDAY, Channel.TEXT) == (
        "2025-06-02 08:00",
        "2025-06-02 21:00",
    )


def test_state_window_narrows_the_federal_one() -> None:
    florida = _resolution("America/New_York", states=("FL",))
    assert _window(florida, MONDAY) == ("2025-06-02 08:00", "2025-06-02 20:00")
    kentucky = _resolution("America/New_York", states=("KY",))
    assert _window(kentucky, MONDAY) == ("2025-06-02 10:00", "2025-06-02 21:00")


def test_two_candidate_zones_intersect_most_restrictive_wins() -> None:
    # Florida, zone unknown between Eastern and Central: 8:00 Central is 9:00 Eastern, and 20:00
    # Eastern comes before 20:00 Central.
    florida = _resolution("America/New_York", "America/Chicago", states=("FL",))
    assert _window(florida, MONDAY) == ("2025-06-02 09:00", "2025-06-02 20:00")


def test_sunday_and_holiday_bans() -> None:
    alabama = _resolution("America/Chicago", states=("AL",))
    assert _window(alabama, date(2025, 6, 1)) == ()
    assert _window(alabama, date(2025, 6, 9)) == ("2025-06-09 08:00", "2025-06-09 20:00")
    assert _window(alabama, MONDAY) == ()  # Jefferson Davis' Birthday, first Monday in June
    assert _window(alabama, date(2025, 12, 25)) == ()
    assert _window(alabama, date(2025, 12, 25), Channel.EMAIL) != ()  # email has no rules


def test_weekday_specific_windows() -> None:
    texas = _resolution("America/Chicago", states=("TX",))
    assert _window(texas, date(2025, 6, 1)) == ("2025-06-01 12:00", "2025-06-01 21:00")
    assert _window(texas, MONDAY) == ("2025-06-02 09:00", "2025-06-02 21:00")
    rhode_island = _resolution("America/New_York", states=("RI",))
    assert _window(rhode_island, date(2025, 6, 7)) == ("2025-06-07 10:00", "2025-06-07 17:00")
    assert _window(rhode_island, MONDAY) == ("2025-06-02 09:00", "2025-06-02 18:00")
    assert _window(rhode_island, date(2025, 6, 8)) == ()


def test_email_has_no_window_by_default() -> None:
    assert _window(_resolution("America/New_York"), MONDAY, Channel.EMAIL) == (
        "2025-06-02 00:00",
        "2025-06-03 00:00",
    )


def test_unknown_location_must_fit_every_us_zone() -> None:
    unknown = resolve_zones(_lead("", "", ()), ZIPS)
    # 8:00 in Honolulu is 14:00 in New York in summer (13:00 in winter).
    assert _window(unknown, MONDAY) == ("2025-06-02 14:00", "2025-06-02 21:00")
    assert _window(unknown, date(2025, 1, 15)) == ("2025-01-15 13:00", "2025-01-15 21:00")


def test_window_across_the_primary_zones_midnight() -> None:
    both = _resolution("Pacific/Honolulu", "America/New_York")
    # 21:00 in New York is 15:00 in Honolulu.
    assert _window(both, MONDAY) == ("2025-06-02 08:00", "2025-06-02 15:00")


def test_zones_twelve_hours_apart_keep_the_longest_piece_earliest_on_a_tie() -> None:
    far = _resolution("America/New_York", "Asia/Shanghai")
    # Shanghai 8:00-21:00 is New York 20:00-9:00: [8, 9) and [20, 21) are both legal.
    assert _window(far, MONDAY) == ("2025-06-02 08:00", "2025-06-02 09:00")


def test_daylight_saving_day_keeps_wall_clock_hours() -> None:
    start, end = legal_window(
        RULES, _resolution("America/New_York"), Channel.CALL, date(2025, 3, 9)
    )  # type: ignore[misc]
    assert (start.hour, end.hour) == (8, 21)
    assert end - start == timedelta(hours=13)


def test_legal_window_fn_is_the_cadence_engines_callable() -> None:
    resolution = _resolution("America/New_York", "America/Chicago", states=("FL",))
    window = legal_window_fn(RULES, resolution)
    for day in (date(2025, 6, d) for d in range(1, 15)):
        for channel in Channel:
            assert window(channel, day) == legal_window(RULES, resolution, channel, day)
    with pytest.raises(ComplianceError, match="fax"):
        window("fax", MONDAY)  # type: ignore[arg-type]


def test_legal_window_rejects_bad_arguments() -> None:
    resolution = _resolution("America/New_York")
    with pytest.raises(ComplianceError, match="must be a date"):
        legal_window(RULES, resolution, Channel.CALL, datetime(2025, 6, 2, tzinfo=UTC))
    with pytest.raises(ComplianceError, match="calling rules"):
        legal_window({}, resolution, Channel.CALL, MONDAY)  # type: ignore[arg-type]
    with pytest.raises(ComplianceError, match="ZoneResolution"):
        legal_window(RULES, "NY", Channel.CALL, MONDAY)  # type: ignore[arg-type]
    assert legal_window(RULES, resolution, "call", MONDAY) is not None  # type: ignore[arg-type]


def test_next_window_start() -> None:
    florida = _resolution("America/New_York", states=("FL",))
    assert next_window_start(RULES, florida, Channel.CALL, at(2, 20, 30)) == at(3, 8)
    assert next_window_start(RULES, florida, Channel.CALL, at(2, 10)) == at(2, 10)
    alabama = _resolution("America/Chicago", states=("AL",))
    saturday_night = at(7, 21, zone=CHI)
    assert next_window_start(RULES, alabama, Channel.CALL, saturday_night) == at(9, 8, zone=CHI)
    assert within_window(RULES, florida, Channel.CALL, at(2, 19, 59))
    assert not within_window(RULES, florida, Channel.CALL, at(2, 20))


def test_rules_that_never_allow_contact_give_no_next_time() -> None:
    never = CallingRules(
        federal=JurisdictionRule("federal", "closed", banned_weekdays=frozenset(range(7)))
    )
    resolution = _resolution("America/New_York")
    assert next_window_start(never, resolution, Channel.CALL, at(2, 10)) is None
    lead = _lead()
    decision = check_contact(never, lead, (), Channel.CALL, at(2, 10), resolution=resolution)
    assert not decision.allowed
    assert decision.next_allowed_at is None
    assert decision.reasons[0].code is BlockCode.DAY_BAN
    assert decision.reasons[0].message == (
        "no calls on Mondays in federal rules (America/New_York); "
        "no calls allowed in the coming year under the current rules"
    )


# --- check_contact: time ------------------------------------------------------------------------


def test_call_inside_the_window_is_allowed() -> None:
    decision = _check(_lead(), Channel.CALL, at(2, 10))
    assert decision.allowed
    assert decision.reasons == ()
    assert decision.next_allowed_at is None
    assert decision.address == FL_CELL
    assert decision.message == "allowed"


def test_quiet_hours_say_why_and_when_next() -> None:
    new_yorker = _lead("NY", "10001", ("212-555-0100",))
    late = _check(new_yorker, Channel.CALL, at(2, 21, 30))
    assert not late.allowed
    assert late.codes == {BlockCode.QUIET_HOURS}
    assert late.reasons[0].message == (
        "quiet hours: it is 21:30 in America/New_York; calls allowed from 8:00 tomorrow"
    )
    assert late.next_allowed_at == at(3, 8)
    early = _check(new_yorker, Channel.TEXT, at(2, 7, 15))
    assert early.reasons[0].message == (
        "quiet hours: it is 7:15 in America/New_York; texts allowed from 8:00"
    )
    assert early.next_allowed_at == at(2, 8)


def test_florida_closes_at_eight() -> None:
    decision = _check(_lead(), Channel.CALL, at(2, 20, 5))
    assert decision.codes == {BlockCode.QUIET_HOURS}
    assert decision.next_allowed_at == at(3, 8)


def test_quiet_hours_message_names_every_candidate_zone() -> None:
    decision = _check(_lead("FL", ""), Channel.CALL, at(2, 8, 30))
    assert decision.reasons[0].message == (
        "quiet hours: it is 8:30 in America/New_York (strictest of America/New_York, "
        "America/Chicago); calls allowed from 9:00"
    )


def test_sunday_ban() -> None:
    alabama = _lead("AL", "35203", ("205-555-0100",))
    decision = _check(alabama, Channel.CALL, at(1, 12, zone=CHI))
    assert decision.codes == {BlockCode.SUNDAY_BAN}
    # Monday June 2 is an Alabama holiday too, so the next call waits for Tuesday.
    assert decision.reasons[0].message == (
        "no calls on Sundays in AL (America/Chicago); calls allowed from 8:00 on Tue 2025-06-03"
    )
    assert decision.next_allowed_at == at(3, 8, zone=CHI)


def test_holiday_ban() -> None:
    alabama = _lead("AL", "35203", ("205-555-0100",))
    decision = _check(alabama, Channel.TEXT, at(25, 12, zone=CHI, month=12))
    assert decision.codes == {BlockCode.HOLIDAY_BAN}
    assert decision.reasons[0].message == (
        "2025-12-25 is a state holiday in AL: no texts (America/Chicago); "
        "texts allowed from 8:00 tomorrow"
    )
    assert decision.next_allowed_at == at(26, 8, zone=CHI, month=12)


def test_email_goes_any_time() -> None:
    assert _check(_lead(), Channel.EMAIL, at(2, 23, 30)).allowed
    assert _check(_lead("AL", "35203"), Channel.EMAIL, at(1, 3, zone=CHI)).allowed


# --- check_contact: call caps -------------------------------------------------------------------


def test_florida_call_cap_counts_a_rolling_24_hours_per_number() -> None:
    calls = (_call(at(2, 9)), _call(at(2, 10)), _call(at(2, 11)))
    decision = _check(_lead(), Channel.CALL, at(2, 12), calls)
    assert decision.codes == {BlockCode.CALL_CAP}
    assert decision.reasons[0].message == (
        "call cap: 3 calls to (305) 555-0123 in the last 24 hours (FL allows 3); "
        "the next call is allowed from 9:00 tomorrow America/New_York"
    )
    assert decision.next_allowed_at == at(3, 9)
    assert _check(_lead(), Channel.CALL, at(3, 9), calls).allowed
    assert not _check(_lead(), Channel.CALL, at(3, 8, 59), calls).allowed
    # Texts are not capped.
    assert _check(_lead(), Channel.TEXT, at(2, 12), calls).allowed


def test_call_cap_ignores_other_numbers_and_calls_older_than_24_hours() -> None:
    lead = _lead(phones=("305-555-0123", "305-555-0199"))
    calls = (
        _call(at(1, 12)),  # exactly 24 hours before: outside (now-24h, now]
        _call(at(2, 9)),
        _call(at(2, 10)),
        _call(at(2, 11), phone="+13055550199"),
        _act(ActivityKind.CALL, at(2, 11), direction=Direction.INBOUND, phone=FL_CELL),
    )
    assert _check(lead, Channel.CALL, at(2, 12), calls).allowed
    # A call logged without its number counts against the lead's number, to be safe.
    unnumbered = (*calls, _call(at(2, 11, 30), phone=None))
    assert _check(lead, Channel.CALL, at(2, 12), unnumbered).codes == {BlockCode.CALL_CAP}


def test_call_cap_that_lifts_after_hours_waits_for_the_next_window() -> None:
    late_calls = (_call(at(2, 19, 55)), _call(at(2, 19, 57)), _call(at(2, 19, 59)))
    decision = _check(_lead(), Channel.CALL, at(3, 9), late_calls)
    assert decision.codes == {BlockCode.CALL_CAP}
    assert decision.next_allowed_at == at(3, 19, 55)
    after_hours = (_call(at(2, 20, 30)), _call(at(2, 20, 40)), _call(at(2, 20, 50)))
    decision = _check(_lead(), Channel.CALL, at(3, 9), after_hours)
    assert decision.next_allowed_at == at(4, 8)


def test_states_without_a_cap_allow_more_calls() -> None:
    new_yorker = _lead("NY", "10001", ("212-555-0100",))
    calls = tuple(_call(at(2, 9 + i), phone="+12125550100") for i in range(5))
    assert _check(new_yorker, Channel.CALL, at(2, 15), calls).allowed


# --- check_contact: opt-out, do-not-call, consent -----------------------------------------------


def test_opt_out_stops_every_channel_until_something_changes() -> None:
    lead = _lead(opted_out_at=at(1, 10))
    for channel in Channel:
        decision = _check(lead, channel, at(2, 10))
        assert not decision.allowed
        assert BlockCode.OPTED_OUT in decision.codes
        assert decision.next_allowed_at is None
    assert _check(lead, Channel.EMAIL, at(2, 10)).reasons[0].message == (
        "opted out on 2025-06-01 at 10:00 America/New_York: "
        "no calls, texts or emails until they opt back in"
    )


def test_a_standing_opt_out_dated_after_now_still_blocks() -> None:
    """The server stamps the opt-out with its clock; this PC's may run a little behind."""
    lead = _lead(opted_out_at=at(2, 10, 1))
    for channel in Channel:
        decision = _check(lead, channel, at(2, 10))
        assert BlockCode.OPTED_OUT in decision.codes, channel
    # also at a moment inside the spring-forward gap, given with either fold
    gap = datetime(2025, 3, 9, 2, 30, tzinfo=NY)
    lead = _lead(opted_out_at=gap)
    later_fold = gap.replace(fold=1)  # 06:30 UTC, an hour before the fold=0 reading
    assert BlockCode.OPTED_OUT in _check(lead, Channel.EMAIL, later_fold).codes


def test_opt_out_and_opt_in_activities_latest_wins() -> None:
    lead = _lead()
    stop = _act(ActivityKind.OPT_OUT, at(1, 10), direction=Direction.INBOUND, phone=FL_CELL)
    start = _act(ActivityKind.OPT_IN, at(1, 11), direction=Direction.INBOUND, phone=FL_CELL)
    assert not _check(lead, Channel.CALL, at(2, 10), (stop,)).allowed
    assert _check(lead, Channel.CALL, at(2, 10), (stop, start)).allowed
    restop = _act(ActivityKind.OPT_OUT, at(1, 12), direction=Direction.INBOUND)
    assert not _check(lead, Channel.EMAIL, at(2, 10), (stop, start, restop)).allowed
    # Opted back in after lead.opted_out_at.
    assert _check(_lead(opted_out_at=at(1, 10)), Channel.CALL, at(2, 10), (start,)).allowed
    # A record dated after `now` has not happened yet.
    later = _act(ActivityKind.OPT_OUT, at(2, 11), direction=Direction.INBOUND)
    assert _check(lead, Channel.CALL, at(2, 10), (later,)).allowed
    assert opted_out_since(lead, (stop, start, restop), at(2, 10)) == at(1, 12)


def test_opt_out_from_a_duplicate_lead_with_the_same_number_counts() -> None:
    stop = _act(ActivityKind.OPT_OUT, at(1, 10), lead_id="L-dup", phone=FL_CELL)
    other = _act(ActivityKind.OPT_OUT, at(1, 10), lead_id="L-other", phone="+12125550100")
    assert not _check(_lead(), Channel.CALL, at(2, 10), (stop,)).allowed
    assert _check(_lead(), Channel.CALL, at(2, 10), (other,)).allowed


def test_do_not_contact_disposition_and_status_stop_everything() -> None:
    dnc = _act(
        ActivityKind.DISPOSITION,
        at(1, 10),
        disposition="dnc",
        flags=DispositionFlag.ATTEMPT | DispositionFlag.DO_NOT_CONTACT,
    )
    assert _check(_lead(), Channel.EMAIL, at(2, 10), (dnc,)).codes == {BlockCode.OPTED_OUT}
    marked = _lead(status=LeadStatus.DO_NOT_CONTACT)
    assert _check(marked, Channel.EMAIL, at(2, 10)).codes == {BlockCode.OPTED_OUT}


def test_do_not_call_stops_calls_and_texts_but_not_email() -> None:
    lead = _lead(do_not_call=True)
    for channel in (Channel.CALL, Channel.TEXT):
        decision = _check(lead, channel, at(2, 10))
        assert decision.codes == {BlockCode.DO_NOT_CALL}
        assert decision.next_allowed_at is None
    assert _check(lead, Channel.CALL, at(2, 10)).reasons[0].message == (
        "the lead is on the do-not-call list: no calls"
    )
    assert _check(lead, Channel.EMAIL, at(2, 10)).allowed


def test_scrub_list_blocks_the_listed_number_only() -> None:
    lead = _lead(phones=("305-555-0123", "305-555-0199"))
    scrub = frozenset({FL_CELL})
    decision = _check(lead, Channel.CALL, at(2, 10), dnc_numbers=scrub)
    assert decision.reasons[0].message == ("(305) 555-0123 is on the do-not-call list: no calls")
    assert _check(lead, Channel.CALL, at(2, 10), dnc_numbers=scrub, phone="305-555-0199").allowed


def test_texting_needs_consent_of_the_right_scope() -> None:
    no_consent = _lead(consents=())
    decision = _check(no_consent, Channel.TEXT, at(2, 10))
    assert decision.codes == {BlockCode.NO_CONSENT}
    assert decision.next_allowed_at is None
    informational = _lead()
    assert _check(informational, Channel.TEXT, at(2, 10)).allowed
    marketing = _check(informational, Channel.TEXT, at(2, 10), purpose=ContactPurpose.MARKETING)
    assert marketing.reasons[0].message == (
        "marketing texts need written marketing consent (active text consent: informational)"
    )
    written = _lead(
        consents=(Consent(Channel.TEXT, ConsentScope.MARKETING, at(1, 9), "signed form"),)
    )
    assert _check(written, Channel.TEXT, at(2, 10), purpose=ContactPurpose.MARKETING).allowed
    revoked = _lead(
        consents=(
            Consent(Channel.TEXT, ConsentScope.MARKETING, at(1, 9), "form", revoked_at=at(1, 20)),
        )
    )
    assert _check(revoked, Channel.TEXT, at(2, 10)).codes == {BlockCode.NO_CONSENT}
    call_only = _lead(consents=(Consent(Channel.CALL, ConsentScope.MARKETING, at(1, 9), "form"),))
    assert _check(call_only, Channel.TEXT, at(2, 10)).codes == {BlockCode.NO_CONSENT}
    # Calls need no consent record (live agent calls about the customer's own inquiry).
    assert _check(no_consent, Channel.CALL, at(2, 10)).allowed


def test_conversational_reply_to_a_customer_who_texted() -> None:
    lead = _lead(consents=())
    inbound = _act(ActivityKind.TEXT, at(2, 22), direction=Direction.INBOUND, phone=FL_CELL)
    conversational = ContactPurpose.CONVERSATIONAL
    # Within the hour after their message: a reply, not a solicitation, even after hours.
    assert _check(lead, Channel.TEXT, at(2, 22, 30), (inbound,), purpose=conversational).allowed
    later = _check(lead, Channel.TEXT, at(2, 23, 30), (inbound,), purpose=conversational)
    assert later.codes == {BlockCode.QUIET_HOURS}
    assert later.next_allowed_at == at(3, 8)
    # Without their message, a conversational text still needs consent.
    assert _check(lead, Channel.TEXT, at(2, 10), purpose=conversational).codes == {
        BlockCode.NO_CONSENT
    }
    # Calls get no such exemption.
    call = _check(lead, Channel.CALL, at(2, 22, 30), (inbound,), purpose=conversational)
    assert call.codes == {BlockCode.QUIET_HOURS}


# --- check_contact: numbers and addresses -------------------------------------------------------


def test_bad_and_missing_numbers() -> None:
    invalid = _lead(phones=("555-01",))
    decision = _check(invalid, Channel.CALL, at(2, 10))
    assert decision.reasons == (BlockReason(BlockCode.BAD_NUMBER, "no valid phone number on file"),)
    assert _check(_lead(phones=()), Channel.CALL, at(2, 10)).reasons[0].message == (
        "no phone number on file"
    )
    given = _check(_lead(), Channel.CALL, at(2, 10), phone="555")
    assert given.reasons[0].message == "'555' is not a valid number"
    assert given.next_allowed_at is None


def test_landlines_cannot_be_texted() -> None:
    landline = make_phone("305-555-0123", PhoneKind.VOICE)
    lead = replace(_lead(), phones=(landline,))
    decision = _check(lead, Channel.TEXT, at(2, 10))
    assert decision.reasons[0].message == "(305) 555-0123 cannot receive texts (not a cell)"
    given = _check(_lead(), Channel.TEXT, at(2, 10), phone=landline)
    assert given.codes == {BlockCode.NOT_TEXTABLE}
    assert given.reasons[0].message == "(305) 555-0123 cannot receive texts (voice)"
    assert _check(lead, Channel.CALL, at(2, 10)).allowed


def test_number_dispositioned_bad_stays_blocked_until_a_conversation_on_it() -> None:
    bad = _act(
        ActivityKind.DISPOSITION,
        at(1, 10),
        disposition="bad_number",
        flags=DispositionFlag.ATTEMPT | DispositionFlag.BAD_NUMBER,
        phone=FL_CELL,
    )
    decision = _check(_lead(), Channel.CALL, at(2, 10), (bad,))
    assert decision.reasons[0].message == "(305) 555-0123 was marked a bad number on 2025-06-01"
    assert decision.next_allowed_at is None
    texted_back = _act(ActivityKind.TEXT, at(1, 15), direction=Direction.INBOUND, phone=FL_CELL)
    assert _check(_lead(), Channel.CALL, at(2, 10), (bad, texted_back)).allowed


def test_email_needs_a_valid_address() -> None:
    assert _check(_lead(emails=()), Channel.EMAIL, at(2, 10)).reasons[0].message == (
        "no email address on file"
    )
    broken = _check(_lead(emails=(Email("bob@"),)), Channel.EMAIL, at(2, 10))
    assert broken.reasons[0].message == "email address 'bob@' is not valid"
    ok = _check(_lead(), Channel.EMAIL, at(2, 10))
    assert ok.allowed
    assert ok.address == "ann@example.com"


def test_several_reasons_are_all_reported_and_permanent_ones_win() -> None:
    decision = _check(_lead(opted_out_at=at(1, 10), do_not_call=True), Channel.CALL, at(2, 22))
    assert decision.codes == {BlockCode.OPTED_OUT, BlockCode.DO_NOT_CALL, BlockCode.QUIET_HOURS}
    assert decision.next_allowed_at is None


# --- Opt-out confirmation -----------------------------------------------------------------------


def test_one_opt_out_confirmation_text_goes_out_promptly() -> None:
    stop = _act(ActivityKind.OPT_OUT, at(2, 21, 45), direction=Direction.INBOUND, phone=FL_CELL)
    confirm = ContactPurpose.OPT_OUT_CONFIRMATION
    decision = _check(_lead(consents=()), Channel.TEXT, at(2, 21, 47), (stop,), purpose=confirm)
    assert decision.allowed  # after hours and without consent: it answers their request
    assert decision.address == FL_CELL
    late = _check(_lead(), Channel.TEXT, at(2, 21, 51), (stop,), purpose=confirm)
    assert late.codes == {BlockCode.CONFIRMATION_NOT_DUE}
    sent = _act(ActivityKind.TEXT, at(2, 21, 46), direction=Direction.OUTBOUND, phone=FL_CELL)
    twice = _check(_lead(), Channel.TEXT, at(2, 21, 47), (stop, sent), purpose=confirm)
    assert twice.reasons[0].message == (
        "the opt-out was already confirmed: only one confirmation is allowed"
    )
    by_call = _check(_lead(), Channel.CALL, at(2, 21, 47), (stop,), purpose=confirm)
    assert BlockCode.CONFIRMATION_NOT_DUE in by_call.codes
    nothing = _check(_lead(), Channel.TEXT, at(2, 12), purpose=confirm)
    assert nothing.reasons[0].message == "there is no opt-out to confirm"


# --- Bad input ----------------------------------------------------------------------------------


def test_bad_arguments_raise_typed_errors() -> None:
    lead = _lead()
    with pytest.raises(NaiveDatetimeError, match="now"):
        _check(lead, Channel.CALL, datetime(2025, 6, 2, 10))
    with pytest.raises(ComplianceError, match="'fax'"):
        _check(lead, "fax", at(2, 10))  # type: ignore[arg-type]
    with pytest.raises(ComplianceError, match="dict"):
        _check(lead, Channel.CALL, at(2, 10), ({},))  # type: ignore[arg-type]
    with pytest.raises(ComplianceError, match="history"):
        _check(lead, Channel.CALL, at(2, 10), "calls")  # type: ignore[arg-type]
    with pytest.raises(ComplianceError, match="purpose"):
        _check(lead, Channel.CALL, at(2, 10), purpose="spam")
    with pytest.raises(ComplianceError, match="dnc_numbers"):
        _check(lead, Channel.CALL, at(2, 10), dnc_numbers=[FL_CELL])
    with pytest.raises(ComplianceError, match="Phone"):
        _check(lead, Channel.CALL, at(2, 10), phone=3055550123)
    with pytest.raises(ComplianceError, match="Lead"):
        check_contact(RULES, "L1", (), Channel.CALL, at(2, 10), resolution=_resolution("UTC"))  # type: ignore[arg-type]
    assert _check(lead, "call", at(2, 10), purpose="informational").allowed  # type: ignore[arg-type]


# --- Properties ---------------------------------------------------------------------------------

PHONES = ["305-555-0123", "212-555-0100", "915-555-0100", "808-555-0100", "907-555-0100",
          "205-555-0100", "401-555-0100", "800-555-0100", "555-01"]  # fmt: skip
STATES = ["", "FL", "AL", "TX", "RI", "CA", "NY", "LA", "KY", "CT", "AZ", "xx"]
ZIP_CODES = ["", "33101", "32501", "35203", "79901", "02903", "10001", "85001", "96813", "abc"]
NOW_ZONES = [UTC, NY, ZoneInfo("Pacific/Honolulu"), ZoneInfo("Asia/Tokyo")]
EPOCH = datetime(2025, 1, 1, tzinfo=UTC)


@st.composite
def scenarios(
    draw: st.DrawFn, *, opted_out: bool = False, capped: bool = False
) -> tuple[Lead, list[Activity], datetime]:
    now = draw(
        st.datetimes(
            min_value=datetime(2025, 1, 2),
            max_value=datetime(2027, 12, 30),
            timezones=st.sampled_from(NOW_ZONES),
        )
    )
    numbers = draw(st.lists(st.sampled_from(PHONES), min_size=1, max_size=3, unique=True))
    kinds = draw(st.lists(st.sampled_from(list(PhoneKind)), min_size=3, max_size=3))
    if capped:  # a Florida customer already called several times: the 3-per-24-hours cap bites
        numbers, kinds = ["305-555-0123", *numbers], [PhoneKind.CELL, *kinds]
    phones = tuple(make_phone(n, k) for n, k in zip(numbers, kinds, strict=False))
    consents = tuple(
        Consent(
            draw(st.sampled_from(list(Channel))),
            draw(st.sampled_from(list(ConsentScope))),
            now - timedelta(hours=draw(st.integers(-48, 24 * 60))),
            "generated",
        )
        for _ in range(draw(st.integers(0, 2)))
    )
    lead = Lead(
        id="L1",
        store_id="S1",
        received_at=EPOCH,
        person=Person("Gen"),
        source=LeadSource("web", SourceType.FIRST_PARTY),
        phones=phones,
        emails=(Email(draw(st.sampled_from(["a@example.com", "bad@", "b@x.org"]))),),
        address=Address(
            state=draw(st.sampled_from(STATES)), postal_code=draw(st.sampled_from(ZIP_CODES))
        ),
        consents=consents,
        do_not_call=draw(st.booleans()) and draw(st.booleans()),
        # in UTC: wall-clock arithmetic on a time inside a DST gap can land after `now`
        opted_out_at=(now.astimezone(UTC) - timedelta(minutes=draw(st.integers(0, 10_000))))
        if opted_out
        else None,
    )
    e164s = [p.e164 for p in phones if p.e164] + [None, "+15125550100"]
    history: list[Activity] = []
    for index in range(draw(st.integers(0, 10))):
        kind = draw(
            st.sampled_from(
                [ActivityKind.CALL] * 6
                + [ActivityKind.TEXT, ActivityKind.DISPOSITION]
                + ([] if opted_out else [ActivityKind.OPT_OUT, ActivityKind.OPT_IN])
            )
        )
        flags = draw(st.sampled_from(list(DispositionFlag)))
        history.append(
            Activity(
                id=f"H{index}",
                lead_id=draw(st.sampled_from(["L1", "L2"])),
                kind=kind,
                at=now - timedelta(minutes=draw(st.integers(0, 36 * 60))),
                direction=draw(st.sampled_from(list(Direction))),
                phone=draw(st.sampled_from(e164s)),
                answered=draw(st.booleans()),
                disposition="x" if kind is ActivityKind.DISPOSITION else None,
                flags=flags if kind is ActivityKind.DISPOSITION else DispositionFlag.NONE,
            )
        )
    if capped:
        lead = replace(lead, address=Address(state="FL", postal_code="33101"), do_not_call=False)
        for index in range(draw(st.integers(3, 6))):
            minutes = draw(st.integers(0, 30 * 60))
            history.append(_call(now - timedelta(minutes=minutes), id=f"C{index}"))
    return lead, history, now


ORDINARY_PURPOSES = [
    ContactPurpose.CONVERSATIONAL,
    ContactPurpose.INFORMATIONAL,
    ContactPurpose.MARKETING,
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(), st.sampled_from(list(Channel)), st.sampled_from(list(ContactPurpose)))
def test_property_never_crashes_and_allowed_calls_are_inside_8_to_21_everywhere(
    scenario: tuple[Lead, list[Activity], datetime], channel: Channel, purpose: ContactPurpose
) -> None:
    lead, history, now = scenario
    resolution = resolve_zones(lead, ZIPS)
    decision = check_contact(
        RULES, lead, history, channel, now, resolution=resolution, purpose=purpose
    )
    assert decision.allowed == (decision.reasons == ())
    if decision.allowed and channel is Channel.CALL:
        for zone in resolution.zones:
            local = now.astimezone(ZoneInfo(zone)).time()
            assert time(8) <= local < time(21), (zone, local)
    if decision.next_allowed_at is not None:
        assert decision.next_allowed_at >= now
        assert all(r.code in TIME_CODES for r in decision.reasons)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    scenarios(), st.sampled_from([Channel.CALL, Channel.TEXT]), st.sampled_from(ORDINARY_PURPOSES)
)
def test_property_next_allowed_at_itself_passes_the_time_rules(
    scenario: tuple[Lead, list[Activity], datetime], channel: Channel, purpose: ContactPurpose
) -> None:
    lead, history, now = scenario
    resolution = resolve_zones(lead, ZIPS)
    decision = check_contact(
        RULES, lead, history, channel, now, resolution=resolution, purpose=purpose
    )
    if decision.next_allowed_at is None:
        return
    later = check_contact(
        RULES,
        lead,
        history,
        channel,
        decision.next_allowed_at,
        resolution=resolution,
        purpose=purpose,
    )
    assert not (later.codes & TIME_CODES), later.reasons
    assert within_window(RULES, resolution, channel, decision.next_allowed_at)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(capped=True), st.sampled_from(ORDINARY_PURPOSES))
def test_property_call_cap_lifts_when_the_oldest_counted_call_leaves_the_24_hours(
    scenario: tuple[Lead, list[Activity], datetime], purpose: ContactPurpose
) -> None:
    lead, history, now = scenario
    now = now.astimezone(UTC)  # real hours: zoned arithmetic is wall-clock across DST
    resolution = resolve_zones(lead, ZIPS)
    decision = check_contact(
        RULES, lead, history, Channel.CALL, now, resolution=resolution, purpose=purpose
    )
    counted = sorted(
        a.at.astimezone(UTC)
        for a in history
        if a.kind is ActivityKind.CALL
        and a.direction is Direction.OUTBOUND
        and (a.phone == FL_CELL or (a.phone is None and a.lead_id == "L1"))
        and now - timedelta(hours=24) < a.at <= now
    )
    assert (BlockCode.CALL_CAP in decision.codes) == (len(counted) >= 3)
    if BlockCode.CALL_CAP in decision.codes and decision.next_allowed_at is not None:
        assert decision.next_allowed_at >= counted[-3] + timedelta(hours=24)
        # Judged with no call made meanwhile: the generated history also holds calls after
        # `now` (which would rightly count at the later time).
        known_then = [a for a in history if a.at <= now]
        later = check_contact(
            RULES, lead, known_then, Channel.CALL, decision.next_allowed_at, resolution=resolution
        )
        assert not (later.codes & TIME_CODES), later.reasons


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    scenarios(opted_out=True), st.sampled_from(list(Channel)), st.sampled_from(ORDINARY_PURPOSES)
)
def test_property_opted_out_lead_is_never_contacted(
    scenario: tuple[Lead, list[Activity], datetime], channel: Channel, purpose: ContactPurpose
) -> None:
    lead, history, now = scenario
    resolution = resolve_zones(lead, ZIPS)
    decision = check_contact(
        RULES, lead, history, channel, now, resolution=resolution, purpose=purpose
    )
    assert not decision.allowed
    assert BlockCode.OPTED_OUT in decision.codes
    assert decision.next_allowed_at is None
