from datetime import UTC, datetime

import phonenumbers
import pytest
from phonenumbers import timezone

from app.domain.errors import DomainError, ResourceError
from app.domain.leads import Address, Lead, LeadSource, Person, SourceType
from app.domain.phones import PhoneKind, make_phone
from app.domain.timezones import (
    ALL_US_ZONES,
    STATE_ZONES,
    NaiveDatetimeError,
    TimeZoneError,
    ZipPrefixTable,
    ZoneCandidate,
    ZoneResolution,
    ZoneSource,
    area_code_info,
    parse_zip_prefixes,
    require_aware,
    resolve_zones,
)
from app.rulebook import read_resource

T0 = datetime(2025, 6, 2, 15, 0, tzinfo=UTC)
NY, CHI, DEN, LA = "America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles"


def _table() -> ZipPrefixTable:
    return parse_zip_prefixes(*read_resource("us_zip_prefixes.toml"))


ZIPS = _table()


def _lead(state: str = "", zip_code: str = "", *phones: str, country: str = "US") -> Lead:
    return Lead(
        id="L1",
        store_id="S1",
        received_at=T0,
        person=Person("Ann", "Lee"),
        source=LeadSource("Dealer website", SourceType.FIRST_PARTY),
        phones=tuple(make_phone(p) for p in phones),
        address=Address(state=state, postal_code=zip_code, country=country),
    )


# --- phonenumbers' area-code data, as this module uses it ---------------------------------------


def test_area_code_in_one_zone_gives_that_zone_and_its_state() -> None:
    info = area_code_info("+12125550123")
    assert info.zones == (NY,)
    assert info.state == "NY"


def test_area_code_spanning_two_zones_gives_both_in_the_states_order() -> None:
    # phonenumbers lists 208 as ('America/Boise', 'America/Los_Angeles'), alphabetically.
    assert area_code_info("+12085550123").zones == ("America/Boise", LA)
    # 701: ('America/Denver', 'America/North_Dakota/Center'); the alias folds to Chicago and the
    # state's own order (Central first) wins over the alphabet.
    info = area_code_info("+17015550123")
    assert info.zones == (CHI, DEN)
    assert info.state == "ND"


def test_toll_free_and_invalid_numbers_give_no_zone() -> None:
    assert area_code_info("+18005550123").zones == ()
    assert area_code_info("+15555550123").zones == ()
    assert area_code_info("garbage").zones == ()


