"""The US state (or territory) a phone number's prefix names, without phonenumbers' geocoder.

`phonenumbers.geocoder` loads every prefix description of every language at import: ~100 MB
resident and ~0.3 s, only to turn a number into a place name that timezones.py maps to a state.
This module answers the same question from a small generated table: the E.164 digit prefixes
(country code + national number) whose description names a state, plus the prefixes under them
that name none again (stored as ""), matched longest-first like the geocoder does; when nothing
matches, the number's region name decides (PR, GU, AS, MP, VI, and Georgia's GE -> "GA").

The table lives in app/domain/_area_code_data.py and is generated from the installed phonenumbers'
own geocoder data, never written by hand:

    .venv/bin/python -m app.domain.area_code_states --regenerate

Regenerate after upgrading phonenumbers; tests/app/domain/test_area_code_states.py checks the table
against the geocoder number by number.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import phonenumbers

from app.domain._area_code_data import (
    PHONENUMBERS_VERSION,
    PREFIX_STATES,
    PREFIX_STATES_LONGEST,
    REGION_STATES,
)

__all__ = ["PHONENUMBERS_VERSION", "state_for_number"]


def state_for_number(parsed: phonenumbers.PhoneNumber) -> str | None:
    """The state code `timezones._state_from_description(geocoder.description_for_number(parsed,
    "en"))` gives for a valid geographic number, or None."""
    digits = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)[1:]
    for length in range(min(len(digits), PREFIX_STATES_LONGEST), 0, -1):
        state = PREFIX_STATES.get(digits[:length])
        if state is not None:
            return state or None
    return REGION_STATES.get(_region_of(parsed))


def _region_of(parsed: phonenumbers.PhoneNumber) -> str:
    """The region whose name the geocoder falls back to (its country_name_for_number)."""
    regions = phonenumbers.region_codes_for_country_code(parsed.country_code or 0)
    if len(regions) == 1:
        return str(regions[0])
    valid = [r for r in regions if phonenumbers.is_valid_number_for_region(parsed, r)]
    return str(valid[0]) if len(valid) == 1 else ""


# --- Generation (imports the geocoder; never runs in the app) ------------------------------------


def build_table(
    state_from_description: Callable[[str], str | None],
) -> tuple[dict[str, str], dict[str, str]]:
    """(prefix -> state or "", region -> state) from the installed phonenumbers' geocoder data."""
    from phonenumbers.geodata import GEOCODE_DATA
    from phonenumbers.geodata.locale import LOCALE_DATA
    from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE, country_mobile_token

    def region_name(region: str) -> str:
        names: dict[str, str] = LOCALE_DATA.get(region, {})
        name = names.get("en", "")
        return names.get(name[1:], "") if name.startswith("*") else name

    region_states: dict[str, str] = {}
    for region in sorted(LOCALE_DATA):
        state = state_from_description(region_name(region))
        if state is not None:
            region_states[region] = state
    fallback_codes = {
        code
        for code, regions in COUNTRY_CODE_TO_REGION_CODE.items()
        if any(r in region_states for r in regions)
    }

    def country_code(prefix: str) -> int:
        for length in (1, 2, 3):
            if int(prefix[:length]) in COUNTRY_CODE_TO_REGION_CODE:
                return int(prefix[:length])
        return 0

    # The geocoder skips a prefix without an English name and tries a shorter one.
    named: dict[str, str | None] = {
        prefix: state_from_description(str(names["en"]))
        for prefix, names in GEOCODE_DATA.items()
        if "en" in names
    }
    table: dict[str, str] = {}
    for prefix, state in named.items():
        parent = next(
            (prefix[:n] for n in range(len(prefix) - 1, 0, -1) if prefix[:n] in named), None
        )
        if parent is None:
            # Nothing shorter matches: the region name would decide, so keep the prefix when it
            # names a state or when its country has a region whose name is a state.
            keep = state is not None or country_code(prefix) in fallback_codes
        else:
            keep = named[parent] != state
        if keep:
            table[prefix] = state or ""
    for code in {country_code(p) for p in table}:
        if country_mobile_token(code):
            # The geocoder looks such numbers up without their mobile token; not reproduced here.
            raise SystemExit(f"country code {code} has a mobile token and a state prefix")
    return dict(sorted(table.items())), region_states


def render(table: dict[str, str], region_states: dict[str, str], version: str) -> str:
    items = [f'"{prefix}": "{state}",' for prefix, state in table.items()]
    lines: list[str] = []
    line = "   "
    for item in items:
        if len(line) + 1 + len(item) > 99:
            lines.append(line)
            line = "   "
        line += " " + item
    lines.append(line)
    regions = "".join(f'    "{r}": "{s}",\n' for r, s in region_states.items())
    return (
        '"""Generated by `python -m app.domain.area_code_states --regenerate` from phonenumbers '
        f"{version}'s\ngeocoder data. Do not edit by hand."
        '"""\n\n'
        "from collections.abc import Mapping\n\n"
        f'PHONENUMBERS_VERSION = "{version}"\n\n'
        '# E.164 digit prefix -> US state code, or "" for a prefix that names no state.\n'
        "PREFIX_STATES: Mapping[str, str] = {\n" + "\n".join(lines) + "\n}  # fmt: skip\n\n"
        f"PREFIX_STATES_LONGEST = {max(map(len, table))}\n\n"
        "# Region -> state, for numbers no prefix matches (the geocoder names their region).\n"
        "REGION_STATES: Mapping[str, str] = {\n" + regions + "}\n"
    )


def main(argv: list[str]) -> int:
    if argv != ["--regenerate"]:
        print("usage: python -m app.domain.area_code_states --regenerate", file=sys.stderr)
        return 2
    from app.domain.timezones import _state_from_description

    table, region_states = build_table(_state_from_description)
    target = Path(__file__).with_name("_area_code_data.py")
    target.write_text(render(table, region_states, phonenumbers.__version__), encoding="utf-8")
    print(f"{target}: {len(table)} prefixes, {len(region_states)} regions")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
