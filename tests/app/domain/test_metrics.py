"""Funnel metrics against a fixture of ten leads whose every figure was computed by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
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
from app.domain.clocks import BusinessHours, ClockError, parse_business_hours
from app.domain.leads import Lead, LeadSource, LeadStatus, Person, SourceType
from app.domain.metrics import (
    ALL,
    APPOINTMENT_RATE_BENCHMARK,
    CLOSE_RATE_BENCHMARK,
    CONTACT_RATE_BENCHMARK,
    RESPONSE_TIME_BENCHMARK,
    SHOW_RATE_BENCHMARK,
    Funnel,
    GroupBy,
    MetricsError,
    Period,
    funnel,
    lead_outcome,
    percentile_nearest_rank,
    weakest_link,
)
from app.rulebook import read_resource

CHICAGO = ZoneInfo("America/Chicago")
MIN = timedelta(minutes=1)
F = DispositionFlag
NOW = datetime(2026, 3, 20, 12, 0, tzinfo=CHICAGO)
SOURCES = {
    "web": LeadSource("Dealer website", SourceType.FIRST_PARTY),
    "at": LeadSource("Autotrader", SourceType.THIRD_PARTY),
    "cars": LeadSource("Cars.com", SourceType.THIRD_PARTY),
}


def hours() -> BusinessHours:
    return parse_business_hours(*read_resource("store_hours.toml"))


def chi(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=CHICAGO)


def make_lead(
    lead_id: str,
    received: datetime,
    source: str,
    agent: str | None,
    *,
    spam: bool = False,
    status: LeadStatus = LeadStatus.NEW,
) -> Lead:
    return Lead(
        id=lead_id,
        store_id="S1",
        received_at=received,
        person=Person("Sam", "Lee"),
        source=SOURCES[source],
        assigned_agent_id=agent,
        is_spam=spam,
        status=status,
    )


class History:
    """Builds one lead's activities with short calls; ids are unique per lead."""

    def __init__(self, lead_id: str, agent: str = "A") -> None:
        self.lead_id, self.agent, self.items = lead_id, agent, list[Activity]()

    def add(self, kind: ActivityKind, at: datetime, **fields: object) -> History:
        fields.setdefault("agent_id", self.agent)
        if kind is ActivityKind.DISPOSITION:
            fields.setdefault("disposition", "logged")
        self.items.append(
            Activity(
                id=f"{self.lead_id}-{len(self.items)}",
                lead_id=self.lead_id,
                kind=kind,
                at=at,
                **fields,
            )  # type: ignore[arg-type]
        )
        return self

    def call(self, at: datetime, answered: bool = False, **fields: object) -> History:
        direction = fields.pop("direction", Direction.OUTBOUND)
        return self.add(ActivityKind.CALL, at, direction=direction, answered=answered, **fields)

    def text(self, at: datetime) -> History:
        return self.add(ActivityKind.TEXT, at, direction=Direction.OUTBOUND)

    def auto_email(self, at: datetime) -> History:
        return self.add(
            ActivityKind.EMAIL, at, direction=Direction.OUTBOUND, automatic=True, agent_id=None
        )

    def flags(self, at: datetime, flags: DispositionFlag) -> History:
        return self.add(ActivityKind.DISPOSITION, at, flags=flags)

    def appointment(
        self, at: datetime, status: AppointmentStatus, slot: datetime | None = None
    ) -> History:
        return self.add(ActivityKind.APPOINTMENT, at, appointment_status=status, scheduled_for=slot)


SET, KEPT, NO_SHOW, CANCELLED = (
    AppointmentStatus.SET,
    AppointmentStatus.KEPT,
    AppointmentStatus.NO_SHOW,
    AppointmentStatus.CANCELLED,
)


