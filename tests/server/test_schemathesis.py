"""Schemathesis over /openapi.json against the ASGI app: no route answers 5xx to any input the
schema allows, signed in as a manager and as an agent (bounded: 20 examples per operation).

Every operation of the schema is run — a route added later is covered without touching this file —
and every failing operation is reported at once, with the request that broke it.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from sqlalchemy.orm import Session, sessionmaker

from server.app import create_app
from server.db import TokenRow, make_engine, make_sessionmaker, transaction, utcnow
from server.migrate import upgrade
from server.settings import Settings
from tests.server.conftest import _database_url, seed_stores_and_users
from tests.server.test_floor import add_lead

EXAMPLES_PER_OPERATION = 20
CALLERS = ("user-mia", "user-ana")  # a manager and an agent of store lakeside


# The operations, read from the route table at collection time; each is a test of its own, so a
# slow one cannot eat the others' time and a failure names its route.
OPERATIONS = [
    (method.upper(), path)
    for path, item in create_app(Settings(db_url="sqlite://")).openapi()["paths"].items()
    for method in item
    if method in ("get", "put", "post", "patch", "delete")
]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Any, sessionmaker[Session]]]:
    urls = _database_url(tmp_path_factory.mktemp("schemathesis"), request.param)
    db_url = next(urls)
    try:
        upgrade(db_url)
        seed_stores_and_users(db_url)
        engine = make_engine(db_url)
        sessions = make_sessionmaker(engine)
        with transaction(sessions) as session:
            # Something to find: a lead in each store.
            add_lead(session, "lakeside", utcnow(), agent="user-ana")
            add_lead(session, "riverside", utcnow())
        app = create_app(Settings(db_url=db_url, run_scheduler=False))
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        # A streaming route (SSE) is judged by its status and first event, not read forever.
        schema.config.max_stream_events = 1
        try:
            yield schema, sessions
        finally:
            engine.dispose()
    finally:
        urls.close()


def _fresh_token(sessions: sessionmaker[Session], user_id: str) -> str:
    # A new token per call: a generated POST /v1/auth/revoke must not sign out the next example.
    token = secrets.token_urlsafe(24)
    with transaction(sessions) as session:
        session.add(
            TokenRow(
                token_hash=hashlib.sha256(token.encode()).hexdigest(),
                user_id=user_id,
                expires_at=utcnow() + timedelta(hours=1),
            )
        )
    return token


def _describe(case: Any) -> str:
    body = getattr(case, "body", None)
    return (
        f"{case.method} {case.formatted_path} query={case.query!r} "
        f"headers={ {k: v for k, v in (case.headers or {}).items() if k != 'Authorization'} } "
        f"body={body!r:.300}"
    )


@pytest.mark.slow
@pytest.mark.parametrize("operation_key", OPERATIONS, ids=" ".join)
def test_no_server_errors(
    api: tuple[Any, sessionmaker[Session]], operation_key: tuple[str, str]
) -> None:
    schema, sessions = api
    method, path = operation_key
    operation = schema[path][method]
    failures: list[str] = []

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        for user_id in CALLERS:
            token = _fresh_token(sessions, user_id)
            response = case.call(headers={"Authorization": f"Bearer {token}"})
            if response.status_code >= 500:
                failures.append(
                    f"{response.status_code} as {user_id}: {_describe(case)}\n"
                    f"  answer: {response.text[:300]}"
                )

    run()
    assert not failures, "server errors:\n" + "\n".join(failures[:5])
