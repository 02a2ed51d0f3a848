"""Lead scoring: weights from resources/scoring.toml, reasons, tiers, grades, re-scoring."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.activities import Activity, ActivityKind, Direction
from app.domain.dealership import Dealership
from app.domain.errors import DomainError, InvalidActivityError, InvalidLeadError, ResourceError
from app.domain.leads import (
    Address,
    Email,
    Lead,
    LeadSource,
    Person,
    SourceType,
    Timeframe,
    Vehicle,
    VehicleInterest,
)
from app.domain.phones import Phone, make_phone
from app.domain.scoring import (
    Dimension,
    Grade,
    LeadScore,
    ScoreReason,
    ScoringRules,
    Tier,
    crossed_into_higher_tier,
    parse_scoring_rules,
    score_change_activity,
    score_changed,
    score_lead,
)
from app.rulebook import read_resource

T0 = datetime(2024, 5, 6, 15, 0, tzinfo=UTC)
SHIPPED_TEXT, SHIPPED_SOURCE = read_resource("scoring.toml")
RULES = parse_scoring_rules(SHIPPED_TEXT, SHIPPED_SOURCE)
STORE = Dealership(
    id="store-1",
    name="Lakeside Toyota",
    time_zone="America/Chicago",
    state="IL",
    postal_code="60614",
    market_zips=("606", "60201"),
)
CELL = make_phone("(312) 555-0142")
BAD_PHONE = make_phone("555-0000")
SOURCE_WEB = LeadSource("Dealer website", SourceType.FIRST_PARTY)
CAMRY = Vehicle(year=2024, make="Toyota", model="Camry", trim="SE")
CIVIC_TRADE = Vehicle(year=2018, make="Honda", model="Civic", interest=VehicleInterest.TRADE_IN)


def make_lead(**changes: object) -> Lead:
    base = Lead(
        id="lead-1",
        store_id="store-1",
        received_at=T0,
        person=Person(first_name="Dana", last_name="Reyes"),
        source=LeadSource("Autotrader", SourceType.THIRD_PARTY),
        phones=(CELL,),
        emails=(Email("dana@example.com"),),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def activity(kind: ActivityKind, minutes: int, direction: Direction | None = None) -> Activity:
    return Activity(
        id=f"a-{kind.value}-{minutes}",
        lead_id="lead-1",
        kind=kind,
        at=T0 + timedelta(minutes=minutes),
        direction=direction,
    )


def visits(count: int) -> list[Activity]:
    return [activity(ActivityKind.WEB_VISIT, m) for m in range(count)]


def reason_lines(result: LeadScore) -> list[str]:
    return [str(r) for r in result.reasons]


# --- worked examples, computed by hand from resources/scoring.toml ---------------------------


def test_guide_example_local_zip_timeframe_specific_vehicle_and_a_repeat_visit() -> None:
    lead = make_lead(
        address=Address(postal_code="60657"),
        source=LeadSource("Cars.com", SourceType.THIRD_PARTY),
        timeframe=Timeframe("within 3 weeks", 21),
        vehicles=(Vehicle(make="Toyota", model="RAV4"),),
    )
    result = score_lead(RULES, lead, STORE, visits(2))
    assert reason_lines(result) == [
        "+20 local ZIP 60657",
        "+5 2 website visits (+5 each after the first)",
        "+5 source Cars.com (third-party)",
        '+15 timeframe within 30 days ("within 3 weeks")',
        "+10 specific vehicle: Toyota RAV4",
    ]
    assert (result.score, result.unclamped, result.clamped) == (55, 55, False)
    assert result.tier is Tier.HIGH
    assert result.grade is Grade.A
    assert result.points_for(Dimension.DEMOGRAPHIC) == 20
    assert result.points_for(Dimension.INTENT) == 25


def test_everything_at_once_is_capped_per_dimension_and_clamped_to_100() -> None:
    lead = make_lead(
        address=Address("12 Clark St", "Chicago", "IL", "60614-1234"),
        source=SOURCE_WEB,
        timeframe=Timeframe("this weekend", 3),
        vehicles=(CAMRY,),
        trade_in=CIVIC_TRADE,
        comments="Employed 6 years. I'm pre-approved and would like a test drive Saturday.",
    )
    history = [
        *visits(3),
        activity(ActivityKind.EMAIL_OPEN, 10),
        activity(ActivityKind.TEXT, 20, Direction.INBOUND),
        activity(ActivityKind.TEXT, 21, Direction.OUTBOUND),  # our own text: not engagement
    ]
    result = score_lead(RULES, lead, STORE, history)
    assert reason_lines(result) == [
        "+20 local ZIP 60614",
        "+5 complete street address",
        '+5 financial details mentioned ("employed")',
        "+10 3 website visits (+5 each after the first)",
        "+2 1 email open",
        "+10 1 inbound reply (text)",
        "+20 source: first-party website (Dealer website)",
        '+20 timeframe within 7 days ("this weekend")',
        "+10 specific vehicle: 2024 Toyota Camry SE",
        "+5 trade-in: 2018 Honda Civic",
        '+5 test drive interest ("test drive")',
        '+5 financing mentioned ("pre-approved")',
        "-5 intent capped at 40",
    ]
    # 30 + 22 + 20 + 40 = 112: the reasons sum to it, the score is clamped.
    assert sum(r.points for r in result.reasons) == result.unclamped == 112
    assert (result.score, result.clamped) == (100, True)
    assert result.reasons[-1] == ScoreReason(-5, "intent capped at 40", Dimension.INTENT)
    assert (result.tier, result.grade) == (Tier.HOT, Grade.A)


def test_bare_third_party_lead_is_low_and_questionable() -> None:
    result = score_lead(RULES, make_lead(), STORE)
    assert reason_lines(result) == ["+5 source Autotrader (third-party)"]
    assert (result.score, result.tier) == (5, Tier.LOW)
    assert result.grade is Grade.C
    assert "questionable intent" in result.grade_reason


def test_source_names_match_case_insensitively_and_fall_back_to_the_type() -> None:
    by_name = score_lead(
        RULES, make_lead(source=LeadSource(" truecar ", SourceType.THIRD_PARTY)), STORE
    )
    assert by_name.score == 3
    unknown = score_lead(
        RULES, make_lead(source=LeadSource("Edmunds", SourceType.THIRD_PARTY)), STORE
    )
    assert reason_lines(unknown) == ["+4 source: third-party (Edmunds)"]
    for source_type, points in [
        (SourceType.FIRST_PARTY, 20),
        (SourceType.EQUITY_MINING, 18),
        (SourceType.SERVICE_TO_SALES, 18),
        (SourceType.PHONE, 16),
        (SourceType.CHAT, 12),
        (SourceType.WALK_IN, 20),
    ]:
        lead = make_lead(source=LeadSource("", source_type))
        assert score_lead(RULES, lead, STORE).score == points, source_type


def test_behaviour_cap_and_inbound_replies_on_every_channel() -> None:
    history = [
        *visits(10),  # 9 x 5 = 45
        activity(ActivityKind.CALL, 30, Direction.INBOUND),
        activity(ActivityKind.EMAIL, 31, Direction.INBOUND),
    ]
    result = score_lead(RULES, make_lead(), STORE, history)
    assert reason_lines(result) == [
        "+45 10 website visits (+5 each after the first)",
        "+20 2 inbound replies (call, email)",
        "-35 behaviour capped at 30",
        "+5 source Autotrader (third-party)",
    ]
    assert result.score == 35
    assert result.tier is Tier.MEDIUM


def test_one_website_visit_scores_nothing() -> None:
    assert score_lead(RULES, make_lead(), STORE, visits(1)).score == 5


def test_out_of_market_zip_and_whole_word_keywords() -> None:
    lead = make_lead(
        address=Address(postal_code="90210"),
        comments="Back in April I looked at the Highlander; trade-in value?",
    )
    result = score_lead(RULES, lead, STORE)
    # out_of_area is 0 in the shipped file, so no reason; "April" is not "apr".
    assert reason_lines(result) == ["+5 source Autotrader (third-party)"]


def test_vehicle_interest_test_drive_and_lease_count_without_words() -> None:
    lead = make_lead(
        vehicles=(
            Vehicle(make="Toyota", interest=VehicleInterest.TEST_DRIVE),
            Vehicle(make="Toyota", model="bZ4X", interest=VehicleInterest.LEASE),
        )
    )
    assert reason_lines(score_lead(RULES, lead, STORE)) == [
        "+5 source Autotrader (third-party)",
        "+10 specific vehicle: Toyota bZ4X",
        "+5 test drive requested",
        "+5 wants to lease",
    ]


@pytest.mark.parametrize(
    ("days", "points"), [(0, 20), (7, 20), (8, 15), (30, 15), (31, 5), (90, 5), (91, 0)]
)
def test_timeframe_bands(days: int, points: int) -> None:
    result = score_lead(RULES, make_lead(timeframe=Timeframe("", days)), STORE)
    assert result.points_for(Dimension.INTENT) == points


# --- tiers and grades ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "tier"),
    [
        (0, Tier.LOW),
        (25, Tier.LOW),
        (26, Tier.MEDIUM),
        (50, Tier.MEDIUM),
        (51, Tier.HIGH),
        (75, Tier.HIGH),
        (76, Tier.HOT),
        (100, Tier.HOT),
    ],
)
def test_tier_boundaries_from_the_file(score: int, tier: Tier) -> None:
    assert RULES.tier_for(score) is tier


def test_tier_ranks_order_low_to_hot() -> None:
    assert [t.rank for t in (Tier.LOW, Tier.MEDIUM, Tier.HIGH, Tier.HOT)] == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("changes", "grade", "why"),
    [
        ({"vehicles": (CAMRY,), "timeframe": Timeframe("", 30)}, Grade.A, "specific vehicle"),
        ({"vehicles": (Vehicle(make="Toyota"),), "timeframe": Timeframe("", 5)}, Grade.B, "vague"),
        ({"vehicles": (CAMRY,), "timeframe": Timeframe("", 60)}, Grade.B, "timeframe 60 days"),
        ({"vehicles": (CAMRY,)}, Grade.B, "no stated timeframe"),
        ({"trade_in": CIVIC_TRADE}, Grade.B, "vague vehicle interest and no stated timeframe"),
        ({"vehicles": (CAMRY,), "emails": ()}, Grade.C, "missing email"),
        ({"vehicles": (CAMRY,), "person": Person(first_name="Dana")}, Grade.C, "missing name"),
        ({"person": Person(business_name="Acme Fleet"), "vehicles": (CAMRY,)}, Grade.B, "but"),
        ({}, Grade.C, "questionable intent"),
        ({"vehicles": (CAMRY,), "duplicate_of": "lead-0"}, Grade.D, "duplicate of lead lead-0"),
        ({"vehicles": (CAMRY,), "is_spam": True}, Grade.D, "spam"),
        (
            {"phones": (BAD_PHONE,), "emails": (Email("not-an-email"),)},
            Grade.D,
            "unreachable",
        ),
    ],
)
def test_grades(changes: dict[str, object], grade: Grade, why: str) -> None:
    result = score_lead(RULES, make_lead(**changes), STORE)
    assert result.grade is grade
    assert why in result.grade_reason


def test_reachable_by_email_only_is_not_d() -> None:
    result = score_lead(RULES, make_lead(phones=(BAD_PHONE,), vehicles=(CAMRY,)), STORE)
    assert result.grade is Grade.C  # unreachable by phone, so contact info is incomplete


# --- re-scoring from events ------------------------------------------------------------------


def test_rescoring_over_a_longer_history_and_the_tier_alert() -> None:
    lead = make_lead(
        address=Address(postal_code="60614"),
        timeframe=Timeframe("next month", 30),
        vehicles=(CAMRY,),
    )
    before = score_lead(RULES, lead, STORE, visits(1))
    assert (before.score, before.tier) == (50, Tier.MEDIUM)  # 20 + 5 + 15 + 10
    history = [*visits(2), activity(ActivityKind.TEXT, 40, Direction.INBOUND)]
    after = score_lead(RULES, lead, STORE, history)
    assert (after.score, after.tier) == (65, Tier.HIGH)
    assert score_changed(before, after)
    assert crossed_into_higher_tier(before, after)
    assert not crossed_into_higher_tier(after, before)  # moving down is no alert

    record = score_change_activity(before, after, lead_id="lead-1", at=T0, activity_id="sc-1")
    assert record.kind is ActivityKind.SCORE_CHANGE
    assert record.score == 65
    assert record.body == "Score 50 (medium, grade A) -> 65 (high, grade A)"


def test_score_changed_and_first_scores() -> None:
    first = score_lead(RULES, make_lead(), STORE)
    assert score_changed(None, first)
    assert not crossed_into_higher_tier(None, first)
    same = score_lead(RULES, make_lead(), STORE, visits(1))
    assert not score_changed(first, same)
    spam = score_lead(RULES, make_lead(is_spam=True), STORE)
    assert spam.score == first.score
    assert score_changed(first, spam)  # the grade moved to D
    record = score_change_activity(None, first, lead_id="lead-1", at=T0, activity_id="sc-0")
    assert record.body == "Scored 5 (low, grade C)"


def test_history_order_does_not_matter() -> None:
    history = [*visits(3), activity(ActivityKind.EMAIL_OPEN, 5)]
    shuffled = list(history)
    random.Random(7).shuffle(shuffled)
    assert score_lead(RULES, make_lead(), STORE, history) == score_lead(
        RULES, make_lead(), STORE, shuffled
    )


# --- bad input -------------------------------------------------------------------------------


def test_history_of_another_lead_is_refused() -> None:
    stray = replace(activity(ActivityKind.WEB_VISIT, 1), lead_id="lead-2")
    with pytest.raises(InvalidActivityError, match="belongs to lead 'lead-2'"):
        score_lead(RULES, make_lead(), STORE, [stray])


def test_history_must_hold_activities() -> None:
    with pytest.raises(InvalidActivityError, match="got str"):
        score_lead(RULES, make_lead(), STORE, ["visit"])  # type: ignore[list-item]


def test_negative_timeframe_is_refused() -> None:
    with pytest.raises(InvalidLeadError, match="within_days must be 0 or more, got -3"):
        score_lead(RULES, make_lead(timeframe=Timeframe("", -3)), STORE)


def test_non_integer_timeframe_is_refused() -> None:
    with pytest.raises(InvalidLeadError, match="got '30'"):
        score_lead(RULES, make_lead(timeframe=Timeframe("", "30")), STORE)  # type: ignore[arg-type]


def test_score_change_activity_refuses_naive_time() -> None:
    result = score_lead(RULES, make_lead(), STORE)
    with pytest.raises(InvalidActivityError, match="naive"):
        score_change_activity(
            None, result, lead_id="lead-1", at=datetime(2024, 5, 6, 9), activity_id="x"
        )


def test_negative_weights_clamp_at_zero_and_the_reasons_still_add_up() -> None:
    text = SHIPPED_TEXT.replace("out_of_area = 0", "out_of_area = -10")
    rules = parse_scoring_rules(text, "custom.toml")
    result = score_lead(rules, make_lead(address=Address(postal_code="90210")), STORE)
    assert reason_lines(result) == [
        "-10 ZIP 90210 is outside the market",
        "+5 source Autotrader (third-party)",
    ]
    assert (result.unclamped, result.score, result.clamped, result.tier) == (-5, 0, True, Tier.LOW)


# --- the rules file --------------------------------------------------------------------------


def test_shipped_file_values() -> None:
    assert (RULES.tiers.hot, RULES.tiers.high, RULES.tiers.medium) == (76, 51, 26)
    assert RULES.demographic.local_zip == 20
    assert RULES.behaviour.web_visit_after_first == 5
    assert (
        RULES.source.types[SourceType.FIRST_PARTY] > 4 * RULES.source.types[SourceType.THIRD_PARTY]
    )
    assert [(b.within_days, b.points) for b in RULES.intent.timeframe] == [
        (7, 20),
        (30, 15),
        (90, 5),
    ]
    assert RULES.source_name == "resources/scoring.toml"


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


def broken(old: str, new: str) -> tuple[str, ResourceError]:
    assert old in SHIPPED_TEXT
    text = SHIPPED_TEXT.replace(old, new, 1)
    with pytest.raises(ResourceError) as caught:
        parse_scoring_rules(text, "resources/scoring.toml")
    return text, caught.value


def test_broken_weight_type_names_line_and_field() -> None:
    text, err = broken("local_zip = 20", 'local_zip = "twenty"')
    assert err.field == "demographic.local_zip"
    assert err.line == line_of(text, "local_zip =")
    assert str(err).startswith(f"resources/scoring.toml:{err.line} [demographic.local_zip]")
    assert "must be int, got a string" in str(err)


def test_broken_tier_order() -> None:
    text, err = broken("hot = 76", "hot = 40")
    assert (err.field, err.line) == ("tiers.hot", line_of(text, "hot = 40"))
    assert "must be above high (51)" in err.detail


def test_broken_unknown_field_is_a_typo() -> None:
    text, err = broken("email_open = 2", "email_opens = 2")
    assert (err.field, err.line) == ("behaviour.email_opens", line_of(text, "email_opens"))


def test_broken_negative_engagement_weight() -> None:
    _, err = broken("inbound_reply = 10", "inbound_reply = -1")
    assert err.field == "behaviour.inbound_reply"
    assert "between 0 and 100" in err.detail


def test_broken_missing_source_type() -> None:
    text, err = broken("equity_mining = 18\n", "")
    assert err.field == "source.types"
    assert err.line == line_of(text, "[source.types]")
    assert "missing required field 'equity_mining'" in err.detail


def test_broken_unknown_source_type() -> None:
    _, err = broken("walk_in = 20", "walk_in = 20\nbillboard = 3")
    assert err.field == "source.types.billboard"


def test_broken_timeframe_bands_out_of_order() -> None:
    text, err = broken("within_days = 30\npoints = 15", "within_days = 5\npoints = 15")
    assert err.field == "intent.timeframe[1].within_days"
    assert err.line == line_of(text, "within_days = 5")
    assert "shortest timeframe up: 5 does not follow 7" in err.detail


def test_broken_contact_part_and_missing_table_and_bad_toml() -> None:
    _, err = broken('"name", "phone"', '"name", "fax"')
    assert err.field == "grades.complete_contact[1]"
    assert "unknown part 'fax'" in err.detail
    head, _, _ = SHIPPED_TEXT.partition("[intent]")
    with pytest.raises(ResourceError, match=r"missing required table \[intent\]"):
        parse_scoring_rules(head, "resources/scoring.toml")
    text, err = broken("cap = 30", "cap = = 30")
    assert err.line == line_of(text, "cap = = 30")
    assert isinstance(err, DomainError)


def test_broken_weight_out_of_range() -> None:
    _, err = broken("specific_vehicle = 10", "specific_vehicle = 500")
    assert err.field == "intent.specific_vehicle"


# --- properties ------------------------------------------------------------------------------

PHONES = (CELL, BAD_PHONE, make_phone("+1 773 555 0199"), Phone(raw="", e164=None))
WORDS = ("pre-approved", "test drive", "income", "April", "stop", "lease", "cash", "", "apr")

vehicles = st.builds(
    Vehicle,
    year=st.none() | st.integers(1990, 2026),
    make=st.sampled_from(("", "Toyota", "Honda")),
    model=st.sampled_from(("", "Camry", "Civic")),
    vin=st.sampled_from(("", "1HGCM82633A004352")),
    interest=st.sampled_from(list(VehicleInterest)),
)
leads = st.builds(
    Lead,
    id=st.just("lead-1"),
    store_id=st.just("store-1"),
    received_at=st.just(T0),
    person=st.builds(
        Person, first_name=st.sampled_from(("", "Ana")), last_name=st.text(max_size=3)
    ),
    source=st.builds(
        LeadSource,
        name=st.sampled_from(("", "Autotrader", "CARS.COM", "Dealer website", "x")),
        type=st.sampled_from(list(SourceType)),
    ),
    phones=st.lists(st.sampled_from(PHONES), max_size=2).map(tuple),
    emails=st.lists(st.sampled_from((Email("a@b.co"), Email("bad"))), max_size=2).map(tuple),
    address=st.builds(
        Address,
        street=st.sampled_from(("", "1 Main St")),
        city=st.sampled_from(("", "Evanston")),
        state=st.sampled_from(("", "IL")),
        postal_code=st.sampled_from(("", "60201", "60614-0001", "90210", "6061", "abcde")),
    ),
    vehicles=st.lists(vehicles, max_size=3).map(tuple),
    trade_in=st.none() | st.just(CIVIC_TRADE),
    timeframe=st.builds(Timeframe, st.text(max_size=5), st.none() | st.integers(0, 400)),
    comments=st.lists(st.sampled_from(WORDS), max_size=4).map(" ".join),
    duplicate_of=st.none() | st.just("lead-0"),
    is_spam=st.booleans(),
)
events = st.lists(
    st.tuples(
        st.sampled_from(list(ActivityKind)),
        st.none() | st.sampled_from(list(Direction)),
        st.integers(0, 10_000),
    ),
    max_size=25,
)


def to_history(raw: list[tuple[ActivityKind, Direction | None, int]]) -> list[Activity]:
    history = []
    for index, (kind, direction, minutes) in enumerate(raw):
        if kind in (ActivityKind.DISPOSITION, ActivityKind.APPOINTMENT):
            kind = ActivityKind.NOTE  # those need extra fields; their kind scores nothing anyway
        history.append(
            Activity(
                id=f"e{index}",
                lead_id="lead-1",
                kind=kind,
                at=T0 + timedelta(minutes=minutes),
                direction=direction,
            )
        )
    return history


def expected_tier(score: int) -> Tier:
    if score >= 76:
        return Tier.HOT
    if score >= 51:
        return Tier.HIGH
    if score >= 26:
        return Tier.MEDIUM
    return Tier.LOW


def check_invariants(rules: ScoringRules, result: LeadScore) -> None:
    assert 0 <= result.score <= 100
    assert sum(r.points for r in result.reasons) == result.unclamped
    assert result.score == max(0, min(100, result.unclamped))
    assert result.tier is expected_tier(result.score) is rules.tier_for(result.score)
    assert all(r.points != 0 for r in result.reasons)
    for dimension, cap in [
        (Dimension.DEMOGRAPHIC, rules.demographic.cap),
        (Dimension.BEHAVIOUR, rules.behaviour.cap),
        (Dimension.SOURCE, rules.source.cap),
        (Dimension.INTENT, rules.intent.cap),
    ]:
        assert result.points_for(dimension) <= cap


@settings(max_examples=200, deadline=None)
@given(lead=leads, raw=events)
def test_property_score_in_range_reasons_add_up_tier_agrees(
    lead: Lead, raw: list[tuple[ActivityKind, Direction | None, int]]
) -> None:
    result = score_lead(RULES, lead, STORE, to_history(raw))
    check_invariants(RULES, result)
    if lead.duplicate_of or lead.is_spam or not lead.reachable:
        assert result.grade is Grade.D


@settings(max_examples=150, deadline=None)
@given(lead=leads, raw=events, extra=st.integers(1, 8))
def test_property_more_web_visits_never_lower_the_score(
    lead: Lead, raw: list[tuple[ActivityKind, Direction | None, int]], extra: int
) -> None:
    history = to_history(raw)
    before = score_lead(RULES, lead, STORE, history)
    more = [
        Activity(id=f"v{i}", lead_id="lead-1", kind=ActivityKind.WEB_VISIT, at=T0)
        for i in range(extra)
    ]
    after = score_lead(RULES, lead, STORE, [*history, *more])
    assert after.score >= before.score
    assert after.tier.rank >= before.tier.rank
    assert after.grade is before.grade  # behaviour does not change the grade
