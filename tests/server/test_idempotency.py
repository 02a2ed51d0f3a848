"""Idempotency-Key: replay byte for byte, 422 on a different body, 409 while in flight, a failed
request frees its key, keys are per principal, and concurrent duplicates run the handler once."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from server.app import create_app
from server.auth import STAFF, Principal, authorize, rule
from server.db import (
    ActivityRow,
    IdempotencyRow,
    LeadRow,
    make_engine,
    make_sessionmaker,
    transaction,
    utcnow,
)
from server.idempotency import IN_FLIGHT, Claimed, InFlight, claim, prune, request_hash
from server.migrate import upgrade
from server.settings import Settings
from tests.server.conftest import PASSWORD, seed_stores_and_users
from tests.server.test_floor import add_lead


@dataclass
class Probe:
    """A test route's record of how often it really ran."""

    calls: int = 0
    fail_next: int = 0  # answer this many 500s first
    delay: threading.Event | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class World:
    client: TestClient
    sessions: Any
    probe: Probe
    lead_id: str

    def headers(self, username: str, key: str | None = None) -> dict[str, str]:
        token = self.client.post(
            "/v1/auth/token", json={"username": username, "password": PASSWORD}
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        return headers

    def count(self, model: Any) -> int:
        with self.sessions() as session:
            return int(session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.fixture
def world(db_url: str) -> Iterator[World]:
    upgrade(db_url)
    seed_stores_and_users(db_url)
    app = create_app(Settings(db_url=db_url, run_scheduler=False))
    probe = Probe()

    @app.post("/v1/test/echo", status_code=201, **rule(*STAFF))
    def echo(
        body: dict[str, Any], principal: Principal = Depends(authorize(*STAFF))
    ) -> JSONResponse:
        with probe.lock:
            probe.calls += 1
            n = probe.calls
            failing = probe.fail_next > 0
            probe.fail_next -= 1 if failing else 0
        if probe.delay is not None:
            probe.delay.wait(10)
        if failing:
            return JSONResponse({"detail": "gateway down"}, status_code=503)
        return JSONResponse({"call": n, "who": principal.name, "echo": body}, status_code=201)

    @app.delete("/v1/test/crash", **rule(*STAFF))
    def crash(request: Request, principal: Principal = Depends(authorize(*STAFF))) -> None:
        probe.calls += 1
        raise RuntimeError("boom")

    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    with transaction(sessions) as session:
        lead_id = add_lead(
            session, "lakeside", utcnow() - timedelta(minutes=5), agent="user-ana"
        ).id
    with TestClient(app, raise_server_exceptions=False) as client:
        yield World(client, sessions, probe, lead_id)
    engine.dispose()


def _activity(lead_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "lead_id": lead_id,
        "kind": "note",
        "at": datetime.now(UTC).isoformat(),
        "body": "asked about trade-in value",
        **extra,
    }


def test_a_retry_replays_the_first_response_byte_for_byte(world: World) -> None:
    headers = world.headers("ana", "retry-1")
    body = _activity(world.lead_id)
    first = world.client.post("/v1/activities", json=body, headers=headers)
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    again = world.client.post("/v1/activities", json=body, headers=headers)
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    assert again.headers["content-type"] == "application/json"
    # The activity was appended once: one note (plus its score change), no second run.
    with world.sessions() as session:
        notes = session.scalar(
            select(func.count()).select_from(ActivityRow).where(ActivityRow.kind == "note")
        )
        assert notes == 1
        assert session.get(LeadRow, world.lead_id).version == 2  # type: ignore[union-attr]


def test_same_key_with_another_body_is_refused_and_stores_nothing(world: World) -> None:
    headers = world.headers("ana", "conflict-1")
    assert world.client.post(
        "/v1/activities", json=_activity(world.lead_id), headers=headers
    ).is_success
    before = world.count(ActivityRow)
    other = world.client.post("/v1/activities", json=_activity(world.lead_id), headers=headers)
    assert other.status_code == 422
    assert "conflict-1" in other.json()["detail"]
    assert "different request" in other.json()["detail"]
    assert world.count(ActivityRow) == before
    # The same key on another path is a different request too.
    elsewhere = world.client.post("/v1/test/echo", json={}, headers=headers)
    assert elsewhere.status_code == 422


def test_keys_belong_to_their_principal(world: World) -> None:
    ana = world.client.post(
        "/v1/test/echo", json={"x": 1}, headers=world.headers("ana", "shared-key")
    )
    mia = world.client.post(
        "/v1/test/echo", json={"x": 1}, headers=world.headers("mia", "shared-key")
    )
    assert (ana.json()["who"], mia.json()["who"]) == ("ana", "mia")
    assert "idempotent-replayed" not in mia.headers
    assert world.probe.calls == 2
    # A new token of the same user still replays: the key is the user's, not the token's.
    again = world.client.post(
        "/v1/test/echo", json={"x": 1}, headers=world.headers("ana", "shared-key")
    )
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == ana.json()
    assert world.probe.calls == 2


def test_a_key_still_in_flight_gets_409_until_its_request_ends(world: World) -> None:
    headers = world.headers("ana", "slow-1")
    world.probe.delay = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(world.client.post, "/v1/test/echo", json={"n": 1}, headers=headers)
        deadline = datetime.now(UTC) + timedelta(seconds=10)
        while world.probe.calls == 0 and datetime.now(UTC) < deadline:
            threading.Event().wait(0.01)
        busy = world.client.post("/v1/test/echo", json={"n": 1}, headers=headers)
        assert busy.status_code == 409
        assert busy.headers["retry-after"] == "1"
        assert "still being processed" in busy.json()["detail"]
        world.probe.delay.set()
        assert first.result().status_code == 201
    world.probe.delay = None
    replay = world.client.post("/v1/test/echo", json={"n": 1}, headers=headers)
    assert replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true"
    assert world.probe.calls == 1


def test_a_5xx_frees_the_key_so_the_retry_runs(world: World) -> None:
    headers = world.headers("ana", "flaky-1")
    world.probe.fail_next = 1
    failed = world.client.post("/v1/test/echo", json={"n": 1}, headers=headers)
    assert failed.status_code == 503
    retried = world.client.post("/v1/test/echo", json={"n": 1}, headers=headers)
    assert retried.status_code == 201
    assert "idempotent-replayed" not in retried.headers
    assert retried.json()["call"] == 2
    assert world.count(IdempotencyRow) == 1


def test_an_exception_frees_the_key(world: World) -> None:
    headers = world.headers("ana", "crash-1")
    assert world.client.delete("/v1/test/crash", headers=headers).status_code == 500
    assert world.count(IdempotencyRow) == 0
    assert world.client.delete("/v1/test/crash", headers=headers).status_code == 500
    assert world.probe.calls == 2


def test_4xx_answers_are_replayed_too(world: World) -> None:
    headers = world.headers("ana", "bad-1")
    bad = _activity(world.lead_id, at="yesterday")
    first = world.client.post("/v1/activities", json=bad, headers=headers)
    assert first.status_code == 422
    again = world.client.post("/v1/activities", json=bad, headers=headers)
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content


def test_key_is_required_on_activities_and_checked(world: World) -> None:
    missing = world.client.post(
        "/v1/activities", json=_activity(world.lead_id), headers=world.headers("ana")
    )
    assert missing.status_code == 400
    assert "Idempotency-Key" in missing.json()["detail"]
    for bad_key in ("has space", "x" * 201, " "):
        response = world.client.post(
            "/v1/activities", json=_activity(world.lead_id), headers=world.headers("ana", bad_key)
        )
        assert response.status_code == 400, bad_key
        assert "Idempotency-Key" in response.json()["detail"]
    assert world.count(ActivityRow) == 0
    # Optional elsewhere: no key, no replay.
    headers = world.headers("ana")
    world.client.post("/v1/test/echo", json={}, headers=headers)
    world.client.post("/v1/test/echo", json={}, headers=headers)
    assert world.probe.calls == 2


def test_no_principal_means_no_key_and_a_401(world: World) -> None:
    response = world.client.post(
        "/v1/activities", json=_activity(world.lead_id), headers={"Idempotency-Key": "anon"}
    )
    assert response.status_code == 401
    assert world.count(IdempotencyRow) == 0


def test_sign_in_is_exempt(world: World) -> None:
    headers = {"Idempotency-Key": "login-1"}
    body = {"username": "ana", "password": PASSWORD}
    one = world.client.post("/v1/auth/token", json=body, headers=headers)
    two = world.client.post("/v1/auth/token", json=body, headers=headers)
    assert one.json()["access_token"] != two.json()["access_token"]
    assert world.count(IdempotencyRow) == 0


def test_a_stale_in_flight_claim_is_taken_over(world: World) -> None:
    headers = world.headers("ana", "orphan-1")
    body = b'{"n":1}'
    with transaction(world.sessions) as session:
        session.add(
            IdempotencyRow(
                principal="agent:user-ana",
                key="orphan-1",
                request_hash=request_hash("POST", "/v1/test/echo", "", body),
                state=IN_FLIGHT,
                created_at=utcnow() - timedelta(minutes=10),
            )
        )
    response = world.client.post(
        "/v1/test/echo",
        content=body,
        headers={**headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 201
    assert world.probe.calls == 1


def test_concurrent_duplicates_run_the_handler_once(world: World) -> None:
    headers = world.headers("ana", "burst-1")
    world.probe.delay = threading.Event()
    start = threading.Barrier(8)

    def send() -> tuple[int, bool]:
        start.wait()
        response = world.client.post("/v1/test/echo", json={"n": 7}, headers=headers)
        return response.status_code, "idempotent-replayed" in response.headers

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(send) for _ in range(8)]
        threading.Event().wait(0.5)  # all eight arrive while the first is still running
        world.probe.delay.set()
        outcomes = [f.result() for f in futures]
    assert world.probe.calls == 1
    firsts = [o for o in outcomes if o == (201, False)]
    assert len(firsts) == 1
    assert all(o in ((201, False), (201, True), (409, False)) for o in outcomes), outcomes


def test_claim_lets_exactly_one_of_many_threads_in(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    barrier = threading.Barrier(12)
    now = utcnow()

    def attempt(_: int) -> object:
        barrier.wait()
        return claim(sessions, "agent:x", "k", "h" * 64, now, timedelta(minutes=2))

    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(attempt, range(12)))
    engine.dispose()
    assert sum(isinstance(r, Claimed) for r in results) == 1
    assert sum(isinstance(r, InFlight) for r in results) == 11


def test_prune_drops_old_records(world: World) -> None:
    now = utcnow()
    with transaction(world.sessions) as session:
        for age_h, key in ((1, "new"), (72, "old")):
            session.add(
                IdempotencyRow(
                    principal="agent:user-ana",
                    key=key,
                    request_hash="0" * 64,
                    state="done",
                    status_code=201,
                    response_body=b"{}",
                    created_at=now - timedelta(hours=age_h),
                )
            )
    with transaction(world.sessions) as session:
        assert prune(session, timedelta(days=2), now) == 1
    with world.sessions() as session:
        assert session.scalars(select(IdempotencyRow.key)).all() == ["new"]
