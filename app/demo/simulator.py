"""The demo's outside world: lead providers and customers, talking to a real lead API over HTTP.

`LeadSimulator` keeps the demo floor busy the way a real one is: new internet leads through the
provider intake (`POST /v1/leads` with the provider's API key and an Idempotency-Key), now and
then a hot one (local, specific vehicle, buying this week), a duplicate (the same customer again
from another site: the server merges it), one from a customer for whom it is after hours (their
local time is outside the calling window, so the workstation shows when calling opens), and
customers texting back through the SMS webhook (`X-Webhook-Token`) — including a STOP, which
opts the number out everywhere.

Headless and deterministic for a seed; it only speaks HTTP, so it works against any lead API.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from app.demo.generator import DEMO_STORE, make_lead
from app.domain.leads import Lead

log = logging.getLogger("bdc.demo")

Clock = Callable[[], datetime]


class EventKind(StrEnum):
    LEAD = "lead"
    HOT_LEAD = "hot_lead"
    DUPLICATE = "duplicate"
    AFTER_HOURS = "after_hours"
    REPLY = "reply"
    STOP = "stop"


@dataclass(frozen=True, slots=True)
class SimEvent:
    kind: EventKind
    name: str  # the customer
    status: int  # the server's HTTP status
    lead_id: str | None = None
    detail: str = ""


# Where a customer may live, for after-hours leads: (zone, area code, ZIP, state, city).
_FAR_AWAY = (
    ("Pacific/Honolulu", "808", "96813", "HI", "Honolulu"),
    ("America/Anchorage", "907", "99501", "AK", "Anchorage"),
    ("America/Los_Angeles", "213", "90012", "CA", "Los Angeles"),
    ("America/New_York", "212", "10001", "NY", "New York"),
    ("America/Chicago", "312", "60614", "IL", "Chicago"),
)
_REPLIES = (
    "Is it still available?",
    "Can I come by Saturday morning?",
    "What's the best price out the door?",
    "Do you have it in white?",
    "Call me after 5 please",
    "Yes I'm still interested",
    "How much would you give me for my trade?",
)
_HOT_COMMENTS = (
    "Ready to buy this week. Pre-approved, can come in today.",
    "Need a car by Friday, mine died. Is this one on the lot?",
    "Cash buyer, want to test drive tomorrow.",
)
_DUPLICATE_COMMENTS = (
    "Sent this on another site too - please call me.",
    "Following up on my request from earlier.",
)


@dataclass
class _Known:
    name: str
    phone: str | None  # as sent
    document: dict[str, Any]
    lead_id: str | None
    texted: bool = False


@dataclass
class SimulatorStats:
    events: list[SimEvent] = field(default_factory=list)

    def count(self, kind: EventKind) -> int:
        return sum(1 for e in self.events if e.kind is kind)


def lead_document(lead: Lead) -> dict[str, Any]:
    """`lead` as a provider posts it to POST /v1/leads (the JSON intake schema)."""

    def vehicle(v: Any) -> dict[str, Any]:
        out: dict[str, Any] = {
            "make": v.make,
            "model": v.model,
            "condition": v.condition.value,
            "interest": v.interest.value,
        }
        for name in ("year", "trim", "stock_number", "odometer", "price", "vin"):
            value = getattr(v, name)
            if value not in (None, ""):
                out[name] = value
        return out

    doc: dict[str, Any] = {
        "person": {"first_name": lead.person.first_name, "last_name": lead.person.last_name},
        "phones": [
            {"number": p.raw, "kind": p.kind.value, "preferred": p.preferred} for p in lead.phones
        ],
        "emails": [{"address": e.address, "preferred": e.preferred} for e in lead.emails],
        "vehicles": [vehicle(v) for v in lead.vehicles],
        "comments": lead.comments,
        "source": {"name": lead.source.name, "type": lead.source.type.value},
        "consents": [
            {
                "channel": c.channel.value,
                "scope": c.scope.value,
                "granted_at": c.granted_at.isoformat(),
                "method": c.method,
                "text": c.text,
            }
            for c in lead.consents
        ],
    }
    if lead.address.postal_code or lead.address.street:
        doc["address"] = {
            "street": lead.address.street,
            "city": lead.address.city,
            "state": lead.address.state,
            "postal_code": lead.address.postal_code,
        }
    if lead.trade_in is not None:
        doc["trade_in"] = vehicle(lead.trade_in)
    if lead.timeframe.description or lead.timeframe.within_days is not None:
        doc["timeframe"] = {
            "description": lead.timeframe.description,
            "within_days": lead.timeframe.within_days,
        }
    return doc


def quiet_now(zone: str, now: datetime) -> bool:
    """Is it outside 8:00–21:00 in `zone` (no calls or marketing texts there)?"""
    local = now.astimezone(ZoneInfo(zone))
    return not 8 <= local.hour < 21


class LeadSimulator:
    """Sends one realistic event per `step()`; `run()` keeps going every ~`mean_gap_s`."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        webhook_token: str,
        store_number: str = DEMO_STORE.phone,
        seed: int = 11,
        mean_gap_s: float = 40.0,
        clock: Clock = lambda: datetime.now(UTC),
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._rng = random.Random(seed)
        self._api_key = api_key
        self._webhook_token = webhook_token
        self._store_number = store_number
        self._clock = clock
        self.mean_gap_s = mean_gap_s
        self._client = httpx.AsyncClient(base_url=base_url, timeout=20, transport=transport)
        self._known: list[_Known] = []
        self._steps = 0
        self._stopped_one = False
        self.stats = SimulatorStats()

    async def aclose(self) -> None:
        await self._client.aclose()

    # One event

    def _next_kind(self) -> EventKind:
        """A fixed opening (so a short demo shows every kind), then weighted at random."""
        opening = (
            EventKind.HOT_LEAD,
            EventKind.REPLY,
            EventKind.LEAD,
            EventKind.AFTER_HOURS,
            EventKind.DUPLICATE,
            EventKind.STOP,
        )
        step = self._steps
        self._steps += 1
        if step < len(opening):
            kind = opening[step]
        else:
            kind = self._rng.choices(
                [
                    EventKind.LEAD,
                    EventKind.HOT_LEAD,
                    EventKind.DUPLICATE,
                    EventKind.AFTER_HOURS,
                    EventKind.REPLY,
                    EventKind.STOP,
                ],
                [50, 15, 8, 7, 17, 3],
            )[0]
        textable = [k for k in self._known if k.phone and k.lead_id and not k.texted]
        if kind in (EventKind.REPLY, EventKind.STOP) and not textable:
            return EventKind.LEAD
        if kind is EventKind.DUPLICATE and not self._known:
            return EventKind.LEAD
        return kind

    async def step(self) -> SimEvent:
        kind = self._next_kind()
        if kind in (EventKind.REPLY, EventKind.STOP):
            event = await self._text_back(kind)
        elif kind is EventKind.DUPLICATE:
            event = await self._duplicate()
        else:
            event = await self._new_lead(kind)
        self.stats.events.append(event)
        log.info("demo: %s %s -> %s %s", event.kind.value, event.name, event.status, event.detail)
        return event

    def _lead(self, kind: EventKind) -> Lead:
        now = self._clock()
        lead = make_lead(self._rng, now)
        while not lead.phones:  # the demo's leads are worth calling
            lead = make_lead(self._rng, now)
        return lead

    async def _new_lead(self, kind: EventKind) -> SimEvent:
        lead = self._lead(kind)
        doc = lead_document(lead)
        number = f"({self._rng.randint(201, 989)}) 555-{self._rng.randint(1000, 9999)}"
        if kind is EventKind.HOT_LEAD:
            number = f"(312) 555-{self._rng.randint(1000, 9999)}"
            doc["address"] = {
                "street": f"{self._rng.randint(100, 3999)} N Clark St",
                "city": "Chicago",
                "state": "IL",
                "postal_code": "60614",
            }
            doc["timeframe"] = {"description": "this week", "within_days": 3}
            doc["comments"] = self._rng.choice(_HOT_COMMENTS)
            for vehicle in doc["vehicles"]:
                vehicle.setdefault("stock_number", f"T{self._rng.randint(10000, 99999)}")
        elif kind is EventKind.AFTER_HOURS:
            now = self._clock()
            zone, area, postal, state, city = next(
                (p for p in _FAR_AWAY if quiet_now(p[0], now)), _FAR_AWAY[0]
            )
            number = f"({area}) 555-{self._rng.randint(1000, 9999)}"
            doc["address"] = {"street": "", "city": city, "state": state, "postal_code": postal}
            doc["comments"] = (
                f"Sent at {now.astimezone(ZoneInfo(zone)):%I:%M %p} my time. "
                + str(doc.get("comments") or "")
            ).strip()
        else:
            area = self._rng.choice(["312", "773", "847", "630", "708"])
            number = f"({area}) 555-{self._rng.randint(1000, 9999)}"
        doc["phones"] = [{"number": number, "kind": "cellphone", "preferred": True}]
        reply = await self._post_lead(doc)
        name = f"{lead.person.first_name} {lead.person.last_name}"
        lead_id = _lead_id(reply)
        self._known.append(_Known(name, number, doc, lead_id))
        return SimEvent(kind, name, reply.status_code, lead_id, _summary(reply))

    async def _duplicate(self) -> SimEvent:
        first = self._rng.choice(self._known)
        doc = dict(first.document)
        doc["comments"] = self._rng.choice(_DUPLICATE_COMMENTS)
        doc["source"] = {"name": "Cars.com", "type": "third_party"}
        reply = await self._post_lead(doc)
        return SimEvent(
            EventKind.DUPLICATE, first.name, reply.status_code, _lead_id(reply), _summary(reply)
        )

    async def _post_lead(self, doc: dict[str, Any]) -> httpx.Response:
        return await self._client.post(
            "/v1/leads",
            json=doc,
            headers={
                "Authorization": f"Bearer {self._api_key}",
                "Idempotency-Key": str(uuid.UUID(int=self._rng.getrandbits(128), version=4)),
            },
        )

    async def _text_back(self, kind: EventKind) -> SimEvent:
        candidates = [k for k in self._known if k.phone and k.lead_id and not k.texted]
        if kind is EventKind.STOP and self._stopped_one and self._rng.random() < 0.7:
            kind = EventKind.REPLY  # one opt-out early on; later ones are rare
        who = self._rng.choice(candidates)
        who.texted = True
        body = "STOP" if kind is EventKind.STOP else self._rng.choice(_REPLIES)
        if kind is EventKind.STOP:
            self._stopped_one = True
        reply = await self._client.post(
            "/v1/webhooks/sms",
            data={
                "From": who.phone or "",
                "To": self._store_number,
                "Body": body,
                "MessageSid": f"SM{uuid.UUID(int=self._rng.getrandbits(128)).hex}",
            },
            headers={"X-Webhook-Token": self._webhook_token},
        )
        return SimEvent(kind, who.name, reply.status_code, who.lead_id, body)

    # Keep going

    async def run(self, stop: asyncio.Event | None = None, *, first_after_s: float = 3.0) -> None:
        """Send events until `stop` is set (or the task is cancelled); errors are logged."""
        stop = stop or asyncio.Event()
        delay = first_after_s
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
                break
            except TimeoutError:
                pass
            try:
                await self.step()
            except httpx.HTTPError as exc:
                log.info("demo simulator: %s", exc)
            delay = self._rng.expovariate(1 / self.mean_gap_s)
            delay = min(max(delay, self.mean_gap_s / 4), self.mean_gap_s * 3)


def _lead_id(reply: httpx.Response) -> str | None:
    try:
        leads = reply.json().get("leads") or []
    except (ValueError, AttributeError):
        return None
    if not leads:
        return None
    first = leads[0]
    return str(first.get("merged_into") or first.get("lead_id") or "") or None


def _summary(reply: httpx.Response) -> str:
    try:
        leads = reply.json().get("leads") or []
    except (ValueError, AttributeError):
        return reply.text[:200]
    if not leads:
        return reply.text[:200]
    first = leads[0]
    if first.get("merged_into"):
        return f"merged into {first['merged_into']}"
    return f"score {first.get('score')} grade {first.get('grade')} → {first.get('assigned_agent')}"
