"""GET /v1/metrics: the funnel of the store's leads over a period, with benchmarks."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session, sessionmaker

from app.domain.activities import ActivityKind, AppointmentStatus
from server.db import transaction
from server.services.floor_metrics import MetricsParamError, resolve_period
from tests.server.conftest import Seeded
from tests.server.test_floor import add_activity, add_lead, call, sessions

__all__ = ["sessions"]  # the fixture, shared with test_floor

CHICAGO = ZoneInfo("America/Chicago")


def at(day: int, hour: int, minute: int) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=CHICAGO)


@pytest.fixture
def history(sessions: sessionmaker[Session]) -> None:
    """Monday 9 and Tuesday 10 March 2026 at Lakeside (open 09:00-20:00), and noise around it."""
    with transaction(sessions) as session:
        booked = add_lead(session, "lakeside", at(10, 14, 0), agent="user-ana", source="Cars.com")
        call(session, booked, at(10, 14, 3), "user-ana", answered=True)  # 180 s: met
        add_activity(
            session,
            booked,
            ActivityKind.APPOINTMENT,
            at(10, 14, 6),
            "user-ana",
            appointment_status=AppointmentStatus.SET,
            scheduled_for=at(11, 17, 0),
        )
        add_activity(
            session,
            booked,
            ActivityKind.APPOINTMENT,
            at(11, 17, 20),
            "user-ana",
            appointment_status=AppointmentStatus.KEPT,
            scheduled_for=at(11, 17, 0),
        )
        slow = add_lead(session, "lakeside", at(10, 14, 30), agent="user-ben", source="Website")
        call(session, slow, at(10, 14, 45), "user-ben", answered=False)  # 900 s: late
        add_lead(session, "lakeside", at(9, 10, 0), agent="user-ana", source="Cars.com")  # breached
        add_lead(session, "lakeside", at(9, 11, 0), source="Cars.com", spam=True)  # excluded
        add_lead(session, "lakeside", at(11, 10, 0), agent="user-ana")  # after the period
        other = add_lead(session, "riverside", at(10, 14, 0), agent="user-zed")
        call(session, other, at(10, 14, 1), "user-zed", answered=True)


CUSTOM = {"period": "custom", "start": "2026-03-09", "end": "2026-03-10"}


@pytest.mark.usefixtures("history")
def test_custom_period_totals_match_the_hand_count(seeded: Seeded) -> None:
    response = seeded.client.get("/v1/metrics", params=CUSTOM, headers=seeded.headers("mia"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["period"] == {
        "name": "custom",
        "start": "2026-03-09T00:00:00-05:00",
        "end": "2026-03-11T00:00:00-05:00",
    }
    total = body["total"]
    assert (total["leads"], total["excluded"], total["worked"], total["contacted"]) == (3, 1, 2, 1)
    assert (total["appointment_set"], total["appointments_due"], total["shown"]) == (1, 1, 1)
    assert total["response_median_s"] == 540.0  # median of 180 and 900
    assert total["response_p90_s"] == 900.0
    assert (total["judged"], total["within_5_min"]) == (3, 1)
    assert total["contact_rate"] == 0.5
    assert total["appointment_rate"] == 1.0
    assert total["show_rate"] == 1.0
    assert total["close_rate"] == 0.0
    assert total["weakest_link"] == "close_rate"
    assert body["benchmarks"]["contact_rate"] == 0.5
    assert body["benchmarks"]["response_time_s"] == 300
    assert body["groups"] == []


@pytest.mark.usefixtures("history")
def test_grouped_by_agent_source_and_day(seeded: Seeded) -> None:
    headers = seeded.headers("root")
    by_agent = seeded.client.get(
        "/v1/metrics", params={**CUSTOM, "group_by": "agent"}, headers=headers
    ).json()
    rows = {g["key"]: g for g in by_agent["groups"]}
    # The unassigned spam lead is a group of its own, counted as excluded only.
    assert sorted(rows) == ["(unassigned)", "user-ana", "user-ben"]
    assert (rows["(unassigned)"]["leads"], rows["(unassigned)"]["excluded"]) == (0, 1)
    assert rows["user-ana"]["label"] == "Ana"
    assert (rows["user-ana"]["leads"], rows["user-ana"]["within_5_min"]) == (2, 1)
    assert rows["user-ben"]["response_median_s"] == 900.0
    assert rows["user-ben"]["contact_rate"] == 0.0
    by_source = seeded.client.get(
        "/v1/metrics", params={**CUSTOM, "group_by": "source"}, headers=headers
    ).json()
    assert {g["key"]: g["leads"] for g in by_source["groups"]} == {"Cars.com": 2, "Website": 1}
    by_day = seeded.client.get(
        "/v1/metrics", params={**CUSTOM, "group_by": "day"}, headers=headers
    ).json()
    assert {g["key"]: (g["leads"], g["excluded"]) for g in by_day["groups"]} == {
        "2026-03-09": (1, 1),
        "2026-03-10": (2, 0),
    }


@pytest.mark.usefixtures("history")
def test_other_store_sees_only_its_own_leads(seeded: Seeded) -> None:
    body = seeded.client.get("/v1/metrics", params=CUSTOM, headers=seeded.headers("rita")).json()
    assert body["time_zone"] == "America/New_York"
    assert (body["total"]["leads"], body["total"]["within_5_min"]) == (1, 1)


def test_metrics_default_period_is_today_and_managers_only(seeded: Seeded) -> None:
    body = seeded.client.get("/v1/metrics", headers=seeded.headers("mia")).json()
    assert body["period"]["name"] == "today"
    assert body["total"]["leads"] == 0
    assert body["total"]["contact_rate"] is None
    assert body["total"]["weakest_link"] is None
    assert seeded.client.get("/v1/metrics", headers=seeded.headers("ana")).status_code == 403
    key = {"Authorization": f"Bearer {seeded.api_key}"}
    assert seeded.client.get("/v1/metrics", headers=key).status_code == 403
    assert seeded.client.get("/v1/metrics").status_code == 401


@pytest.mark.parametrize(
    ("params", "param", "words"),
    [
        ({"period": "year"}, "period", "today"),
        ({"group_by": "colour"}, "group_by", "agent"),
        ({"period": "custom", "end": "2026-03-10"}, "start", "required"),
        ({"period": "custom", "start": "2026-03-10"}, "end", "required"),
        ({"period": "custom", "start": "2026-03-10T09:00", "end": "2026-03-11"}, "start", "offset"),
        ({"period": "custom", "start": "yesterday", "end": "2026-03-11"}, "start", "not a date"),
        ({"period": "custom", "start": "2026-03-10", "end": "2026-03-01"}, "end", "after start"),
        ({"period": "custom", "start": "1999-03-10", "end": "2026-03-01"}, "start", "2000"),
        ({"period": "custom", "start": "2020-01-01", "end": "2026-03-01"}, "end", "at most"),
        ({"period": "week", "start": "2026-03-10"}, "start", "only a custom period"),
    ],
)
def test_bad_parameters_are_named(
    seeded: Seeded, params: dict[str, str], param: str, words: str
) -> None:
    response = seeded.client.get("/v1/metrics", params=params, headers=seeded.headers("mia"))
    assert response.status_code == 422
    problems = " ".join(response.json()["problems"])
    assert problems.startswith(f"query.{param}")
    assert words in problems


def test_calendar_periods_follow_the_store_zone() -> None:
    # 2026-03-11 03:00 UTC is still Tuesday the 10th in Chicago.
    now = datetime(2026, 3, 11, 3, 0, tzinfo=ZoneInfo("UTC"))
    today = resolve_period("today", None, None, CHICAGO, now)
    assert (today.start, today.end) == (at(10, 0, 0), at(11, 0, 0))
    week = resolve_period("week", None, None, CHICAGO, now)
    assert (week.start, week.end) == (at(9, 0, 0), at(16, 0, 0))
    month = resolve_period("month", None, None, CHICAGO, now)
    assert month.start == at(1, 0, 0)
    assert month.end == datetime(2026, 4, 1, tzinfo=CHICAGO)
    exact = resolve_period(
        "custom", "2026-03-10T08:00:00Z", "2026-03-10T09:00:00+00:00", CHICAGO, now
    )
    assert exact.end - exact.start == timedelta(hours=1)
    with pytest.raises(MetricsParamError, match="period"):
        resolve_period("fortnight", None, None, CHICAGO, now)
