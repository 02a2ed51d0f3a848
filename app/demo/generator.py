"""Realistic, deterministic demo data: a dealership, its agents, and leads with histories.

Same seed, same data — the demo, screenshots and benchmarks all rely on that.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from app.domain.activities import (
    Activity,
    ActivityKind,
    AppointmentStatus,
    Direction,
    DispositionFlag,
)
from app.domain.dealership import Dealership
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
    Timeframe,
    Vehicle,
    VehicleCondition,
    VehicleInterest,
)
from app.domain.phones import Phone, PhoneKind, TimeOfDay, make_phone

DEMO_STORE = Dealership(
    id="lakeside",
    name="Lakeside Toyota",
    time_zone="America/Chicago",
    state="IL",
    postal_code="60614",
    phone="+13125550100",
    website="https://lakeside-toyota.example",
    address="2400 N Lakeview Ave, Chicago, IL 60614",
    market_zips=("606", "600", "601", "604", "605"),
)


@dataclass(frozen=True, slots=True)
class DemoAgent:
    id: str
    name: str
    phone: str


DEMO_AGENTS = (
    DemoAgent("agent-ana", "Ana Ruiz", "+13125550101"),
    DemoAgent("agent-ben", "Ben Okafor", "+13125550102"),
    DemoAgent("agent-chloe", "Chloe Park", "+13125550103"),
    DemoAgent("agent-dev", "Dev Patel", "+13125550104"),
)

_FIRST = [
    "Maria",
    "James",
    "Aisha",
    "Robert",
    "Linh",
    "Carlos",
    "Emily",
    "Wei",
    "Fatima",
    "Daniel",
    "Sofia",
    "Michael",
    "Priya",
    "Tyrone",
    "Olivia",
    "Jorge",
    "Hannah",
    "Kenji",
    "Grace",
    "Mateo",
    "Chloe",
    "Andre",
    "Nadia",
    "Ethan",
    "Yesenia",
    "Samuel",
    "Leah",
    "Omar",
    "Brianna",
    "Luis",
    "Megan",
    "Dmitri",
    "Keisha",
    "Noah",
    "Ingrid",
    "Xavier",
    "Zoe",
    "Rafael",
    "Amara",
    "Connor",
]
_LAST = [
    "Lopez",
    "Johnson",
    "Rahman",
    "Smith",
    "Nguyen",
    "Garcia",
    "Clark",
    "Zhang",
    "Ali",
    "Brown",
    "Rossi",
    "Miller",
    "Shah",
    "Washington",
    "Evans",
    "Hernandez",
    "Kowalski",
    "Tanaka",
    "Murphy",
    "Diaz",
    "Martin",
    "Jackson",
    "Haddad",
    "Wilson",
    "Flores",
    "Green",
    "Moore",
    "Said",
    "Taylor",
    "Ortiz",
    "Young",
    "Ivanov",
    "Harris",
    "Anderson",
    "Berg",
    "Cruz",
    "Lee",
    "Alvarez",
    "Okoye",
    "OBrien",
]

# (make, model, trims, base price, body)
_MODELS = (
    ("Toyota", "Camry", ("LE", "SE", "XSE", "XLE"), 28_400),
    ("Toyota", "RAV4", ("LE", "XLE", "Adventure", "Limited"), 30_900),
    ("Toyota", "Corolla", ("LE", "SE", "XSE"), 22_500),
    ("Toyota", "Tacoma", ("SR", "SR5", "TRD Off-Road", "Limited"), 32_900),
    ("Toyota", "Highlander", ("LE", "XLE", "Platinum"), 40_300),
    ("Toyota", "Tundra", ("SR5", "Limited", "Platinum"), 42_800),
    ("Toyota", "Sienna", ("LE", "XLE", "Platinum"), 39_900),
    ("Toyota", "Prius", ("LE", "XLE", "Limited"), 28_500),
    ("Toyota", "Grand Highlander", ("XLE", "Limited"), 44_200),
)
_USED = (
    ("Honda", "Accord", 2021),
    ("Ford", "F-150", 2020),
    ("Chevrolet", "Equinox", 2019),
    ("Nissan", "Rogue", 2021),
    ("Jeep", "Grand Cherokee", 2018),
    ("Hyundai", "Elantra", 2022),
    ("Subaru", "Outback", 2020),
)
_SOURCES = (
    (LeadSource("Dealer website", SourceType.FIRST_PARTY), 30),
    (LeadSource("Autotrader", SourceType.THIRD_PARTY), 14),
    (LeadSource("Cars.com", SourceType.THIRD_PARTY), 14),
    (LeadSource("CarGurus", SourceType.THIRD_PARTY), 10),
    (LeadSource("TrueCar", SourceType.THIRD_PARTY), 6),
    (LeadSource("Toyota.com", SourceType.THIRD_PARTY), 6),
    (LeadSource("Phone-up", SourceType.PHONE), 8),
    (LeadSource("Website chat", SourceType.CHAT), 5),
    (LeadSource("Service drive", SourceType.SERVICE_TO_SALES), 4),
    (LeadSource("Equity mining", SourceType.EQUITY_MINING), 3),
)
# (ZIP, state, city, area code): mostly the local market, some from other states and zones.
_PLACES = (
    ("60614", "IL", "Chicago", "312"),
    ("60657", "IL", "Chicago", "773"),
    ("60640", "IL", "Chicago", "773"),
    ("60201", "IL", "Evanston", "847"),
    ("60004", "IL", "Arlington Heights", "847"),
    ("60540", "IL", "Naperville", "630"),
    ("60426", "IL", "Harvey", "708"),
    ("60101", "IL", "Addison", "630"),
    ("46204", "IN", "Indianapolis", "317"),
    ("53202", "WI", "Milwaukee", "414"),
    ("33602", "FL", "Tampa", "813"),
    ("10001", "NY", "New York", "212"),
    ("85004", "AZ", "Phoenix", "602"),
    ("98101", "WA", "Seattle", "206"),
)
_STREETS = ("Oak", "Maple", "Lake", "Clark", "Elm", "Halsted", "Ashland")
_TIMEFRAMES = (
    Timeframe("This week", 7),
    Timeframe("Within 30 days", 30),
    Timeframe("1-3 months", 90),
    Timeframe("Just researching", None),
    Timeframe("", None),
)
_COMMENTS = (
    "Is this still available? What's the out-the-door price?",
    "I'd like to schedule a test drive this weekend.",
    "Do you have it in a different color? Looking for something with AWD.",
    "What would my payment be with $3,000 down?",
    "I have a trade-in, what's it worth?",
    "Pre-approved with my credit union. Can I come in Saturday?",
    "",
    "Please text me, I can't take calls at work.",
    "Looking for the best lease deal on this one.",
)


def _weighted_source(rng: random.Random) -> LeadSource:
    sources, weights = zip(*_SOURCES, strict=True)
    return rng.choices(sources, weights=weights)[0]


def _phone(rng: random.Random, area_code: str) -> Phone:
    # Exchange 2xx-9xx and a line number outside 555-01xx keep numbers valid for phonenumbers.
    exchange = rng.randint(201, 989)
    if exchange == 555:
        exchange = 556
    raw = f"({area_code}) {exchange}-{rng.randint(1000, 9999)}"
    kind = rng.choices([PhoneKind.CELL, PhoneKind.VOICE, PhoneKind.UNKNOWN], [70, 15, 15])[0]
    time_pref = rng.choice([None, None, TimeOfDay.MORNING, TimeOfDay.AFTERNOON, TimeOfDay.EVENING])
    return make_phone(raw, kind, preferred_time=time_pref, preferred=True)


def make_lead(rng: random.Random, received_at: datetime, *, lead_id: str | None = None) -> Lead:
    """One realistic lead received at `received_at`."""
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    zip_code, state, city, area = rng.choices(
        _PLACES, weights=[9, 8, 8, 6, 5, 5, 3, 3, 2, 2, 1, 1, 1, 1]
    )[0]
    source = _weighted_source(rng)
    phones: tuple[Phone, ...] = ()
    if rng.random() < 0.93:
        phones = (_phone(rng, area),)
        if rng.random() < 0.04:  # real feeds send junk numbers too
            phones = (make_phone("555-01", PhoneKind.CELL),)
    emails: tuple[Email, ...] = ()
    if rng.random() < 0.85 or not phones:
        domain = rng.choice(["gmail.com", "yahoo.com", "outlook.com", "icloud.com", "comcast.net"])
        emails = (Email(f"{first.lower()}.{last.lower()}{rng.randint(1, 99)}@{domain}"),)
    if source.type is SourceType.EQUITY_MINING or source.type is SourceType.SERVICE_TO_SALES:
        make, model, year = rng.choice(_USED)
        vehicles = (
            Vehicle(2026, "Toyota", rng.choice(_MODELS)[1], condition=VehicleCondition.NEW),
        )
        trade_in: Vehicle | None = Vehicle(
            year,
            make,
            model,
            interest=VehicleInterest.TRADE_IN,
            odometer=rng.randint(30, 80) * 1000,
        )
    else:
        make, model, trims, price = rng.choice(_MODELS)
        new = rng.random() < 0.7
        vehicles = (
            Vehicle(
                year=2026 if new else rng.randint(2019, 2024),
                make=make,
                model=model,
                trim=rng.choice(trims) if rng.random() < 0.7 else "",
                stock_number=f"T{rng.randint(10000, 99999)}" if rng.random() < 0.6 else "",
                condition=VehicleCondition.NEW if new else VehicleCondition.USED,
                interest=rng.choices(
                    [VehicleInterest.BUY, VehicleInterest.LEASE, VehicleInterest.TEST_DRIVE],
                    [70, 15, 15],
                )[0],
                price=price + rng.randint(0, 8) * 500 if new else price - rng.randint(6, 14) * 1000,
            ),
        )
        trade_in = None
        if rng.random() < 0.3:
            t_make, t_model, t_year = rng.choice(_USED)
            trade_in = Vehicle(t_year, t_make, t_model, interest=VehicleInterest.TRADE_IN)
    consents: tuple[Consent, ...] = ()
    if phones and rng.random() < 0.75:
        consents = (
            Consent(
                Channel.TEXT,
                ConsentScope.MARKETING if rng.random() < 0.5 else ConsentScope.INFORMATIONAL,
                granted_at=received_at,
                method=f"{source.name} form checkbox",
                text="I agree to receive calls and texts about my inquiry. Reply STOP to opt out.",
            ),
        )
    return Lead(
        id=lead_id or str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        store_id=DEMO_STORE.id,
        received_at=received_at,
        person=Person(first, last),
        source=source,
        phones=phones,
        emails=emails,
        address=Address(
            street=f"{rng.randint(100, 9999)} {rng.choice(_STREETS)} St",
            city=city,
            state=state,
            postal_code=zip_code,
        )
        if rng.random() < 0.8
        else Address(),
        vehicles=vehicles,
        trade_in=trade_in,
        timeframe=rng.choices(_TIMEFRAMES, [15, 25, 20, 20, 20])[0],
        comments=rng.choice(_COMMENTS),
        consents=consents,
        assigned_agent_id=rng.choice(DEMO_AGENTS).id,
        is_spam=rng.random() < 0.01,
    )


def make_history(rng: random.Random, lead: Lead, now: datetime) -> list[Activity]:
    """A plausible history before `now`: web visits, an acknowledgment, attempts, outcomes."""
    history: list[Activity] = []
    age = now - lead.received_at

    def add(kind: ActivityKind, at: datetime, **fields: object) -> None:
        if at <= now:
            activity_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            history.append(Activity(activity_id, lead.id, kind, at, **fields))  # type: ignore[arg-type]

    for visit in range(rng.choice([0, 1, 1, 2, 3, 5])):
        add(ActivityKind.WEB_VISIT, lead.received_at - timedelta(hours=visit + 1))
    if lead.primary_email is not None:
        add(
            ActivityKind.EMAIL,
            lead.received_at + timedelta(seconds=rng.randint(20, 55)),
            direction=Direction.OUTBOUND,
            automatic=True,
            body="acknowledgment",
        )
    phone = lead.primary_phone
    if age < timedelta(minutes=3) or (age < timedelta(minutes=40) and rng.random() < 0.4):
        return sorted(history, key=lambda a: a.at)  # still waiting for its first attempt
    if phone is None:
        add(
            ActivityKind.EMAIL,
            lead.received_at + timedelta(minutes=rng.randint(3, 25)),
            direction=Direction.OUTBOUND,
            agent_id=lead.assigned_agent_id,
            body="personal email",
        )
        return sorted(history, key=lambda a: a.at)
    attempts = min(int(age / timedelta(hours=5)) + 1, rng.randint(1, 6))
    at = lead.received_at + timedelta(minutes=rng.choice([2, 3, 4, 6, 12, 45]))
    for number in range(attempts):
        answered = rng.random() < 0.3
        add(
            ActivityKind.CALL,
            at,
            direction=Direction.OUTBOUND,
            agent_id=lead.assigned_agent_id,
            phone=phone.e164,
            answered=answered,
            duration_s=rng.randint(60, 600) if answered else 0,
        )
        if answered:
            appointment = rng.random() < 0.35
            flags = DispositionFlag.ATTEMPT | DispositionFlag.HUMAN_CONTACT
            if appointment:
                flags |= DispositionFlag.APPOINTMENT_SET
            add(
                ActivityKind.DISPOSITION,
                at + timedelta(minutes=4),
                agent_id=lead.assigned_agent_id,
                disposition="appointment_set" if appointment else "contacted_not_ready",
                flags=flags,
            )
            if lead.primary_email is not None:
                add(
                    ActivityKind.EMAIL,
                    at + timedelta(hours=rng.randint(2, 20)),
                    direction=Direction.OUTBOUND,
                    agent_id=lead.assigned_agent_id,
                    body="recap of our conversation",
                )
            if appointment:
                slot = (at + timedelta(days=rng.randint(1, 3))).replace(minute=0, second=0)
                add(
                    ActivityKind.APPOINTMENT,
                    at + timedelta(minutes=4),
                    agent_id=lead.assigned_agent_id,
                    appointment_status=AppointmentStatus.SET,
                    scheduled_for=slot,
                )
                if slot + timedelta(hours=1) <= now:  # the slot has passed: it was kept or missed
                    outcome = (
                        AppointmentStatus.KEPT if rng.random() < 0.65 else AppointmentStatus.NO_SHOW
                    )
                    add(
                        ActivityKind.APPOINTMENT,
                        slot + timedelta(hours=1),
                        appointment_status=outcome,
                        scheduled_for=slot,
                    )
                    if outcome is AppointmentStatus.NO_SHOW and now - slot > timedelta(days=1):
                        add(
                            ActivityKind.CALL,
                            slot + timedelta(hours=3),
                            direction=Direction.OUTBOUND,
                            agent_id=lead.assigned_agent_id,
                            phone=phone.e164,
                            answered=False,
                            duration_s=0,
                        )
                        add(
                            ActivityKind.DISPOSITION,
                            slot + timedelta(days=1),
                            agent_id=lead.assigned_agent_id,
                            disposition="not_interested",
                            flags=DispositionFlag.ATTEMPT
                            | DispositionFlag.HUMAN_CONTACT
                            | DispositionFlag.NOT_INTERESTED,
                        )
            break
        add(
            ActivityKind.DISPOSITION,
            at + timedelta(seconds=40),
            agent_id=lead.assigned_agent_id,
            disposition=rng.choice(["no_answer", "left_voicemail"]),
            flags=DispositionFlag.ATTEMPT,
        )
        # The cadence's text and personal email follow an unanswered call.
        if lead.text_phone is not None and rng.random() < 0.9:
            add(
                ActivityKind.TEXT,
                at + timedelta(minutes=rng.randint(2, 8)),
                direction=Direction.OUTBOUND,
                agent_id=lead.assigned_agent_id,
                phone=lead.text_phone.e164,
                body="Hi, this is your Lakeside Toyota contact about the vehicle you asked about.",
            )
        if lead.primary_email is not None and rng.random() < 0.8:
            add(
                ActivityKind.EMAIL,
                at + timedelta(minutes=rng.randint(20, 40)),
                direction=Direction.OUTBOUND,
                agent_id=lead.assigned_agent_id,
                body="personal email with vehicle details",
            )
        at += timedelta(hours=rng.choice([4, 5, 20, 24, 28]))
        if number == 0 and rng.random() < 0.2:
            replied_at = at - timedelta(hours=1)
            body = rng.choice(["Can you call me after 5?", "What's the best price?", "STOP"])
            add(ActivityKind.TEXT, replied_at, direction=Direction.INBOUND, body=body)
            if body == "STOP":  # the server opts the number out at once, on every channel
                add(ActivityKind.OPT_OUT, replied_at, body="STOP")
                break
            if now - replied_at > timedelta(hours=2):
                add(
                    ActivityKind.TEXT,
                    replied_at + timedelta(minutes=rng.randint(2, 9)),
                    direction=Direction.OUTBOUND,
                    agent_id=lead.assigned_agent_id,
                    phone=phone.e164,
                    body="Happy to help — what time works for a quick call?",
                )
    return sorted(history, key=lambda a: a.at)


def demo_leads(
    now: datetime, count: int = 300, *, seed: int = 7, spread: timedelta = timedelta(days=10)
) -> list[tuple[Lead, list[Activity]]]:
    """`count` leads received over `spread` before `now`, newest last, each with its history.

    A handful arrive in the last few minutes so the demo opens with live countdowns.
    """
    rng = random.Random(seed)
    result: list[tuple[Lead, list[Activity]]] = []
    fresh = min(6, count)
    for index in range(count):
        if index >= count - fresh:
            age = timedelta(seconds=rng.randint(10, 280))
        else:
            age = timedelta(seconds=rng.randint(600, int(spread.total_seconds())))
        lead = make_lead(rng, now - age)
        history = make_history(rng, lead, now)
        opt_out = next((a for a in history if a.kind is ActivityKind.OPT_OUT), None)
        if opt_out is not None:
            lead = replace(lead, opted_out_at=opt_out.at)
        result.append((lead, history))
    result.sort(key=lambda pair: pair[0].received_at)
    return result


def lead_stream(seed: int, start: datetime, mean_gap: timedelta) -> Iterator[Lead]:
    """An endless stream of new leads, for the demo's simulator."""
    rng = random.Random(seed)
    at = start
    while True:
        at += timedelta(seconds=rng.expovariate(1 / mean_gap.total_seconds()))
        yield make_lead(rng, at)


