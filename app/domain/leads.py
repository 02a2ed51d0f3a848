"""The lead: a person who asked about a vehicle, how to reach them, and what they consented to."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TypeVar

from app.domain.errors import InvalidLeadError
from app.domain.phones import Phone

_T = TypeVar("_T")


class Channel(StrEnum):
    """A way to reach a customer."""

    CALL = "call"
    TEXT = "text"
    EMAIL = "email"


class SourceType(StrEnum):
    FIRST_PARTY = "first_party"  # the dealership's own website
    THIRD_PARTY = "third_party"  # aggregators: Autotrader, Cars.com, ...
    PHONE = "phone"
    CHAT = "chat"
    WALK_IN = "walk_in"
    SERVICE_TO_SALES = "service_to_sales"
    EQUITY_MINING = "equity_mining"


class VehicleInterest(StrEnum):
    """ADF `vehicle@interest`."""

    BUY = "buy"
    LEASE = "lease"
    SELL = "sell"
    TRADE_IN = "trade-in"
    TEST_DRIVE = "test-drive"


class VehicleCondition(StrEnum):
    NEW = "new"
    USED = "used"
    UNKNOWN = "unknown"


class LeadStatus(StrEnum):
    NEW = "new"  # nobody has attempted contact yet
    WORKING = "working"  # attempts made, no conversation yet
    CONTACTED = "contacted"  # a real conversation happened
    APPOINTMENT = "appointment"
    SOLD = "sold"
    LOST = "lost"  # not interested, bad data, retired after the cadence ran out
    DO_NOT_CONTACT = "do_not_contact"


class ConsentScope(StrEnum):
    MARKETING = "marketing"  # prior express written consent
    INFORMATIONAL = "informational"  # the customer asked to be contacted about their inquiry


@dataclass(frozen=True, slots=True)
class Person:
    first_name: str = ""
    last_name: str = ""
    middle_name: str = ""
    business_name: str = ""

    @property
    def full_name(self) -> str:
        parts = [p for p in (self.first_name, self.middle_name, self.last_name) if p]
        return " ".join(parts) or self.business_name


@dataclass(frozen=True, slots=True)
class Email:
    address: str
    preferred: bool = False

    @property
    def valid(self) -> bool:
        return is_valid_email(self.address)


@dataclass(frozen=True, slots=True)
class Address:
    street: str = ""
    city: str = ""
    state: str = ""  # two-letter US state code, upper case, or ""
    postal_code: str = ""  # 5-digit ZIP for US addresses, or ""
    country: str = "US"


@dataclass(frozen=True, slots=True)
class Vehicle:
    year: int | None = None
    make: str = ""
    model: str = ""
    trim: str = ""
    vin: str = ""
    stock_number: str = ""
    condition: VehicleCondition = VehicleCondition.UNKNOWN
    interest: VehicleInterest = VehicleInterest.BUY
    odometer: int | None = None
    price: int | None = None  # whole dollars

    @property
    def description(self) -> str:
        """'2024 Toyota Camry SE' — the text merge fields and the queue show."""
        parts = [str(self.year) if self.year else "", self.make, self.model, self.trim]
        return " ".join(p for p in parts if p)

    @property
    def is_specific(self) -> bool:
        """A specific vehicle: a VIN or stock number, or at least make and model."""
        return bool(self.vin or self.stock_number or (self.make and self.model))


@dataclass(frozen=True, slots=True)
class LeadSource:
    name: str  # e.g. "Dealer website", "Autotrader", "Cars.com"
    type: SourceType


@dataclass(frozen=True, slots=True)
class Timeframe:
    """What the shopper said about when they will buy. `within_days` None means unknown."""

    description: str = ""
    within_days: int | None = None


@dataclass(frozen=True, slots=True)
class Consent:
    """One consent record: kept with where it came from, the words shown, and when."""

    channel: Channel
    scope: ConsentScope
    granted_at: datetime
    method: str  # how it was given, e.g. "web form checkbox", "verbal on recorded call"
    text: str = ""  # the consent language the customer agreed to
    revoked_at: datetime | None = None

    def active_at(self, when: datetime) -> bool:
        # In UTC: two datetimes sharing a zone compare by wall time, ignoring the DST fold.
        instant = when.astimezone(UTC)
        return self.granted_at.astimezone(UTC) <= instant and (
            self.revoked_at is None or instant < self.revoked_at.astimezone(UTC)
        )


@dataclass(frozen=True, slots=True)
class Lead:
    id: str
    store_id: str
    received_at: datetime  # timezone-aware, when the dealership received it
    person: Person
    source: LeadSource
    phones: tuple[Phone, ...] = ()
    emails: tuple[Email, ...] = ()
    address: Address = field(default_factory=Address)
    vehicles: tuple[Vehicle, ...] = ()  # vehicles of interest
    trade_in: Vehicle | None = None
    timeframe: Timeframe = field(default_factory=Timeframe)
    comments: str = ""
    consents: tuple[Consent, ...] = ()
    status: LeadStatus = LeadStatus.NEW
    assigned_agent_id: str | None = None
    duplicate_of: str | None = None
    is_spam: bool = False
    do_not_call: bool = False  # on the national or internal do-not-call list
    opted_out_at: datetime | None = None  # revoked consent on every channel
    version: int = 0  # server row version, for conflict detection

    def __post_init__(self) -> None:
        if not self.id:
            raise InvalidLeadError("a lead needs an id")
        if self.received_at.tzinfo is None or self.received_at.utcoffset() is None:
            raise InvalidLeadError("received_at must carry a time zone (got a naive datetime)")
        if self.trade_in is not None and self.trade_in.interest is not VehicleInterest.TRADE_IN:
            raise InvalidLeadError("trade_in must be a vehicle with interest 'trade-in'")

    @property
    def primary_phone(self) -> Phone | None:
        """The phone to dial: the preferred reachable one, else the first reachable one."""
        return _pick([p for p in self.phones if p.reachable], lambda p: p.preferred)

    @property
    def text_phone(self) -> Phone | None:
        return _pick([p for p in self.phones if p.textable], lambda p: p.preferred)

    @property
    def primary_email(self) -> Email | None:
        return _pick([e for e in self.emails if e.valid], lambda e: e.preferred)

    @property
    def vehicle(self) -> Vehicle | None:
        """The main vehicle of interest."""
        return self.vehicles[0] if self.vehicles else None

    @property
    def reachable(self) -> bool:
        return self.primary_phone is not None or self.primary_email is not None

    def consent_for(self, channel: Channel, when: datetime) -> tuple[Consent, ...]:
        return tuple(c for c in self.consents if c.channel is channel and c.active_at(when))


_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_EMAIL_RE = re.compile(rf"^[^@\s<>(),;:\"\[\]]+@{_LABEL}(?:\.{_LABEL})+$")


def _pick(candidates: list[_T], is_preferred: Callable[[_T], bool]) -> _T | None:
    """The first preferred candidate, else the first candidate, else None."""
    for candidate in candidates:
        if is_preferred(candidate):
            return candidate
    return candidates[0] if candidates else None


def is_valid_email(address: str) -> bool:
    return len(address) <= 254 and bool(_EMAIL_RE.match(address))


def normalize_email(address: str) -> str:
    """Trimmed, domain lower-cased; raises InvalidLeadError naming the bad address."""
    text = (address or "").strip()
    if "@" not in text:
        raise InvalidLeadError(f"email address {text!r} has no '@'")
    local, _, domain = text.rpartition("@")
    normalized = f"{local}@{domain.lower()}"
    if not is_valid_email(normalized):
        raise InvalidLeadError(f"email address {text!r} is not a valid address")
    return normalized
