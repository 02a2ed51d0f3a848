"""Shared helpers for the intake, leads and routing tests: a pinned clock, presence rows, posts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy.orm import Session

from server.db import PresenceRow, make_engine, make_sessionmaker, transaction
from tests.server.conftest import Seeded

# Wednesday 2026-03-04 10:00 in Chicago (CST, UTC-6): the store is open (09:00-20:00).
IN_HOURS = datetime(2026, 3, 4, 16, 0, tzinfo=UTC)
# Wednesday 21:00 in Chicago: closed; opens Thursday 09:00 CST = 15:00 UTC.
AFTER_HOURS = datetime(2026, 3, 5, 3, 0, tzinfo=UTC)


def pin(seeded: Seeded, when: datetime) -> None:
    """Make the server's clock read `when`."""
    seeded.client.app.state.clock = lambda: when  # type: ignore[attr-defined]


@contextmanager
def db(seeded: Seeded) -> Iterator[Session]:
    engine = make_engine(seeded.db_url)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            yield session
    finally:
        engine.dispose()


def set_presence(
    seeded: Seeded,
    username: str,
    *,
    state: str = "available",
    logged_in: bool = True,
    heartbeat: datetime = IN_HOURS,
    last_assigned_at: datetime | None = None,
    store: str = "lakeside",
) -> None:
    with db(seeded) as session:
        row = session.get(PresenceRow, f"user-{username}")
        if row is None:
            row = PresenceRow(user_id=f"user-{username}", store_id=store, state=state)
            session.add(row)
        row.state = state
        row.logged_in = logged_in
        row.last_heartbeat = heartbeat
        row.since = heartbeat
        row.last_assigned_at = last_assigned_at


def key_headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def lead_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "person": {"first_name": "Maria", "last_name": "Lopez"},
        "phones": [{"number": "(312) 555-2368", "kind": "cellphone"}],
        "emails": [{"address": "maria.lopez@example.com"}],
        "address": {
            "street": "2400 N Lakeview Ave",
            "city": "Chicago",
            "state": "il",
            "postal_code": "60614",
        },
        "vehicles": [{"year": 2026, "make": "Toyota", "model": "RAV4", "trim": "XLE"}],
        "timeframe": {"description": "This week", "within_days": 7},
        "comments": "Is it still available?",
    }
    body.update(overrides)
    return body


def post_lead(seeded: Seeded, body: Any, key: str | None = None) -> httpx.Response:
    return seeded.client.post("/v1/leads", headers=key_headers(key or seeded.api_key), json=body)


def post_adf(
    seeded: Seeded, xml: bytes, key: str | None = None, content_type: str = "application/xml"
) -> httpx.Response:
    headers = {**key_headers(key or seeded.api_key), "Content-Type": content_type}
    return seeded.client.post("/v1/leads/adf", headers=headers, content=xml)


def adf_doc(
    *,
    first: str = "Hannah",
    last: str = "Brooks",
    email: str = "hannah.brooks@example.com",
    phone: str = "",
    status: str = "new",
    provider: str = "TrueCar",
    model: str = "Camry",
) -> bytes:
    phone_xml = f"<phone type='voice'>{phone}</phone>" if phone else ""
    email_xml = f"<email>{email}</email>" if email else ""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<?ADF VERSION "1.0"?>
<adf>
  <prospect status="{status}">
    <requestdate>2026-03-04T09:58:00-06:00</requestdate>
    <vehicle interest="buy" status="new">
      <year>2026</year><make>Toyota</make><model>{model}</model>
    </vehicle>
    <customer>
      <contact>
        <name part="first">{first}</name>
        <name part="last">{last}</name>
        {email_xml}{phone_xml}
      </contact>
      <timeframe><description>Within 30 days</description></timeframe>
      <comments>Looking to buy soon</comments>
    </customer>
    <vendor><vendorname>Lakeside Toyota</vendorname></vendor>
    <provider><name part="full">{provider}</name></provider>
  </prospect>
</adf>""".encode()
