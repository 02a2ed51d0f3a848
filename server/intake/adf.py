"""ADF 1.0 (Auto-lead Data Format) intake: the XML lead providers POST, read into domain Leads.

`parse_adf(body, received_at=..., store_id=...)` returns one `ParsedProspect` per `<prospect>`,
or raises `AdfError` listing every problem: a rejected document yields nothing, so the caller
stores nothing.

Decisions the lead API relies on:

- Unreachable prospects are REFUSED, not stored as grade D. A prospect with no reachable phone
  (a valid number that is not a fax) and no valid e-mail gets the problem "prospect N: no phone
  or e-mail to reach the customer". As one unusable prospect rejects the whole document, the
  provider learns at once (a 4xx naming the prospect) instead of the dealership silently holding
  a lead nobody can work. Nothing else refuses a prospect; the rest degrades to per-prospect
  warnings: a missing `<requestdate>` (received_at is used), no vehicle of interest, an invalid
  e-mail (dropped), an invalid phone (kept, unreachable), unknown attribute values (a
  default is used, and named).
- Safety stays strict: the body size is checked before anything else; DTDs, entity declarations
  and external references are refused (defusedxml); elements nested deeper than `max_depth` stop
  the parse; a document that is not well-formed after the lenient pre-pass is rejected with the
  parser's line and column.
- Encoding: a BOM wins (UTF-8, UTF-16). Else the declared encoding: declared UTF-8 must be valid
  UTF-8 (else rejected, naming the byte); ISO-8859-1, Latin-1, US-ASCII and Windows-1252 labels
  are all read as Windows-1252, as browsers do, because senders that say ISO-8859-1 routinely
  put Windows curly quotes in 0x80-0x9F (the five bytes Windows-1252 leaves undefined fall back
  to ISO-8859-1); ISO-8859-15 is read as itself; other labels are refused. With no declaration
  the body is read as UTF-8 and any byte that is not part of a valid UTF-8 sequence is read as
  Windows-1252 - so a pure ISO-8859-1 body, and a UTF-8 template with Latin-1 fields pasted in,
  both come out right - with a document warning saying so.
- Lenient pre-pass (a linear scanner over the decoded text): drops `<?adf ...?>` processing
  instructions anywhere and XML declarations (`<?xml`, `<?XML VERSION "1.0"?>`) before the root,
  in any order; lower-cases element and attribute names (`<Prospect>...</prospect>` matches);
  quotes unquoted and typographically quoted attribute values; escapes a bare `&`, and a `<`
  that cannot start markup, in text; turns HTML named references (`&nbsp;`) into characters. It
  never touches comments or CDATA, and stops rewriting at `<!DOCTYPE` so the parser refuses it.
- `phone@type` absent means kind UNKNOWN (textable), not the DTD default "voice": most providers
  never say, and a web-form number is usually a cell. `vehicle@interest="sell"` becomes the
  Lead's trade-in (a Lead holds one trade-in; extra ones are named in a warning).
  `odometer@units="km"` is converted to miles.
- Lead.comments holds the customer comments followed by any vehicle comments, so the agent sees
  every word the shopper or provider wrote; ParsedProspect.comments is the customer's alone.
- The lead source is the provider's name (else the source of the first prospect `<id>`); its
  type comes from `guess_source_type`: the dealer's own site (the provider name contains the
  vendor name, or shares its web domain) is first-party, then the first matching key of
  `source_types`, else third-party.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, tzinfo
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import StrEnum
from html.entities import name2codepoint
from types import MappingProxyType
from typing import Final
from urllib.parse import urlsplit
from xml.etree.ElementTree import Element, ParseError, TreeBuilder

from defusedxml import (  # type: ignore[import-untyped]
    DTDForbidden,
    EntitiesForbidden,
    ExternalReferenceForbidden,
)
from defusedxml.ElementTree import DefusedXMLParser  # type: ignore[import-untyped]

from app.domain.errors import DomainError, InvalidLeadError
from app.domain.leads import (
    Address,
    Email,
    Lead,
    LeadSource,
    Person,
    SourceType,
    Timeframe,
    Vehicle,
    VehicleCondition,
    VehicleInterest,
    normalize_email,
)
from app.domain.phones import Phone, PhoneKind, TimeOfDay, make_phone

DEFAULT_MAX_BYTES: Final = 1_000_000
# Real ADF is at most 6 levels deep (adf/prospect/customer/contact/address/street); 50 leaves
# room for odd wrappers while stopping nesting bombs long before they cost anything.
DEFAULT_MAX_DEPTH: Final = 50
MAX_DEPTH_LIMIT: Final = 500

# Keys match whole words, ignoring case and punctuation, in this order (first match wins),
# so "Website Chat" is CHAT and "Chattanooga Toyota" is not.
DEFAULT_SOURCE_TYPES: Final[Mapping[str, SourceType]] = MappingProxyType(
    {
        "autotrader": SourceType.THIRD_PARTY,
        "auto trader": SourceType.THIRD_PARTY,
        "cars.com": SourceType.THIRD_PARTY,
        "cargurus": SourceType.THIRD_PARTY,
        "truecar": SourceType.THIRD_PARTY,
        "edmunds": SourceType.THIRD_PARTY,
        "kelley blue book": SourceType.THIRD_PARTY,
        "kbb": SourceType.THIRD_PARTY,
        "carfax": SourceType.THIRD_PARTY,
        "carsdirect": SourceType.THIRD_PARTY,
        "autobytel": SourceType.THIRD_PARTY,
        "auto navigator": SourceType.THIRD_PARTY,
        "facebook": SourceType.THIRD_PARTY,
        "chat": SourceType.CHAT,
        "dealer.com": SourceType.FIRST_PARTY,
        "dealer inspire": SourceType.FIRST_PARTY,
        "dealeron": SourceType.FIRST_PARTY,
        "dealer website": SourceType.FIRST_PARTY,
        "website": SourceType.FIRST_PARTY,
    }
)

UNKNOWN_PROVIDER: Final = "Unknown ADF provider"


class ProspectStatus(StrEnum):
    """ADF `prospect@status`: "resend" marks a lead the provider already sent."""

    NEW = "new"
    RESEND = "resend"


@dataclass(frozen=True, slots=True)
class AdfProblem:
    """One thing wrong with (or worth noting about) a document: where it is and what it is."""

    what: str
    prospect: int | None = None  # 1-based prospect number; None for the document as a whole
    path: str = ""  # element path, e.g. "adf/prospect[2]/customer/contact/phone[1]"

    @property
    def message(self) -> str:
        where = "document" if self.prospect is None else f"prospect {self.prospect}"
        return f"{where}: {self.what}"

    def __str__(self) -> str:
        return f"{self.message} (at {self.path})" if self.path else self.message


class AdfError(DomainError):
    """The document is rejected as a whole. `problems` names every reason, each with where it is."""

    def __init__(self, problems: Sequence[AdfProblem]) -> None:
        self.problems: tuple[AdfProblem, ...] = tuple(problems) or (
            AdfProblem("the document was rejected"),
        )
        super().__init__("ADF document rejected: " + "; ".join(str(p) for p in self.problems))


@dataclass(frozen=True, slots=True)
class AdfId:
    """An ADF `<id>`: the sender's identifier for the prospect (or a vehicle, customer, ...)."""

    value: str
    source: str = ""
    sequence: str = ""
    owner: str = "prospect"  # prospect, vehicle[N], customer, vendor or provider