def fixture() -> tuple[list[Lead], dict[str, list[Activity]]]:
    """Ten leads, week of Monday 2026-03-09 (CDT), seen on Friday 2026-03-20 12:00.

    lead  agent  source     received        first attempt            outcome
    L1    A      web        Mon 10:00       call +3 min (180 s)      contact, appt kept, sold
    L2    A      web        Mon 11:00       call +8 min (480 s) late attempts only
    L3    A      Autotrader Mon 21:00 (aft) call Tue 09:20 (1200 s)  contact, no-show, resched. kept
    L4    B      Autotrader Tue 10:00       call +2 min (120 s)      contact, not interested
    L5    B      Cars.com   Tue 12:00       none (breached)          auto email only
    L6    B      web        Wed 15:00       call +1 min (60 s)       contact, appt next week
    L7    B      web        Wed 16:00       call +4 min (240 s)      contact, appt cancelled
    L8    (C)    Cars.com   Thu 19:58       C calls 20:10 (720 s)    no contact, late
    L9    A      web        Fri 10:00       spam: excluded
    L10   C      Autotrader Sat 17:00       text +2 min (120 s)      customer called back, appt
                                                                     slot passed, no outcome
    """
    leads = [
        make_lead("L1", chi(3, 9, 10), "web", "A"),
        make_lead("L2", chi(3, 9, 11), "web", "A"),
        make_lead("L3", chi(3, 9, 21), "at", "A"),
        make_lead("L4", chi(3, 10, 10), "at", "B"),
        make_lead("L5", chi(3, 10, 12), "cars", "B"),
        make_lead("L6", chi(3, 11, 15), "web", "B"),
        make_lead("L7", chi(3, 11, 16), "web", "B"),
        make_lead("L8", chi(3, 12, 19, 58), "cars", None),
        make_lead("L9", chi(3, 13, 10), "web", "A", spam=True),
        make_lead("L10", chi(3, 14, 17), "at", "C"),
    ]
    h = {lead.id: History(lead.id) for lead in leads}
    h["L4"].agent = h["L5"].agent = h["L6"].agent = h["L7"].agent = "B"
    h["L8"].agent = h["L10"].agent = "C"

    r = chi(3, 9, 10)
    h["L1"].auto_email(r + MIN).call(r + 3 * MIN, answered=True)
    h["L1"].flags(r + 10 * MIN, F.ATTEMPT | F.HUMAN_CONTACT | F.APPOINTMENT_SET)
    h["L1"].appointment(r + 10 * MIN, SET, chi(3, 11, 14))
    h["L1"].appointment(chi(3, 11, 14, 5), KEPT, chi(3, 11, 14))
    h["L1"].flags(chi(3, 11, 16), F.SOLD)

    r = chi(3, 9, 11)
    h["L2"].call(r + 8 * MIN).text(r + 9 * MIN).flags(r + 9 * MIN, F.ATTEMPT)

    h["L3"].call(chi(3, 10, 9, 20), answered=True)
    h["L3"].flags(chi(3, 10, 9, 30), F.ATTEMPT | F.HUMAN_CONTACT | F.APPOINTMENT_SET)
    h["L3"].appointment(chi(3, 10, 9, 30), SET, chi(3, 12, 10))
    h["L3"].appointment(chi(3, 12, 11), NO_SHOW)  # no slot given: the open appointment
    h["L3"].appointment(chi(3, 12, 12), SET, chi(3, 14, 10))
    h["L3"].appointment(chi(3, 14, 10, 30), KEPT, chi(3, 14, 10))

    r = chi(3, 10, 10)
    h["L4"].call(r - 60 * MIN)  # stamped before receipt: a data error, ignored
    h["L4"].auto_email(r + MIN).call(r + 2 * MIN, answered=True)
    h["L4"].flags(r + 5 * MIN, F.ATTEMPT | F.HUMAN_CONTACT | F.NOT_INTERESTED)

    h["L5"].auto_email(chi(3, 10, 12, 1))

    r = chi(3, 11, 15)
    h["L6"].call(r + MIN, answered=True).appointment(r + 5 * MIN, SET, chi(3, 25, 10))

    r = chi(3, 11, 16)
    h["L7"].call(r + 4 * MIN, answered=True).appointment(r + 6 * MIN, SET, chi(3, 13, 10))
    h["L7"].appointment(chi(3, 12, 9), CANCELLED, chi(3, 13, 10))

    h["L8"].call(chi(3, 12, 20, 10))

    h["L9"].call(chi(3, 13, 10, 1), answered=True).flags(chi(3, 13, 10, 2), F.SOLD)

    r = chi(3, 14, 17)
    h["L10"].text(r + 2 * MIN)
    h["L10"].call(r + 30 * MIN, answered=True, direction=Direction.INBOUND)
    h["L10"].appointment(r + 31 * MIN, SET, chi(3, 16, 15))

    return leads, {lead_id: b.items for lead_id, b in h.items()}


