"""The customer's local time: candidate time zones from the address state, the ZIP and the phone.

Calling rules are in the called person's local time, and the data that tells us where they are is
imperfect: people keep their cell numbers when they move, some states and area codes straddle a zone
line, and a form's state and ZIP can disagree. So nothing here guesses a single answer: every zone
any source points to is kept as a candidate and the compliance rules apply their window in all of
them ("most restrictive wins"). One zone is still chosen as the primary, for display and for naming
the customer's calendar day:

1. the address state / ZIP (where the customer lives now) — people move with their cell numbers;
   within a state that spans two zones, the zone the phone's area code agrees with comes first;
   a ZIP narrows a split state to its own zone where resources/us_zip_prefixes.toml says so;
2. otherwise the phone's area code;
3. otherwise the caller's fallback (typically the dealership's zone), else every US zone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_timezone

from app.domain.area_code_states import state_for_number
from app.domain.errors import DomainError
from app.domain.leads import Lead
from app.domain.phones import Phone
from app.domain.rules_file import RulesDocument


class NaiveDatetimeError(DomainError):
    """A datetime without a time zone was given where local time matters."""


class TimeZoneError(DomainError):
    """An unknown or unusable time zone name."""


def require_aware(value: object, name: str) -> datetime:
    """`value` as an aware datetime, or a typed error naming the parameter."""
    if not isinstance(value, datetime):
        raise DomainError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise NaiveDatetimeError(f"{name} must carry a time zone (got a naive datetime {value})")
    return value


def zone_info(name: str) -> ZoneInfo:
    """ZoneInfo for an IANA name, or TimeZoneError naming it."""
    if not isinstance(name, str) or not name or name.startswith("/") or ".." in name:
        raise TimeZoneError(f"unknown time zone {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise TimeZoneError(f"unknown time zone {name!r}") from exc


# Every zone each state, DC and territory has land in, the zone most residents live in first.
STATE_ZONES: Mapping[str, tuple[str, ...]] = {
    "AK": ("America/Anchorage", "America/Adak"),  # the western Aleutians are Hawaii-Aleutian
    "AL": ("America/Chicago",),
    "AR": ("America/Chicago",),
    "AZ": ("America/Phoenix", "America/Denver"),  # the Navajo Nation keeps daylight time
    "CA": ("America/Los_Angeles",),
    "CO": ("America/Denver",),
    "CT": ("America/New_York",),
    "DC": ("America/New_York",),
    "DE": ("America/New_York",),
    "FL": ("America/New_York", "America/Chicago"),
    "GA": ("America/New_York",),
    "HI": ("Pacific/Honolulu",),
    "IA": ("America/Chicago",),
    "ID": ("America/Boise", "America/Los_Angeles"),
    "IL": ("America/Chicago",),
    "IN": ("America/New_York", "America/Chicago"),
    "KS": ("America/Chicago", "America/Denver"),
    "KY": ("America/New_York", "America/Chicago"),
    "LA": ("America/Chicago",),
    "MA": ("America/New_York",),
    "MD": ("America/New_York",),
    "ME": ("America/New_York",),
    "MI": ("America/New_York", "America/Chicago"),
    "MN": ("America/Chicago",),
    "MO": ("America/Chicago",),
    "MS": ("America/Chicago",),
    "MT": ("America/Denver",),
    "NC": ("America/New_York",),
    "ND": ("America/Chicago", "America/Denver"),
    "NE": ("America/Chicago", "America/Denver"),
    "NH": ("America/New_York",),
    "NJ": ("America/New_York",),
    "NM": ("America/Denver",),
    "NV": ("America/Los_Angeles", "America/Denver"),  # West Wendover keeps Mountain time
    "NY": ("America/New_York",),
    "OH": ("America/New_York",),
    "OK": ("America/Chicago",),
    "OR": ("America/Los_Angeles", "America/Boise"),  # Malheur County is Mountain
    "PA": ("America/New_York",),
    "RI": ("America/New_York",),
    "SC": ("America/New_York",),
    "SD": ("America/Chicago", "America/Denver"),
    "TN": ("America/Chicago", "America/New_York"),
    "TX": ("America/Chicago", "America/Denver"),
    "UT": ("America/Denver",),
    "VA": ("America/New_York",),
    "VT": ("America/New_York",),
    "WA": ("America/Los_Angeles",),
    "WI": ("America/Chicago",),
    "WV": ("America/New_York",),
    "WY": ("America/Denver",),
    # Territories: federal rules apply there too.
    "AS": ("Pacific/Pago_Pago",),
    "GU": ("Pacific/Guam",),
    "MP": ("Pacific/Saipan",),
    "PR": ("America/Puerto_Rico",),
    "VI": ("America/St_Thomas",),
}

US_STATE_CODES = frozenset(STATE_ZONES)

# Used when nothing at all says where the customer is: the window must hold in every one of them.
ALL_US_ZONES: tuple[str, ...] = (
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",
    "America/Los_Angeles",
    "America/Anchorage",
    "Pacific/Honolulu",
)

_STATE_NAMES: Mapping[str, str] = {
    "alabama": "AL", "alaska": "AK", "arizona": "AZ", "arkansas": "AR", "california": "CA",
    "colorado": "CO", "connecticut": "CT", "delaware": "DE", "florida": "FL", "georgia": "GA",
    "hawaii": "HI", "idaho": "ID", "illinois": "IL", "indiana": "IN", "iowa": "IA", "kansas": "KS",
    "kentucky": "KY", "louisiana": "LA", "maine": "ME", "maryland": "MD", "massachusetts": "MA",
    "michigan": "MI", "minnesota": "MN", "mississippi": "MS", "missouri": "MO", "montana": "MT",
    "nebraska": "NE", "nevada": "NV", "new hampshire": "NH", "new jersey": "NJ",
    "new mexico": "NM", "new york": "NY", "north carolina": "NC", "north dakota": "ND",
    "ohio": "OH", "oklahoma": "OK", "oregon": "OR", "pennsylvania": "PA", "rhode island": "RI",
    "south carolina": "SC", "south dakota": "SD", "tennessee": "TN", "texas": "TX", "utah": "UT",
    "vermont": "VT", "virginia": "VA", "washington": "WA", "washington state": "WA",
    "west virginia": "WV",
    "wisconsin": "WI", "wyoming": "WY", "washington d.c.": "DC", "district of columbia": "DC",
    "puerto rico": "PR", "guam": "GU", "american samoa": "AS", "northern mariana islands": "MP",
    "us virgin islands": "VI", "u.s. virgin islands": "VI",
}  # fmt: skip

# phonenumbers names some zones by a county-level alias whose rules today equal a major zone's.
# Folding them keeps "area code agrees with the state" a plain name comparison.
_ZONE_ALIASES: Mapping[str, str] = {
    "America/North_Dakota/Center": "America/Chicago",
    "America/North_Dakota/New_Salem": "America/Chicago",
    "America/North_Dakota/Beulah": "America/Chicago",
    "America/Indiana/Knox": "America/Chicago",
    "America/Indiana/Tell_City": "America/Chicago",
    "America/Menominee": "America/Chicago",
    "America/Indiana/Indianapolis": "America/New_York",
    "America/Indiana/Marengo": "America/New_York",
    "America/Indiana/Petersburg": "America/New_York",
    "America/Indiana/Vevay": "America/New_York",
    "America/Indiana/Vincennes": "America/New_York",
    "America/Indiana/Winamac": "America/New_York",
    "America/Kentucky/Louisville": "America/New_York",
    "America/Kentucky/Monticello": "America/New_York",
    "America/Detroit": "America/New_York",
    "America/Juneau": "America/Anchorage",
    "America/Sitka": "America/Anchorage",
    "America/Nome": "America/Anchorage",
    "America/Yakutat": "America/Anchorage",
    "America/Metlakatla": "America/Anchorage",
}

# An area code that maps to more zones than this is not geographic (toll-free and the like).
_MAX_AREA_CODE_ZONES = 3


class ZoneSource(StrEnum):
    """Where a candidate zone came from."""

    STATE = "state"  # the lead's address state
    ZIP = "zip"  # the lead's ZIP code
    AREA_CODE = "area_code"  # the phone number's area code
    FALLBACK = "fallback"  # nothing known; the caller's default (e.g. the dealership's zone)
    UNKNOWN = "unknown"  # nothing known and no default: every US zone


@dataclass(frozen=True, slots=True)
class ZoneCandidate:
    zone: str  # IANA name
    source: ZoneSource
    detail: str  # human text, e.g. "ZIP 32501 (FL)" or "area code 850 (+18505550123)"


@dataclass(frozen=True, slots=True)
class ZoneResolution:
    """Where the customer may be: the display zone, every candidate zone, and the US states whose
    calling rules apply (address, ZIP and area-code states: a call to a Florida area code is
    presumed to reach a Florida resident)."""

    primary: str
    candidates: tuple[ZoneCandidate, ...]
    states: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # inputs that were ignored, and why

    def __post_init__(self) -> None:
        if not self.candidates:
            raise DomainError("a zone resolution needs at least one candidate zone")
        for candidate in self.candidates:
            zone_info(candidate.zone)
        zone_info(self.primary)
        if self.primary not in {c.zone for c in self.candidates}:
            raise DomainError(f"primary zone {self.primary} is not among the candidate zones")
        for state in self.states:
            if state not in US_STATE_CODES:
                raise DomainError(f"unknown US state code {state!r} in a zone resolution")

    @classmethod
    def single(cls, zone: str, *, states: Iterable[str] = ()) -> ZoneResolution:
        """A resolution with one known zone (for tests, and callers that know the zone)."""
        candidate = ZoneCandidate(zone, ZoneSource.FALLBACK, "given")
        return cls(primary=zone, candidates=(candidate,), states=tuple(states))

    @property
    def zones(self) -> tuple[str, ...]:
        """Distinct candidate zones, the primary first."""
        ordered = [self.primary]
        for candidate in self.candidates:
            if candidate.zone not in ordered:
                ordered.append(candidate.zone)
        return tuple(ordered)

    @property
    def primary_zone(self) -> ZoneInfo:
        return zone_info(self.primary)

    def sources_of(self, zone: str) -> tuple[ZoneCandidate, ...]:
        return tuple(c for c in self.candidates if c.zone == zone)

    def local_time(self, when: datetime) -> datetime:
        """`when` in the primary zone."""
        return require_aware(when, "when").astimezone(self.primary_zone)


# --- ZIP prefixes -----------------------------------------------------------------------------

_PREFIX_ITEM = re.compile(r"^(\d{3})(?:-(\d{3}))?$")
_ZIP = re.compile(r"^(\d{5})(?:-?\d{4})?$")


@dataclass(frozen=True, slots=True)
class ZipInfo:
    zip5: str
    state: str
    zones: tuple[str, ...]  # the zones this ZIP's prefix can be in


@dataclass(frozen=True, slots=True)
class ZipPrefixTable:
    """3-digit ZIP prefix -> state (and, in split states, zones). Build with parse_zip_prefixes."""

    states: Mapping[str, str] = field(default_factory=dict)  # prefix -> state
    zones: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # prefix -> zones override

    def lookup(self, postal_code: str) -> ZipInfo | None:
        """The state and zones of a US ZIP ("32501", "32501-1234"), or None when the text is not a
        ZIP or its prefix is unknown."""
        if not isinstance(postal_code, str):
            return None
        match = _ZIP.match(postal_code.strip())
        if not match:
            return None
        zip5 = match.group(1)
        state = self.states.get(zip5[:3])
        if state is None:
            return None
        zones = self.zones.get(zip5[:3], STATE_ZONES[state])
        return ZipInfo(zip5=zip5, state=state, zones=zones)

    def state_for(self, postal_code: str) -> str | None:
        info = self.lookup(postal_code)
        return info.state if info else None


def _prefix_range(doc: RulesDocument, path: tuple[str | int, ...], item: Any) -> list[str]:
    if not isinstance(item, str):
        raise doc.error(path, f'must be a ZIP prefix like "350" or "350-369", got {item!r}')
    match = _PREFIX_ITEM.match(item.strip())
    if not match:
        raise doc.error(path, f'must be a ZIP prefix like "350" or "350-369", got {item!r}')
    low = int(match.group(1))
    high = int(match.group(2)) if match.group(2) else low
    if high < low:
        raise doc.error(path, f"ZIP prefix range {item!r} runs backwards")
    return [f"{n:03d}" for n in range(low, high + 1)]


def parse_zip_prefixes(text: str, source: str) -> ZipPrefixTable:
    """Parse resources/us_zip_prefixes.toml; ResourceError names the file, line and field."""
    doc = RulesDocument(text, source)
    doc.check_keys(doc.data, (), {"states", "zones"})
    states_table = doc.table(("states",), doc.data.get("states"))
    prefix_state: dict[str, str] = {}
    for state, items in states_table.items():
        path: tuple[str | int, ...] = ("states", state)
        if state not in US_STATE_CODES:
            raise doc.error(path, f"unknown US state code {state!r}")
        for index, item in enumerate(doc.array(path, items)):
            for prefix in _prefix_range(doc, (*path, index), item):
                other = prefix_state.get(prefix)
                if other is not None:
                    raise doc.error(
                        path, f"ZIP prefix {prefix} is listed for both {other} and {state}"
                    )
                prefix_state[prefix] = state

    zone_sets: dict[str, list[str]] = {}
    zones_table = doc.table(("zones",), doc.data.get("zones", {}))
    for state, by_zone in zones_table.items():
        state_path: tuple[str | int, ...] = ("zones", state)
        if state not in US_STATE_CODES:
            raise doc.error(state_path, f"unknown US state code {state!r}")
        for zone, items in doc.table(state_path, by_zone).items():
            zone_path = (*state_path, zone)
            if zone not in STATE_ZONES[state]:
                allowed = ", ".join(STATE_ZONES[state])
                raise doc.error(zone_path, f"{zone!r} is not a zone of {state} (one of: {allowed})")
            for index, item in enumerate(doc.array(zone_path, items)):
                for prefix in _prefix_range(doc, (*zone_path, index), item):
                    if prefix_state.get(prefix) != state:
                        raise doc.error(
                            zone_path, f"ZIP prefix {prefix} is not listed under {state}"
                        )
                    listed = zone_sets.setdefault(prefix, [])
                    if zone not in listed:
                        listed.append(zone)

    # Keep the state's own zone order so the primary zone is stable.
    zone_override = {
        prefix: tuple(z for z in STATE_ZONES[prefix_state[prefix]] if z in listed)
        for prefix, listed in zone_sets.items()
    }
    return ZipPrefixTable(states=prefix_state, zones=zone_override)


# --- Area codes -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AreaCodeInfo:
    zones: tuple[str, ...]  # empty when the number is not geographic
    state: str | None  # the US state the area code belongs to, when known


def area_code_info(e164: str) -> AreaCodeInfo:
    """Zones and state for a number's area code, from phonenumbers' data. Never raises."""
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return AreaCodeInfo((), None)
    # One number_type (a fifth of deriving a lead went here): is_valid_number,
    # is_number_geographical and time_zones_for_number each work it out again.
    kind = phonenumbers.number_type(parsed)  # UNKNOWN exactly when the number is not valid
    country = parsed.country_code
    if (
        kind == phonenumbers.PhoneNumberType.UNKNOWN
        or country is None
        or not phonenumbers.is_number_type_geographical(kind, country)
    ):
        return AreaCodeInfo((), None)
    raw_zones = [str(z) for z in phone_timezone.time_zones_for_geographical_number(parsed)]
    if not raw_zones or "Etc/Unknown" in raw_zones or len(raw_zones) > _MAX_AREA_CODE_ZONES:
        return AreaCodeInfo((), None)
    folded: list[str] = []
    for zone in raw_zones:
        name = _ZONE_ALIASES.get(zone, zone)
        if name not in folded:
            folded.append(name)
    # What _state_from_description(geocoder.description_for_number(parsed, "en")) gives, from a
    # generated table: importing the geocoder costs ~100 MB resident (see area_code_states).
    # Only NANP numbers (+1: the US, its territories, Canada, the Caribbean) carry a US state:
    # a Bulgarian "Montana" or a Uruguayan "Florida" must not bring a state's calling rules.
    state = state_for_number(parsed) if parsed.country_code == 1 else None
    if state is not None:
        # Order by the state's own zone order (phonenumbers sorts alphabetically).
        rank = {zone: i for i, zone in enumerate(STATE_ZONES[state])}
        folded.sort(key=lambda z: rank.get(z, len(rank)))
    return AreaCodeInfo(tuple(folded), state)


def _state_from_description(description: str) -> str | None:
    """'Florida' -> FL, 'New York, NY' -> NY; None for anything else."""
    text = description.strip()
    if not text:
        return None
    tail = text.rsplit(",", 1)[-1].strip()
    if len(tail) == 2 and tail.upper() in US_STATE_CODES and "," in text:
        return tail.upper()
    return _STATE_NAMES.get(text.lower())


# --- Resolution -------------------------------------------------------------------------------


def resolve_zones(
    lead: Lead,
    zip_table: ZipPrefixTable,
    *,
    phone: Phone | None = None,
    fallback_zone: str | None = None,
) -> ZoneResolution:
    """The customer's candidate zones. Uses `phone`'s area code when given, else every reachable
    phone of the lead. See the module docstring for how the primary zone is chosen."""
    if not isinstance(lead, Lead):
        raise DomainError(f"resolve_zones needs a Lead, got {type(lead).__name__}")
    if not isinstance(zip_table, ZipPrefixTable):
        raise DomainError(f"resolve_zones needs a ZipPrefixTable, got {type(zip_table).__name__}")
    if fallback_zone is not None:
        zone_info(fallback_zone)

    candidates: list[ZoneCandidate] = []
    states: list[str] = []
    notes: list[str] = []

    def add_state(code: str) -> None:
        if code not in states:
            states.append(code)

    # Home: where the customer lives (address state, ZIP).
    home: list[ZoneCandidate] = []
    address = lead.address
    is_us = address.country.strip().upper() in ("", "US", "USA")
    state = address.state.strip().upper() if is_us else ""
    zip_info = zip_table.lookup(address.postal_code) if is_us and address.postal_code else None
    if address.state.strip() and not is_us:
        notes.append(f"address country {address.country!r} is not the US: state ignored")
    elif state and state not in US_STATE_CODES:
        notes.append(f"address state {address.state!r} is not a US state code: ignored")
        state = ""
    if is_us and address.postal_code.strip() and zip_info is None:
        notes.append(f"ZIP {address.postal_code!r} is not a known US ZIP: ignored")

    if zip_info is not None:
        add_state(zip_info.state)
        detail = f"ZIP {zip_info.zip5} ({zip_info.state})"
        home.extend(ZoneCandidate(z, ZoneSource.ZIP, detail) for z in zip_info.zones)
    if state and (zip_info is None or zip_info.state != state):
        # A ZIP in the same state is more precise than the state; a ZIP elsewhere disagrees, so
        # both are kept. The address state leads the order when they disagree.
        add_state(state)
        detail = f"address state {state}"
        home[:0] = [ZoneCandidate(z, ZoneSource.STATE, detail) for z in STATE_ZONES[state]]
    elif state:
        add_state(state)

    # Phones: where the number was issued.
    phones = [phone] if phone is not None else [p for p in lead.phones if p.reachable]
    if phone is None and lead.primary_phone is not None:
        phones.sort(key=lambda p: p is not lead.primary_phone)
    area: list[ZoneCandidate] = []
    for each in phones:
        if each.e164 is None:
            continue
        info = area_code_info(each.e164)
        if not info.zones:
            notes.append(f"{each.e164} is not a geographic number: its area code gives no zone")
            continue
        if info.state is not None:
            add_state(info.state)
        code = each.area_code or each.e164
        where = f" ({info.state})" if info.state else ""
        detail = f"area code {code}{where} of {each.e164}"
        area.extend(ZoneCandidate(z, ZoneSource.AREA_CODE, detail) for z in info.zones)

    candidates = home + area
    area_zones = [c.zone for c in area]
    if home:
        home_zones = [c.zone for c in home]
        primary = next((z for z in home_zones if z in area_zones), home_zones[0])
    elif area:
        primary = area_zones[0]
    elif fallback_zone is not None:
        primary = fallback_zone
        candidates = [ZoneCandidate(fallback_zone, ZoneSource.FALLBACK, "no state, ZIP or phone")]
    else:
        primary = ALL_US_ZONES[0]
        candidates = [
            ZoneCandidate(z, ZoneSource.UNKNOWN, "no state, ZIP or phone: every US zone")
            for z in ALL_US_ZONES
        ]
    return ZoneResolution(
        primary=primary, candidates=tuple(candidates), states=tuple(states), notes=tuple(notes)
    )
