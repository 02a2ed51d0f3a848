"""Funnel metrics: response time, contact, appointment, show and close rates, grouped.

Everything is computed as of `now` from the leads and their activity histories, with the clocks'
view of a history (see clocks.split_history): activities stamped before the lead's receipt are data
errors and left out; activities after `now` have not happened yet.

Definitions (per lead unless said otherwise). Each stage implies the earlier ones, so no rate can
exceed 100% on inconsistent data (e.g. an appointment logged without the call that set it):
- in scope: the lead was received in the period and is neither spam nor a duplicate (those are
  counted in `excluded` and nowhere else).
- worked: an agent attempt (call or personal text), or a disposition flagged attempt, or contacted.
- contacted: a real conversation (answered call, or a disposition flagged human contact), or any
  later stage (appointment set, showed, sold).
- appointment set: an appointment activity, or a disposition flagged appointment set.
- show rate counts appointments, not leads (the guide: "scheduled appointments where the customer
  actually arrives"). An appointment is identified by its slot (`scheduled_for`); an outcome record
  (kept / no-show / cancelled) belongs to the appointment with its slot (a slot never booked is an
  appointment of its own); without a slot, to the latest one still open, else it corrects the
  latest one (the last word wins: a no-show corrected to kept counts as kept).
  `appointments_due` = appointments kept or no-show, plus those still without an outcome whose
  slot is at or before `now`. Cancelled appointments are left out (a reschedule is a new
  appointment). `appointments_kept` = appointments kept. show_rate = kept / due.
- shown: the lead kept at least one appointment. sold: a disposition flagged sold, or the lead's
  status is sold. close_rate = leads shown and sold / leads shown ("of shown appointments").
- response time: the clocks' business response time (seconds from receipt when received in
  hours, from the next opening when received after hours) to the first agent attempt, over the
  leads that had one; median and p90 (nearest rank: the smallest value with at least 90% of the
  samples at or below it). within_5_min_rate: leads whose first agent attempt met the deadline
  (clocks.met_5_minute_rule: 5 min after an in-hours receipt, 30 min after the opening otherwise)
  over the leads whose outcome is known (attempted, or deadline passed); pending leads are left out.

Per-agent grouping uses the lead's `assigned_agent_id` (who owns the lead's outcome), falling back
to the agent of the first agent attempt, else UNASSIGNED. Rates are None when the denominator is 0.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from app.domain.activities import Activity, ActivityKind, AppointmentStatus, DispositionFlag
from app.domain.clocks import (
    BusinessHours,
    ClockError,
    ResponseClocks,
    ResponsePolicy,
    require_aware,
    response_clocks,
    split_history,
)
from app.domain.errors import DomainError
from app.domain.leads import Lead, LeadStatus

# The guide's benchmarks ("Benchmarking against industry standards").
CONTACT_RATE_BENCHMARK = 0.50  # of leads worked
APPOINTMENT_RATE_BENCHMARK = 0.35  # of contacted leads
SHOW_RATE_BENCHMARK = 0.65  # of appointments due
CLOSE_RATE_BENCHMARK = 0.30  # of shown leads
RESPONSE_TIME_BENCHMARK = timedelta(minutes=5)

ALL = "all"  # the key when nothing is grouped
UNASSIGNED = "(unassigned)"


class MetricsError(DomainError):
    """Bad input to the funnel metrics (a wrong type, duplicate leads, an empty period)."""


class GroupBy(StrEnum):
    AGENT = "agent"
    SOURCE = "source"  # lead.source.name
    DAY = "day"  # receipt date in the store's zone, "2026-03-09"
    WEEK = "week"  # ISO week of receipt in the store's zone, "2026-W11"
    MONTH = "month"  # "2026-03"


@dataclass(frozen=True, slots=True)
class Period:
    """A half-open window [start, end) over received_at."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        try:
            start = require_aware(self.start, "period start")
            end = require_aware(self.end, "period end")
        except ClockError as exc:
            raise MetricsError(str(exc)) from exc
        if end <= start:
            raise MetricsError(
                f"period end {end.isoformat()} must be after its start {start.isoformat()}"
            )

    def contains(self, at: datetime) -> bool:
        instant = at.astimezone(UTC)
        return self.start.astimezone(UTC) <= instant < self.end.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class LeadOutcome:
    """The funnel facts of one lead as of `now`: what the funnel counts, for drill-down."""

    lead_id: str
    agent_key: str
    source_name: str
    received_at: datetime
    excluded: bool  # spam or duplicate
    worked: bool
    contacted: bool
    appointment_set: bool
    appointments_due: int
    appointments_kept: int
    sold: bool
    clocks: ResponseClocks

    @property
    def shown(self) -> bool:
        return self.appointments_kept > 0