def compute(**options: object) -> dict[str, Funnel]:
    leads, activities = fixture()
    return funnel(leads, activities, hours(), now=NOW, **options)  # type: ignore[arg-type]


def counts(f: Funnel) -> tuple[int, ...]:
    return (
        f.leads,
        f.excluded,
        f.worked,
        f.contacted,
        f.appointment_set,
        f.appointments_due,
        f.appointments_kept,
        f.shown,
        f.sold,
        f.sold_of_shown,
        f.attempted,
        f.judged,
        f.within_5_min,
    )


def rates(f: Funnel) -> tuple[float | None, ...]:
    return (f.contact_rate, f.appointment_rate, f.show_rate, f.close_rate, f.within_5_min_rate)


def test_benchmarks_are_the_guides() -> None:
    assert (
        CONTACT_RATE_BENCHMARK,
        APPOINTMENT_RATE_BENCHMARK,
        SHOW_RATE_BENCHMARK,
        CLOSE_RATE_BENCHMARK,
    ) == (0.50, 0.35, 0.65, 0.30)
    assert timedelta(minutes=5) == RESPONSE_TIME_BENCHMARK


def test_whole_store_funnel_matches_the_hand_computation() -> None:
    result = compute()
    assert list(result) == [ALL]
    total = result[ALL]
    # leads excl worked contacted appt_set due kept shown sold sold_shown attempted judged within
    assert counts(total) == (9, 1, 8, 6, 5, 4, 2, 2, 1, 1, 8, 9, 6)
    assert rates(total) == (6 / 8, 5 / 6, 2 / 4, 1 / 2, 6 / 9)
    # Samples 60 120 120 180 240 480 720 1200: median (180+240)/2; p90 rank ceil(7.2) = 8.
    assert total.response_median_s == 210.0
    assert total.response_p90_s == 1200.0
    assert weakest_link(total) == "show_rate"  # 0.50 / 0.65 is the only rate below target


def test_per_agent_funnels() -> None:
    result = compute(group_by=GroupBy.AGENT)
    assert list(result) == ["A", "B", "C"]  # L8 is unassigned: its first caller, C, owns it
    a, b, c = result["A"], result["B"], result["C"]
    assert counts(a) == (3, 1, 3, 2, 2, 3, 2, 2, 1, 1, 3, 3, 2)
    assert rates(a) == (2 / 3, 1.0, 2 / 3, 1 / 2, 2 / 3)
    assert (a.response_median_s, a.response_p90_s) == (480.0, 1200.0)
    assert counts(b) == (4, 0, 3, 3, 2, 0, 0, 0, 0, 0, 3, 4, 3)
    assert rates(b) == (1.0, 2 / 3, None, None, 3 / 4)
    assert (b.response_median_s, b.response_p90_s) == (120.0, 240.0)
    assert counts(c) == (2, 0, 2, 1, 1, 1, 0, 0, 0, 0, 2, 2, 1)
    assert rates(c) == (1 / 2, 1.0, 0.0, None, 1 / 2)
    assert (c.response_median_s, c.response_p90_s) == (420.0, 720.0)


def test_per_source_funnels() -> None:
    result = compute(group_by="source")
    assert list(result) == ["Autotrader", "Cars.com", "Dealer website"]
    at, cars, web = result["Autotrader"], result["Cars.com"], result["Dealer website"]
    assert counts(web) == (4, 1, 4, 3, 3, 1, 1, 1, 1, 1, 4, 4, 3)
    assert rates(web) == (3 / 4, 1.0, 1.0, 1.0, 3 / 4)
    assert (web.response_median_s, web.response_p90_s) == (210.0, 480.0)
    assert counts(at) == (3, 0, 3, 3, 2, 3, 1, 1, 0, 0, 3, 3, 3)
    assert rates(at) == (1.0, 2 / 3, 1 / 3, 0.0, 1.0)
    assert (at.response_median_s, at.response_p90_s) == (120.0, 1200.0)
    assert counts(cars) == (2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 2, 0)
    assert rates(cars) == (0.0, None, None, None, 0.0)
    assert (cars.response_median_s, cars.response_p90_s) == (720.0, 720.0)
    assert weakest_link(cars) == "contact_rate"


