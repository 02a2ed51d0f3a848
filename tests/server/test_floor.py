"""Presence (state, heartbeat, timeout, sign-out) and the managers' floor view."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.domain.activities import (
    Activity,
    ActivityKind,
    AppointmentStatus,
    Direction,
    DispositionFlag,
)
from app.domain.leads import Lead, LeadSource, Person, SourceType
from app.domain.phones import make_phone
from app.rulebook import load_rulebook
from server.auth import Principal, Role
from server.db import (
    ChangeRow,
    LeadRow,
    PresenceRow,
    make_engine,
    make_sessionmaker,
    transaction,
    utcnow,
)
from server.services import common, presence
from tests.server.conftest import Seeded

CHICAGO = ZoneInfo("America/Chicago")
ANA = Principal("user-ana", Role.AGENT, "lakeside", "ana")
BEN = Principal("user-ben", Role.AGENT, "lakeside", "ben")
TIMEOUT = timedelta(seconds=90)


# --- Helpers shared with the metrics and authorization tests --------------------------------------


@pytest.fixture
def sessions(seeded: Seeded) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(seeded.db_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def add_lead(
    session: Session,
    store_id: str,
    received_at: datetime,
    *,
    agent: str | None = None,
    source: str = "Cars.com",
    name: tuple[str, str] = ("Dana", "Reyes"),
    spam: bool = False,
    lead_id: str | None = None,
) -> LeadRow:
    lead = Lead(
        id=lead_id or str(uuid.uuid4()),
        store_id=store_id,
        received_at=received_at,
        person=Person(first_name=name[0], last_name=name[1]),
        source=LeadSource(source, SourceType.THIRD_PARTY),
        phones=(make_phone("(312) 555-0142"),),
        assigned_agent_id=agent,
        is_spam=spam,
    )
    return common.save_lead(session, None, lead)


def add_activity(
    session: Session, lead: LeadRow, kind: ActivityKind, at: datetime, agent: str | None, **kw: Any
) -> Activity:
    activity = Activity(
        id=str(uuid.uuid4()), lead_id=lead.id, kind=kind, at=at, agent_id=agent, **kw
    )
    common.add_activity(session, lead, activity)
    return activity


def call(session: Session, lead: LeadRow, at: datetime, agent: str, answered: bool) -> Activity:
    return add_activity(
        session,
        lead,
        ActivityKind.CALL,
        at,
        agent,
        direction=Direction.OUTBOUND,
        answered=answered,
        duration_s=120 if answered else None,
    )


def presence_changes(session: Session, user_id: str) -> list[ChangeRow]:
    return list(
        session.scalars(
            select(ChangeRow)
            .where(ChangeRow.entity == "presence", ChangeRow.entity_id == user_id)
            .order_by(ChangeRow.seq)
        )
    )


# --- Presence through the API ---------------------------------------------------------------------


def test_agent_sets_states_and_each_change_is_on_the_feed(
    seeded: Seeded, sessions: sessionmaker[Session]
) -> None:
    headers = seeded.headers("ana")
    first = seeded.client.post("/v1/presence", json={"state": "available"}, headers=headers)
    assert first.status_code == 200, first.text
    assert first.json()["state"] == "available"
    assert first.json()["heartbeat_timeout_s"] == 90
    paused = seeded.client.post(
        "/v1/presence", json={"state": "paused", "reason": "lunch"}, headers=headers
    )
    assert paused.json()["state"] == "paused"
    assert paused.json()["reason"] == "lunch"
    # The same state again is no change.
    seeded.client.post("/v1/presence", json={"state": "paused", "reason": "lunch"}, headers=headers)
    with sessions() as session:
        changes = presence_changes(session, "user-ana")
    assert [(c.data["previous_state"], c.data["state"], c.data["reason"]) for c in changes] == [
        ("offline", "available", ""),
        ("available", "paused", "lunch"),
    ]
    assert all(c.agent_id is None and c.store_id == "lakeside" for c in changes)


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"state": "paused"}, "reason", "required when paused"),
        ({"state": "paused", "reason": "nap"}, "reason", "lunch"),
        ({"state": "available", "reason": "lunch"}, "reason", "only a paused state"),
        ({"state": "wrap_up", "lead_id": "x"}, "lead_id", "only on_call"),
        ({"state": "asleep"}, "state", "available"),
        ({"state": "available", "mood": "good"}, "mood", "Extra inputs"),
        ({}, "state", "required"),
    ],
)
def test_bad_presence_is_refused_by_field_and_stores_nothing(
    seeded: Seeded,
    sessions: sessionmaker[Session],
    body: dict[str, Any],
    field: str,
    words: str,
) -> None:
    response = seeded.client.post("/v1/presence", json=body, headers=seeded.headers("ana"))
    assert response.status_code == 422
    problems = " ".join(response.json()["problems"])
    assert problems.startswith(field)
    assert words in problems
    with sessions() as session:
        assert session.get(PresenceRow, "user-ana") is None
        assert presence_changes(session, "user-ana") == []


def test_on_call_names_the_lead_and_refuses_other_stores_leads(
    seeded: Seeded, sessions: sessionmaker[Session]
) -> None:
    with transaction(sessions) as session:
        own = add_lead(session, "lakeside", utcnow(), name=("Dana", "Reyes")).id
        other = add_lead(session, "riverside", utcnow()).id
    headers = seeded.headers("ana")
    refused = seeded.client.post(
        "/v1/presence", json={"state": "on_call", "lead_id": other}, headers=headers
    )
    assert refused.status_code == 404
    answered = seeded.client.post(
        "/v1/presence", json={"state": "on_call", "lead_id": own}, headers=headers
    )
    assert answered.json()["lead_id"] == own
    floor = seeded.client.get("/v1/floor", headers=seeded.headers("mia")).json()
    ana = next(a for a in floor["agents"] if a["username"] == "ana")
    assert ana["state"] == "on_call"
    assert ana["lead"] == {"id": own, "customer_name": "Dana Reyes"}


def test_heartbeat_signs_in_once_then_changes_nothing(
    seeded: Seeded, sessions: sessionmaker[Session]
) -> None:
    headers = seeded.headers("ben")
    for _ in range(3):
        response = seeded.client.post("/v1/presence/heartbeat", headers=headers)
        assert response.status_code == 200
        assert response.json()["state"] == "available"
    with sessions() as session:
        assert len(presence_changes(session, "user-ben")) == 1


def test_presence_refuses_keys_and_missing_tokens(seeded: Seeded) -> None:
    key = {"Authorization": f"Bearer {seeded.api_key}"}
    assert seeded.client.post("/v1/presence/heartbeat", headers=key).status_code == 403
    assert seeded.client.post("/v1/presence/heartbeat").status_code == 401
    assert seeded.client.post("/v1/presence", json={"state": "available"}).status_code == 401


# --- Timeouts and sign-out (service level, fixed clocks) ------------------------------------------


def test_silent_agent_is_offline_on_read_and_mark_offline_records_it_once(
    seeded: Seeded, sessions: sessionmaker[Session]
) -> None:
    t0 = datetime(2026, 3, 10, 20, 0, tzinfo=ZoneInfo("UTC"))
    with transaction(sessions) as session:
        presence.set_state(session, ANA, "paused", reason="break", now=t0)
        presence.heartbeat(session, BEN, now=t0 + timedelta(seconds=60))
    with sessions() as session:
        row = session.get(PresenceRow, "user-ana")
        assert presence.effective(row, t0 + timedelta(seconds=89), TIMEOUT).state == "paused"
        gone = presence.effective(row, t0 + timedelta(seconds=200), TIMEOUT)
        assert (gone.state, gone.since) == ("offline", t0 + TIMEOUT)
        ids = presence.routable_agent_ids(session, "lakeside", t0 + timedelta(seconds=100), TIMEOUT)
        assert ids == ["user-ben"]  # ana paused, then silent; ben heard from 40 s ago
    with transaction(sessions) as session:
        assert presence.mark_offline(session, t0 + timedelta(seconds=100), TIMEOUT) == ["user-ana"]
    with transaction(sessions) as session:
        assert presence.mark_offline(session, t0 + timedelta(seconds=100), TIMEOUT) == []
        row = session.get(PresenceRow, "user-ana")
        assert (row.state, row.logged_in, row.since) == ("offline", False, t0 + TIMEOUT)
        changes = presence_changes(session, "user-ana")
        assert [c.data["state"] for c in changes] == ["paused", "offline"]
        # Coming back: the next heartbeat makes her available again, with a change.
        back = presence.heartbeat(session, ANA, now=t0 + timedelta(seconds=300))
        assert (back.state, back.logged_in) == ("available", True)
        assert len(presence_changes(session, "user-ana")) == 3


def test_sign_out_marks_offline_and_heartbeat_signs_back_in(
    seeded: Seeded, sessions: sessionmaker[Session]
) -> None:
    t0 = datetime(2026, 3, 10, 20, 0, tzinfo=ZoneInfo("UTC"))
    with transaction(sessions) as session:
        presence.set_state(session, ANA, "available", now=t0)
        assert presence.sign_out(session, "user-ana", now=t0 + timedelta(seconds=5)) is True
        assert presence.sign_out(session, "user-ana", now=t0 + timedelta(seconds=6)) is False
        assert presence.sign_out(session, "user-nobody") is False
        row = session.get(PresenceRow, "user-ana")
        assert presence.effective(row, t0 + timedelta(seconds=7), TIMEOUT).state == "offline"
        assert [c.data["state"] for c in presence_changes(session, "user-ana")] == [
            "available",
            "offline",
        ]


# --- The floor view -------------------------------------------------------------------------------


def test_floor_counts_todays_work_and_deadline_compliance(
    seeded: Seeded, sessions: sessionmaker[Session]
) -> None:
    rules = load_rulebook()
    # Tuesday 2026-03-10, 15:00 in Chicago: open 09:00-20:00, so the 5-minute rule applies.
    now = datetime(2026, 3, 10, 15, 0, tzinfo=CHICAGO)
    at = lambda h, m: datetime(2026, 3, 10, h, m, tzinfo=CHICAGO)  # noqa: E731
    with transaction(sessions) as session:
        met = add_lead(session, "lakeside", at(14, 0), agent="user-ana")
        late = add_lead(session, "lakeside", at(14, 10), agent="user-ana")
        add_lead(session, "lakeside", at(14, 58), agent="user-ana")  # due 15:03: not judged yet
        yesterday = add_lead(session, "lakeside", at(14, 0) - timedelta(days=1), agent="user-ana")
        call(session, met, at(14, 3), "user-ana", answered=True)
        add_activity(
            session,
            met,
            ActivityKind.APPOINTMENT,
            at(14, 6),
            "user-ana",
            appointment_status=AppointmentStatus.SET,
            scheduled_for=at(17, 0) + timedelta(days=1),
        )
        add_activity(
            session,
            met,
            ActivityKind.DISPOSITION,
            at(14, 7),
            "user-ana",
            disposition="appointment_set",
            flags=DispositionFlag.ATTEMPT
            | DispositionFlag.HUMAN_CONTACT
            | DispositionFlag.APPOINTMENT_SET,
        )
        call(session, late, at(14, 30), "user-ana", answered=False)
        call(session, yesterday, at(14, 5) - timedelta(days=1), "user-ana", answered=True)
        call(session, late, at(15, 30), "user-ana", answered=True)  # after `now`: not yet
        other = add_lead(session, "riverside", at(14, 0), agent="user-zed")
        call(session, other, at(14, 1), "user-zed", answered=True)
        presence.set_state(session, ANA, "wrap_up", now=now - timedelta(seconds=40))
        presence.heartbeat(session, Principal("user-zed", Role.AGENT, "riverside", "zed"), now=now)
    with sessions() as session:
        view = presence.floor(session, "lakeside", rules, now=now, timeout=TIMEOUT)
    assert view["server_time"] == now.isoformat()
    assert view["day"] == "2026-03-10"
    assert [a["username"] for a in view["agents"]] == ["ana", "ben"]
    ana, ben = view["agents"]
    assert ana["state"] == "wrap_up"
    assert ana["seconds_in_state"] == 40
    assert ana["today"] == {"calls": 2, "contacts": 1, "appointments": 1}
    assert ana["deadline_compliance"] == {"judged": 2, "met": 1, "rate": 0.5}
    assert ben["state"] == "offline"
    assert ben["since"] is None
    assert ben["today"] == {"calls": 0, "contacts": 0, "appointments": 0}
    assert ben["deadline_compliance"]["rate"] is None


def test_floor_is_for_managers_of_the_store_only(
    seeded: Seeded, sessions: sessionmaker[Session]
) -> None:
    seeded.client.post("/v1/presence/heartbeat", headers=seeded.headers("zed"))
    seeded.client.post("/v1/presence/heartbeat", headers=seeded.headers("ana"))
    for username in ("mia", "root"):
        view = seeded.client.get("/v1/floor", headers=seeded.headers(username))
        assert view.status_code == 200
        body = view.json()
        assert [a["username"] for a in body["agents"]] == ["ana", "ben"]
        assert body["agents"][0]["state"] == "available"
        assert body["time_zone"] == "America/Chicago"
        served = datetime.fromisoformat(body["server_time"])
        assert abs((served - utcnow()).total_seconds()) < 30
    riverside = seeded.client.get("/v1/floor", headers=seeded.headers("rita")).json()
    assert [a["username"] for a in riverside["agents"]] == ["zed"]
    assert seeded.client.get("/v1/floor", headers=seeded.headers("ana")).status_code == 403
    key = {"Authorization": f"Bearer {seeded.api_key}"}
    assert seeded.client.get("/v1/floor", headers=key).status_code == 403
    assert seeded.client.get("/v1/floor").status_code == 401


def test_floor_today_counts_calls_through_the_api(
    seeded: Seeded, sessions: sessionmaker[Session]
) -> None:
    now = utcnow()
    midnight, _ = presence.local_day_bounds(CHICAGO, now)
    when = max(midnight, now - timedelta(minutes=1))
    with transaction(sessions) as session:
        lead = add_lead(session, "lakeside", when - timedelta(seconds=1), agent="user-ben")
        call(session, lead, when, "user-ben", answered=True)
    body = seeded.client.get("/v1/floor", headers=seeded.headers("mia")).json()
    ben = next(a for a in body["agents"] if a["username"] == "ben")
    assert ben["today"] == {"calls": 1, "contacts": 1, "appointments": 0}
