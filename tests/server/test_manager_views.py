"""The manager view's routes: queue health, calls to review, QA scorecards as notes."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from app.domain.activities import ActivityKind, Direction, DispositionFlag
from server.db import transaction, utcnow
from tests.server.conftest import Seeded
from tests.server.test_floor import add_activity, add_lead, sessions

__all__ = ["sessions"]

SCORES = {
    "greeting": 5,
    "needs_assessment": 4,
    "product_knowledge": 4,
    "objection_handling": 3,
    "appointment_setting": 5,
    "crm_notes": 2,
}


def test_queue_health_lists_unworked_leads_breached_first(
    seeded: Seeded, sessions: sessionmaker[Session]
) -> None:
    now = utcnow()
    with transaction(sessions) as session:
        later = add_lead(session, "lakeside", now, agent="user-ana", name=("Later", "Due"))
        later.due_at = now + timedelta(minutes=4)
        breached = add_lead(
            session, "lakeside", now - timedelta(hours=1), agent="user-ben", name=("Long", "Late")
        )
        breached.due_at = now - timedelta(minutes=50)
        worked = add_lead(session, "lakeside", now, agent="user-ana", name=("Was", "Called"))
        worked.due_at = now + timedelta(minutes=3)
        worked.first_attempt_at = now
        spam = add_lead(session, "lakeside", now, spam=True, name=("Spam", "Bot"))
        spam.grade = "D"
        other = add_lead(session, "riverside", now, agent="user-zed", name=("Other", "Store"))
        other.due_at = now
    response = seeded.client.get("/v1/queue-health", headers=seeded.headers("mia"))
    assert response.status_code == 200, response.text
    leads = response.json()["leads"]
    assert [lead["customer_name"] for lead in leads] == ["Long Late", "Later Due"]
    first = leads[0]
    assert first["assigned_agent_name"] == "Ben"
    assert first["seconds_left"] < -2900
    assert 0 < leads[1]["seconds_left"] <= 240
    assert seeded.client.get("/v1/queue-health", headers=seeded.headers("ana")).status_code == 403


def _call_with_outcome(sessions: sessionmaker[Session]) -> tuple[str, str]:
    now = utcnow()
    with transaction(sessions) as session:
        lead = add_lead(session, "lakeside", now - timedelta(minutes=30), agent="user-ana")
        call = add_activity(
            session,
            lead,
            ActivityKind.CALL,
            now - timedelta(minutes=20),
            "user-ana",
            direction=Direction.OUTBOUND,
            answered=True,
            duration_s=254,
        )
        add_activity(
            session,
            lead,
            ActivityKind.DISPOSITION,
            now - timedelta(minutes=16),
            "user-ana",
            disposition="appointment_set",
            flags=DispositionFlag.ATTEMPT
            | DispositionFlag.HUMAN_CONTACT
            | DispositionFlag.APPOINTMENT_SET,
            scheduled_for=now + timedelta(days=1),
        )
    return lead.id, call.id


def test_calls_listing_has_agent_duration_and_outcome(
    seeded: Seeded, sessions: sessionmaker[Session]
) -> None:
    lead_id, call_id = _call_with_outcome(sessions)
    response = seeded.client.get("/v1/review/calls?period=today", headers=seeded.headers("mia"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert [c["key"] for c in body["criteria"]] == list(SCORES)
    (row,) = body["calls"]
    assert row["call_id"] == call_id
    assert row["lead_id"] == lead_id
    assert row["customer_name"] == "Dana Reyes"
    assert row["agent_name"] == "Ana"
    assert row["duration_s"] == 254
    assert row["outcome"] == "Appointment set"
    assert row["recording_url"] is None
    assert row["scorecard"] is None
    only_ben = seeded.client.get(
        "/v1/review/calls?agent_id=user-ben", headers=seeded.headers("mia")
    )
    assert only_ben.json()["calls"] == []


def test_a_scorecard_is_a_note_in_the_agents_history_and_shows_on_the_call(
    seeded: Seeded, sessions: sessionmaker[Session]
) -> None:
    lead_id, call_id = _call_with_outcome(sessions)
    card_id = str(uuid.uuid4())
    body = {
        "id": card_id,
        "call_id": call_id,
        "scores": SCORES,
        "comments": {"crm_notes": "No notes after the call", "greeting": "Warm, used her name"},
        "summary": "Good call; log the trade-in next time.",
    }
    headers = seeded.headers("mia")
    saved = seeded.client.post("/v1/review/scorecards", json=body, headers=headers)
    assert saved.status_code == 201, saved.text
    card = saved.json()
    assert card["total"] == 23
    assert card["max"] == 30
    assert card["scores"] == SCORES
    assert card["comments"]["crm_notes"] == "No notes after the call"
    assert card["reviewer"] == "Mia"
    assert card["agent_id"] == "user-ana"
    # A retry is the same scorecard, recorded once.
    again = seeded.client.post("/v1/review/scorecards", json=body, headers=headers)
    assert again.status_code == 200
    assert again.json() == card
    # The agent sees it in the lead's history.
    detail = seeded.client.get(f"/v1/leads/{lead_id}", headers=seeded.headers("ana")).json()
    notes = [a for a in detail["activities"] if a["id"] == card_id]
    assert len(notes) == 1
    assert notes[0]["kind"] == "note"
    assert notes[0]["body"].startswith("QA scorecard · 23/30")
    assert "Greeting & professionalism: 5/5 — Warm, used her name" in notes[0]["body"]
    # The call listing and the agent's scorecards show it.
    listed = seeded.client.get("/v1/review/calls", headers=headers).json()["calls"][0]
    assert listed["scorecard"]["id"] == card_id
    cards = seeded.client.get("/v1/review/scorecards?agent_id=user-ana", headers=headers).json()[
        "scorecards"
    ]
    assert [c["id"] for c in cards] == [card_id]


def test_a_bad_scorecard_is_refused_naming_the_field(
    seeded: Seeded, sessions: sessionmaker[Session]
) -> None:
    _lead_id, call_id = _call_with_outcome(sessions)
    headers = seeded.headers("mia")
    bad = seeded.client.post(
        "/v1/review/scorecards",
        json={"call_id": call_id, "scores": {**SCORES, "objection_handling": 6}},
        headers=headers,
    )
    assert bad.status_code == 422
    assert "scores.objection_handling" in bad.json()["detail"]
    missing = seeded.client.post(
        "/v1/review/scorecards", json={"call_id": "nope", "scores": SCORES}, headers=headers
    )
    assert missing.status_code == 404
    # Another store's manager cannot review our call.
    other = seeded.client.post(
        "/v1/review/scorecards",
        json={"call_id": call_id, "scores": SCORES},
        headers=seeded.headers("rita"),
    )
    assert other.status_code == 404