@dataclass(frozen=True, slots=True)
class AdfAmount:
    kind: str  # ADF amount@type: downpayment, monthly or total
    limit: str  # maximum, minimum or exact
    dollars: int
    currency: str = "USD"


@dataclass(frozen=True, slots=True)
class AdfFinance:
    """A vehicle's `<finance>` block: how the shopper means to pay."""

    vehicle: int  # 1-based position of the <vehicle> among the prospect's vehicles
    method: str  # e.g. "finance", "lease", "cash"
    amounts: tuple[AdfAmount, ...] = ()
    balance: int | None = None  # whole dollars still owed (on a trade-in)


@dataclass(frozen=True, slots=True)
class ParsedProspect:
    """One <prospect>: its Lead plus what the ADF says about it that a Lead does not hold."""

    index: int  # 1-based, in document order
    lead: Lead
    status: ProspectStatus
    # The prospect's <requestdate>; received_at when it is missing or unreadable.
    requested_at: datetime
    provider_name: str
    vendor_name: str
    ids: tuple[AdfId, ...]
    comments: str  # the customer's comments (Lead.comments adds vehicle comments)
    finance: tuple[AdfFinance, ...] = ()
    warnings: tuple[AdfProblem, ...] = ()

    @property
    def is_resend(self) -> bool:
        return self.status is ProspectStatus.RESEND


@dataclass(frozen=True, slots=True)
class AdfParseResult:
    prospects: tuple[ParsedProspect, ...]
    encoding: str  # how the bytes were read, e.g. "utf-8", "windows-1252"
    warnings: tuple[AdfProblem, ...] = ()  # about the document as a whole


def _uuid4() -> str:
    return str(uuid.uuid4())


def parse_adf(
    body: bytes,
    *,
    received_at: datetime,
    store_id: str,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
    new_id: Callable[[], str] = _uuid4,
    source_types: Mapping[str, SourceType] = DEFAULT_SOURCE_TYPES,
    default_region: str = "US",
) -> AdfParseResult:
    """Every prospect of an ADF document as a Lead, or AdfError naming every problem."""
    if received_at.tzinfo is None or received_at.utcoffset() is None:
        raise InvalidLeadError("received_at must carry a time zone (got a naive datetime)")
    if not store_id:
        raise InvalidLeadError("store_id must not be empty")
    if not 1 <= max_depth <= MAX_DEPTH_LIMIT:
        raise DomainError(f"max_depth must be between 1 and {MAX_DEPTH_LIMIT} (got {max_depth})")
    if not isinstance(body, bytes | bytearray | memoryview):
        raise AdfError([AdfProblem(f"the body must be bytes, not {type(body).__name__}")])
    data = bytes(body)
    # Size first: nothing below runs on an oversized body.
    if len(data) > max_bytes:
        raise AdfError([AdfProblem(f"the body is {len(data)} bytes; the limit is {max_bytes}")])
    if not data.strip():
        raise AdfError([AdfProblem("the body is empty")])

    text, encoding, doc_warnings = _decode(data)
    root = _parse_xml(_lenient_prepass(text), max_depth)
    if _local(root.tag) != "adf":
        raise AdfError(
            [
                AdfProblem(
                    f"the root element is <{_local(root.tag)}>; an ADF document starts with <adf>",
                    path=_local(root.tag),
                )
            ]
        )
    prospect_elements = _children(root, "prospect")
    if not prospect_elements:
        raise AdfError([AdfProblem("the <adf> element holds no <prospect>", path="adf")])

    context = _Context(received_at, store_id, new_id, source_types, default_region)
    parsed: list[ParsedProspect] = []
    problems: list[AdfProblem] = []
    for index, element in enumerate(prospect_elements, start=1):
        notes = _Notes(index)
        prospect = _read_prospect(element, index, notes, context)
        problems.extend(notes.problems)
        if prospect is not None:
            parsed.append(prospect)
    if problems:
        raise AdfError(problems)
    return AdfParseResult(tuple(parsed), encoding, tuple(doc_warnings))


# --- bytes to text -------------------------------------------------------------------------------

_BOMS: Final = (
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)
_WINDOWS_1252_LABELS: Final = frozenset(
    {
        "iso-8859-1",
        "iso8859-1",
        "iso-ir-100",
        "latin-1",
        "latin1",
        "l1",
        "windows-1252",
        "cp1252",
        "us-ascii",
        "ascii",
    }
)
_ENCODING_LABELS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "utf-8": "utf-8",
        "utf8": "utf-8",
        "iso-8859-15": "iso-8859-15",
        "iso8859-15": "iso-8859-15",
        "latin-9": "iso-8859-15",
        "latin9": "iso-8859-15",
        **dict.fromkeys(_WINDOWS_1252_LABELS, "windows-1252"),
    }
)
_ELEMENT_START_BYTES: Final = re.compile(rb"<[A-Za-z_]")
_XML_DECLARATION_BYTES: Final = re.compile(rb"<\?xml\s[^>]*>", re.IGNORECASE)
# Lenient: `encoding "x"`, typographic quotes (any non-letter bytes) around the label.
_ENCODING_BYTES: Final = re.compile(
    rb"encoding\s*=?\s*[^A-Za-z>]{0,4}([A-Za-z][A-Za-z0-9._:-]{0,40})", re.IGNORECASE
)


def _windows_1252_table() -> dict[int, str]:
    """Maps each byte (as an ISO-8859-1 character or an escaped surrogate) to Windows-1252."""
    table: dict[int, str] = {}
    for byte in range(0x80, 0x100):
        try:
            char = bytes([byte]).decode("cp1252")
        except UnicodeDecodeError:
            char = chr(byte)  # undefined in Windows-1252: ISO-8859-1's control character
        table[byte] = char
        table[0xDC00 + byte] = char  # what errors="surrogateescape" leaves for a stray byte
    return table


