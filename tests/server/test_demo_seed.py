"""`bdc-server seed-demo`: a seeded database is a working lead API for the demo users — on SQLite
and PostgreSQL — the same each time, and seeding twice changes nothing."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from server.app import create_app
from server.cli import main
from server.db import (
    ActivityRow,
    ChangeRow,
    JobRow,
    LeadRow,
    RawPayloadRow,
    UserRow,
    make_engine,
    make_sessionmaker,
    transaction,
)
from server.demo_seed import DEMO_PASSWORD, DEMO_USERS, seed_demo
from server.migrate import upgrade
from server.settings import Settings

# A Tuesday afternoon in Chicago: the store is open, agents are on the floor.
NOW = datetime(2026, 3, 10, 20, 30, tzinfo=UTC)
COUNT = 40


def _seed(db_url: str, count: int = COUNT) -> Any:
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        return seed_demo(make_sessionmaker(engine), count, now=NOW)
    finally:
        engine.dispose()


def _client(db_url: str) -> TestClient:
    return TestClient(create_app(Settings(db_url=db_url, run_scheduler=False)))


def _sign_in(client: TestClient, username: str) -> dict[str, str]:
    response = client.post("/v1/auth/token", json={"username": username, "password": DEMO_PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def _all_leads(client: TestClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    leads: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 50}
        if cursor:
            params["cursor"] = cursor
        response = client.get("/v1/leads", params=params, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        leads += page["leads"]
        cursor = page["next_cursor"]
        if cursor is None:
            return leads


def _all_changes(client: TestClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    changes: list[dict[str, Any]] = []
    since = 0
    while True:
        response = client.get("/v1/changes", params={"since": since}, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        changes += page["changes"]
        since = page["next_cursor"]
        if not page["has_more"]:
            return changes


def test_a_seeded_server_serves_the_demo_agents_leads_and_changes(db_url: str) -> None:
    summary = _seed(db_url)
    assert not summary.already_seeded
    assert summary.per_store["lakeside"] + summary.per_store["evanston"] >= COUNT - 3

    with _client(db_url) as client:
        ana = _sign_in(client, "ana")
        leads = _all_leads(client, ana)
        assert leads, "the demo agent sees no lead"
        assert {lead["assigned_agent_id"] for lead in leads} <= {"agent-ana", None}
        assert any(lead["assigned_agent_id"] == "agent-ana" for lead in leads)
        ids = {lead["id"] for lead in leads}

        # The change feed holds every one of her leads, each with its history.
        changes = _all_changes(client, ana)
        fed = {c["entity_id"] for c in changes if c["entity"] == "lead"}
        assert ids <= fed
        activity_leads = {c["data"]["lead_id"] for c in changes if c["entity"] == "activity"}
        assert ids <= activity_leads

        detail = client.get(f"/v1/leads/{next(iter(ids))}", headers=ana)
        assert detail.status_code == 200, detail.text
        assert detail.json()["activities"], "a demo lead without history"

        # The manager sees the whole store, varied; nothing of the other store.
        morgan = _sign_in(client, "morgan")
        store = _all_leads(client, morgan)
        assert ids < {lead["id"] for lead in store}
        assert {lead["lead"]["store_id"] for lead in store} == {"lakeside"}
        assert len({lead["lead"]["source"]["name"] for lead in store}) >= 4
        assert len({lead["tier"] for lead in store}) >= 3
        assert len({lead["status"] for lead in store}) >= 3
        assert len({lead["assigned_agent_id"] for lead in store}) >= 4  # round robin
        gus = _sign_in(client, "gus")
        assert {lead["lead"]["store_id"] for lead in _all_leads(client, gus)} == {"evanston"}

        # The printed demo users all sign in.
        for user in DEMO_USERS:
            _sign_in(client, user.username)


def test_every_lead_went_through_intake_routing_and_the_scheduler(db_url: str) -> None:
    _seed(db_url)
    engine = make_engine(db_url)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            leads = session.scalars(select(LeadRow)).all()
            payloads = session.scalars(select(RawPayloadRow)).all()
            accepted = {p.lead_ids for p in payloads if p.outcome == "accepted"}
            assert {lead.id for lead in leads} <= accepted  # raw payload kept for each
            assert all(lead.due_at is not None for lead in leads)
            kinds = Counter(session.scalars(select(ActivityRow.kind)))
            for kind in ("score_change", "assignment", "call", "disposition", "email"):
                assert kinds[kind] > 0, kind
            jobs = Counter(
                (kind, done is not None)
                for kind, done in session.execute(select(JobRow.kind, JobRow.done_at))
            )
            assert jobs[("ack_email", True)] > 0
            assert jobs[("escalate", True)] > 0
            assert jobs[("send_message", True)] > 0
            # Changes for every lead (the workstation's initial sync reads them).
            changed = set(
                session.scalars(select(ChangeRow.entity_id).where(ChangeRow.entity == "lead"))
            )
            assert {lead.id for lead in leads} <= changed
    finally:
        engine.dispose()


def _fingerprint(db_url: str) -> list[tuple[Any, ...]]:
    engine = make_engine(db_url)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            rows = session.execute(
                select(
                    LeadRow.id,
                    LeadRow.store_id,
                    LeadRow.status,
                    LeadRow.assigned_agent_id,
                    LeadRow.score,
                    LeadRow.grade,
                    LeadRow.received_at,
                    LeadRow.phone_e164,
                ).order_by(LeadRow.id)
            ).all()
            counts = session.execute(
                select(ActivityRow.lead_id, ActivityRow.kind, func.count())
                .group_by(ActivityRow.lead_id, ActivityRow.kind)
                .order_by(ActivityRow.lead_id, ActivityRow.kind)
            ).all()
        return [tuple(r) for r in rows] + [tuple(c) for c in counts]
    finally:
        engine.dispose()


def test_the_same_now_gives_the_same_demo(tmp_path: Any) -> None:
    first, second = (f"sqlite:///{tmp_path / name}" for name in ("a.db", "b.db"))
    _seed(first, 25)
    _seed(second, 25)
    assert _fingerprint(first) == _fingerprint(second)


def test_seeding_twice_changes_nothing(db_url: str) -> None:
    _seed(db_url, 12)
    before = _fingerprint(db_url)
    again = _seed(db_url, 12)
    assert again.already_seeded
    assert "nothing was changed" in str(again)
    assert _fingerprint(db_url) == before


def test_command_prints_users_password_and_a_working_api_key(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["seed-demo", "--db", db_url, "--leads", "8"]) == 0
    out = capsys.readouterr().out
    assert DEMO_PASSWORD in out
    for user in DEMO_USERS:
        assert user.username in out
    key = next(word for word in out.split() if word.startswith("bdck_"))
    with _client(db_url) as client:
        response = client.post(
            "/v1/leads",
            json={"person": {"first_name": "Kai"}, "phones": [{"number": "(312) 555-0199"}]},
            headers={"Authorization": f"Bearer {key}", "Idempotency-Key": str(uuid.uuid4())},
        )
        assert response.status_code == 201, response.text
    assert main(["seed-demo", "--db", db_url]) == 0
    assert "already in this database" in capsys.readouterr().out


def test_command_refuses_a_database_whose_usernames_clash(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    upgrade(db_url)
    store = [
        "--id",
        "own",
        "--name",
        "Own",
        "--time-zone",
        "America/Chicago",
        "--state",
        "IL",
        "--zip",
        "60614",
    ]
    assert main(["create-store", "--db", db_url, *store]) == 0
    user = ["--username", "ana", "--password", "pw-1234567", "--role", "agent", "--store", "own"]
    assert main(["create-user", "--db", db_url, *user]) == 0
    capsys.readouterr()
    assert main(["seed-demo", "--db", db_url, "--leads", "5"]) == 1
    assert "ana" in capsys.readouterr().err
    engine = make_engine(db_url)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            assert session.scalar(select(func.count()).select_from(LeadRow)) == 0
            assert session.scalar(select(func.count()).select_from(UserRow)) == 1
    finally:
        engine.dispose()