@pytest.mark.parametrize(
    "number",
    [
        "+12125550123",  # New York, fixed line or mobile
        "+13125550134",
        "+12085550123",
        "+18005550123",  # toll free
        "+19005550123",  # premium
        "+15555550123",  # no such area code
        "+1212555012",  # too short
        "+447911123456",  # GB mobile: not geographic there
        "+442071838750",  # London fixed line
        "+4930123456",  # Berlin
        "+525512345678",  # Mexico City: mobiles are geographic in Mexico
        "+61212345678",  # Sydney
        "+80012345678",  # international freephone (no region)
        "+99912345",  # no such country code
    ],
)
def test_area_code_info_agrees_with_phonenumbers_own_checks(number: str) -> None:
    """area_code_info works the number's type out once; phonenumbers' is_valid_number,
    is_number_geographical and time_zones_for_number would each work it out again."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        assert area_code_info(number).zones == ()
        return
    geographic = phonenumbers.is_valid_number(parsed) and phonenumbers.is_number_geographical(
        parsed
    )
    zones = timezone.time_zones_for_number(parsed)
    info = area_code_info(number)
    if not geographic or "Etc/Unknown" in zones:
        assert info.zones == ()
    else:
        assert info.zones, number
        assert {zone.split("/")[0] for zone in info.zones} <= {z.split("/")[0] for z in zones}


# --- ZIP prefixes -------------------------------------------------------------------------------


def test_shipped_zip_table_maps_prefixes_to_states() -> None:
    assert ZIPS.state_for("10001") == "NY"
    assert ZIPS.state_for("00501") == "NY"  # Holtsville, the IRS center
    assert ZIPS.state_for("06103") == "CT"
    assert ZIPS.state_for("00901") == "PR"
    assert ZIPS.state_for("20500") == "DC"
    assert ZIPS.state_for("20101") == "VA"
    assert ZIPS.state_for("73301") == "TX"  # Austin IRS, inside Oklahoma's range
    assert ZIPS.state_for("73101") == "OK"
    assert ZIPS.state_for("96813") == "HI"
    assert ZIPS.state_for("99501") == "AK"
    assert ZIPS.state_for(" 60601-1234 ") == "IL"
    assert ZIPS.state_for("606011234") == "IL"


def test_every_state_and_dc_has_zip_prefixes() -> None:
    covered = set(ZIPS.states.values())
    fifty_and_dc = set(STATE_ZONES) - {"AS", "MP", "GU", "PR", "VI"}
    assert fifty_and_dc <= covered


def test_zip_lookup_returns_none_for_non_zips_and_unassigned_prefixes() -> None:
    for text in ("", "1234", "abcde", "123456", "09001", "34001", "3250l"):
        assert ZIPS.lookup(text) is None, text
    assert ZIPS.lookup(12345) is None  # type: ignore[arg-type]


def _zones(zip_code: str) -> tuple[str, ...]:
    info = ZIPS.lookup(zip_code)
    assert info is not None
    return info.zones


def test_zip_prefixes_narrow_a_split_state_to_its_zone() -> None:
    assert _zones("33101") == (NY,)  # Miami
    assert _zones("32501") == (CHI,)  # Pensacola
    assert _zones("32401") == (NY, CHI)  # Panama City straddles the line
    assert _zones("79901") == (DEN,)  # El Paso
    assert _zones("75201") == (CHI,)  # Dallas
    # A split state without a zone table keeps both zones.
    assert _zones("37201") == (CHI, NY)


GOOD = '[states]\nFL = ["320-339"]\n'


@pytest.mark.parametrize(
    ("text", "line", "field", "words"),
    [
        ('[states]\nXX = ["320"]\n', 2, "states.XX", "unknown US state"),
        ('[states]\nFL = ["32"]\n', 2, "states.FL[0]", "ZIP prefix"),
        ('[states]\nFL = [320]\n', 2, "states.FL[0]", "ZIP prefix"),
        ('[states]\nFL = ["339-320"]\n', 2, "states.FL[0]", "backwards"),
        ('[states]\nFL = "320"\n', 2, "states.FL", "array"),
        ('[states]\nFL = ["320"]\nGA = ["300-320"]\n', 3, "states.GA", "both FL and GA"),
        (GOOD + "[zones.FL]\n\"America/Denver\" = [\"320\"]\n", 4, 'zones.FL.America/Denver',
         "not a zone of FL"),
        (GOOD + '[zones.FL]\n"America/Chicago" = ["350"]\n', 4, "zones.FL.America/Chicago",
         "not listed under FL"),
        (GOOD + "[zone]\n", 3, "zone", "unknown field"),
    ],
)  # fmt: skip
def test_broken_zip_files_name_line_and_field(text: str, line: int, field: str, words: str) -> None:
    with pytest.raises(ResourceError) as caught:
        parse_zip_prefixes(text, "resources/us_zip_prefixes.toml")
    assert caught.value.line == line
    assert caught.value.field == field
    assert words in caught.value.detail
    assert str(caught.value).startswith(f"resources/us_zip_prefixes.toml:{line}")


def test_zip_file_that_is_not_toml_names_the_line() -> None:
    with pytest.raises(ResourceError) as caught:
        parse_zip_prefixes('[states]\nFL = ["320"]\nGA = \n', "z.toml")
    assert caught.value.line == 3


# --- Resolution ---------------------------------------------------------------------------------


def test_zip_and_area_code_that_agree_give_one_zone() -> None:
    resolution = resolve_zones(_lead("FL", "33101", "305-555-0123"), ZIPS)
    assert resolution.primary == NY
    assert resolution.zones == (NY,)
    assert resolution.states == ("FL",)
    sources = {(c.zone, c.source) for c in resolution.candidates}
    assert sources == {(NY, ZoneSource.ZIP), (NY, ZoneSource.AREA_CODE)}


def test_state_alone_keeps_every_zone_of_a_split_state() -> None:
    resolution = resolve_zones(_lead("FL"), ZIPS)
    assert resolution.primary == NY
    assert resolution.zones == (NY, CHI)
    assert resolution.candidates[0] == ZoneCandidate(NY, ZoneSource.STATE, "address state FL")


def test_area_code_picks_the_primary_inside_a_split_state() -> None:
    resolution = resolve_zones(_lead("TX", "", "915-555-0100"), ZIPS)
    assert resolution.primary == DEN  # El Paso's area code
    assert resolution.zones == (DEN, CHI)  # the state's other zone stays a candidate


def test_disagreeing_sources_are_all_kept_and_home_leads_the_primary() -> None:
    # Lives in Pensacola (Central), kept a Tallahassee-area cell (phonenumbers: Eastern).
    resolution = resolve_zones(_lead("", "32501", "850-555-0123"), ZIPS)
    assert resolution.primary == CHI
    assert resolution.zones == (CHI, NY)
    assert resolution.states == ("FL",)
    # Moved to California, kept a New York cell.
    moved = resolve_zones(_lead("CA", "94105", "212-555-0123"), ZIPS)
    assert moved.primary == LA
    assert moved.zones == (LA, NY)
    assert moved.states == ("CA", "NY")  # the area code's state's rules apply too


def test_address_state_and_zip_in_different_states_keep_both() -> None:
    resolution = resolve_zones(_lead("CA", "10001"), ZIPS)
    assert resolution.primary == LA
    assert resolution.zones == (LA, NY)
    assert resolution.states == ("NY", "CA")


def test_area_code_only() -> None:
    resolution = resolve_zones(_lead("", "", "208-555-0100"), ZIPS)
    assert resolution.primary == "America/Boise"
    assert resolution.zones == ("America/Boise", LA)
    assert resolution.states == ("ID",)


def test_given_phone_is_the_only_phone_used() -> None:
    lead = _lead("", "", "212-555-0100", "310-555-0100")
    assert resolve_zones(lead, ZIPS).zones == (NY, LA)
    only = resolve_zones(lead, ZIPS, phone=lead.phones[1])
    assert only.zones == (LA,)


def test_nothing_known_uses_the_fallback_or_every_us_zone() -> None:
    lead = _lead()
    fallback = resolve_zones(lead, ZIPS, fallback_zone=CHI)
    assert fallback.primary == CHI
    assert fallback.candidates == (
        ZoneCandidate(CHI, ZoneSource.FALLBACK, "no state, ZIP or phone"),
    )
    unknown = resolve_zones(lead, ZIPS)
    assert unknown.zones == ALL_US_ZONES
    assert unknown.primary == NY
    assert unknown.states == ()


def test_garbage_inputs_are_noted_and_ignored() -> None:
    lead = _lead("Calif", "ABCDE", "800-555-0100")
    resolution = resolve_zones(lead, ZIPS, fallback_zone=DEN)
    assert resolution.primary == DEN
    assert resolution.notes == (
        "address state 'Calif' is not a US state code: ignored",
        "ZIP 'ABCDE' is not a known US ZIP: ignored",
        "+18005550100 is not a geographic number: its area code gives no zone",
    )


def test_lower_case_state_is_accepted_and_foreign_addresses_are_not_us_states() -> None:
    assert resolve_zones(_lead("ny"), ZIPS).states == ("NY",)
    foreign = resolve_zones(_lead("ON", "", "416-555-0100", country="CA"), ZIPS)
    assert foreign.zones == ("America/Toronto",)
    assert foreign.states == ()


def test_unreachable_phones_are_skipped() -> None:
    lead = _lead("", "", "555-01")
    assert resolve_zones(lead, ZIPS).zones == ALL_US_ZONES
    fax = Lead(
        id="L1",
        store_id="S1",
        received_at=T0,
        person=Person("Ann"),
        source=LeadSource("web", SourceType.FIRST_PARTY),
        phones=(make_phone("212-555-0100", PhoneKind.FAX),),
    )
    assert resolve_zones(fax, ZIPS).zones == ALL_US_ZONES


def test_bad_arguments_raise_typed_errors() -> None:
    with pytest.raises(DomainError, match="Lead"):
        resolve_zones("lead", ZIPS)  # type: ignore[arg-type]
    with pytest.raises(DomainError, match="ZipPrefixTable"):
        resolve_zones(_lead(), {})  # type: ignore[arg-type]
    with pytest.raises(TimeZoneError, match="Mars/Olympus"):
        resolve_zones(_lead(), ZIPS, fallback_zone="Mars/Olympus")


def test_resolution_validates_itself() -> None:
    with pytest.raises(DomainError, match="at least one"):
        ZoneResolution(primary=NY, candidates=())
    with pytest.raises(DomainError, match="not among"):
        ZoneResolution(primary=CHI, candidates=(ZoneCandidate(NY, ZoneSource.STATE, "x"),))
    with pytest.raises(TimeZoneError):
        ZoneResolution.single("Nowhere/Town")
    with pytest.raises(DomainError, match="'ZZ'"):
        ZoneResolution.single(NY, states=["ZZ"])
    single = ZoneResolution.single(NY, states=["FL"])
    assert single.zones == (NY,)
    assert single.local_time(T0) == datetime(2025, 6, 2, 11, 0, tzinfo=single.primary_zone)


def test_naive_datetimes_are_refused_by_name() -> None:
    with pytest.raises(NaiveDatetimeError, match="now must carry a time zone"):
        require_aware(datetime(2025, 6, 2, 9, 0), "now")
    with pytest.raises(DomainError, match="must be a datetime"):
        require_aware("2025-06-02", "now")