def test_period_is_half_open_over_received_at() -> None:
    monday_tuesday = Period(chi(3, 9, 0), chi(3, 11, 0))  # L1..L5
    total = compute(period=monday_tuesday)[ALL]
    assert counts(total) == (5, 0, 4, 3, 2, 3, 2, 2, 1, 1, 4, 5, 3)
    assert [compute(period=Period(chi(3, 9, 10), chi(3, 9, 11)))[ALL].leads] == [1]  # L1 only
    assert compute(period=Period(chi(3, 9, 9), chi(3, 9, 10)))[ALL].leads == 0  # end excluded
    # Given in another zone, the same instants select the same leads.
    in_utc = Period(chi(3, 9, 0).astimezone(UTC), chi(3, 11, 0).astimezone(UTC))
    assert compute(period=in_utc)[ALL] == total


def test_grouping_by_calendar_day_week_and_month_uses_the_store_zone() -> None:
    days = compute(group_by=GroupBy.DAY)
    assert {key: (f.leads, f.excluded) for key, f in days.items()} == {
        "2026-03-09": (3, 0),
        "2026-03-10": (2, 0),
        "2026-03-11": (2, 0),
        "2026-03-12": (1, 0),  # 19:58 CDT is already the 13th in UTC
        "2026-03-13": (0, 1),
        "2026-03-14": (1, 0),
    }
    assert list(compute(group_by=GroupBy.WEEK)) == ["2026-W11"]
    assert list(compute(group_by=GroupBy.MONTH)) == ["2026-03"]


def test_lead_outcome_details() -> None:
    leads, activities = fixture()
    by_id = {lead.id: lead for lead in leads}
    l3 = lead_outcome(by_id["L3"], activities["L3"], hours(), NOW)
    assert (l3.appointments_due, l3.appointments_kept, l3.shown, l3.sold) == (2, 1, True, False)
    assert l3.clocks.response_seconds == 1200  # from Tuesday's opening, not from receipt
    assert l3.clocks.seconds_to_first_attempt == 12 * 3600 + 1200
    l4 = lead_outcome(by_id["L4"], iter(activities["L4"]), hours(), NOW)  # a generator is fine
    assert l4.clocks.ignored_activity_ids == ("L4-0",)
    assert l4.clocks.response_seconds == 120
    l8 = lead_outcome(by_id["L8"], activities["L8"], hours(), NOW)
    assert (l8.agent_key, l8.worked, l8.contacted) == ("C", True, False)


def test_stages_imply_the_earlier_ones_on_inconsistent_data() -> None:
    # Only a "sold" flag and a lead status: still counted as worked and contacted.
    lead = make_lead("S", chi(3, 10, 10), "web", None, status=LeadStatus.SOLD)
    outcome = lead_outcome(lead, [], hours(), NOW)
    assert (outcome.worked, outcome.contacted, outcome.sold, outcome.shown) == (
        True,
        True,
        True,
        False,
    )
    assert outcome.agent_key == "(unassigned)"
    # An appointment flagged by a disposition only: set, but never due (no slot known).
    flagged = History("S").flags(chi(3, 10, 10, 5), F.APPOINTMENT_SET).items
    outcome = lead_outcome(make_lead("S", chi(3, 10, 10), "web", "A"), flagged, hours(), NOW)
    assert (outcome.appointment_set, outcome.appointments_due, outcome.contacted) == (
        True,
        0,
        True,
    )


def test_appointment_corrections_and_outcomes_without_a_booking() -> None:
    r = chi(3, 10, 10)
    items = (
        History("S")
        .appointment(r, SET, chi(3, 11, 10))
        .appointment(chi(3, 11, 11), NO_SHOW, chi(3, 11, 10))
        .appointment(chi(3, 11, 12), KEPT, chi(3, 11, 10))  # corrected: they did come
        .appointment(chi(3, 12, 12), KEPT, chi(3, 12, 11))  # a visit nobody booked
        .appointment(chi(3, 12, 13), KEPT)  # no slot, none open: corrects the latest one
        .items
    )
    outcome = lead_outcome(make_lead("S", r, "web", "A"), items, hours(), NOW)
    assert (outcome.appointments_due, outcome.appointments_kept) == (2, 2)