@dataclass(frozen=True, slots=True)
class Funnel:
    """Counts for one group, and the rates derived from them (None when undefined)."""

    leads: int  # in scope (spam and duplicates excluded)
    excluded: int
    worked: int
    contacted: int
    appointment_set: int  # leads
    appointments_due: int  # appointments, see the module docstring
    appointments_kept: int  # appointments
    shown: int  # leads that kept an appointment
    sold: int  # leads sold, shown or not
    sold_of_shown: int  # leads shown and sold
    attempted: int  # leads with a first agent attempt: the response-time samples
    response_median_s: float | None
    response_p90_s: float | None
    judged: int  # leads whose 5-minute outcome is known
    within_5_min: int

    @property
    def contact_rate(self) -> float | None:
        return _ratio(self.contacted, self.worked)

    @property
    def appointment_rate(self) -> float | None:
        return _ratio(self.appointment_set, self.contacted)

    @property
    def show_rate(self) -> float | None:
        return _ratio(self.appointments_kept, self.appointments_due)

    @property
    def close_rate(self) -> float | None:
        return _ratio(self.sold_of_shown, self.shown)

    @property
    def within_5_min_rate(self) -> float | None:
        return _ratio(self.within_5_min, self.judged)


def _ratio(part: int, whole: int) -> float | None:
    return None if whole == 0 else part / whole


def percentile_nearest_rank(values: Sequence[float], share: float) -> float | None:
    """The smallest sample with at least `share` of the samples at or below it; None if empty."""
    if not 0 < share <= 1:
        raise MetricsError(f"percentile share must be in (0, 1], got {share}")
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(share * len(ordered))) - 1]


def lead_outcome(
    lead: Lead,
    history: Iterable[Activity],
    hours: BusinessHours,
    now: datetime,
    policy: ResponsePolicy | None = None,
) -> LeadOutcome:
    """The funnel facts of one lead as of `now` (definitions in the module docstring)."""
    if isinstance(history, Iterable) and not isinstance(history, str | bytes):
        history = list(history)  # read twice below; a generator would be empty the second time
    clocks = response_clocks(lead, history, hours, policy, now)
    usable, _ = split_history(lead, history, now)
    instant = now.astimezone(UTC)

    flags = DispositionFlag.NONE
    for activity in usable:
        flags |= activity.flags
    due, kept, any_appointment = _appointments(usable, instant)
    sold = bool(flags & DispositionFlag.SOLD) or lead.status is LeadStatus.SOLD
    appointment_set = any_appointment or bool(flags & DispositionFlag.APPOINTMENT_SET)
    contacted = (
        any(a.is_conversation for a in usable)
        or bool(flags & DispositionFlag.HUMAN_CONTACT)
        or appointment_set
        or kept > 0
        or sold
    )
    worked = (
        clocks.first_attempt_at is not None or bool(flags & DispositionFlag.ATTEMPT) or contacted
    )
    return LeadOutcome(
        lead_id=lead.id,
        agent_key=_agent_of(lead, usable),
        source_name=lead.source.name,
        received_at=lead.received_at.astimezone(UTC),
        excluded=lead.is_spam or lead.duplicate_of is not None,
        worked=worked,
        contacted=contacted,
        appointment_set=appointment_set,
        appointments_due=due,
        appointments_kept=kept,
        sold=sold,
        clocks=clocks,
    )


