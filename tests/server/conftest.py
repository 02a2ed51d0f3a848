"""A real lead API per test: a fresh database migrated with the real migrations — a SQLite file,
and a fresh PostgreSQL database when BDC_TEST_POSTGRES_URL is set; two stores; every role."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, make_url, text

from server.app import create_app
from server.auth import create_api_key, hash_password
from server.db import StoreRow, UserRow, make_engine, make_sessionmaker, transaction
from server.migrate import MIGRATIONS, upgrade
from server.settings import Settings

PASSWORD = "correct horse battery"
# argon2 is deliberately slow; hash the shared test password once.
_PASSWORD_HASH = hash_password(PASSWORD)


@dataclass
class Seeded:
    client: TestClient
    db_url: str
    api_key: str  # a lead provider's key for store "lakeside"
    other_api_key: str  # for store "riverside"

    def token(self, username: str) -> str:
        response = self.client.post(
            "/v1/auth/token", json={"username": username, "password": PASSWORD}
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def headers(self, username: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(username)}"}


USERS = (
    # username, role, store
    ("ana", "agent", "lakeside"),
    ("ben", "agent", "lakeside"),
    ("mia", "manager", "lakeside"),
    ("root", "admin", "lakeside"),
    ("zed", "agent", "riverside"),
    ("rita", "manager", "riverside"),
)


def _database_url(tmp_path: Path, kind: str) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'leads.db'}"
        return
    base = os.environ.get("BDC_TEST_POSTGRES_URL")
    if not base:
        if os.environ.get("CI"):
            pytest.fail("CI must test PostgreSQL: BDC_TEST_POSTGRES_URL is not set")
        pytest.skip("PostgreSQL not configured here (set BDC_TEST_POSTGRES_URL)")
    name = f"bdc_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    template = _migrated_template(base)
    with admin.connect() as connection:
        # Copying a migrated template is much faster than migrating each test's database.
        connection.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


_templates: dict[str, str] = {}
_TEMPLATE_LOCK = 724_310_099


def _schema_hash() -> str:
    """A digest of the migration scripts: a changed schema gets a new template."""
    digest = hashlib.sha256()
    for path in sorted(MIGRATIONS.rglob("*.py")):
        digest.update(path.relative_to(MIGRATIONS).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _migrated_template(base: str) -> str:
    """A PostgreSQL database at the newest schema, copied per test (much faster than migrating
    each test's database). Named by the migrations' digest and shared by every test run on this
    server — several runs (other sessions, CI jobs) may use it at once, so none drops another's
    template: it is built under a temporary name, then renamed, under an advisory lock."""
    if base not in _templates:
        name = f"bdc_template_{_schema_hash()}"
        admin = create_engine(base, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _TEMPLATE_LOCK})
                try:
                    exists = connection.scalar(
                        text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
                    )
                    if not exists:
                        building = f"bdc_building_{uuid.uuid4().hex[:8]}"
                        connection.execute(text(f'CREATE DATABASE "{building}"'))
                        url = make_url(base).set(database=building)
                        upgrade(url.render_as_string(hide_password=False))
                        connection.execute(text(f'ALTER DATABASE "{building}" RENAME TO "{name}"'))
                finally:
                    unlock = text("SELECT pg_advisory_unlock(:id)")
                    connection.execute(unlock, {"id": _TEMPLATE_LOCK})
        finally:
            admin.dispose()
        _templates[base] = name
    return _templates[base]


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Every server test runs on SQLite and on PostgreSQL."""
    yield from _database_url(tmp_path, request.param)


def seed_stores_and_users(db_url: str) -> tuple[str, str]:
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    with transaction(sessions) as session:
        session.add(
            StoreRow(
                id="lakeside",
                name="Lakeside Toyota",
                time_zone="America/Chicago",
                state="IL",
                postal_code="60614",
                market_zips="606,600,601",
            )
        )
        session.add(
            StoreRow(
                id="riverside",
                name="Riverside Honda",
                time_zone="America/New_York",
                state="NY",
                postal_code="10001",
            )
        )
        session.flush()
        for username, role, store in USERS:
            session.add(
                UserRow(
                    id=f"user-{username}",
                    username=username,
                    display_name=username.title(),
                    password_hash=_PASSWORD_HASH,
                    role=role,
                    store_id=store,
                )
            )
        key = create_api_key(session, "Cars.com", "lakeside")
        other = create_api_key(session, "Autotrader", "riverside")
    engine.dispose()
    return key, other


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(db_url=db_url, run_scheduler=False)


@pytest.fixture
def seeded(db_url: str, settings: Settings) -> Iterator[Seeded]:
    upgrade(db_url)
    key, other = seed_stores_and_users(db_url)
    with TestClient(create_app(settings)) as client:
        yield Seeded(client=client, db_url=db_url, api_key=key, other_api_key=other)
