from hypothesis import given
from hypothesis import strategies as st

from app.domain.phones import PhoneKind, TimeOfDay, format_for_display, make_phone, normalize_e164


def test_every_punctuation_style_normalizes_to_the_same_e164() -> None:
    styles = ["(312) 555-0143", "312.555.0143", "312-555-0143", "+1 312 555 0143", "1-312-555-0143"]
    # 555-01xx numbers are reserved for fiction; use a real-shaped exchange instead.
    styles = [s.replace("555-0143", "867-5309").replace("555.0143", "867.5309") for s in styles]
    styles = [s.replace("555 0143", "867 5309") for s in styles]
    assert {normalize_e164(s) for s in styles} == {"+13128675309"}


def test_invalid_number_is_kept_but_unreachable() -> None:
    phone = make_phone("555-01", PhoneKind.CELL)
    assert phone.raw == "555-01"
    assert phone.e164 is None
    assert not phone.reachable
    assert not phone.textable


def test_fax_is_never_reachable_for_calls_or_texts() -> None:
    phone = make_phone("312-867-5309", PhoneKind.FAX)
    assert phone.e164 == "+13128675309"
    assert not phone.reachable


def test_area_code_and_preferences_are_kept() -> None:
    phone = make_phone(
        "(407) 867-5309", PhoneKind.CELL, preferred_time=TimeOfDay.EVENING, preferred=True
    )
    assert phone.area_code == "407"
    assert phone.preferred_time is TimeOfDay.EVENING
    assert phone.textable


def test_display_format() -> None:
    assert format_for_display("+13128675309") == "(312) 867-5309"
    assert format_for_display("+442079460000").startswith("+44 20")


@given(st.text(max_size=60))
def test_normalize_never_raises_on_garbage(raw: str) -> None:
    result = normalize_e164(raw)
    assert result is None or result.startswith("+")