# --- The JSON intake document ------------------------------------------------------------------


def intake_document(lead: Lead) -> dict[str, Any]:
    """`lead` as a provider posts it to POST /v1/leads (the JSON intake schema, `LeadIn`).

    The one builder for the demo's simulator, the server's demo seed and the benchmarks. Empty
    optional fields are left out; a revoked consent is not sent (the schema has no revocation,
    and sending it would grant consent the customer took back).
    """
    person = {"first_name": lead.person.first_name, "last_name": lead.person.last_name}
    person |= {
        name: value
        for name in ("middle_name", "business_name")
        if (value := getattr(lead.person, name))
    }
    doc: dict[str, Any] = {
        "person": person,
        "phones": [
            {
                "number": p.raw,
                "kind": p.kind.value,
                **({"preferred_time": p.preferred_time.value} if p.preferred_time else {}),
                "preferred": p.preferred,
            }
            for p in lead.phones
        ],
        "emails": [{"address": e.address, "preferred": e.preferred} for e in lead.emails],
        "vehicles": [_vehicle_document(v) for v in lead.vehicles],
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
            if c.revoked_at is None
        ],
    }
    address = lead.address
    if address.street or address.city or address.state or address.postal_code:
        doc["address"] = {
            "street": address.street,
            "city": address.city,
            "state": address.state,
            "postal_code": address.postal_code,
            **({"country": address.country} if address.country != "US" else {}),
        }
    if lead.trade_in is not None:
        doc["trade_in"] = _vehicle_document(lead.trade_in)
    if lead.timeframe.description or lead.timeframe.within_days is not None:
        doc["timeframe"] = {
            "description": lead.timeframe.description,
            "within_days": lead.timeframe.within_days,
        }
    return doc


def _vehicle_document(vehicle: Vehicle) -> dict[str, Any]:
    out: dict[str, Any] = {
        "make": vehicle.make,
        "model": vehicle.model,
        "condition": vehicle.condition.value,
        "interest": vehicle.interest.value,
    }
    for name in ("year", "trim", "stock_number", "odometer", "price", "vin"):
        value = getattr(vehicle, name)
        if value not in (None, ""):
            out[name] = value
    return out
