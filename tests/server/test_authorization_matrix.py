"""Every route × every caller × own and other store, generated from the app's route table.

A route added later is covered without touching this file: it must carry an `x-roles` rule
(server.auth.rule) that agrees with its authorize() dependency; then each caller below calls it.
Allowed roles never get 401/403; other roles always get 403, and callers without a live token 401.
Path parameters are filled with a real lead of the caller's store, and with another store's lead,
which must be 404 and stay untouched. A route with no sample body below gets `{}`; the assertion
is then only about 401/403 vs not (and, across stores, 404 or a 422 that came before any lookup).

The matrix runs against a real uvicorn on loopback, so a streaming route (SSE) answers its status
line without the test waiting for the end of an endless body.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import fastapi.routing
import httpx
import pytest
import uvicorn
from sqlalchemy.orm import Session, sessionmaker

from server.app import create_app
from server.auth import PUBLIC
from server.db import LeadRow, TokenRow, make_engine, make_sessionmaker, transaction, utcnow
from server.migrate import upgrade
from server.settings import Settings
from tests.server.conftest import _database_url, seed_stores_and_users
from tests.server.test_floor import add_lead

# --- The route table ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    roles: frozenset[str]  # from x-roles; empty when the route has none
    enforced: frozenset[str] | None  # roles of its authorize() dependency, None if none found

    @property
    def public(self) -> bool:
        return PUBLIC in self.roles

    @property
    def params(self) -> list[str]:
        return re.findall(r"{(\w+)(?::\w+)?}", self.path)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def _contexts(app: fastapi.FastAPI) -> Iterator[Any]:
    # FastAPI >= 0.120 keeps included routers lazily in app.routes; older ones list APIRoutes.
    flatten = getattr(fastapi.routing, "iter_route_contexts", None)
    yield from (flatten(app.routes) if flatten else app.routes)


def _enforced_roles(route: Any) -> frozenset[str] | None:
    dependant = getattr(route, "dependant", None)
    pending = list(dependant.dependencies) if dependant is not None else []
    while pending:
        dependency = pending.pop()
        allowed = getattr(dependency.call, "allowed_roles", None)
        if allowed is not None:
            return frozenset(str(getattr(r, "value", r)) for r in allowed)
        pending.extend(dependency.dependencies)
    return None


def endpoints_of(app: fastapi.FastAPI) -> list[Endpoint]:
    found = []
    for context in _contexts(app):
        original = getattr(context, "original_route", context)
        if not isinstance(original, fastapi.routing.APIRoute):
            continue  # FastAPI's own /openapi.json and /docs pages
        extra = getattr(context, "openapi_extra", None) or original.openapi_extra or {}
        roles = frozenset(extra.get("x-roles", ()))
        for method in sorted(context.methods or ()):
            if method == "HEAD":
                continue
            found.append(Endpoint(method, context.path, roles, _enforced_roles(original)))
    return found


ENDPOINTS = endpoints_of(create_app(Settings(db_url="sqlite://", run_scheduler=False)))


def test_every_route_declares_its_rule_and_enforces_it() -> None:
    assert ENDPOINTS, "no routes found: the route table walk is broken"
    missing = [str(e) for e in ENDPOINTS if not e.roles]
    assert not missing, f"routes without an x-roles rule (use **rule(...)): {missing}"
    unenforced = [str(e) for e in ENDPOINTS if not e.public and e.enforced is None]
    assert not unenforced, f"routes without Depends(authorize(...)): {unenforced}"
    disagree = [
        f"{e}: x-roles {sorted(e.roles)} but authorize{tuple(sorted(e.enforced))}"
        for e in ENDPOINTS
        if not e.public and e.enforced is not None and e.enforced != e.roles
    ]
    assert not disagree, f"rule and dependency disagree: {disagree}"


# --- Sample bodies: enough to get past validation to the lookup ---------------------------------

ADF = (
    b'<?xml version="1.0"?><?adf version="1.0"?><adf><prospect>'
    b"<requestdate>2026-03-10T10:00:00-06:00</requestdate>"
    b'<vehicle interest="buy" status="new"><year>2025</year><make>Toyota</make>'
    b'<model>Camry</model></vehicle><customer><contact><name part="full">Matrix Tester</name>'
    b"<phone>312-555-0199</phone></contact></customer>"
    b"<vendor><vendorname>Lakeside Toyota</vendorname></vendor></prospect></adf>"
)


@dataclass(frozen=True)
class Sample:
    json: Any = None
    content: bytes | None = None
    content_type: str = "application/json"

    def payload(self) -> tuple[bytes, str]:
        if self.content is not None:
            return self.content, self.content_type
        return json.dumps(self.json).encode(), "application/json"


SAMPLES: dict[tuple[str, str], Sample] = {
    ("POST", "/v1/auth/revoke"): Sample(json=None),
    ("POST", "/v1/presence"): Sample(json={"state": "available"}),
    ("POST", "/v1/presence/heartbeat"): Sample(json=None),
    ("POST", "/v1/leads"): Sample(
        json={"person": {"first_name": "Matrix", "last_name": "Tester"}, "phones": ["3125550199"]}
    ),
    ("POST", "/v1/leads/adf"): Sample(content=ADF, content_type="application/xml"),
    ("PATCH", "/v1/leads/{lead_id}"): Sample(json={"base_version": 1, "comments": "matrix"}),
    ("POST", "/v1/leads/{lead_id}/assign"): Sample(json={"agent_id": None}),
    ("POST", "/v1/leads/{lead_id}/claim"): Sample(json=None),
    ("POST", "/v1/calls"): Sample(json={"id": str(uuid.uuid4()), "lead_id": "no-such-lead"}),
    ("POST", "/v1/calls/{call_id}/hangup"): Sample(json=None),
    ("POST", "/v1/review/scorecards"): Sample(
        json={"call_id": "no-such-call", "scores": {"greeting": 5}}
    ),
}
DEFAULT_SAMPLE = Sample(json={})


# --- The callers ----------------------------------------------------------------------------------

LIVE = {"agent": "user-ana", "manager": "user-mia", "admin": "user-root"}
OTHER_STORE_LIVE = {"agent": "user-zed", "manager": "user-rita"}
DEAD = ("no token", "expired token", "revoked token")
CALLERS = (*LIVE, "integration", *DEAD)


@dataclass
class World:
    base_url: str
    sessions: sessionmaker[Session]
    api_key: str
    other_api_key: str
    own_lead: str
    other_lead: str
    # Unique words of each store's lead: they must never show in the other store's answers.
    own_marker: str = "Quillfeather"
    other_marker: str = "Marchbanks"
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.base_url, timeout=20)

    def _token(self, user_id: str, *, expired: bool = False, revoked: bool = False) -> str:
        # A fresh token per call straight into the table: no argon2 per request, and a route
        # that signs the caller out (revoke) cannot spoil the next call.
        token = secrets.token_urlsafe(24)
        now = utcnow()
        with transaction(self.sessions) as session:
            session.add(
                TokenRow(
                    token_hash=hashlib.sha256(token.encode()).hexdigest(),
                    user_id=user_id,
                    issued_at=now - timedelta(hours=1),
                    expires_at=now - timedelta(seconds=1) if expired else now + timedelta(hours=1),
                    revoked_at=now if revoked else None,
                )
            )
        return token

    def authorization(self, caller: str, *, other_store: bool = False) -> dict[str, str]:
        if caller == "no token":
            return {}
        if caller == "integration":
            secret = self.other_api_key if other_store else self.api_key
        elif caller in DEAD:
            secret = self._token(
                "user-mia", expired=caller == "expired token", revoked=caller == "revoked token"
            )
        else:
            secret = self._token((OTHER_STORE_LIVE if other_store else LIVE)[caller])
        return {"Authorization": f"Bearer {secret}"}

    def call(self, endpoint: Endpoint, caller: str, lead_id: str, *, other_store: bool = False):
        path = endpoint.path
        for name in endpoint.params:
            path = re.sub(r"{" + name + r"(:\w+)?}", lead_id, path)
        sample = SAMPLES.get((endpoint.method, endpoint.path), DEFAULT_SAMPLE)
        body, content_type = sample.payload()
        headers = {
            **self.authorization(caller, other_store=other_store),
            "Content-Type": content_type,
            "Idempotency-Key": str(uuid.uuid4()),
        }
        with self.http.stream(endpoint.method, path, content=body, headers=headers) as response:
            streaming = "text/event-stream" in response.headers.get("content-type", "")
            text = "" if streaming else response.read().decode("utf-8", "replace")
            return response.status_code, text

    def version_of(self, lead_id: str) -> int:
        with self.sessions() as session:
            row = session.get(LeadRow, lead_id)
            assert row is not None
            return row.version


def _serve(app: Any) -> tuple[uvicorn.Server, threading.Thread, str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2, ws="none"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    folder: Path = tmp_path_factory.mktemp("matrix")
    urls = _database_url(folder, request.param)
    db_url = next(urls)
    try:
        upgrade(db_url)
        key, other_key = seed_stores_and_users(db_url)
        engine = make_engine(db_url)
        sessions = make_sessionmaker(engine)
        with transaction(sessions) as session:
            own = add_lead(session, "lakeside", utcnow(), name=("Ola", "Quillfeather")).id
            other = add_lead(session, "riverside", utcnow(), name=("Rae", "Marchbanks")).id
        server, thread, base_url = _serve(create_app(Settings(db_url=db_url, run_scheduler=False)))
        world = World(base_url, sessions, key, other_key, own, other)
        try:
            yield world
        finally:
            world.http.close()
            server.should_exit = True
            thread.join(timeout=15)
            engine.dispose()
    finally:
        urls.close()


# --- The matrix -----------------------------------------------------------------------------------


def _allowed(endpoint: Endpoint, caller: str) -> bool:
    return caller in endpoint.roles


@pytest.mark.parametrize("endpoint", [e for e in ENDPOINTS if not e.public], ids=str)
def test_route_admits_exactly_its_roles_and_never_crosses_stores(
    world: World, endpoint: Endpoint
) -> None:
    problems: list[str] = []
    other_version = world.version_of(world.other_lead)

    # The other store's callers first, on our lead: it must stay invisible and untouched.
    own_version = world.version_of(world.own_lead)
    for caller in (*OTHER_STORE_LIVE, "integration"):
        status, text = world.call(endpoint, caller, world.own_lead, other_store=True)
        if not _allowed(endpoint, caller):
            if status != 403:
                problems.append(f"riverside {caller}: {status}, expected 403")
            continue
        if status in (401, 403):
            problems.append(f"riverside {caller}: allowed but got {status}")
        if endpoint.params and status != 404 and not _no_sample_and_invalid(endpoint, status):
            problems.append(f"riverside {caller} on a lakeside lead: {status}, expected 404")
        if 200 <= status < 300 and (world.own_marker in text or world.own_lead in text):
            problems.append(f"riverside {caller} saw lakeside data: {text[:200]}")
    if world.version_of(world.own_lead) != own_version:
        problems.append("riverside callers changed a lakeside lead")

    for caller in CALLERS:
        status, text = world.call(endpoint, caller, world.own_lead)
        if caller in DEAD:
            if status != 401:
                problems.append(f"{caller}: {status}, expected 401")
        elif not _allowed(endpoint, caller):
            if status != 403:
                problems.append(f"{caller}: {status}, expected 403")
        else:
            if status in (401, 403):
                problems.append(f"{caller}: allowed but got {status}: {text[:200]}")
            if 200 <= status < 300 and (world.other_marker in text or world.other_lead in text):
                problems.append(f"{caller} saw riverside data: {text[:200]}")
            if endpoint.params:
                crossed, _ = world.call(endpoint, caller, world.other_lead)
                if crossed != 404 and not _no_sample_and_invalid(endpoint, crossed):
                    problems.append(f"{caller} on a riverside lead: {crossed}, expected 404")
    if world.version_of(world.other_lead) != other_version:
        problems.append("lakeside callers changed a riverside lead")
    assert not problems, f"{endpoint}:\n  " + "\n  ".join(problems)


def _no_sample_and_invalid(endpoint: Endpoint, status: int) -> bool:
    # Without a sample body, a 422 from body validation comes before any lookup: nothing leaked.
    return status == 422 and (endpoint.method, endpoint.path) not in SAMPLES