_WINDOWS_1252: Final = _windows_1252_table()


def _decode(data: bytes) -> tuple[str, str, list[AdfProblem]]:
    """The body as text, the encoding used, and document warnings."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return (
                _strict_decode(data, codec, "starts with a byte-order mark for", len(bom)),
                codec,
                [],
            )
    label = _declared_encoding(data)
    if label is None:
        return _decode_undeclared(data)
    normalized = label.lower().replace("_", "-")
    if normalized.startswith("utf-16") or normalized.startswith("utf16"):
        # The declaration was readable as ASCII, so the body is not UTF-16 whatever it says.
        text, encoding, warnings = _decode_undeclared(data)
        warnings.insert(
            0, AdfProblem(f"the body declares {label} but is not UTF-16; read as UTF-8")
        )
        return text, encoding, warnings
    known = _ENCODING_LABELS.get(normalized)
    if known is None:
        raise AdfError(
            [
                AdfProblem(
                    f"the encoding {label!r} is not supported "
                    "(use UTF-8, ISO-8859-1, Windows-1252 or ISO-8859-15)"
                )
            ]
        )
    if known == "windows-1252":
        return data.decode("latin-1").translate(_WINDOWS_1252), known, []
    return _strict_decode(data, known, "declares"), known, []


def _declared_encoding(data: bytes) -> str | None:
    first_element = _ELEMENT_START_BYTES.search(data, 0, 4096)
    prolog = data[: first_element.start() if first_element else 4096]
    declaration = _XML_DECLARATION_BYTES.search(prolog)
    if declaration is None:
        return None
    encoding = _ENCODING_BYTES.search(declaration.group(0))
    return encoding.group(1).decode("ascii") if encoding else None


def _strict_decode(data: bytes, codec: str, how: str, skip: int = 0) -> str:
    """data[skip:] decoded; an invalid byte is named by its offset in the whole body."""
    try:
        return data[skip:].decode(codec)
    except UnicodeDecodeError as err:
        offset = skip + err.start
        bad = data[offset : offset + 1].hex().upper()
        raise AdfError(
            [
                AdfProblem(
                    f"the body {how} {codec.upper()} but byte {offset} (0x{bad}) "
                    f"is not valid {codec.upper()}"
                )
            ]
        ) from None


def _decode_undeclared(data: bytes) -> tuple[str, str, list[AdfProblem]]:
    try:
        return data.decode("utf-8"), "utf-8", []
    except UnicodeDecodeError:
        text = data.decode("utf-8", errors="surrogateescape")
    warning = AdfProblem(
        "the body declares no encoding and is not valid UTF-8; "
        "bytes that are not UTF-8 were read as Windows-1252 (ISO-8859-1)"
    )
    return text.translate(_WINDOWS_1252), "utf-8+windows-1252", [warning]


# --- the lenient pre-pass ------------------------------------------------------------------------

_NAME: Final = r"[^\W\d][\w.:-]*"
# `<` is excluded from every part so a match never runs past the next tag: the scan stays linear.
_ATTRIBUTE_VALUE: Final = (
    r"\"[^\"<]*\"|'[^'<]*'|[“”„][^“”\"<>]*[“”]|[‘’][^‘’'<>]*[‘’]|[^\s\"'<>/“”„‘’=][^\s\"'<>/“”„‘’]*"
)
_ATTRIBUTE: Final = re.compile(rf"\s+([^\s=/<>\"']+)\s*=\s*({_ATTRIBUTE_VALUE})")
_START_TAG: Final = re.compile(
    rf"<({_NAME})((?:\s+[^\s=/<>\"']+\s*=\s*(?:{_ATTRIBUTE_VALUE}))*)\s*(/?)>"
)
# A start tag already as XML wants it (lower-case names, double-quoted values, no `&`) is copied.
_PLAIN_START_TAG: Final = re.compile(
    r'<[a-z_][a-z0-9_.:-]*(?:\s+[a-z_][a-z0-9_.:-]*="[^"<&]*")*\s*/?>'
)
_END_TAG: Final = re.compile(rf"</\s*({_NAME})\s*>")
_PI_TARGET: Final = re.compile(rf"<\?({_NAME})")
_MARKUP: Final = re.compile(r"<(?=[^\W\d]|[/!?])")
_BARE_AMPERSAND: Final = re.compile(
    r"&(?!#[0-9]{1,7};|#[xX][0-9A-Fa-f]{1,6};|[A-Za-z][A-Za-z0-9]{0,31};)"
)
_NAMED_REFERENCE: Final = re.compile(r"&(?!(?:amp|lt|gt|quot|apos);)([A-Za-z][A-Za-z0-9]{0,31});")
_OPENING_QUOTES: Final = "\"'“”„‘’"


def _lenient_prepass(text: str) -> str:
    """Rewrites the real-feed quirks (see the module docstring) into well-formed XML where it can.

    Text between markup is fixed in bulk; each piece of markup is looked at once, so the work is
    linear in the body. Markup it cannot read is left, with everything after it, for the parser
    to reject. Removed processing instructions leave their line breaks so line numbers hold.
    """
    out: list[str] = []
    position = 0
    length = len(text)
    before_root = True
    while position < length:
        markup = _MARKUP.search(text, position)
        opening = markup.start() if markup else length
        # A "<" that cannot start markup ("<3", "< $20k") is text.
        out.append(_fix_references(text[position:opening]).replace("<", "&lt;"))
        if markup is None:
            break
        if text.startswith("<!--", opening):
            position = _copy_until(text, opening, "-->", out)
        elif text.startswith("<![CDATA[", opening):
            position = _copy_until(text, opening, "]]>", out)
        elif text.startswith("<?", opening):
            end = text.find("?>", opening + 2)
            position = length if end < 0 else end + 2
            instruction = text[opening:position]
            target_match = _PI_TARGET.match(instruction)
            target = target_match.group(1).lower() if target_match else ""
            if target == "adf" or (target == "xml" and before_root):
                out.append("\n" * instruction.count("\n"))
            else:
                out.append(instruction)
        elif text.startswith("</", opening) and (end_tag := _END_TAG.match(text, opening)):
            out.append(f"</{end_tag.group(1).lower()}>")
            position = end_tag.end()
        elif start_tag := _START_TAG.match(text, opening):
            plain = _PLAIN_START_TAG.fullmatch(start_tag.group(0))
            out.append(start_tag.group(0) if plain else _rebuild_start_tag(start_tag))
            before_root = False
            position = start_tag.end()
        else:
            # A DOCTYPE (left exactly as sent so defusedxml refuses it) or unreadable markup.
            out.append(text[opening:])
            break
    return "".join(out)


def _copy_until(text: str, start: int, terminator: str, out: list[str]) -> int:
    end = text.find(terminator, start + 2)
    stop = len(text) if end < 0 else end + len(terminator)
    out.append(text[start:stop])
    return stop


def _rebuild_start_tag(match: re.Match[str]) -> str:
    parts = [f"<{match.group(1).lower()}"]
    seen: set[str] = set()
    for attribute in _ATTRIBUTE.finditer(match.group(2)):
        name = attribute.group(1).lower()
        if name in seen:  # `Type="a" type="b"`: the first one wins, as in HTML
            continue
        seen.add(name)
        raw = attribute.group(2)
        inner = raw[1:-1] if raw[0] in _OPENING_QUOTES else raw
        parts.append(f' {name}="{_fix_references(inner).replace(chr(34), "&quot;")}"')
    parts.append("/>" if match.group(3) else ">")
    return "".join(parts)


def _fix_references(text: str) -> str:
    """Escapes bare ampersands ("Smith & Sons"); HTML names such as &nbsp; become characters."""
    if "&" not in text:
        return text
    text = _BARE_AMPERSAND.sub("&amp;", text)
    return _NAMED_REFERENCE.sub(_fix_named_reference, text)


def _fix_named_reference(match: re.Match[str]) -> str:
    name = match.group(1)
    code_point = name2codepoint.get(name)
    if code_point is not None:
        return f"&#{code_point};"
    return f"&amp;{name};"  # no DTD can define it: it is text, such as "AT&T;"


# --- strict parsing ------------------------------------------------------------------------------


class _TooDeepError(Exception):
    pass


class _DepthLimitedBuilder:
    """A TreeBuilder that stops the parse as soon as elements nest deeper than the limit."""

    def __init__(self, max_depth: int) -> None:
        self._builder = TreeBuilder()
        self._depth = 0
        self._max_depth = max_depth

    def start(self, tag: str, attrs: dict[str, str]) -> Element:
        self._depth += 1
        if self._depth > self._max_depth:
            raise _TooDeepError
        return self._builder.start(tag, attrs)

    def end(self, tag: str) -> Element:
        self._depth -= 1
        return self._builder.end(tag)

    def data(self, data: str) -> None:
        self._builder.data(data)

    def close(self) -> Element:
        return self._builder.close()


def _parse_xml(text: str, max_depth: int) -> Element:
    builder = _DepthLimitedBuilder(max_depth)
    parser = DefusedXMLParser(
        target=builder, forbid_dtd=True, forbid_entities=True, forbid_external=True
    )
    try:
        parser.feed(text.encode("utf-8"))
        root = parser.close()
    except DTDForbidden:
        what = (
            "a <!DOCTYPE> declaration was found; DTDs are refused because they enable "
            "entity-expansion and external-file attacks"
        )
    except EntitiesForbidden:
        what = "an entity declaration was found; entity declarations are refused"
    except ExternalReferenceForbidden:
        what = "an external entity reference was found; external references are refused"
    except _TooDeepError:
        what = f"elements are nested deeper than {max_depth} levels"
    except (ParseError, UnicodeEncodeError) as err:
        what = f"not well-formed XML: {err}" if "<" in text else "the body is not XML"
    else:
        if isinstance(root, Element):
            return root
        what = "no root element was found"
    raise AdfError([AdfProblem(what)])


# --- reading the tree ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Context:
    received_at: datetime
    store_id: str
    new_id: Callable[[], str]
    source_types: Mapping[str, SourceType]
    default_region: str


class _Notes:
    """Warnings and refusals for one prospect."""

    __slots__ = ("problems", "prospect", "warnings")

    def __init__(self, prospect: int) -> None:
        self.prospect = prospect
        self.warnings: list[AdfProblem] = []
        self.problems: list[AdfProblem] = []

    def warn(self, path: str, what: str) -> None:
        self.warnings.append(AdfProblem(what, self.prospect, path))

    def refuse(self, path: str, what: str) -> None:
        self.problems.append(AdfProblem(what, self.prospect, path))


def _local(tag: object) -> str:
    return tag.rpartition("}")[2].lower() if isinstance(tag, str) else ""


def _children(element: Element | None, name: str) -> list[Element]:
    if element is None:
        return []
    return [child for child in element if _local(child.tag) == name]


def _child(element: Element | None, name: str) -> Element | None:
    found = _children(element, name)
    return found[0] if found else None


def _text(element: Element | None) -> str:
    """The element's text with runs of whitespace collapsed to one space."""
    if element is None:
        return ""
    return " ".join("".join(element.itertext()).split())


