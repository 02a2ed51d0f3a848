"""The managers' funnel report: app.domain.metrics over one store's leads in a period, as JSON.

Periods are calendar periods in the store's time zone (today, this ISO week from Monday, this
month) or a custom [start, end): a date means that local day (an end date is included), a datetime
must carry its offset. Leads count in the period they were received in; their whole history counts.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain import metrics
from app.domain.activities import Activity
from app.domain.codec import activity_from_dict, lead_from_dict
from app.domain.errors import DomainError
from app.domain.leads import Lead
from app.rulebook import Rulebook
from server.db import ActivityRow, LeadRow, StoreRow, UserRow
from server.rules import store_hours

MAX_CUSTOM_DAYS = 400  # bounds the work of one request; a year and a bit


class PeriodName(StrEnum):
    TODAY = "today"
    WEEK = "week"
    MONTH = "month"
    CUSTOM = "custom"


class MetricsParamError(ValueError):
    """A bad query parameter; `param` names it."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param
        self.message = message


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone)


def _check_year(param: str, year: int) -> None:
    if not 2000 <= year <= 2100:
        raise MetricsParamError(param, "must lie between the years 2000 and 2100")


def _instant(param: str, text: str, zone: ZoneInfo, *, end: bool) -> datetime:
    text = text.strip()
    is_date = len(text) == 10  # a date: that local day (an end date includes its whole day)
    try:
        value = (
            datetime.combine(date.fromisoformat(text), time(0))
            if is_date
            else datetime.fromisoformat(text)
        )
    except ValueError:
        raise MetricsParamError(
            param, f"{text[:40]!r} is not a date (2026-03-09) or a datetime with offset"
        ) from None
    _check_year(param, value.year)
    if is_date:
        return _midnight(value.date() + timedelta(days=1) if end else value.date(), zone)
    if value.tzinfo is None or value.utcoffset() is None:
        raise MetricsParamError(
            param, f"{text[:40]!r} has no UTC offset: add one (e.g. -05:00 or Z) or give a date"
        )
    return value


def resolve_period(
    name: PeriodName | str,
    start: str | None,
    end: str | None,
    zone: ZoneInfo,
    now: datetime,
) -> metrics.Period:
    """The [start, end) window of a named period as of `now`, in `zone`'s calendar."""
    try:
        period = PeriodName(name)
    except ValueError:
        raise MetricsParamError(
            "period", f"must be one of {', '.join(PeriodName)}, got {name!r}"
        ) from None
    if period is not PeriodName.CUSTOM:
        for param, value in (("start", start), ("end", end)):
            if value:
                raise MetricsParamError(param, "only a custom period takes start and end")
    today = now.astimezone(zone).date()
    if period is PeriodName.TODAY:
        first, after = today, today + timedelta(days=1)
    elif period is PeriodName.WEEK:
        first = today - timedelta(days=today.weekday())
        after = first + timedelta(days=7)
    elif period is PeriodName.MONTH:
        first = today.replace(day=1)
        after = (first + timedelta(days=32)).replace(day=1)
    else:
        if not start:
            raise MetricsParamError("start", "required for a custom period")
        if not end:
            raise MetricsParamError("end", "required for a custom period")
        begin = _instant("start", start, zone, end=False)
        finish = _instant("end", end, zone, end=True)
        if finish <= begin:
            raise MetricsParamError("end", "must be after start")
        if finish - begin > timedelta(days=MAX_CUSTOM_DAYS):
            raise MetricsParamError("end", f"a period may span at most {MAX_CUSTOM_DAYS} days")
        return metrics.Period(begin, finish)
    return metrics.Period(_midnight(first, zone), _midnight(after, zone))


def _funnel_json(result: metrics.Funnel) -> dict[str, Any]:
    return {
        **dataclasses.asdict(result),
        "contact_rate": result.contact_rate,
        "appointment_rate": result.appointment_rate,
        "show_rate": result.show_rate,
        "close_rate": result.close_rate,
        "within_5_min_rate": result.within_5_min_rate,
        "weakest_link": metrics.weakest_link(result),
    }


BENCHMARKS = {
    "contact_rate": metrics.CONTACT_RATE_BENCHMARK,
    "appointment_rate": metrics.APPOINTMENT_RATE_BENCHMARK,
    "show_rate": metrics.SHOW_RATE_BENCHMARK,
    "close_rate": metrics.CLOSE_RATE_BENCHMARK,
    "response_time_s": int(metrics.RESPONSE_TIME_BENCHMARK.total_seconds()),
}


def metrics_report(
    session: Session,
    store_id: str,
    rules: Rulebook,
    *,
    period_name: str,
    start: str | None,
    end: str | None,
    group_by: str | None,
    now: datetime,
) -> dict[str, Any]:
    """The store's funnel for the period (total, and per group when grouped)."""
    store = session.get(StoreRow, store_id)
    if store is None:
        raise LookupError(f"store {store_id!r} not found")
    hours = store_hours(rules, store)
    if group_by is not None and group_by not in metrics.GroupBy.__members__.values():
        raise MetricsParamError(
            "group_by", f"must be one of {', '.join(metrics.GroupBy)}, got {group_by!r}"
        )
    period = resolve_period(period_name, start, end, hours.zone, now)

    in_period = (
        LeadRow.store_id == store_id,
        LeadRow.received_at >= period.start,
        LeadRow.received_at < period.end,
    )
    leads: list[Lead] = []
    for row in session.scalars(select(LeadRow).where(*in_period).order_by(LeadRow.received_at)):
        try:
            leads.append(lead_from_dict(row.data))
        except DomainError:
            continue  # a damaged record is left out rather than failing the report
    histories: dict[str, list[Activity]] = defaultdict(list)
    activity_rows = session.scalars(
        select(ActivityRow)
        .join(LeadRow, LeadRow.id == ActivityRow.lead_id)
        .where(*in_period, ActivityRow.store_id == store_id)
    )
    for activity_row in activity_rows:
        try:
            activity = activity_from_dict(activity_row.data)
        except DomainError:
            continue
        histories[activity.lead_id].append(activity)

    outcomes = []
    for lead in leads:
        try:
            outcomes.append(
                metrics.lead_outcome(lead, histories[lead.id], hours, now, rules.response_policy)
            )
        except DomainError:
            continue
    total = metrics.summarize(outcomes, hours, period=period)[metrics.ALL]
    groups: list[dict[str, Any]] = []
    if group_by is not None:
        names = _agent_names(session, store_id) if group_by == metrics.GroupBy.AGENT else {}
        for key, result in metrics.summarize(
            outcomes, hours, period=period, group_by=group_by
        ).items():
            groups.append({"key": key, "label": names.get(key, key), **_funnel_json(result)})
    return {
        "store_id": store_id,
        "time_zone": store.time_zone,
        "period": {
            "name": PeriodName(period_name).value,
            "start": period.start.isoformat(),
            "end": period.end.isoformat(),
        },
        "group_by": group_by,
        "generated_at": now.isoformat(),
        "benchmarks": BENCHMARKS,
        "total": _funnel_json(total),
        "groups": groups,
    }


def _agent_names(session: Session, store_id: str) -> dict[str, str]:
    return {
        user.id: user.display_name or user.username
        for user in session.scalars(select(UserRow).where(UserRow.store_id == store_id))
    }
