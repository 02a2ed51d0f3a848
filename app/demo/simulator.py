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
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from app.demo.generator import DEMO_STORE, intake_document, make_lead
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
        doc = intake_document(lead)
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


# --- The floor: simulated agents working, for the manager view's demo ----------------------------

_PAUSES = ("break", "lunch", "coaching", "meeting")
# (disposition, answered, talk seconds range); appointment_set needs a slot
_OUTCOMES = (
    ("no_answer", False, (0, 0)),
    ("left_voicemail", False, (0, 0)),
    ("contacted_not_ready", True, (90, 420)),
    ("appointment_set", True, (240, 720)),
    ("callback_requested", True, (60, 200)),
)


@dataclass
class _SimAgent:
    username: str
    token: str = ""
    user_id: str = ""
    state: str = "offline"
    lead_id: str | None = None
    call_started: datetime | None = None


class FloorSimulator:
    """Other agents working the floor through the real API: sign in, go available, call their
    leads (presence on_call with the lead), log the call and a disposition, wrap up, pause now
    and then. `warm_up()` gives a demo board something in every state at once."""

    def __init__(
        self,
        base_url: str,
        usernames: tuple[str, ...],
        password: str,
        *,
        seed: int = 7,
        mean_gap_s: float = 4.0,
        clock: Clock = lambda: datetime.now(UTC),
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._rng = random.Random(seed)
        self._password = password
        self._clock = clock
        self.mean_gap_s = mean_gap_s
        self._client = httpx.AsyncClient(base_url=base_url, timeout=20, transport=transport)
        self.agents = [_SimAgent(u) for u in usernames]
        self.calls_logged = 0

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _call(
        self, agent: _SimAgent, method: str, path: str, body: Any = None, **kw: Any
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {agent.token}", **kw.pop("headers", {})}
        return await self._client.request(method, path, json=body, headers=headers, **kw)

    async def sign_in(self) -> None:
        for agent in self.agents:
            if agent.token:
                continue
            reply = await self._client.post(
                "/v1/auth/token", json={"username": agent.username, "password": self._password}
            )
            reply.raise_for_status()
            agent.token = reply.json()["access_token"]
            agent.user_id = reply.json()["user_id"]

    async def set_state(
        self, agent: _SimAgent, state: str, *, reason: str | None = None, lead_id: str | None = None
    ) -> None:
        body: dict[str, Any] = {"state": state}
        if reason:
            body["reason"] = reason
        if lead_id:
            body["lead_id"] = lead_id
        reply = await self._call(agent, "POST", "/v1/presence", body)
        if reply.status_code == 200:
            agent.state = state
            agent.lead_id = lead_id

    async def _a_lead(self, agent: _SimAgent) -> str | None:
        reply = await self._call(
            agent, "GET", "/v1/leads", params={"assigned": "me", "status": "new", "limit": 30}
        )
        leads = reply.json().get("leads") or [] if reply.status_code == 200 else []
        if not leads:
            reply = await self._call(
                agent,
                "GET",
                "/v1/leads",
                params={"assigned": "me", "status": "working", "limit": 30},
            )
            leads = reply.json().get("leads") or [] if reply.status_code == 200 else []
        return str(self._rng.choice(leads)["id"]) if leads else None

    async def start_call(self, agent: _SimAgent) -> bool:
        lead_id = await self._a_lead(agent)
        if lead_id is None:
            return False
        agent.call_started = self._clock()
        await self.set_state(agent, "on_call", lead_id=lead_id)
        return agent.state == "on_call"

    async def end_call(self, agent: _SimAgent, *, talk_s: int | None = None) -> None:
        """Log the call and its disposition (as the agent's workstation would), then wrap up."""
        lead_id = agent.lead_id
        if lead_id is None:
            return
        code, answered, (low, high) = self._rng.choice(_OUTCOMES)
        now = self._clock()
        started = agent.call_started or now
        duration = talk_s if talk_s is not None else self._rng.randint(low, high)
        duration = duration if answered else 0
        started = min(started, now - timedelta(seconds=duration + 5))
        call = {
            "id": str(uuid.UUID(int=self._rng.getrandbits(128), version=4)),
            "lead_id": lead_id,
            "kind": "call",
            "at": started.isoformat(),
            "direction": "outbound",
            "answered": answered,
            "duration_s": duration,
        }
        disposition: dict[str, Any] = {
            "id": str(uuid.UUID(int=self._rng.getrandbits(128), version=4)),
            "lead_id": lead_id,
            "kind": "disposition",
            "at": now.isoformat(),
            "disposition": code,
        }
        if code in ("appointment_set", "callback_requested"):
            slot = (now + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
            disposition["scheduled_for"] = slot.isoformat()
        reply = await self._call(
            agent,
            "POST",
            "/v1/activities",
            {"activities": [call, disposition]},
            headers={"Idempotency-Key": call["id"]},
        )
        if reply.status_code in (200, 201):
            self.calls_logged += 1
        else:
            log.info("demo floor: %s's call was refused: %s", agent.username, reply.text[:200])
        await self.set_state(agent, "wrap_up")

    async def warm_up(self) -> None:
        """Sign everyone in, log a few calls each, and leave them in different states."""
        await self.sign_in()
        for agent in self.agents:
            await self.set_state(agent, "available")
            for _ in range(self._rng.randint(2, 4)):
                if await self.start_call(agent):
                    await self.end_call(agent)
            await self.set_state(agent, "available")
        plan = ("on_call", "paused", "wrap_up", "on_call", "available", "paused")
        for agent, state in zip(self.agents, plan, strict=False):
            if state == "on_call":
                await self.start_call(agent)
            elif state == "paused":
                await self.set_state(agent, "paused", reason=self._rng.choice(_PAUSES))
            else:
                await self.set_state(agent, state)

    async def step(self) -> None:
        """One agent moves on: available → on a call → wrap-up → available, with pauses."""
        agent = self._rng.choice(self.agents)
        if agent.state == "on_call":
            await self.end_call(agent)
        elif agent.state == "wrap_up":
            await self.set_state(agent, "available")
        elif agent.state == "paused":
            if self._rng.random() < 0.5:
                await self.set_state(agent, "available")
        elif agent.state == "available":
            if self._rng.random() < 0.15:
                await self.set_state(agent, "paused", reason=self._rng.choice(_PAUSES))
            elif not await self.start_call(agent):
                await self.set_state(agent, "available")
        else:
            await self.set_state(agent, "available")

    async def heartbeat(self) -> None:
        for agent in self.agents:
            if agent.token:
                await self._call(agent, "POST", "/v1/presence/heartbeat")

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Keep the floor moving until `stop` is set (or the task is cancelled)."""
        stop = stop or asyncio.Event()
        beat = 0.0
        while not stop.is_set():
            delay = min(max(self._rng.expovariate(1 / self.mean_gap_s), 1.0), 3 * self.mean_gap_s)
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
                break
            except TimeoutError:
                pass
            try:
                await self.step()
                beat += delay
                if beat >= 30:
                    beat = 0.0
                    await self.heartbeat()
            except httpx.HTTPError as exc:
                log.info("demo floor: %s", exc)