def _multiline_text(element: Element | None) -> str:
    """Free text (comments): lines trimmed, blank runs collapsed, line breaks kept."""
    if element is None:
        return ""
    lines = [" ".join(line.split()) for line in "".join(element.itertext()).splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _attr(element: Element, name: str) -> str:
    for key, value in element.attrib.items():
        if _local(key) == name:
            return " ".join(value.split())
    return ""


def _keyword(element: Element, name: str) -> str:
    """An enumerated attribute, compared without case, spaces, hyphens or underscores."""
    return re.sub(r"[\s_-]+", "", _attr(element, name).lower())


def _flag(element: Element, name: str) -> bool:
    return _keyword(element, name) in ("1", "true", "yes", "y")


def _read_prospect(
    element: Element, index: int, notes: _Notes, context: _Context
) -> ParsedProspect | None:
    path = f"adf/prospect[{index}]"
    status = _read_status(element, path, notes)
    ids = _read_ids(element, "prospect")
    requested_at = _read_request_date(element, path, notes, context.received_at)

    customer = _child(element, "customer")
    customer_path = f"{path}/customer"
    contact = _child(customer, "contact")
    contact_path = f"{customer_path}/contact"
    person = _read_person(contact, contact_path, notes)
    emails, bad_emails = _read_emails(contact, contact_path, notes)
    phones = _read_phones(contact, contact_path, notes, context.default_region)
    address = _read_address(_child(contact, "address"), f"{contact_path}/address", notes)
    if not any(phone.reachable for phone in phones) and not emails:
        unusable = [
            f"{'fax' if phone.kind is PhoneKind.FAX else 'phone'} {phone.raw!r}" for phone in phones
        ] + bad_emails
        detail = f" (unusable: {', '.join(unusable)})" if unusable else ""
        where = contact_path if contact is not None else customer_path
        notes.refuse(where, f"no phone or e-mail to reach the customer{detail}")

    vehicles, trade_in, finance, vehicle_comments = _read_vehicles(
        element, path, notes, context.received_at, ids
    )
    ids += _read_ids(customer, "customer")
    timeframe = _read_timeframe(
        _child(customer, "timeframe"), f"{customer_path}/timeframe", notes, context.received_at
    )
    comments = _multiline_text(_child(customer, "comments"))

    vendor = _child(element, "vendor")
    provider = _child(element, "provider")
    ids += _read_ids(vendor, "vendor")
    ids += _read_ids(provider, "provider")
    vendor_name = _text(_child(vendor, "vendorname")) or _text(
        _child(_child(vendor, "contact"), "name")
    )
    provider_name = _text(_child(provider, "name"))
    source = _read_source(ids, provider_name, vendor_name, vendor, provider, path, notes, context)

    if notes.problems:
        return None
    lead = Lead(
        id=context.new_id(),
        store_id=context.store_id,
        received_at=context.received_at,
        person=person,
        source=source,
        phones=tuple(phones),
        emails=tuple(emails),
        address=address,
        vehicles=tuple(vehicles),
        trade_in=trade_in,
        timeframe=timeframe,
        comments="\n\n".join(part for part in (comments, *vehicle_comments) if part),
    )
    return ParsedProspect(
        index=index,
        lead=lead,
        status=status,
        requested_at=requested_at,
        provider_name=provider_name,
        vendor_name=vendor_name,
        ids=tuple(ids),
        comments=comments,
        finance=tuple(finance),
        warnings=tuple(notes.warnings),
    )


def _read_status(element: Element, path: str, notes: _Notes) -> ProspectStatus:
    value = _keyword(element, "status")
    if value in ("", "new"):
        return ProspectStatus.NEW
    if value == "resend":
        return ProspectStatus.RESEND
    notes.warn(
        path, f"prospect status {_attr(element, 'status')!r} is not new or resend; read as new"
    )
    return ProspectStatus.NEW


def _read_ids(element: Element | None, owner: str) -> list[AdfId]:
    found: list[AdfId] = []
    for id_element in _children(element, "id"):
        value = _text(id_element)
        if value:
            found.append(
                AdfId(value, _attr(id_element, "source"), _attr(id_element, "sequence"), owner)
            )
    return found


# --- dates ---------------------------------------------------------------------------------------

_US_DATE_FORMATS: Final = (
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y %I:%M %p",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y",
)


def _parse_datetime(text: str) -> datetime | None:
    """ISO 8601 (what ADF asks for), or the US forms some senders use; None when unreadable."""
    if not text or len(text) > 64:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    for pattern in _US_DATE_FORMATS:
        try:
            return datetime.strptime(text, pattern)
        except ValueError:
            continue
    return None


def _read_request_date(
    element: Element, path: str, notes: _Notes, received_at: datetime
) -> datetime:
    request = _child(element, "requestdate")
    here = f"{path}/requestdate"
    if request is None or not _text(request):
        notes.warn(here, "no <requestdate>; the time received is used")
        return received_at
    value = _parse_datetime(_text(request))
    if value is None:
        notes.warn(
            here,
            f"requestdate {_text(request)!r} is not a date and time; the time received is used",
        )
        return received_at
    if value.tzinfo is None or value.utcoffset() is None:
        notes.warn(
            here, f"requestdate {_text(request)!r} has no time zone; read in received_at's zone"
        )
        return value.replace(tzinfo=received_at.tzinfo)
    return value


def _local_date(text: str, zone: tzinfo | None) -> date | None:
    value = _parse_datetime(text)
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        return value.date()
    try:
        return value.astimezone(zone).date()
    except (OverflowError, ValueError):
        return None  # a date at the edge of the calendar cannot be moved to another zone


# --- the customer --------------------------------------------------------------------------------

_HONORIFICS: Final = frozenset({"mr", "mrs", "ms", "miss", "mx", "dr"})
_SUFFIXES: Final = frozenset({"jr", "sr", "ii", "iii", "iv"})
_SURNAME_PARTICLES: Final = frozenset(
    {"da", "de", "del", "della", "der", "di", "dos", "du", "la", "le", "van", "von", "st"}
)


def split_full_name(full: str) -> tuple[str, str, str]:
    """(first, middle, last) of a typed name: "Smith, John", "Ana de la Cruz"."""
    text = " ".join(full.split())
    if text.count(",") == 1:
        before, after = (part.strip() for part in text.split(","))
        if after.lower().rstrip(".") in _SUFFIXES or not before or not after:
            text = " ".join(part for part in (before, after) if part)
        else:  # "Smith, John Q": everything after the comma is given names
            given = after.split()
            return given[0], " ".join(given[1:]), before
    tokens = text.replace(",", " ").split()
    if len(tokens) > 1 and tokens[0].lower().rstrip(".") in _HONORIFICS:
        tokens = tokens[1:]
    suffix = ""
    if len(tokens) > 2 and tokens[-1].lower().rstrip(".") in _SUFFIXES:
        suffix = tokens.pop()
    if not tokens:
        return "", "", ""
    if len(tokens) == 1:
        return tokens[0], "", suffix
    last_start = len(tokens) - 1
    for position in range(1, len(tokens) - 1):
        if tokens[position].lower().rstrip(".") in _SURNAME_PARTICLES:
            last_start = position
            break
    last = " ".join([*tokens[last_start:], suffix] if suffix else tokens[last_start:])
    return tokens[0], " ".join(tokens[1:last_start]), last


def _read_person(contact: Element | None, path: str, notes: _Notes) -> Person:
    parts: dict[str, str] = {}
    business = ""
    for position, name in enumerate(_children(contact, "name"), start=1):
        value = _text(name)
        if not value:
            continue
        if _keyword(name, "type") == "business":
            business = business or value
            continue
        part = _keyword(name, "part") or "full"
        part = "last" if part == "surname" else part
        if part not in ("first", "middle", "last", "full"):
            notes.warn(
                f"{path}/name[{position}]", f"name part {part!r} is not an ADF part; read as full"
            )
            part = "full"
        parts.setdefault(part, value)
    first, middle, last = parts.get("first", ""), parts.get("middle", ""), parts.get("last", "")
    if not (first or last) and parts.get("full"):
        first, middle, last = split_full_name(parts["full"])
    if not (first or last or business):
        notes.warn(path, "no customer name")
    return Person(first_name=first, last_name=last, middle_name=middle, business_name=business)


def _read_emails(
    contact: Element | None, path: str, notes: _Notes
) -> tuple[list[Email], list[str]]:
    emails: list[Email] = []
    rejected: list[str] = []
    for position, element in enumerate(_children(contact, "email"), start=1):
        raw = _text(element)
        cleaned = raw.removeprefix("mailto:").strip("<> ")
        if not cleaned:
            continue
        try:
            address = normalize_email(cleaned)
        except InvalidLeadError:
            notes.warn(
                f"{path}/email[{position}]", f"e-mail {raw!r} is not a valid address; dropped"
            )
            rejected.append(f"e-mail {raw!r}")
            continue
        if any(known.address.lower() == address.lower() for known in emails):
            continue
        emails.append(Email(address, preferred=_flag(element, "preferredcontact")))
    return emails, rejected


_PHONE_KINDS: Final[Mapping[str, PhoneKind]] = MappingProxyType(
    {
        "voice": PhoneKind.VOICE,
        "cellphone": PhoneKind.CELL,
        "cell": PhoneKind.CELL,
        "mobile": PhoneKind.CELL,
        "cellular": PhoneKind.CELL,
        "fax": PhoneKind.FAX,
        "pager": PhoneKind.PAGER,
    }
)
_TIMES: Final[Mapping[str, TimeOfDay]] = MappingProxyType(
    {
        "morning": TimeOfDay.MORNING,
        "afternoon": TimeOfDay.AFTERNOON,
        "evening": TimeOfDay.EVENING,
        "day": TimeOfDay.DAY,
        "nopreference": TimeOfDay.NO_PREFERENCE,
        "any": TimeOfDay.NO_PREFERENCE,
    }
)


def _read_phones(contact: Element | None, path: str, notes: _Notes, region: str) -> list[Phone]:
    phones: list[Phone] = []
    for position, element in enumerate(_children(contact, "phone"), start=1):
        here = f"{path}/phone[{position}]"
        raw = _text(element)
        if not raw:
            continue
        kind_word = _keyword(element, "type")
        kind = _PHONE_KINDS.get(kind_word, PhoneKind.UNKNOWN)
        if kind_word and kind_word not in _PHONE_KINDS:
            notes.warn(
                here, f"phone type {_attr(element, 'type')!r} is not an ADF type; kind unknown"
            )
        time_word = _keyword(element, "time")
        preferred_time = _TIMES.get(time_word)
        if time_word and preferred_time is None:
            notes.warn(here, f"phone time {_attr(element, 'time')!r} is not an ADF time; ignored")
        phone = make_phone(
            raw,
            kind,
            preferred_time=preferred_time,
            preferred=_flag(element, "preferredcontact"),
            default_region=region,
        )
        if phone.e164 is None:
            notes.warn(here, f"phone {raw!r} is not a valid number; kept as unreachable")
        elif any(known.e164 == phone.e164 for known in phones):
            continue
        phones.append(phone)
    return phones


_US_STATES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "alabama": "AL", "alaska": "AK", "arizona": "AZ", "arkansas": "AR", "california": "CA",
        "colorado": "CO", "connecticut": "CT", "delaware": "DE", "district of columbia": "DC",
        "florida": "FL", "georgia": "GA", "hawaii": "HI", "idaho": "ID", "illinois": "IL",
        "indiana": "IN", "iowa": "IA", "kansas": "KS", "kentucky": "KY", "louisiana": "LA",
        "maine": "ME", "maryland": "MD", "massachusetts": "MA", "michigan": "MI", "minnesota": "MN",
        "mississippi": "MS", "missouri": "MO", "montana": "MT", "nebraska": "NE", "nevada": "NV",
        "new hampshire": "NH", "new jersey": "NJ", "new mexico": "NM", "new york": "NY",
        "north carolina": "NC", "north dakota": "ND", "ohio": "OH", "oklahoma": "OK",
        "oregon": "OR", "pennsylvania": "PA", "rhode island": "RI", "south carolina": "SC",
        "south dakota": "SD", "tennessee": "TN", "texas": "TX", "utah": "UT", "vermont": "VT",
        "virginia": "VA", "washington": "WA", "west virginia": "WV", "wisconsin": "WI",
        "wyoming": "WY", "puerto rico": "PR", "guam": "GU", "virgin islands": "VI",
        "american samoa": "AS", "northern mariana islands": "MP",
    }
)  # fmt: skip
_US_STATE_CODES: Final = frozenset(_US_STATES.values())
_COUNTRIES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "us": "US",
        "usa": "US",
        "united states": "US",
        "united states of america": "US",
        "ca": "CA",
        "can": "CA",
        "canada": "CA",
        "mx": "MX",
        "mex": "MX",
        "mexico": "MX",
    }
)
_US_ZIP: Final = re.compile(r"(\d{5})(?:[-\s]?\d{4})?")


