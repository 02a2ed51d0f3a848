"""JSON-ready dicts for leads and activities, both ways — the wire format of the lead API.

Decoding is strict: unknown fields, wrong types and bad enum values raise a DomainError naming the
field, so the server can answer 422 with the exact problem and store nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

from app.domain.activities import (
    Activity,
    ActivityKind,
    AppointmentStatus,
    Direction,
    DispositionFlag,
)
from app.domain.errors import DomainError, InvalidLeadError
from app.domain.leads import (
    Address,
    Channel,
    Consent,
    ConsentScope,
    Email,
    Lead,
    LeadSource,
    LeadStatus,
    Person,
    SourceType,
    Timeframe,
    Vehicle,
    VehicleCondition,
    VehicleInterest,
)
from app.domain.phones import Phone, PhoneKind, TimeOfDay, make_phone

E = TypeVar("E", bound=Enum)
T = TypeVar("T")


class DecodeError(DomainError):
    """A document does not match the wire format; the message names the field."""


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


# Encoding


def phone_to_dict(phone: Phone) -> dict[str, Any]:
    return {
        "raw": phone.raw,
        "e164": phone.e164,
        "kind": phone.kind.value,
        "preferred_time": phone.preferred_time.value if phone.preferred_time else None,
        "preferred": phone.preferred,
    }


def vehicle_to_dict(vehicle: Vehicle) -> dict[str, Any]:
    return {
        "year": vehicle.year,
        "make": vehicle.make,
        "model": vehicle.model,
        "trim": vehicle.trim,
        "vin": vehicle.vin,
        "stock_number": vehicle.stock_number,
        "condition": vehicle.condition.value,
        "interest": vehicle.interest.value,
        "odometer": vehicle.odometer,
        "price": vehicle.price,
    }


def lead_to_dict(lead: Lead) -> dict[str, Any]:
    return {
        "id": lead.id,
        "store_id": lead.store_id,
        "received_at": _iso(lead.received_at),
        "person": {
            "first_name": lead.person.first_name,
            "last_name": lead.person.last_name,
            "middle_name": lead.person.middle_name,
            "business_name": lead.person.business_name,
        },
        "source": {"name": lead.source.name, "type": lead.source.type.value},
        "phones": [phone_to_dict(p) for p in lead.phones],
        "emails": [{"address": e.address, "preferred": e.preferred} for e in lead.emails],
        "address": {
            "street": lead.address.street,
            "city": lead.address.city,
            "state": lead.address.state,
            "postal_code": lead.address.postal_code,
            "country": lead.address.country,
        },
        "vehicles": [vehicle_to_dict(v) for v in lead.vehicles],
        "trade_in": vehicle_to_dict(lead.trade_in) if lead.trade_in else None,
        "timeframe": {
            "description": lead.timeframe.description,
            "within_days": lead.timeframe.within_days,
        },
        "comments": lead.comments,
        "consents": [
            {
                "channel": c.channel.value,
                "scope": c.scope.value,
                "granted_at": _iso(c.granted_at),
                "method": c.method,
                "text": c.text,
                "revoked_at": _iso(c.revoked_at),
            }
            for c in lead.consents
        ],
        "status": lead.status.value,
        "assigned_agent_id": lead.assigned_agent_id,
        "duplicate_of": lead.duplicate_of,
        "is_spam": lead.is_spam,
        "do_not_call": lead.do_not_call,
        "opted_out_at": _iso(lead.opted_out_at),
        "version": lead.version,
    }


def activity_to_dict(activity: Activity) -> dict[str, Any]:
    return {
        "id": activity.id,
        "lead_id": activity.lead_id,
        "kind": activity.kind.value,
        "at": _iso(activity.at),
        "direction": activity.direction.value if activity.direction else None,
        "automatic": activity.automatic,
        "agent_id": activity.agent_id,
        "phone": activity.phone,
        "duration_s": activity.duration_s,
        "answered": activity.answered,
        "disposition": activity.disposition,
        "flags": flag_names(activity.flags),
        "appointment_status": (
            activity.appointment_status.value if activity.appointment_status else None
        ),
        "scheduled_for": _iso(activity.scheduled_for),
        "body": activity.body,
        "score": activity.score,
    }


def flag_names(flags: DispositionFlag) -> list[str]:
    return [f.name.lower() for f in DispositionFlag if f.name and f.value and f in flags]


# Decoding


class _Reader:
    """Reads one JSON object, naming each field by its path in errors."""

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, Mapping):
            raise DecodeError(f"{path or 'document'}: must be an object")
        self.data = data
        self.path = path
        self.used: set[str] = set()

    def _name(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def raw(self, key: str, default: Any = None) -> Any:
        self.used.add(key)
        return self.data.get(key, default)

    def text(
        self, key: str, default: str = "", *, required: bool = False, limit: int = 4000
    ) -> str:
        if required and key not in self.data:
            raise DecodeError(f"{self._name(key)}: required")
        value = self.raw(key, default)
        if value is None:
            value = default
        if not isinstance(value, str):
            raise DecodeError(f"{self._name(key)}: must be a string")
        if len(value) > limit:
            raise DecodeError(f"{self._name(key)}: longer than {limit} characters")
        return value

    def optional_text(self, key: str) -> str | None:
        value = self.raw(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise DecodeError(f"{self._name(key)}: must be a string or null")
        return value

    def integer(self, key: str, *, low: int = -(2**31), high: int = 2**31) -> int | None:
        value = self.raw(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise DecodeError(f"{self._name(key)}: must be an integer")
        if not low <= value <= high:
            raise DecodeError(f"{self._name(key)}: must be between {low} and {high}")
        return value

    def boolean(self, key: str, default: bool = False) -> bool:
        value = self.raw(key, default)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise DecodeError(f"{self._name(key)}: must be true or false")
        return value

    def optional_boolean(self, key: str) -> bool | None:
        value = self.raw(key)
        if value is not None and not isinstance(value, bool):
            raise DecodeError(f"{self._name(key)}: must be true, false or null")
        return value

    def enum(self, key: str, kind: type[E], default: E | None = None) -> E:
        value = self.raw(key)
        if value is None:
            if default is None:
                raise DecodeError(f"{self._name(key)}: required")
            return default
        try:
            return kind(value)
        except ValueError:
            allowed = ", ".join(str(m.value) for m in kind)
            raise DecodeError(f"{self._name(key)}: {value!r} is not one of {allowed}") from None

    def optional_enum(self, key: str, kind: type[E]) -> E | None:
        if self.data.get(key) is None:
            self.used.add(key)
            return None
        return self.enum(key, kind)

    def when(self, key: str, *, required: bool = False) -> datetime | None:
        value = self.raw(key)
        if value is None:
            if required:
                raise DecodeError(f"{self._name(key)}: required")
            return None
        if not isinstance(value, str):
            raise DecodeError(f"{self._name(key)}: must be an ISO 8601 date-time string")
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise DecodeError(
                f"{self._name(key)}: {value!r} is not an ISO 8601 date-time"
            ) from None
        if parsed.tzinfo is None:
            raise DecodeError(f"{self._name(key)}: must include a time zone offset")
        return parsed

    def items(self, key: str, decode: Callable[[Any, str], T], limit: int = 50) -> tuple[T, ...]:
        value = self.raw(key, [])
        if value is None:
            return ()
        if not isinstance(value, list):
            raise DecodeError(f"{self._name(key)}: must be an array")
        if len(value) > limit:
            raise DecodeError(f"{self._name(key)}: at most {limit} entries")
        return tuple(decode(entry, f"{self._name(key)}[{n}]") for n, entry in enumerate(value))

    def child(self, key: str, *, required: bool = False) -> _Reader | None:
        value = self.raw(key)
        if value is None:
            if required:
                raise DecodeError(f"{self._name(key)}: required")
            return None
        return _Reader(value, self._name(key))

    def done(self) -> None:
        # keys() - set: one C-level pass (every lead and activity of a sync ends here)
        unknown = self.data.keys() - self.used
        if unknown:
            names = ", ".join(sorted(unknown))
            raise DecodeError(f"{self.path or 'document'}: unknown field(s) {names}")


def _phone(data: Any, path: str) -> Phone:
    r = _Reader(data, path)
    raw = r.text("raw", required=True, limit=40)
    r.raw("e164")  # recomputed from raw: the server never trusts a client's normalization
    kind = r.enum("kind", PhoneKind, PhoneKind.UNKNOWN)
    preferred_time = r.optional_enum("preferred_time", TimeOfDay)
    preferred = r.boolean("preferred")
    r.done()
    return make_phone(raw, kind, preferred_time=preferred_time, preferred=preferred)


def _email(data: Any, path: str) -> Email:
    r = _Reader(data, path)
    email = Email(r.text("address", required=True, limit=254), r.boolean("preferred"))
    r.done()
    return email


def _vehicle(data: Any, path: str) -> Vehicle:
    r = _Reader(data, path)
    vehicle = Vehicle(
        year=r.integer("year", low=1900, high=2100),
        make=r.text("make", limit=60),
        model=r.text("model", limit=60),
        trim=r.text("trim", limit=60),
        vin=r.text("vin", limit=17),
        stock_number=r.text("stock_number", limit=40),
        condition=r.enum("condition", VehicleCondition, VehicleCondition.UNKNOWN),
        interest=r.enum("interest", VehicleInterest, VehicleInterest.BUY),
        odometer=r.integer("odometer", low=0, high=2_000_000),
        price=r.integer("price", low=0, high=10_000_000),
    )
    r.done()
    return vehicle


def _consent(data: Any, path: str) -> Consent:
    r = _Reader(data, path)
    granted_at = r.when("granted_at", required=True)
    assert granted_at is not None
    consent = Consent(
        channel=r.enum("channel", Channel),
        scope=r.enum("scope", ConsentScope),
        granted_at=granted_at,
        method=r.text("method", required=True, limit=200),
        text=r.text("text", limit=2000),
        revoked_at=r.when("revoked_at"),
    )
    r.done()
    return consent


def lead_from_dict(data: Any) -> Lead:
    """A Lead from its wire form. Raises DecodeError (or InvalidLeadError) naming the field."""
    r = _Reader(data, "")
    person = r.child("person", required=True)
    source = r.child("source", required=True)
    address = r.child("address")
    timeframe = r.child("timeframe")
    assert person is not None and source is not None
    received_at = r.when("received_at", required=True)
    assert received_at is not None
    person_value = Person(
        first_name=person.text("first_name", limit=80),
        last_name=person.text("last_name", limit=80),
        middle_name=person.text("middle_name", limit=80),
        business_name=person.text("business_name", limit=120),
    )
    person.done()
    source_value = LeadSource(
        source.text("name", required=True, limit=120), source.enum("type", SourceType)
    )
    source.done()
    address_value = Address()
    if address is not None:
        address_value = Address(
            street=address.text("street", limit=200),
            city=address.text("city", limit=80),
            state=address.text("state", limit=2).upper(),
            postal_code=address.text("postal_code", limit=10),
            country=address.text("country", "US", limit=2),
        )
        address.done()
    timeframe_value = Timeframe()
    if timeframe is not None:
        timeframe_value = Timeframe(
            timeframe.text("description", limit=200),
            timeframe.integer("within_days", low=0, high=3650),
        )
        timeframe.done()
    trade_in = r.raw("trade_in")
    lead = Lead(
        id=r.text("id", required=True, limit=64),
        store_id=r.text("store_id", required=True, limit=64),
        received_at=received_at,
        person=person_value,
        source=source_value,
        phones=r.items("phones", _phone, limit=10),
        emails=r.items("emails", _email, limit=10),
        address=address_value,
        vehicles=r.items("vehicles", _vehicle, limit=10),
        trade_in=None if trade_in is None else _vehicle(trade_in, "trade_in"),
        timeframe=timeframe_value,
        comments=r.text("comments", limit=4000),
        consents=r.items("consents", _consent, limit=20),
        status=r.enum("status", LeadStatus, LeadStatus.NEW),
        assigned_agent_id=r.optional_text("assigned_agent_id"),
        duplicate_of=r.optional_text("duplicate_of"),
        is_spam=r.boolean("is_spam"),
        do_not_call=r.boolean("do_not_call"),
        opted_out_at=r.when("opted_out_at"),
        version=r.integer("version", low=0) or 0,
    )
    r.done()
    if not lead.person.full_name:
        raise InvalidLeadError("person: a first, last or business name is required")
    return lead


def activity_from_dict(data: Any) -> Activity:
    r = _Reader(data, "")
    at = r.when("at", required=True)
    assert at is not None
    flags = DispositionFlag.NONE
    raw_flags = r.raw("flags", [])
    if not isinstance(raw_flags, list):
        raise DecodeError("flags: must be an array of flag names")
    for name in raw_flags:
        member = DispositionFlag.__members__.get(str(name).upper())
        if member is None or not isinstance(name, str):
            raise DecodeError(f"flags: unknown flag {name!r}")
        flags |= member
    activity = Activity(
        id=r.text("id", required=True, limit=64),
        lead_id=r.text("lead_id", required=True, limit=64),
        kind=r.enum("kind", ActivityKind),
        at=at,
        direction=r.optional_enum("direction", Direction),
        automatic=r.boolean("automatic"),
        agent_id=r.optional_text("agent_id"),
        phone=r.optional_text("phone"),
        duration_s=r.integer("duration_s", low=0, high=86_400),
        answered=r.optional_boolean("answered"),
        disposition=r.optional_text("disposition"),
        flags=flags,
        appointment_status=r.optional_enum("appointment_status", AppointmentStatus),
        scheduled_for=r.when("scheduled_for"),
        body=r.text("body", limit=10_000),
        score=r.integer("score", low=0, high=100),
    )
    r.done()
    return activity
