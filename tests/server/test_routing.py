"""Who gets a new lead, through the API: round robin among agents who are signed in, on the floor
and not paused (never an inactive user), the unassigned pool when nobody is, claiming from the
pool, a manager's reassignment, and the deadline escalation (managers alerted; the lead moves to
another agent after Settings.reassign_after, or stays put when that is off)."""

from __future__ import annotations

import dataclasses
import itertools
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from server.app import create_app
from server.db import ActivityRow, JobRow, LeadRow, UserRow
from server.db import transaction as db_transaction
from server.scheduler import run_due_jobs
from tests.server.conftest import Seeded

# Tuesday 15:00 in Chicago: the store is open, a lead is due 5 minutes after it arrives.
T0 = datetime(2026, 3, 10, 20, 0, tzinfo=UTC)
_numbers = itertools.count(1)


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def clock(seeded: Seeded) -> Clock:
    pinned = Clock(T0)
    seeded.client.app.state.clock = pinned
    return pinned


@pytest.fixture
def tokens(seeded: Seeded) -> dict[str, dict[str, str]]:
    return {name: seeded.headers(name) for name in ("ana", "ben", "mia", "zed", "rita")}


def post_lead(seeded: Seeded) -> dict[str, Any]:
    n = next(_numbers)
    response = seeded.client.post(
        "/v1/leads",
        json={
            "person": {"first_name": "Buyer", "last_name": f"Number{n}"},
            "emails": [{"address": f"buyer{n}.{uuid.uuid4().hex[:6]}@example.com"}],
        },
        headers={"Authorization": f"Bearer {seeded.api_key}"},
    )
    assert response.status_code == 201, response.text
    lead = response.json()["leads"][0]
    assert lead["merged_into"] is None
    return dict(lead)


def heartbeat(seeded: Seeded, headers: dict[str, str]) -> None:
    response = seeded.client.post("/v1/presence/heartbeat", headers=headers)
    assert response.status_code == 200, response.text


def set_state(seeded: Seeded, headers: dict[str, str], state: str, **extra: Any) -> None:
    response = seeded.client.post("/v1/presence", json={"state": state, **extra}, headers=headers)
    assert response.status_code == 200, response.text


def changes(seeded: Seeded, headers: dict[str, str], entity: str) -> list[dict[str, Any]]:
    response = seeded.client.get("/v1/changes", params={"limit": 1000}, headers=headers)
    assert response.status_code == 200, response.text
    return [c for c in response.json()["changes"] if c["entity"] == entity]


def assignments(seeded: Seeded, lead_id: str) -> list[str]:
    with seeded.client.app.state.sessions() as session:
        rows = session.scalars(
            select(ActivityRow)
            .where(ActivityRow.lead_id == lead_id, ActivityRow.kind == "assignment")
            .order_by(ActivityRow.recorded_at)
        ).all()
        return [str(r.data.get("body", "")) for r in rows]


def owner(seeded: Seeded, lead_id: str) -> str | None:
    with seeded.client.app.state.sessions() as session:
        row = session.get(LeadRow, lead_id)
        assert row is not None
        return row.assigned_agent_id


# --- Round robin ----------------------------------------------------------------------------------


def test_round_robin_takes_turns_among_available_agents(
    seeded: Seeded, clock: Clock, tokens: dict[str, dict[str, str]]
) -> None:
    heartbeat(seeded, tokens["ana"])
    heartbeat(seeded, tokens["ben"])
    got = [post_lead(seeded)["assigned_agent_id"] for _ in range(6)]
    assert set(got[:2]) == {"user-ana", "user-ben"}
    assert got == got[:2] * 3, got  # strictly alternating
    lead = post_lead(seeded)
    assert assignments(seeded, lead["lead_id"]) == [
        f"Assigned to {'Ana' if lead['assigned_agent_id'] == 'user-ana' else 'Ben'} (round robin)"
    ]
    # Managers and admins are never in the rotation, and other stores' agents never.
    heartbeat(seeded, tokens["mia"])
    heartbeat(seeded, tokens["zed"])
    assert {post_lead(seeded)["assigned_agent_id"] for _ in range(4)} == {"user-ana", "user-ben"}


def test_the_leads_of_one_document_take_turns_too(
    seeded: Seeded, clock: Clock, tokens: dict[str, dict[str, str]]
) -> None:
    heartbeat(seeded, tokens["ana"])
    heartbeat(seeded, tokens["ben"])
    document = [
        {
            "person": {"first_name": "Buyer", "last_name": f"Batch{n}"},
            "emails": [{"address": f"batch{n}.{uuid.uuid4().hex[:6]}@example.com"}],
        }
        for n in range(6)
    ]
    response = seeded.client.post(
        "/v1/leads", json=document, headers={"Authorization": f"Bearer {seeded.api_key}"}
    )
    assert response.status_code == 201, response.text
    got = Counter(lead["assigned_agent_id"] for lead in response.json()["leads"])
    assert got == {"user-ana": 3, "user-ben": 3}