def _read_address(element: Element | None, path: str, notes: _Notes) -> Address:
    if element is None:
        return Address()
    street = ", ".join(
        line
        for line in (*map(_text, _children(element, "street")), _text(_child(element, "apartment")))
        if line
    )
    country_text = _text(_child(element, "country"))
    country = _COUNTRIES.get(country_text.lower(), "")
    if not country_text:
        country = "US"
    elif not country:
        if len(country_text) == 2 and country_text.isalpha():
            country = country_text.upper()
        else:
            notes.warn(
                f"{path}/country", f"country {country_text!r} is not a country code; kept as given"
            )
            country = country_text
    region = _text(_child(element, "regioncode"))
    state = _read_state(region, country, f"{path}/regioncode", notes)
    postal = _text(_child(element, "postalcode"))
    return Address(
        street=street,
        city=_text(_child(element, "city")),
        state=state,
        postal_code=_read_postal_code(postal, country, f"{path}/postalcode", notes),
        country=country,
    )


def _read_state(region: str, country: str, path: str, notes: _Notes) -> str:
    if not region:
        return ""
    code = region.upper().replace(".", "")
    if country != "US":
        return code if len(code) <= 3 else region
    code = _US_STATES.get(region.lower(), code)
    if code in _US_STATE_CODES:
        return code
    notes.warn(path, f"region {region!r} is not a US state; dropped")
    return ""


