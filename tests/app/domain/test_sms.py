"""SMS encoding and segment counting: GSM-7 160/153, UCS-2 70/67, pairs never split."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.errors import DomainError
from app.domain.sms import (
    GSM_BASIC,
    GSM_EXTENSION,
    InvalidMessageError,
    SmsEncoding,
    SmsInfo,
    gsm_friendly,
    is_gsm_text,
    sms_segments,
)

# 3GPP TS 23.038 default alphabet, in table order 0x00..0x7F (0x1B is the escape to the extension).
SPEC_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)


def test_alphabet_matches_the_spec_table() -> None:
    assert len(SPEC_TABLE) == 128
    assert SPEC_TABLE[0x1B] == "\x1b"
    assert set(SPEC_TABLE) - {"\x1b"} == GSM_BASIC
    assert set("€[]{}~^|\\\f") == GSM_EXTENSION


def test_empty_text_is_no_segment() -> None:
    assert sms_segments("") == SmsInfo(SmsEncoding.GSM_7, 0, 0, 160, 160)


@pytest.mark.parametrize(
    ("length", "segments", "limit", "remaining"),
    [
        (1, 1, 160, 159),
        (159, 1, 160, 1),
        (160, 1, 160, 0),
        (161, 2, 153, 145),
        (305, 2, 153, 1),
        (306, 2, 153, 0),
        (307, 3, 153, 152),
        (459, 3, 153, 0),
        (460, 4, 153, 152),
    ],
)
def test_gsm_boundaries(length: int, segments: int, limit: int, remaining: int) -> None:
    info = sms_segments("a" * length)
    assert info == SmsInfo(SmsEncoding.GSM_7, length, segments, limit, remaining)


@pytest.mark.parametrize(
    ("length", "segments", "limit", "remaining"),
    [
        (1, 1, 70, 69),
        (70, 1, 70, 0),
        (71, 2, 67, 63),
        (134, 2, 67, 0),
        (135, 3, 67, 66),
    ],
)
def test_ucs2_boundaries(length: int, segments: int, limit: int, remaining: int) -> None:
    info = sms_segments("ж" * length)
    assert info.encoding is SmsEncoding.UCS_2
    assert (info.characters, info.segments, info.per_segment_limit) == (length, segments, limit)
    assert info.remaining_in_segment == remaining
    assert info.non_gsm == ("ж",)


def test_one_curly_quote_makes_the_whole_text_ucs2() -> None:
    text = "Hi Ana, it’s Jo from Lakeside Toyota. " + "a" * 40
    info = sms_segments(text)
    assert info.encoding is SmsEncoding.UCS_2
    assert info.characters == len(text) == 78
    assert info.segments == 2
    assert info.non_gsm == ("’",)
    plain = gsm_friendly(text)
    assert plain == "Hi Ana, it's Jo from Lakeside Toyota. " + "a" * 40
    assert sms_segments(plain).segments == 1


def test_gsm_friendly_replaces_typographic_punctuation() -> None:
    assert gsm_friendly("“Deal” — 2 days… only\u00a0now") == '"Deal" - 2 days... only now'
    assert is_gsm_text(gsm_friendly("“Deal” — 2 days… only\u00a0now"))


def test_emoji_counts_two_utf16_units() -> None:
    assert sms_segments("😀").characters == 2
    assert sms_segments("😀" * 35) == SmsInfo(SmsEncoding.UCS_2, 70, 1, 70, 0, ("😀",))
    assert sms_segments("😀" * 35 + "a").segments == 2


def test_surrogate_pair_is_not_split_across_segments() -> None:
    # 66 + 2 + 66 = 134 units would fill two 67-unit segments exactly, but the emoji would
    # straddle the boundary, so it moves whole into segment 2 and the last "a" needs a third.
    info = sms_segments("a" * 66 + "😀" + "a" * 66)
    assert (info.characters, info.segments, info.remaining_in_segment) == (134, 3, 66)


def test_extension_characters_count_two() -> None:
    assert sms_segments("Hi €").characters == 5
    assert sms_segments("[]{}~^|\\").characters == 16
    assert sms_segments("{" * 80) == SmsInfo(SmsEncoding.GSM_7, 160, 1, 160, 0)
    assert sms_segments("{" * 81).segments == 2
    assert sms_segments("a" * 159 + "€").segments == 2


def test_escape_pair_is_not_split_across_segments() -> None:
    # 152 + 2 + 10 = 164 septets; the euro would straddle septet 153, so it opens segment 2.
    info = sms_segments("a" * 152 + "€" + "a" * 10)
    assert (info.characters, info.segments, info.remaining_in_segment) == (164, 2, 141)


def test_accented_gsm_letters_stay_gsm() -> None:
    info = sms_segments("José Muñoz, Ä Ö Ü ß é è à")
    assert info.encoding is SmsEncoding.GSM_7
    assert info.characters == 25  # 4+1+6+1 + 7 letters and 6 spaces


def test_line_breaks_count() -> None:
    assert sms_segments("a\r\nb").characters == 4


def test_other_accents_force_ucs2() -> None:
    # á and ç (lower case) are not in the GSM alphabet; Ç is.
    assert sms_segments("Ç").encoding is SmsEncoding.GSM_7
    assert sms_segments("á").encoding is SmsEncoding.UCS_2
    assert sms_segments("ç").encoding is SmsEncoding.UCS_2


@pytest.mark.parametrize("bad", [None, 42, b"bytes", ["a"]])
def test_not_text_is_refused(bad: object) -> None:
    with pytest.raises(InvalidMessageError, match="must be a string"):
        sms_segments(bad)  # type: ignore[arg-type]
    assert issubclass(InvalidMessageError, DomainError)


def _naive_segments(units: int, single: int, split: int) -> int:
    if units == 0:
        return 0
    return 1 if units <= single else math.ceil(units / split)


GSM_PLAIN = st.text(alphabet=sorted(GSM_BASIC), max_size=700)
BMP_NON_GSM = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFFFF, exclude_categories=["Cs"]),
    max_size=300,
).map(lambda s: s + "ж")


@settings(max_examples=200, deadline=None)
@given(GSM_PLAIN)
def test_gsm_count_agrees_with_simple_formula(text: str) -> None:
    info = sms_segments(text)
    assert info.encoding is SmsEncoding.GSM_7
    assert info.characters == len(text)
    assert info.segments == _naive_segments(len(text), 160, 153)
    expected_remaining = 160 if not text else info.segments * info.per_segment_limit - len(text)
    assert info.remaining_in_segment == expected_remaining


@settings(max_examples=200, deadline=None)
@given(BMP_NON_GSM)
def test_ucs2_count_agrees_with_simple_formula(text: str) -> None:
    info = sms_segments(text)
    units = len(text.encode("utf-16-le")) // 2
    assert info.encoding is SmsEncoding.UCS_2
    assert info.characters == units
    assert info.segments == _naive_segments(units, 70, 67)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_any_text_is_measured_consistently(text: str) -> None:
    info = sms_segments(text)
    if info.encoding is SmsEncoding.GSM_7:
        units = len(text) + sum(ch in GSM_EXTENSION for ch in text)
        single, split = 160, 153
    else:
        units = len(text.encode("utf-16-le", "surrogatepass")) // 2
        single, split = 70, 67
    assert info.characters == units
    assert info.segments >= _naive_segments(units, single, split)
    if info.segments > 1:
        # A pair moved past a boundary wastes one unit, so every full segment holds split - 1.
        assert (info.segments - 1) * (split - 1) < units <= info.segments * split
    assert 0 <= info.remaining_in_segment <= info.per_segment_limit
