"""Phone numbers: normalized to E.164, and kept (flagged unreachable) when they are not valid."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import phonenumbers
from phonenumbers import PhoneNumberType


class PhoneKind(StrEnum):
    VOICE = "voice"
    CELL = "cellphone"
    FAX = "fax"
    PAGER = "pager"
    UNKNOWN = "unknown"


class TimeOfDay(StrEnum):
    """A preferred time to be called (ADF `phone@time`)."""

    MORNING = "morning"
    AFTERNOON = "afternoon"
    EVENING = "evening"
    DAY = "day"
    NO_PREFERENCE = "nopreference"


@dataclass(frozen=True, slots=True)
class Phone:
    raw: str
    e164: str | None  # None when the number could not be parsed into a valid number
    kind: PhoneKind = PhoneKind.UNKNOWN
    preferred_time: TimeOfDay | None = None
    preferred: bool = False

    @property
    def reachable(self) -> bool:
        return self.e164 is not None and self.kind is not PhoneKind.FAX

    @property
    def textable(self) -> bool:
        """Texting only to numbers that can receive texts: cells, or numbers of unknown kind."""
        return self.reachable and self.kind in (PhoneKind.CELL, PhoneKind.UNKNOWN)

    @property
    def area_code(self) -> str | None:
        if self.e164 is None or not self.e164.startswith("+1") or len(self.e164) != 12:
            return None
        return self.e164[2:5]


def normalize_e164(raw: str, default_region: str = "US") -> str | None:
    """The E.164 form of `raw`, or None when it is not a valid number. Never raises on garbage."""
    text = (raw or "").strip()
    if not text or len(text) > 40:
        return None
    try:
        parsed = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


def make_phone(
    raw: str,
    kind: PhoneKind = PhoneKind.UNKNOWN,
    *,
    preferred_time: TimeOfDay | None = None,
    preferred: bool = False,
    default_region: str = "US",
) -> Phone:
    """A Phone from any punctuation style; an invalid one is kept with e164=None (unreachable)."""
    e164 = normalize_e164(raw, default_region)
    if e164 is not None and kind is PhoneKind.UNKNOWN:
        kind = _guess_kind(e164)
    return Phone(raw=raw, e164=e164, kind=kind, preferred_time=preferred_time, preferred=preferred)


def _guess_kind(e164: str) -> PhoneKind:
    # North American numbers are FIXED_LINE_OR_MOBILE: the kind stays unknown there, by design.
    number_type = phonenumbers.number_type(phonenumbers.parse(e164, None))
    if number_type == PhoneNumberType.MOBILE:
        return PhoneKind.CELL
    if number_type == PhoneNumberType.FIXED_LINE:
        return PhoneKind.VOICE
    return PhoneKind.UNKNOWN


def format_for_display(e164: str) -> str:
    """(555) 201-3344 for North American numbers, the international form otherwise."""
    parsed = phonenumbers.parse(e164, None)
    region_format = (
        phonenumbers.PhoneNumberFormat.NATIONAL
        if parsed.country_code == 1
        else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )
    return str(phonenumbers.format_number(parsed, region_format))