def _agent_of(lead: Lead, usable: Sequence[Activity]) -> str:
    if lead.assigned_agent_id:
        return lead.assigned_agent_id
    for activity in usable:
        if activity.is_agent_attempt and activity.agent_id:
            return activity.agent_id
    return UNASSIGNED


@dataclass(slots=True)
class _Appointment:
    slot: datetime | None
    outcome: AppointmentStatus | None = None


def _appointments(usable: Sequence[Activity], now: datetime) -> tuple[int, int, bool]:
    """(appointments due, appointments kept, any appointment at all) for one lead's history."""
    booked: list[_Appointment] = []
    for activity in usable:
        if activity.kind is not ActivityKind.APPOINTMENT or activity.appointment_status is None:
            continue
        slot = None if activity.scheduled_for is None else activity.scheduled_for.astimezone(UTC)
        same_slot = next((b for b in booked if slot is not None and b.slot == slot), None)
        if activity.appointment_status is AppointmentStatus.SET:
            if same_slot is None:
                booked.append(_Appointment(slot))
            else:
                same_slot.outcome = None  # set again for the same slot: reinstated
            continue
        target = same_slot
        if target is None and slot is None:
            # An outcome without its slot belongs to the latest appointment still open.
            target = next((b for b in reversed(booked) if b.outcome is None), None)
            target = target or (booked[-1] if booked else None)
        if target is None:  # an outcome with no booking on record: it was an appointment too
            target = _Appointment(slot)
            booked.append(target)
        target.outcome = activity.appointment_status  # the latest word wins (corrections)

    due = kept = 0
    for appointment in booked:
        if appointment.outcome is AppointmentStatus.KEPT:
            due, kept = due + 1, kept + 1
        elif appointment.outcome is AppointmentStatus.NO_SHOW or (
            appointment.outcome is None and appointment.slot is not None and appointment.slot <= now
        ):
            due += 1
    return due, kept, bool(booked)


def funnel(
    leads: Iterable[Lead],
    activities_by_lead: Mapping[str, Sequence[Activity]],
    hours: BusinessHours,
    *,
    now: datetime,
    policy: ResponsePolicy | None = None,
    period: Period | None = None,
    group_by: GroupBy | str | None = None,
) -> dict[str, Funnel]:
    """Funnels keyed by group (sorted), or {ALL: funnel} when not grouped.

    Leads missing from `activities_by_lead` have no history. A grouped result holds only the groups
    that have leads; the ungrouped one always holds ALL, with zero counts if nothing matched.
    """
    outcomes = lead_outcomes(leads, activities_by_lead, hours, now=now, policy=policy)
    return summarize(outcomes, hours, period=period, group_by=group_by)


def lead_outcomes(
    leads: Iterable[Lead],
    activities_by_lead: Mapping[str, Sequence[Activity]],
    hours: BusinessHours,
    *,
    now: datetime,
    policy: ResponsePolicy | None = None,
) -> list[LeadOutcome]:
    """Every lead's outcome as of `now`, in the order given; refuses garbage by name."""
    if not isinstance(activities_by_lead, Mapping):
        raise MetricsError("activities_by_lead must map lead ids to activity lists")
    if isinstance(leads, str | bytes) or not isinstance(leads, Iterable):
        raise MetricsError("leads must be a sequence of Lead records")
    try:
        require_aware(now, "now")
    except ClockError as exc:
        raise MetricsError(str(exc)) from exc
    seen: set[str] = set()
    outcomes = []
    for lead in leads:
        if not isinstance(lead, Lead):
            raise MetricsError(f"leads must hold Lead records, got {type(lead).__name__}")
        if lead.id in seen:
            raise MetricsError(f"lead {lead.id} is listed twice")
        seen.add(lead.id)
        outcomes.append(lead_outcome(lead, activities_by_lead.get(lead.id, ()), hours, now, policy))
    return outcomes


