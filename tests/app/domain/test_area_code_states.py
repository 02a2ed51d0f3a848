"""The generated area code -> state table gives exactly the state the geocoder gave.

These tests import phonenumbers' geocoder (~100 MB, ~0.3 s); the app itself must not.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import phonenumbers
import pytest
from phonenumbers import PhoneNumberType, geocoder
from phonenumbers.geodata import GEOCODE_DATA

from app.domain import _area_code_data
from app.domain.area_code_states import build_table, state_for_number
from app.domain.timezones import _state_from_description, area_code_info

_NXX = ("200", "201", "234", "303", "456", "555", "621", "747", "867", "999")
_LINES = ("0123", "0199", "4567", "9999")


def _geographic(text: str) -> phonenumbers.PhoneNumber | None:
    """The number, when area_code_info would ask for its state (valid and geographic)."""
    try:
        parsed = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None
    if phonenumbers.is_valid_number(parsed) and phonenumbers.is_number_geographical(parsed):
        return parsed
    return None


def _geocoder_state(parsed: phonenumbers.PhoneNumber) -> str | None:
    return _state_from_description(str(geocoder.description_for_number(parsed, "en")))


def _nanp_numbers() -> Iterator[str]:
    """Every area code 200-999 with a spread of exchanges, and every exchange or exchange block
    the geocoder data describes on its own (padded to a full number)."""
    for npa in range(200, 1000):
        for nxx in _NXX:
            for line in _LINES:
                yield f"+1{npa}{nxx}{line}"
    for prefix in GEOCODE_DATA:
        if prefix.startswith("1") and len(prefix) > 4:
            for fill in ("0000000000", "5550123456", "9999999999"):
                yield "+" + (prefix + fill[len(prefix) - 1 :])[:11]


def test_every_nanp_area_code_gets_the_geocoders_state() -> None:
    checked, with_state, mismatches = 0, set(), []
    for text in _nanp_numbers():
        parsed = _geographic(text)
        if parsed is None:
            continue
        checked += 1
        expected = _geocoder_state(parsed)
        if state_for_number(parsed) != expected:
            mismatches.append((text, expected, state_for_number(parsed)))
        if expected is not None:
            with_state.add(text[2:5])
    assert mismatches == []
    assert checked > 20_000
    assert len(with_state) > 300  # most US area codes name a state


def test_non_nanp_numbers_get_the_geocoders_state() -> None:
    """Today a few foreign place names read as states (Montana in Bulgaria, Florida in Uruguay,
    Texas in Queensland, Washington in Kiribati, the country Georgia): kept as they were."""
    texts: list[str] = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in (PhoneNumberType.FIXED_LINE, PhoneNumberType.MOBILE):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is not None:
                texts.append(
                    phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
                )
    for prefix in _area_code_data.PREFIX_STATES:
        if not prefix.startswith("1"):
            for fill in ("0000000000", "1234567890", "5550123456", "9999999999"):
                for length in range(8, 13):
                    texts.append("+" + (prefix + fill)[:length])
    checked, mismatches = 0, []
    for text in texts:
        parsed = _geographic(text)
        if parsed is None or parsed.country_code == 1:
            continue
        checked += 1
        if state_for_number(parsed) != _geocoder_state(parsed):
            mismatches.append((text, _geocoder_state(parsed), state_for_number(parsed)))
    assert mismatches == []
    assert checked > 200


@pytest.mark.parametrize(
    ("e164", "state"),
    [
        ("+12125550123", "NY"),
        ("+18505550123", "FL"),
        ("+17875550123", "PR"),
        ("+14165550123", None),
        ("+12065550123", "WA"),  # "Washington State": Seattle's area code carries WA's rules
        ("+12535550123", "WA"),
        ("+35996123456", None),  # Montana, Bulgaria: no US state outside the NANP
        ("+59843520000", None),  # Florida, Uruguay
    ],
)
def test_area_code_info_states(e164: str, state: str | None) -> None:
    assert area_code_info(e164).state == state


def test_the_committed_table_is_what_the_generator_makes() -> None:
    table, regions = build_table(_state_from_description)
    assert dict(_area_code_data.PREFIX_STATES) == table
    assert dict(_area_code_data.REGION_STATES) == regions
    assert max(map(len, table)) == _area_code_data.PREFIX_STATES_LONGEST
    assert phonenumbers.__version__ == _area_code_data.PHONENUMBERS_VERSION, (
        "phonenumbers was upgraded: run python -m app.domain.area_code_states --regenerate"
    )


def test_the_app_does_not_import_the_geocoder() -> None:
    code = (
        "import sys, app.domain.timezones, app.rulebook\n"
        "app.domain.timezones.area_code_info('+12125550123')\n"
        "assert 'phonenumbers.geocoder' not in sys.modules\n"
        "assert 'phonenumbers.geodata' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