def _read_postal_code(postal: str, country: str, path: str, notes: _Notes) -> str:
    if not postal:
        return ""
    if country != "US":
        return postal.upper()
    zip_match = _US_ZIP.fullmatch(postal)
    if zip_match:
        return zip_match.group(1)
    if re.fullmatch(r"\d{4}", postal):
        # Spreadsheets drop the leading zero of New England ZIPs.
        notes.warn(path, f"ZIP {postal!r} has 4 digits; read as '0{postal}'")
        return f"0{postal}"
    notes.warn(path, f"postal code {postal!r} is not a US ZIP code; dropped")
    return ""


# --- vehicles ------------------------------------------------------------------------------------

_INTERESTS: Final[Mapping[str, VehicleInterest]] = MappingProxyType(
    {
        "buy": VehicleInterest.BUY,
        "purchase": VehicleInterest.BUY,
        "lease": VehicleInterest.LEASE,
        "sell": VehicleInterest.SELL,
        "tradein": VehicleInterest.TRADE_IN,
        "trade": VehicleInterest.TRADE_IN,
        "testdrive": VehicleInterest.TEST_DRIVE,
    }
)
_CONDITIONS: Final[Mapping[str, VehicleCondition]] = MappingProxyType(
    {
        "new": VehicleCondition.NEW,
        "used": VehicleCondition.USED,
        "preowned": VehicleCondition.USED,
        "certified": VehicleCondition.USED,
        "cpo": VehicleCondition.USED,
    }
)
_VIN: Final = re.compile(r"[A-HJ-NPR-Z0-9]{17}")
_MONEY: Final = re.compile(r"\$?\s*(\d{1,3}(?:,\d{3}){0,3}|\d{1,12})(\.\d{1,2})?")
_KM_PER_MILE: Final = Decimal("1.609344")


