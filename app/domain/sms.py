"""SMS length: the encoding a text needs, how many characters it uses, how many segments it costs.

A text that fits the GSM 03.38 alphabet travels as GSM-7 (160 per message, 153 per segment once it
is split, because each segment carries a header). One character outside it — an emoji, a curly
quote — turns the whole message into UCS-2 (70 per message, 67 per segment), counted in UTF-16 code
units so an emoji costs 2. Carriers never split a GSM escape pair or a UTF-16 surrogate pair across
two segments, so such a pair at a boundary moves whole into the next segment; the count here does
the same, which is what the customer's phone and the gateway's bill show.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from app.domain.errors import DomainError


class InvalidMessageError(DomainError):
    """A message text cannot be measured (it is not text at all)."""


class SmsEncoding(StrEnum):
    GSM_7 = "GSM-7"
    UCS_2 = "UCS-2"


# GSM 03.38 basic table (ESC, 0x1B, left out: it only introduces the extension table).
GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Extension table: each costs an escape plus the character, 2 septets.
GSM_EXTENSION = frozenset("\f^{}\\[~]|€")

GSM_SINGLE_LIMIT = 160
GSM_SEGMENT_LIMIT = 153
UCS2_SINGLE_LIMIT = 70
UCS2_SEGMENT_LIMIT = 67

# Typographic characters that word processors and phones substitute; each has a plain GSM twin.
_GSM_FRIENDLY = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u2032": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u2033": '"',
        "\u2013": "-",
        "\u2014": "-",
        "\u2212": "-",
        "\u2026": "...",
        "\u00a0": " ",
        "\u2009": " ",
        "\u202f": " ",
    }
)


@dataclass(frozen=True, slots=True)
class SmsInfo:
    encoding: SmsEncoding
    characters: int  # septets for GSM-7 (extension characters count 2), UTF-16 units for UCS-2
    segments: int  # 0 for an empty text
    per_segment_limit: int  # 160/70 while it fits one message, 153/67 once split
    remaining_in_segment: int  # room left in the last segment before another one starts
    non_gsm: tuple[str, ...] = ()  # the characters that forced UCS-2, first occurrence order

    @property
    def is_multipart(self) -> bool:
        return self.segments > 1


def is_gsm_text(text: str) -> bool:
    return all(ch in GSM_BASIC or ch in GSM_EXTENSION for ch in text)


def gsm_friendly(text: str) -> str:
    """`text` with curly quotes, long dashes, ellipses and odd spaces made plain GSM characters."""
    return _require_text(text).translate(_GSM_FRIENDLY)


def sms_segments(text: str) -> SmsInfo:
    """Encoding, length and segment count of `text` as an SMS."""
    _require_text(text)
    if is_gsm_text(text):
        units = [2 if ch in GSM_EXTENSION else 1 for ch in text]
        encoding, single, split = SmsEncoding.GSM_7, GSM_SINGLE_LIMIT, GSM_SEGMENT_LIMIT
        non_gsm: tuple[str, ...] = ()
    else:
        units = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
        encoding, single, split = SmsEncoding.UCS_2, UCS2_SINGLE_LIMIT, UCS2_SEGMENT_LIMIT
        non_gsm = tuple(
            dict.fromkeys(ch for ch in text if ch not in GSM_BASIC and ch not in GSM_EXTENSION)
        )
    total = sum(units)
    if total <= single:
        segments = 1 if total else 0
        return SmsInfo(encoding, total, segments, single, single - total, non_gsm)
    segments, used = _pack(units, split)
    return SmsInfo(encoding, total, segments, split, split - used, non_gsm)


def _pack(units: list[int], limit: int) -> tuple[int, int]:
    """(segments, units used in the last one), never splitting a 2-unit character."""
    segments, used = 1, 0
    for size in units:
        if used + size > limit:
            segments, used = segments + 1, 0
        used += size
    return segments, used


def _require_text(text: object) -> str:
    if not isinstance(text, str):
        raise InvalidMessageError(f"a text message must be a string, got {type(text).__name__}")
    return text
