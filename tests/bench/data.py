"""Realistic benchmark data from the demo generator (names, phones, vehicles, histories).

- `derived_queue(n)`: a WorkQueue (the core's own derivation) over n generated leads.
- `seed_server(db_url, n)`: n generated leads with their histories stored through the lead API's
  own intake (`server.services.intake.ingest`: scoring, routing, change feed) in batches, so a
  workstation's first sync downloads exactly what a real one would.
- `adf_document(lead)`: the lead as a provider's ADF 1.0 XML.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from html import escape

from app.demo.generator import DEMO_STORE, demo_leads
from app.domain.activities import Activity
from app.domain.leads import Lead
from app.rulebook import load_rulebook
from app.services.workqueue import WorkQueue

SPREAD = timedelta(days=20)


def generated(n: int, *, now: datetime | None = None, seed: int = 7) -> list[tuple[Lead, list]]:
    return demo_leads(now or datetime.now(UTC), n, seed=seed, spread=SPREAD)


def derived_queue(n: int, now: datetime) -> WorkQueue:
    queue = WorkQueue(load_rulebook(), DEMO_STORE)
    queue.load(generated(n, now=now), now)
    return queue


def seed_server(db_url: str, n: int, *, agent_id: str = "user-ana", batch: int = 500) -> float:
    """Store n generated leads (with histories) through the intake; returns seconds taken.

    Leads go to the pool (nobody is on the floor), which agent `ana` sees; their histories'
    activities are `agent_id`'s. The duplicate window is 0: every generated lead stays its own.
    """
    from server.db import LeadRow, StoreRow, make_engine, make_sessionmaker, transaction
    from server.services.common import add_activity
    from server.services.intake import IncomingLead, ingest
    from server.settings import Settings

    began = time.perf_counter()
    rules = load_rulebook()
    settings = Settings(db_url=db_url, run_scheduler=False, duplicate_window=timedelta(0))
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    now = datetime.now(UTC)
    pairs = generated(n, now=now)
    try:
        for start in range(0, len(pairs), batch):
            chunk = pairs[start : start + batch]
            with transaction(sessions) as session:
                store = session.get(StoreRow, "lakeside")
                assert store is not None, "seed the stores first"
                outcomes = ingest(
                    session,
                    store=store,
                    leads=[IncomingLead(replace(lead, store_id="lakeside")) for lead, _ in chunk],
                    rules=rules,
                    settings=settings,
                    now=now,
                )
                for (_lead, history), outcome in zip(chunk, outcomes, strict=True):
                    row = session.get(LeadRow, outcome.lead_id)
                    assert row is not None
                    for activity in history:
                        add_activity(session, row, _owned(activity, row.id, agent_id))
    finally:
        engine.dispose()
    return time.perf_counter() - began


def _owned(activity: Activity, lead_id: str, agent_id: str) -> Activity:
    return replace(
        activity,
        lead_id=lead_id,
        agent_id=agent_id if activity.agent_id else activity.agent_id,
    )


def adf_document(lead: Lead) -> bytes:
    """One lead as ADF 1.0 XML, the way a third-party provider sends it."""
    person = lead.person
    contact = [
        f'<name part="first">{escape(person.first_name)}</name>',
        f'<name part="last">{escape(person.last_name)}</name>',
    ]
    contact += [f"<email>{escape(e.address)}</email>" for e in lead.emails]
    contact += [f'<phone type="voice">{escape(p.raw)}</phone>' for p in lead.phones]
    address = lead.address
    if address.postal_code:
        contact.append(
            "<address>"
            f'<street line="1">{escape(address.street)}</street>'
            f"<city>{escape(address.city)}</city><regioncode>{address.state}</regioncode>"
            f"<postalcode>{address.postal_code}</postalcode></address>"
        )
    vehicles = []
    for vehicle in lead.vehicles:
        parts = [
            f"<year>{vehicle.year}</year>" if vehicle.year else "",
            f"<make>{escape(vehicle.make)}</make><model>{escape(vehicle.model)}</model>",
            f"<trim>{escape(vehicle.trim)}</trim>" if vehicle.trim else "",
            f"<stock>{escape(vehicle.stock_number)}</stock>" if vehicle.stock_number else "",
            f'<price type="quote" currency="USD">{vehicle.price}</price>' if vehicle.price else "",
        ]
        status = vehicle.condition.value if vehicle.condition.value in ("new", "used") else "new"
        vehicles.append(f'<vehicle interest="buy" status="{status}">{"".join(parts)}</vehicle>')
    timeframe = (
        f"<timeframe><description>{escape(lead.timeframe.description)}</description></timeframe>"
        if lead.timeframe.description
        else ""
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<?ADF VERSION "1.0"?>
<adf>
  <prospect status="new">
    <requestdate>{lead.received_at.isoformat(timespec="seconds")}</requestdate>
    {"".join(vehicles)}
    <customer>
      <contact>{"".join(contact)}</contact>
      {timeframe}
      <comments>{escape(lead.comments)}</comments>
    </customer>
    <vendor><vendorname>Lakeside Toyota</vendorname></vendor>
    <provider><name part="full">{escape(lead.source.name)}</name></provider>
  </prospect>
</adf>""".encode()
