"""Local stand-ins for outside services (Twilio's REST API on 127.0.0.1), and a messaging test
environment: a migrated database with the two seeded stores, leads written straight through the
service layer, log gateways that record what would have been sent, and a clock tests can set."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app.domain.activities import Activity
from app.domain.codec import activity_from_dict
from app.domain.leads import (
    Address,
    Channel,
    Consent,
    ConsentScope,
    Email,
    Lead,
    LeadSource,
    Person,
    SourceType,
    Vehicle,
)
from app.domain.phones import PhoneKind, make_phone
from server.app import create_app
from server.db import (
    ActivityRow,
    ChangeRow,
    JobRow,
    LeadRow,
    MessageRow,
    StoreRow,
    make_engine,
    make_sessionmaker,
    transaction,
)
from server.messaging import Gateway, Gateways, LogGateway
from server.migrate import upgrade
from server.services.common import lead_of, save_lead
from server.settings import Settings

# A Tuesday, 10:00 in Chicago (the lakeside store and its customers).
NOW = datetime(2025, 6, 3, 15, 0, tzinfo=UTC)
STORE_NUMBER = "+13125550100"  # lakeside's texting number
RIVERSIDE_NUMBER = "+12125550100"
WEBHOOK_TOKEN = "hook-secret-1"


@dataclass
class MessagingEnv:
    client: TestClient
    app: FastAPI
    sessions: sessionmaker[Session]
    texts: Gateway
    emails: Gateway
    db_url: str
    now: datetime = NOW
    _tokens: dict[str, str] = field(default_factory=dict)

    def set_now(self, when: datetime) -> None:
        self.now = when

    def headers(self, username: str, key: str | None = None) -> dict[str, str]:
        from tests.server.conftest import PASSWORD

        if username not in self._tokens:
            answer = self.client.post(
                "/v1/auth/token", json={"username": username, "password": PASSWORD}
            )
            assert answer.status_code == 200, answer.text
            self._tokens[username] = answer.json()["access_token"]
        return {
            "Authorization": f"Bearer {self._tokens[username]}",
            "Idempotency-Key": key or str(uuid.uuid4()),
        }

    def add_lead(
        self,
        *,
        phone: str | None = "+13125550123",
        phones: tuple[str, ...] = (),
        email: str | None = "pat@example.com",
        text_consent: bool = True,
        agent: str | None = "user-ana",
        store: str = "lakeside",
        first_name: str = "Pat",
        vehicle: bool = True,
        opted_out_at: datetime | None = None,
        do_not_call: bool = False,
    ) -> str:
        lead_id = str(uuid.uuid4())
        received = self.now - timedelta(hours=1)
        numbers = ([phone] if phone else []) + list(phones)
        consents = (
            (
                Consent(
                    Channel.TEXT,
                    ConsentScope.INFORMATIONAL,
                    received,
                    "web form checkbox",
                    "I agree to receive texts about my inquiry.",
                ),
            )
            if text_consent
            else ()
        )
        lead = Lead(
            id=lead_id,
            store_id=store,
            received_at=received,
            person=Person(first_name=first_name, last_name="Lee"),
            source=LeadSource("Dealer website", SourceType.FIRST_PARTY),
            phones=tuple(make_phone(n, PhoneKind.CELL) for n in numbers),
            emails=(Email(email),) if email else (),
            address=Address(city="Chicago", state="IL", postal_code="60614"),
            vehicles=(Vehicle(year=2024, make="Toyota", model="Camry", trim="SE"),)
            if vehicle
            else (),
            consents=consents,
            assigned_agent_id=agent,
            opted_out_at=opted_out_at,
            do_not_call=do_not_call,
        )
        with transaction(self.sessions) as session:
            save_lead(session, None, lead, score=40, tier="medium", grade="B")
        return lead_id

    def lead(self, lead_id: str) -> Lead:
        with self.sessions() as session:
            row = session.get(LeadRow, lead_id)
            assert row is not None
            return lead_of(row)

    def lead_row(self, lead_id: str) -> LeadRow:
        with self.sessions() as session:
            row = session.get(LeadRow, lead_id)
            assert row is not None
            return row

    def activities(self, lead_id: str) -> list[Activity]:
        with self.sessions() as session:
            rows = session.scalars(
                select(ActivityRow)
                .where(ActivityRow.lead_id == lead_id)
                .order_by(ActivityRow.at, ActivityRow.recorded_at)
            ).all()
            return [activity_from_dict(r.data) for r in rows]

    def messages(self, lead_id: str | None = None) -> list[MessageRow]:
        with self.sessions() as session:
            query = select(MessageRow).order_by(MessageRow.created_at, MessageRow.id)
            if lead_id is not None:
                query = query.where(MessageRow.lead_id == lead_id)
            return list(session.scalars(query))

    def jobs(self, lead_id: str | None = None) -> list[JobRow]:
        with self.sessions() as session:
            query = select(JobRow).order_by(JobRow.id)
            if lead_id is not None:
                query = query.where(JobRow.lead_id == lead_id)
            return list(session.scalars(query))

    def changes(self, entity: str | None = None) -> list[ChangeRow]:
        with self.sessions() as session:
            query = select(ChangeRow).order_by(ChangeRow.seq)
            if entity is not None:
                query = query.where(ChangeRow.entity == entity)
            return list(session.scalars(query))

    def sent_texts(self) -> list[Any]:
        assert isinstance(self.texts, LogGateway)
        return list(self.texts.sent)

    def sent_emails(self) -> list[Any]:
        assert isinstance(self.emails, LogGateway)
        return list(self.emails.sent)


@contextmanager
def messaging_env(
    db_url: str,
    settings: Settings,
    *,
    texts: Gateway | None = None,
    emails: Gateway | None = None,
    **overrides: Any,
) -> Iterator[MessagingEnv]:
    """An API over a freshly migrated database with stores, users and store phone numbers."""
    from tests.server.conftest import seed_stores_and_users

    upgrade(db_url)
    seed_stores_and_users(db_url)
    engine = make_engine(db_url)
    with transaction(make_sessionmaker(engine)) as session:
        session.execute(
            update(StoreRow)
            .where(StoreRow.id == "lakeside")
            .values(phone=STORE_NUMBER, address="2400 N Lake Shore Dr, Chicago, IL 60614")
        )
        session.execute(
            update(StoreRow).where(StoreRow.id == "riverside").values(phone=RIVERSIDE_NUMBER)
        )
    engine.dispose()
    settings = replace(
        settings, **({"webhook_token": WEBHOOK_TOKEN, "run_scheduler": False} | overrides)
    )
    app = create_app(settings)
    gateways = Gateways(text=texts or LogGateway("sms-log"), email=emails or LogGateway("e-log"))
    app.state.gateways = gateways
    with TestClient(app) as client:
        env = MessagingEnv(
            client=client,
            app=app,
            sessions=app.state.sessions,
            texts=gateways.text,
            emails=gateways.email,
            db_url=db_url,
        )
        app.state.clock = lambda: env.now
        yield env