def test_empty_inputs_give_none_rates_never_division_errors() -> None:
    empty = funnel([], {}, hours(), now=NOW)
    assert list(empty) == [ALL]
    assert counts(empty[ALL]) == (0,) * 13
    assert rates(empty[ALL]) == (None,) * 5
    assert (empty[ALL].response_median_s, empty[ALL].response_p90_s) == (None, None)
    assert weakest_link(empty[ALL]) is None
    assert funnel([], {}, hours(), now=NOW, group_by=GroupBy.AGENT) == {}


def test_percentile_nearest_rank() -> None:
    assert percentile_nearest_rank([float(n) for n in range(10, 0, -1)], 0.9) == 9.0
    assert percentile_nearest_rank([5.0], 0.9) == 5.0
    assert percentile_nearest_rank([], 0.5) is None
    with pytest.raises(MetricsError, match="share"):
        percentile_nearest_rank([1.0], 0.0)


def test_garbage_is_refused_by_name() -> None:
    leads, activities = fixture()
    h = hours()
    with pytest.raises(MetricsError, match="listed twice"):
        funnel([leads[0], leads[0]], activities, h, now=NOW)
    with pytest.raises(MetricsError, match="got str"):
        funnel(["L1"], activities, h, now=NOW)  # type: ignore[list-item]
    with pytest.raises(MetricsError, match="now must carry a time zone"):
        funnel(leads, activities, h, now=datetime(2026, 3, 20, 12))
    with pytest.raises(MetricsError, match="activities_by_lead"):
        funnel(leads, [], h, now=NOW)  # type: ignore[arg-type]
    with pytest.raises(MetricsError, match="group_by must be one of"):
        funnel(leads, activities, h, now=NOW, group_by="dealer")
    with pytest.raises(MetricsError, match="must be after its start"):
        Period(chi(3, 10, 0), chi(3, 9, 0))
    with pytest.raises(MetricsError, match="period start must carry a time zone"):
        Period(datetime(2026, 3, 9), chi(3, 10, 0))
    with pytest.raises(ClockError, match="belongs to lead 'L1', not to lead 'L2'"):
        funnel(leads, {"L2": activities["L1"]}, h, now=NOW)


@st.composite
def workloads(draw: st.DrawFn) -> tuple[list[Lead], dict[str, list[Activity]]]:
    leads, activities = [], {}
    base = chi(3, 2, 0)
    for n in range(draw(st.integers(0, 8))):
        received = base + timedelta(minutes=draw(st.integers(0, 60 * 24 * 14)))
        lead_id = f"P{n}"
        leads.append(
            make_lead(
                lead_id,
                received,
                draw(st.sampled_from(sorted(SOURCES))),
                draw(st.sampled_from([None, "A", "B"])),
                spam=draw(st.booleans()),
            )
        )
        history = History(lead_id, draw(st.sampled_from(["A", "B", "C"])))
        for _ in range(draw(st.integers(0, 6))):
            at = received + timedelta(minutes=draw(st.integers(-120, 60 * 24 * 10)))
            choice = draw(st.integers(0, 3))
            if choice == 0:
                history.call(at, answered=draw(st.booleans()))
            elif choice == 1:
                history.flags(at, draw(st.sampled_from(list(DispositionFlag))))
            elif choice == 2:
                slot = draw(st.sampled_from([None, at + timedelta(days=1), at + timedelta(days=9)]))
                history.appointment(at, draw(st.sampled_from(list(AppointmentStatus))), slot)
            else:
                history.auto_email(at)
        activities[lead_id] = history.items
    return leads, activities


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workload=workloads())
def test_property_funnels_stay_consistent(
    workload: tuple[list[Lead], dict[str, list[Activity]]],
) -> None:
    leads, activities = workload
    h = hours()
    total = funnel(leads, activities, h, now=NOW)[ALL]
    assert total.leads + total.excluded == len(leads)
    assert total.contacted <= total.worked <= total.leads
    assert total.appointment_set <= total.contacted
    assert total.appointments_kept <= total.appointments_due
    assert total.sold_of_shown <= total.shown <= total.appointment_set
    assert total.within_5_min <= total.judged <= total.leads
    for rate in rates(total):
        assert rate is None or 0.0 <= rate <= 1.0
    for group_by in GroupBy:
        groups = funnel(leads, activities, h, now=NOW, group_by=group_by)
        assert sum(f.leads for f in groups.values()) == total.leads
        assert sum(f.contacted for f in groups.values()) == total.contacted
