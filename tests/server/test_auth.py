from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import update

from server.app import create_app
from server.db import TokenRow, UserRow, make_engine, make_sessionmaker, transaction, utcnow
from server.settings import Settings
from tests.server.conftest import PASSWORD, Seeded


def test_sign_in_returns_a_working_token(seeded: Seeded) -> None:
    response = seeded.client.post("/v1/auth/token", json={"username": "ana", "password": PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert body["role"] == "agent"
    assert body["store_id"] == "lakeside"
    assert body["expires_in"] == 12 * 3600
    me = seeded.client.get("/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json()["store_time_zone"] == "America/Chicago"


def test_wrong_password_and_unknown_user_look_the_same(seeded: Seeded) -> None:
    wrong = seeded.client.post("/v1/auth/token", json={"username": "ana", "password": "nope"})
    unknown = seeded.client.post("/v1/auth/token", json={"username": "who", "password": "nope"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json() == {"detail": "wrong username or password"}


def test_repeated_failures_are_throttled_even_with_the_right_password(seeded: Seeded) -> None:
    for _ in range(5):
        seeded.client.post("/v1/auth/token", json={"username": "ben", "password": "guess"})
    response = seeded.client.post("/v1/auth/token", json={"username": "ben", "password": PASSWORD})
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    # Other users are unaffected.
    assert seeded.client.post(
        "/v1/auth/token", json={"username": "ana", "password": PASSWORD}
    ).is_success


def test_revoked_token_stops_working_at_once(seeded: Seeded) -> None:
    headers = seeded.headers("ana")
    assert seeded.client.post("/v1/auth/revoke", headers=headers).status_code == 204
    response = seeded.client.get("/v1/me", headers=headers)
    assert response.status_code == 401
    assert "sign in again" in response.json()["detail"]


def test_expired_token_is_refused(seeded: Seeded) -> None:
    headers = seeded.headers("ana")
    engine = make_engine(seeded.db_url)
    with transaction(make_sessionmaker(engine)) as session:
        session.execute(update(TokenRow).values(expires_at=utcnow() - timedelta(seconds=1)))
    engine.dispose()
    assert seeded.client.get("/v1/me", headers=headers).status_code == 401


def test_deactivated_user_loses_access(seeded: Seeded) -> None:
    headers = seeded.headers("ana")
    engine = make_engine(seeded.db_url)
    with transaction(make_sessionmaker(engine)) as session:
        session.execute(update(UserRow).where(UserRow.username == "ana").values(active=False))
    engine.dispose()
    assert seeded.client.get("/v1/me", headers=headers).status_code == 401


def test_no_token_or_garbage_token(seeded: Seeded) -> None:
    assert seeded.client.get("/v1/me").status_code == 401
    bad = seeded.client.get("/v1/me", headers={"Authorization": "Bearer not-a-token"})
    assert bad.status_code == 401


def test_api_key_cannot_use_staff_routes(seeded: Seeded) -> None:
    response = seeded.client.get("/v1/me", headers={"Authorization": f"Bearer {seeded.api_key}"})
    assert response.status_code == 403
    assert "integration" in response.json()["detail"]


def test_bad_sign_in_body_names_the_field(seeded: Seeded) -> None:
    response = seeded.client.post("/v1/auth/token", json={"username": "ana", "pasword": "x"})
    assert response.status_code == 422
    problems = " ".join(response.json()["problems"])
    assert "password" in problems
    assert "pasword" in problems


def test_healthz(db_url: str) -> None:
    with TestClient(create_app(Settings(db_url=db_url), create_tables=True)) as client:
        body = client.get("/healthz").json()
    assert body["status"] == "ok"
    assert body["database"] in ("sqlite", "postgresql")