def test_paused_offline_signed_out_and_inactive_agents_get_no_lead(
    seeded: Seeded, clock: Clock, tokens: dict[str, dict[str, str]]
) -> None:
    heartbeat(seeded, tokens["ana"])
    heartbeat(seeded, tokens["ben"])
    set_state(seeded, tokens["ben"], "paused", reason="lunch")
    assert {post_lead(seeded)["assigned_agent_id"] for _ in range(3)} == {"user-ana"}

    set_state(seeded, tokens["ben"], "available")
    assert post_lead(seeded)["assigned_agent_id"] == "user-ben"  # his turn came first

    # On a call or wrapping up still takes leads (the queue holds them); inactive never does.
    set_state(seeded, tokens["ben"], "wrap_up")
    with db_transaction(seeded.client.app.state.sessions) as session:
        session.execute(update(UserRow).where(UserRow.id == "user-ben").values(active=False))
    assert {post_lead(seeded)["assigned_agent_id"] for _ in range(3)} == {"user-ana"}

    # Silent past the heartbeat timeout: offline, so the pool.
    clock.at += seeded.client.app.state.settings.heartbeat_timeout + timedelta(seconds=1)
    assert post_lead(seeded)["assigned_agent_id"] is None
    heartbeat(seeded, tokens["ana"])
    assert post_lead(seeded)["assigned_agent_id"] == "user-ana"

    # Signing out leaves the floor at once.
    response = seeded.client.post("/v1/auth/revoke", headers=tokens["ana"])
    assert response.status_code == 204
    assert post_lead(seeded)["assigned_agent_id"] is None


def test_signing_out_on_one_pc_keeps_the_agent_signed_in_on_another(
    seeded: Seeded, clock: Clock
) -> None:
    first, second = seeded.headers("ana"), seeded.headers("ana")
    heartbeat(seeded, first)
    assert seeded.client.post("/v1/auth/revoke", headers=first).status_code == 204
    assert post_lead(seeded)["assigned_agent_id"] == "user-ana"
    assert seeded.client.post("/v1/auth/revoke", headers=second).status_code == 204
    assert post_lead(seeded)["assigned_agent_id"] is None


# --- The pool and claiming ------------------------------------------------------------------------


def test_with_nobody_on_the_floor_leads_wait_in_the_pool_and_one_agent_claims(
    seeded: Seeded, clock: Clock, tokens: dict[str, dict[str, str]]
) -> None:
    lead_id = post_lead(seeded)["lead_id"]
    assert owner(seeded, lead_id) is None

    def pool(name: str) -> set[str]:
        response = seeded.client.get("/v1/leads", params={"assigned": "pool"}, headers=tokens[name])
        assert response.status_code == 200, response.text
        return {lead["id"] for lead in response.json()["leads"]}

    assert lead_id in pool("ana") and lead_id in pool("ben")
    assert lead_id not in pool("zed")  # another store's pool
    claimed = seeded.client.post(f"/v1/leads/{lead_id}/claim", headers=tokens["ana"])
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["assigned_agent_id"] == "user-ana"
    late = seeded.client.post(f"/v1/leads/{lead_id}/claim", headers=tokens["ben"])
    assert late.status_code == 409
    assert "Ana" in late.json()["detail"]
    assert seeded.client.get(f"/v1/leads/{lead_id}", headers=tokens["ben"]).status_code == 404
    assert lead_id not in pool("ben")


# --- A manager reassigns --------------------------------------------------------------------------


def test_a_manager_reassigns_and_the_previous_agent_is_told(
    seeded: Seeded, clock: Clock, tokens: dict[str, dict[str, str]]
) -> None:
    heartbeat(seeded, tokens["ana"])
    lead_id = post_lead(seeded)["lead_id"]
    assert owner(seeded, lead_id) == "user-ana"

    def assign(agent_id: str | None, who: str = "mia") -> Any:
        return seeded.client.post(
            f"/v1/leads/{lead_id}/assign", json={"agent_id": agent_id}, headers=tokens[who]
        )

    moved = assign("user-ben")
    assert moved.status_code == 200, moved.text
    assert moved.json()["assigned_agent_id"] == "user-ben"
    assert lead_id in {c["entity_id"] for c in changes(seeded, tokens["ana"], "lead_removed")}
    assert seeded.client.get(f"/v1/leads/{lead_id}", headers=tokens["ben"]).status_code == 200
    assert assignments(seeded, lead_id)[-1] == "Assigned to Ben (was Ana): reassigned by mia"

    for bad in ("user-zed", "user-mia", "user-nobody"):  # other store, not an agent, unknown
        refused = assign(bad)
        assert refused.status_code == 422, refused.text
        assert "agent_id" in refused.json()["problems"][0]
    assert owner(seeded, lead_id) == "user-ben"

    assert assign(None).json()["assigned_agent_id"] is None  # back to the pool
    assert assign("user-ana", who="ana").status_code == 403
    assert assign("user-zed", who="rita").status_code == 404  # another store's lead


# --- Deadline escalation --------------------------------------------------------------------------


def run_jobs(seeded: Seeded, at: datetime) -> int:
    return run_due_jobs(seeded.client.app, at, f"test-{uuid.uuid4().hex[:6]}")