def _read_vehicles(
    prospect: Element, path: str, notes: _Notes, received_at: datetime, ids: list[AdfId]
) -> tuple[list[Vehicle], Vehicle | None, list[AdfFinance], list[str]]:
    """Vehicles of interest, the trade-in, finance blocks and vehicle comments; ids are appended."""
    wanted: list[Vehicle] = []
    trade_in: Vehicle | None = None
    finance: list[AdfFinance] = []
    comments: list[str] = []
    for position, element in enumerate(_children(prospect, "vehicle"), start=1):
        here = f"{path}/vehicle[{position}]"
        vehicle = _read_vehicle(element, here, notes, received_at)
        ids += _read_ids(element, f"vehicle[{position}]")
        finance.extend(
            _read_finance(_child(element, "finance"), position, f"{here}/finance", notes)
        )
        comment = _multiline_text(_child(element, "comments"))
        if comment:
            label = vehicle.description or f"vehicle {position}"
            if vehicle.interest in (VehicleInterest.TRADE_IN, VehicleInterest.SELL):
                label = f"trade-in ({label})"
            comments.append(f"About the {label}: {comment}")
        if vehicle.interest not in (VehicleInterest.TRADE_IN, VehicleInterest.SELL):
            wanted.append(vehicle)
            continue
        if vehicle.interest is VehicleInterest.SELL:
            notes.warn(
                here,
                f"the customer wants to sell the {vehicle.description or 'vehicle'}; "
                "recorded as the trade-in",
            )
            vehicle = replace(vehicle, interest=VehicleInterest.TRADE_IN)
        if trade_in is None:
            trade_in = vehicle
        else:
            notes.warn(
                here,
                f"a second trade-in ({vehicle.description or 'no description'}) was not kept: "
                "a lead holds one trade-in",
            )
    if not wanted:
        notes.warn(f"{path}/vehicle", "no vehicle of interest")
    return wanted, trade_in, finance, comments


def _read_vehicle(element: Element, path: str, notes: _Notes, received_at: datetime) -> Vehicle:
    interest_word = _keyword(element, "interest")
    interest = _INTERESTS.get(interest_word, VehicleInterest.BUY)
    if interest_word and interest_word not in _INTERESTS:
        notes.warn(
            path,
            f"vehicle interest {_attr(element, 'interest')!r} is not an ADF interest; read as buy",
        )
    condition_word = _keyword(element, "status")
    condition = _CONDITIONS.get(condition_word, VehicleCondition.UNKNOWN)
    if condition_word and condition_word not in _CONDITIONS:
        notes.warn(
            path, f"vehicle status {_attr(element, 'status')!r} is not new or used; read as unknown"
        )
    return Vehicle(
        year=_read_year(_text(_child(element, "year")), f"{path}/year", notes, received_at),
        make=_text(_child(element, "make")),
        model=_text(_child(element, "model")),
        trim=_text(_child(element, "trim")),
        vin=_read_vin(_text(_child(element, "vin")), f"{path}/vin", notes),
        stock_number=_text(_child(element, "stock")),
        condition=condition,
        interest=interest,
        odometer=_read_odometer(_child(element, "odometer"), f"{path}/odometer", notes),
        price=_read_price(_children(element, "price"), f"{path}/price", notes),
    )


def _read_year(text: str, path: str, notes: _Notes, received_at: datetime) -> int | None:
    if not text:
        return None
    if re.fullmatch(r"\d{4}", text) and 1900 <= int(text) <= received_at.year + 2:
        return int(text)
    notes.warn(path, f"year {text!r} is not a model year; dropped")
    return None


def _read_vin(text: str, path: str, notes: _Notes) -> str:
    vin = re.sub(r"[\s-]", "", text).upper()
    if vin and not _VIN.fullmatch(vin):
        notes.warn(path, f"VIN {text!r} is not a 17-character VIN; kept as given")
    return vin