def summarize(
    outcomes: Iterable[LeadOutcome],
    hours: BusinessHours,
    *,
    period: Period | None = None,
    group_by: GroupBy | str | None = None,
) -> dict[str, Funnel]:
    """Group lead outcomes (already computed) into funnels; see `funnel`."""
    if period is not None and not isinstance(period, Period):
        raise MetricsError(f"period must be a Period, got {type(period).__name__}")
    key_of = _key_function(_group_by(group_by), hours)
    groups: dict[str, list[LeadOutcome]] = {} if group_by is not None else {ALL: []}
    for outcome in outcomes:
        if period is not None and not period.contains(outcome.received_at):
            continue
        groups.setdefault(key_of(outcome), []).append(outcome)
    return {key: _funnel_of(groups[key]) for key in sorted(groups)}


def _group_by(value: object) -> GroupBy | None:
    """None, a GroupBy, or its name ("agent"); anything else is refused by name."""
    if value is None or isinstance(value, GroupBy):
        return value
    if isinstance(value, str) and value in GroupBy.__members__.values():
        return GroupBy(value)
    raise MetricsError(f"group_by must be one of {', '.join(GroupBy)}, got {value!r}")


def _key_function(group_by: GroupBy | None, hours: BusinessHours) -> Callable[[LeadOutcome], str]:
    def local_day(outcome: LeadOutcome) -> datetime:
        return outcome.received_at.astimezone(hours.zone)

    def iso_week(outcome: LeadOutcome) -> str:
        year, week, _ = local_day(outcome).isocalendar()
        return f"{year}-W{week:02d}"

    keys: dict[GroupBy | None, Callable[[LeadOutcome], str]] = {
        None: lambda _: ALL,
        GroupBy.AGENT: lambda o: o.agent_key,
        GroupBy.SOURCE: lambda o: o.source_name,
        GroupBy.DAY: lambda o: local_day(o).strftime("%Y-%m-%d"),
        GroupBy.WEEK: iso_week,
        GroupBy.MONTH: lambda o: local_day(o).strftime("%Y-%m"),
    }
    return keys[group_by]


def _funnel_of(outcomes: Sequence[LeadOutcome]) -> Funnel:
    scope = [o for o in outcomes if not o.excluded]
    samples = [
        float(o.clocks.response_seconds) for o in scope if o.clocks.response_seconds is not None
    ]
    judged = [o for o in scope if o.clocks.met_5_minute_rule is not None]
    return Funnel(
        leads=len(scope),
        excluded=len(outcomes) - len(scope),
        worked=sum(o.worked for o in scope),
        contacted=sum(o.contacted for o in scope),
        appointment_set=sum(o.appointment_set for o in scope),
        appointments_due=sum(o.appointments_due for o in scope),
        appointments_kept=sum(o.appointments_kept for o in scope),
        shown=sum(o.shown for o in scope),
        sold=sum(o.sold for o in scope),
        sold_of_shown=sum(o.sold and o.shown for o in scope),
        attempted=len(samples),
        response_median_s=float(statistics.median(samples)) if samples else None,
        response_p90_s=percentile_nearest_rank(samples, 0.9),
        judged=len(judged),
        within_5_min=sum(o.clocks.met_5_minute_rule is True for o in judged),
    )


def weakest_link(result: Funnel) -> str | None:
    """The rate furthest below its benchmark, relative to it ("contact_rate", ...), or None.

    The guide: "prioritize improvement efforts on the weakest link in your conversion funnel".
    """
    gaps = {
        name: value / target
        for name, value, target in (
            ("contact_rate", result.contact_rate, CONTACT_RATE_BENCHMARK),
            ("appointment_rate", result.appointment_rate, APPOINTMENT_RATE_BENCHMARK),
            ("show_rate", result.show_rate, SHOW_RATE_BENCHMARK),
            ("close_rate", result.close_rate, CLOSE_RATE_BENCHMARK),
        )
        if value is not None and value < target
    }
    return min(gaps, key=lambda name: gaps[name]) if gaps else None