def job_results(seeded: Seeded, lead_id: str) -> list[str]:
    with seeded.client.app.state.sessions() as session:
        rows = session.scalars(
            select(JobRow)
            .where(JobRow.lead_id == lead_id, JobRow.kind == "escalate")
            .order_by(JobRow.id)
        ).all()
        return [r.result for r in rows]


def test_an_untouched_lead_alerts_managers_then_moves_to_another_agent(
    seeded: Seeded, clock: Clock, tokens: dict[str, dict[str, str]]
) -> None:
    heartbeat(seeded, tokens["ana"])
    heartbeat(seeded, tokens["ben"])
    lead = post_lead(seeded)
    lead_id, first = lead["lead_id"], lead["assigned_agent_id"]
    other = {"user-ana": "user-ben", "user-ben": "user-ana"}[first]
    due = datetime.fromisoformat(lead["due_at"])
    assert due == T0 + timedelta(minutes=5)

    clock.at = due - timedelta(seconds=1)
    run_jobs(seeded, clock.at)
    assert job_results(seeded, lead_id) == [""]  # not due yet: untouched

    clock.at = due + timedelta(minutes=1)
    heartbeat(seeded, tokens["ana"])
    heartbeat(seeded, tokens["ben"])
    run_jobs(seeded, clock.at)
    assert job_results(seeded, lead_id)[0].startswith("alerted")
    alerts = [c for c in changes(seeded, tokens["mia"], "alert") if c["entity_id"] == lead_id]
    assert [a["data"]["action"] for a in alerts] == ["alerted"]
    assert not changes(seeded, tokens["ana"], "alert")  # for managers
    assert not changes(seeded, tokens["rita"], "alert")  # another store's manager
    assert owner(seeded, lead_id) == first

    reassign_after = seeded.client.app.state.settings.reassign_after
    clock.at = due + reassign_after
    heartbeat(seeded, tokens["ana"])
    heartbeat(seeded, tokens["ben"])
    run_jobs(seeded, clock.at)
    assert owner(seeded, lead_id) == other
    assert job_results(seeded, lead_id)[-1].startswith("reassigned")
    assert assignments(seeded, lead_id)[-1].endswith(
        f"no attempt {int(reassign_after.total_seconds() // 60)} min past due"
    )
    first_name = "ana" if first == "user-ana" else "ben"
    removed = changes(seeded, tokens[first_name], "lead_removed")
    assert lead_id in {c["entity_id"] for c in removed}
    actions = [
        c["data"]["action"]
        for c in changes(seeded, tokens["mia"], "alert")
        if c["entity_id"] == lead_id
    ]
    assert actions == ["alerted", "reassigned"]


def test_a_lead_its_agent_called_in_time_does_not_escalate(
    seeded: Seeded, clock: Clock, tokens: dict[str, dict[str, str]]
) -> None:
    heartbeat(seeded, tokens["ana"])
    lead = post_lead(seeded)
    assert lead["assigned_agent_id"] == "user-ana"
    clock.at = T0 + timedelta(minutes=2)
    call = {
        "id": str(uuid.uuid4()),
        "lead_id": lead["lead_id"],
        "kind": "call",
        "at": clock.at.isoformat(),
        "direction": "outbound",
        "answered": False,
    }
    headers = {**tokens["ana"], "Idempotency-Key": str(uuid.uuid4())}
    assert seeded.client.post("/v1/activities", json=call, headers=headers).status_code == 201
    clock.at = T0 + timedelta(minutes=30)
    run_jobs(seeded, clock.at)
    assert job_results(seeded, lead["lead_id"]) == ["none: an agent already attempted contact"]
    assert not changes(seeded, tokens["mia"], "alert")
    assert owner(seeded, lead["lead_id"]) == "user-ana"


@pytest.fixture
def notify_only(seeded: Seeded, clock: Clock) -> Iterator[TestClient]:
    """A second app on the same database with reassignment switched off."""
    settings = dataclasses.replace(seeded.client.app.state.settings, reassign_after=None)
    with TestClient(create_app(settings)) as client:
        client.app.state.clock = clock  # type: ignore[attr-defined]
        yield client


def test_with_reassignment_off_managers_are_alerted_and_the_lead_stays(
    seeded: Seeded, clock: Clock, tokens: dict[str, dict[str, str]], notify_only: TestClient
) -> None:
    heartbeat(seeded, tokens["ana"])
    heartbeat(seeded, tokens["ben"])
    lead = post_lead(seeded)
    clock.at = datetime.fromisoformat(lead["due_at"]) + timedelta(hours=2)
    heartbeat(seeded, tokens["ana"])
    heartbeat(seeded, tokens["ben"])
    run_due_jobs(notify_only.app, clock.at, "notify-only")
    assert owner(seeded, lead["lead_id"]) == lead["assigned_agent_id"]
    assert job_results(seeded, lead["lead_id"]) == ["alerted: no attempt by the deadline"]
    alerts = changes(seeded, tokens["mia"], "alert")
    assert [a["data"]["action"] for a in alerts] == ["alerted"]