def _dollars(text: str) -> int | None:
    """Whole dollars from "$23,995.50" or "23995"; None when it is not an amount."""
    match = _MONEY.fullmatch(text.replace("USD", "").strip())
    if match is None:
        return None
    try:
        amount = Decimal(match.group(1).replace(",", "") + (match.group(2) or ""))
    except InvalidOperation:
        return None
    return int(amount.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _read_odometer(element: Element | None, path: str, notes: _Notes) -> int | None:
    text = _text(element)
    if element is None or not text:
        return None
    reading = re.fullmatch(r"(\d{1,3}(?:,\d{3}){0,2}|\d{1,7})\s*(mi|miles|km)?", text.lower())
    if reading is None:
        notes.warn(path, f"odometer {text!r} is not a reading; dropped")
        return None
    value = int(reading.group(1).replace(",", ""))
    if _keyword(element, "units") == "km" or reading.group(2) == "km":
        return int((Decimal(value) / _KM_PER_MILE).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return value


# The price a shopper was shown beats list prices; "call" and unknown types come last.
_PRICE_PREFERENCE: Final = ("quote", "offer", "asking", "msrp", "invoice", "appraisal")


def _read_price(elements: Iterable[Element], path: str, notes: _Notes) -> int | None:
    candidates: list[tuple[int, int]] = []
    for element in elements:
        text = _text(element)
        if not text:
            continue
        amount = _dollars(text)
        if amount is None:
            notes.warn(path, f"price {text!r} is not an amount; ignored")
            continue
        kind = _keyword(element, "type")
        rank = (
            _PRICE_PREFERENCE.index(kind) if kind in _PRICE_PREFERENCE else len(_PRICE_PREFERENCE)
        )
        candidates.append((rank, amount))
    return min(candidates, key=lambda candidate: candidate[0])[1] if candidates else None


def _read_finance(
    element: Element | None, vehicle: int, path: str, notes: _Notes
) -> list[AdfFinance]:
    if element is None:
        return []
    amounts: list[AdfAmount] = []
    for position, amount_element in enumerate(_children(element, "amount"), start=1):
        text = _text(amount_element)
        dollars = _dollars(text)
        if dollars is None:
            if text:
                notes.warn(
                    f"{path}/amount[{position}]", f"amount {text!r} is not an amount; ignored"
                )
            continue
        amounts.append(
            AdfAmount(
                kind=_keyword(amount_element, "type") or "total",
                limit=_keyword(amount_element, "limit") or "maximum",
                dollars=dollars,
                currency=_attr(amount_element, "currency").upper() or "USD",
            )
        )
    balance_text = _text(_child(element, "balance"))
    balance = _dollars(balance_text) if balance_text else None
    if balance_text and balance is None:
        notes.warn(f"{path}/balance", f"balance {balance_text!r} is not an amount; ignored")
    method = _text(_child(element, "method")).lower()
    if not (method or amounts or balance is not None):
        return []
    return [AdfFinance(vehicle, method, tuple(amounts), balance)]


# --- timeframe -----------------------------------------------------------------------------------

_NUMBER_WORDS: Final[Mapping[str, int]] = MappingProxyType(
    {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "twelve": 12}
)
_UNIT_DAYS: Final[Mapping[str, float]] = MappingProxyType(
    {"hour": 1 / 24, "day": 1, "week": 7, "month": 30, "year": 365}
)
_COUNT: Final = r"(\d{1,3}|a|an|one|two|three|four|five|six|twelve)"
_UNIT: Final = r"(hour|day|week|month|year)s?\b"
_RANGE_PHRASE: Final = re.compile(rf"\b\d{{1,3}}\s*(?:-|–|to)\s*(\d{{1,3}})\s+{_UNIT}", re.I)
_WITHIN_PHRASE: Final = re.compile(rf"\b(?:within|in|next)\s+(?:the\s+)?{_COUNT}\s+{_UNIT}", re.I)
_THIS_PHRASE: Final = re.compile(r"\bthis\s+(week|month|year)\b", re.I)
_NOW_PHRASE: Final = re.compile(r"\b(?:today|immediately|asap|right away)\b", re.I)


def _days_from_description(description: str) -> int | None:
    """Days from the usual menu wording: "Within 7 days", "1-3 months", "This week", "ASAP"."""
    for pattern in (_RANGE_PHRASE, _WITHIN_PHRASE):
        match = pattern.search(description)
        if match:
            count = _NUMBER_WORDS.get(match.group(1).lower()) or int(match.group(1))
            return max(0, math.ceil(count * _UNIT_DAYS[match.group(2).lower()]))
    this = _THIS_PHRASE.search(description)
    if this:
        return int(_UNIT_DAYS[this.group(1).lower()])
    return 0 if _NOW_PHRASE.search(description) else None


def _read_timeframe(
    element: Element | None, path: str, notes: _Notes, received_at: datetime
) -> Timeframe:
    if element is None:
        return Timeframe()
    description = _text(_child(element, "description"))
    within_days: int | None = None
    # The latest date the shopper gave bounds when they buy; the earliest date is the fallback.
    for name in ("latestdate", "earliestdate"):
        text = _text(_child(element, name))
        if not text:
            continue
        when = _local_date(text, received_at.tzinfo)
        if when is None:
            notes.warn(f"{path}/{name}", f"{name} {text!r} is not a date; ignored")
            continue
        within_days = max(0, (when - received_at.date()).days)
        break
    if within_days is None and description:
        within_days = _days_from_description(description)
    return Timeframe(description=description, within_days=within_days)


# --- the lead source -----------------------------------------------------------------------------


def _words(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


def _domain(url: str) -> str:
    text = url.strip().lower()
    if not text:
        return ""
    try:
        host = urlsplit(text if "//" in text else f"//{text}").hostname or ""
    except ValueError:
        return ""
    return host.removeprefix("www.")


def guess_source_type(
    provider_name: str,
    *,
    vendor_name: str = "",
    provider_url: str = "",
    vendor_url: str = "",
    source_types: Mapping[str, SourceType] = DEFAULT_SOURCE_TYPES,
) -> SourceType:
    """First-party for the dealer's own site, else the first matching key, else third-party.

    Keys of `source_types` match whole words of the name, ignoring case and punctuation.
    """
    name = _words(provider_name)
    vendor = _words(vendor_name)
    if vendor and len(vendor) >= 4 and f" {vendor} " in f" {name} ":
        return SourceType.FIRST_PARTY
    provider_domain, vendor_domain = _domain(provider_url), _domain(vendor_url)
    if provider_domain and provider_domain == vendor_domain:
        return SourceType.FIRST_PARTY
    for key, source_type in source_types.items():
        words = _words(key)
        if words and f" {words} " in f" {name} ":
            return source_type
    return SourceType.THIRD_PARTY


def _read_source(
    ids: Sequence[AdfId],
    provider_name: str,
    vendor_name: str,
    vendor: Element | None,
    provider: Element | None,
    path: str,
    notes: _Notes,
    context: _Context,
) -> LeadSource:
    name = provider_name or next(
        (adf_id.source for adf_id in ids if adf_id.owner == "prospect" and adf_id.source), ""
    )
    if not name:
        notes.warn(
            f"{path}/provider",
            f"no provider name or <id source>; source recorded as {UNKNOWN_PROVIDER!r}",
        )
        return LeadSource(UNKNOWN_PROVIDER, SourceType.THIRD_PARTY)
    source_type = guess_source_type(
        name,
        vendor_name=vendor_name,
        provider_url=_text(_child(provider, "url")),
        vendor_url=_text(_child(vendor, "url")),
        source_types=context.source_types,
    )
    return LeadSource(name, source_type)
