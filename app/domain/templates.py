"""Message templates and merge fields.

A template is text with merge fields in braces: "Hi {first_name}, this is {agent_name}". `{{` and
`}}` write literal braces. Rendering is a single pass over the template: merged values are inserted
as they are and never scanned again, so a customer named "{agent_name}" stays that text. A field
this lead has no value for becomes a visible marker ("[first name?]") and is listed, so the screen
can highlight it and the sender can refuse to send — a customer never receives "Hi ,". A field the
program does not know is an error naming the field and the template.

Templates live in resources/templates/*.toml as `[[template]]` tables; see `parse_templates`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers

from app.domain.dealership import Dealership
from app.domain.errors import ResourceError, TemplateError
from app.domain.leads import Channel, Lead, Vehicle
from app.domain.phones import normalize_e164
from app.domain.rules_file import RulesDocument
from app.domain.sms import SmsInfo, sms_segments

# Every merge field, with the words its missing-value marker shows ("[first name?]").
MERGE_FIELDS: Mapping[str, str] = {
    "first_name": "first name",
    "last_name": "last name",
    "full_name": "name",
    "vehicle": "vehicle",
    "vehicle_year": "vehicle year",
    "vehicle_make": "vehicle make",
    "vehicle_model": "vehicle model",
    "stock_number": "stock number",
    "trade_in": "trade-in",
    "trade_in_model": "trade-in model",
    "agent_name": "your name",
    "agent_first_name": "your first name",
    "agent_phone": "your phone",
    "dealership": "dealership",
    "dealership_phone": "dealership phone",
    "dealership_address": "dealership address",
    "dealership_website": "dealership website",
    "appointment_time": "appointment time",
    "appointment_date": "appointment day",
    "appointment_clock": "appointment hour",
    "source": "lead source",
    "timeframe": "timeframe",
}


class TemplateTextError(TemplateError):
    """A template's text is malformed at a known place (a stray brace, an unknown field)."""

    def __init__(
        self, template: str, message: str, *, line: int, column: int, field: str = ""
    ) -> None:
        self.template = template
        self.line = line
        self.column = column
        self.field = field
        self.detail = message
        super().__init__(f"{template}, line {line}, column {column}: {message}")


class UnknownFieldError(TemplateTextError):
    """A `{name}` that is not a merge field (usually a typo such as `{frist_name}`)."""


@dataclass(frozen=True, slots=True)
class MergeContext:
    """The values merge fields take for one lead, one agent and one store. All plain text."""

    first_name: str = ""
    last_name: str = ""
    full_name: str = ""
    vehicle: str = ""
    vehicle_year: str = ""
    vehicle_make: str = ""
    vehicle_model: str = ""
    stock_number: str = ""
    trade_in: str = ""
    trade_in_model: str = ""
    agent_name: str = ""
    agent_first_name: str = ""
    agent_phone: str = ""
    dealership: str = ""
    dealership_phone: str = ""
    dealership_address: str = ""
    dealership_website: str = ""
    appointment_time: str = ""
    appointment_date: str = ""
    appointment_clock: str = ""
    source: str = ""
    timeframe: str = ""

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if not isinstance(value, str):
                raise TemplateError(
                    f"merge field '{item.name}' must be text, got {type(value).__name__}"
                )

    def value(self, name: str) -> str:
        if name not in MERGE_FIELDS:
            raise TemplateError(f"unknown merge field '{name}'")
        value: str = getattr(self, name)
        return value


@dataclass(frozen=True, slots=True)
class FieldRef:
    """One `{name}` in a template, with where it is (1-based line and column)."""

    name: str
    line: int
    column: int


Part = str | FieldRef


@dataclass(frozen=True, slots=True)
class MissingSpan:
    """Where a missing-value marker sits in rendered text (code-point offsets, end exclusive)."""

    field: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Rendered:
    text: str
    missing: tuple[str, ...] = ()  # fields with no value for this lead, in order of first use
    spans: tuple[MissingSpan, ...] = ()  # every marker, for highlighting
    fields: tuple[str, ...] = ()  # every field the template uses, in order of first use

    @property
    def complete(self) -> bool:
        """True when every field had a value: the message may be sent as it is."""
        return not self.missing


def missing_marker(name: str) -> str:
    return f"[{MERGE_FIELDS.get(name, name.replace('_', ' '))}?]"


_TOKEN = re.compile(r"\{\{|\}\}|\{[ \t]*([A-Za-z_][A-Za-z0-9_]*)[ \t]*\}|[{}]")


def parse_text(text: str, template_name: str = "template") -> tuple[Part, ...]:
    """The literal pieces and field references of `text`; TemplateTextError when malformed."""
    if not isinstance(text, str):
        raise TemplateError(f"{template_name}: template text must be a string")
    parts: list[Part] = []
    literal: list[str] = []
    pos = 0
    for match in _TOKEN.finditer(text):
        literal.append(text[pos : match.start()])
        pos = match.end()
        token = match.group(0)
        if token in ("{{", "}}"):
            literal.append(token[0])
            continue
        line, column = _position(text, match.start())
        name = match.group(1)
        if name is None:
            raise TemplateTextError(
                template_name,
                f"stray '{token}' — merge fields look like {{first_name}}; "
                f"write '{token * 2}' for a literal brace",
                line=line,
                column=column,
            )
        if name not in MERGE_FIELDS:
            raise UnknownFieldError(
                template_name,
                f"unknown merge field '{{{name}}}'{_suggestion(name)}",
                line=line,
                column=column,
                field=name,
            )
        if literal:
            parts.append("".join(literal))
            literal = []
        parts.append(FieldRef(name, line, column))
    literal.append(text[pos:])
    if any(literal):
        parts.append("".join(literal))
    return tuple(p for p in parts if p != "")


def fields_used(text: str, template_name: str = "template") -> tuple[str, ...]:
    """The merge fields `text` uses, in order of first use (validates the text)."""
    names = (p.name for p in parse_text(text, template_name) if isinstance(p, FieldRef))
    return tuple(dict.fromkeys(names))


def render(
    template_text: str, context: MergeContext, *, template_name: str = "template"
) -> Rendered:
    """Merge `context` into the template in one pass; see the module docstring for the rules."""
    if not isinstance(context, MergeContext):
        raise TemplateError(f"{template_name}: context must be a MergeContext")
    out: list[str] = []
    length = 0
    missing: dict[str, None] = {}
    used: dict[str, None] = {}
    spans: list[MissingSpan] = []
    for part in parse_text(template_text, template_name):
        if isinstance(part, str):
            piece = part
        else:
            used[part.name] = None
            piece = context.value(part.name)
            if not piece.strip():
                piece = missing_marker(part.name)
                missing[part.name] = None
                spans.append(MissingSpan(part.name, length, length + len(piece)))
        out.append(piece)
        length += len(piece)
    return Rendered("".join(out), tuple(missing), tuple(spans), tuple(used))


# -- building the context -------------------------------------------------------------------------

_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def merge_context(
    lead: Lead,
    dealership: Dealership,
    agent_name: str,
    agent_phone: str,
    *,
    appointment_at: datetime | None = None,
    customer_zone: ZoneInfo | str | None = None,
) -> MergeContext:
    """The merge values for `lead`. The appointment is shown in the customer's zone (the store's
    when unknown), with the zone abbreviation when the customer's clock differs from the store's.
    """
    if not isinstance(lead, Lead):
        raise TemplateError(f"lead must be a Lead, got {type(lead).__name__}")
    if not isinstance(dealership, Dealership):
        raise TemplateError(f"dealership must be a Dealership, got {type(dealership).__name__}")
    for label, value in (("agent_name", agent_name), ("agent_phone", agent_phone)):
        if not isinstance(value, str):
            raise TemplateError(f"{label} must be text, got {type(value).__name__}")
    person = lead.person
    vehicle = lead.vehicle
    trade = lead.trade_in
    agent = _clean(agent_name)
    appointment = _appointment_texts(appointment_at, customer_zone, dealership)
    return MergeContext(
        first_name=_clean(person.first_name),
        last_name=_clean(person.last_name),
        full_name=_clean(person.full_name),
        vehicle=_clean(vehicle.description) if vehicle else "",
        vehicle_year=str(vehicle.year) if vehicle and vehicle.year else "",
        vehicle_make=_clean(vehicle.make) if vehicle else "",
        vehicle_model=_clean(vehicle.model) if vehicle else "",
        stock_number=_clean(vehicle.stock_number) if vehicle else "",
        trade_in=_clean(trade.description) if trade else "",
        trade_in_model=_model_text(trade),
        agent_name=agent,
        agent_first_name=agent.split(" ")[0] if agent else "",
        agent_phone=format_phone(agent_phone),
        dealership=_clean(dealership.name),
        dealership_phone=format_phone(dealership.phone),
        dealership_address=_clean(dealership.address),
        dealership_website=_clean(dealership.website),
        appointment_time=appointment[0],
        appointment_date=appointment[1],
        appointment_clock=appointment[2],
        source=_clean(lead.source.name),
        timeframe=_clean(lead.timeframe.description),
    )


def format_phone(raw: str) -> str:
    """A US number as "(312) 555-0142", other valid numbers in international form, else as given."""
    text = _clean(raw)
    e164 = normalize_e164(text)
    if e164 is None:
        return text
    parsed = phonenumbers.parse(e164, None)
    style = (
        phonenumbers.PhoneNumberFormat.NATIONAL
        if e164.startswith("+1")
        else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )
    return str(phonenumbers.format_number(parsed, style))


def format_appointment(
    when: datetime, zone: ZoneInfo, *, store_zone: ZoneInfo | None = None
) -> tuple[str, str, str]:
    """("Tuesday, March 5 at 2:00 PM", "Tuesday, March 5", "2:00 PM") in `zone`; a zone
    abbreviation is added when the store's clock reads differently at that moment."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise TemplateError("appointment time must carry a time zone (got a naive datetime)")
    local = when.astimezone(zone)
    day = f"{_DAYS[local.weekday()]}, {_MONTHS[local.month - 1]} {local.day}"
    hour = local.hour % 12 or 12
    clock = f"{hour}:{local.minute:02d} {'AM' if local.hour < 12 else 'PM'}"
    if store_zone is not None and when.astimezone(store_zone).utcoffset() != local.utcoffset():
        clock = f"{clock} {local.tzname()}"
    return f"{day} at {clock}", day, clock


def _appointment_texts(
    when: datetime | None, zone: ZoneInfo | str | None, dealership: Dealership
) -> tuple[str, str, str]:
    if when is None:
        return "", "", ""
    if not isinstance(when, datetime):
        raise TemplateError(f"appointment_at must be a datetime, got {type(when).__name__}")
    return format_appointment(when, _zone(zone, dealership), store_zone=dealership.zone)


def _zone(zone: ZoneInfo | str | None, dealership: Dealership) -> ZoneInfo:
    if zone is None:
        return dealership.zone
    if isinstance(zone, ZoneInfo):
        return zone
    if isinstance(zone, str):
        try:
            return ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise TemplateError(f"customer_zone: unknown time zone {zone!r}") from exc
    raise TemplateError(f"customer_zone must be a time zone, got {type(zone).__name__}")


def _model_text(vehicle: Vehicle | None) -> str:
    if vehicle is None:
        return ""
    return _clean(" ".join(p for p in (vehicle.model, vehicle.trim) if p) or vehicle.make)


def _clean(value: str) -> str:
    """Whitespace runs (tabs, line breaks from sloppy feeds) become single spaces."""
    return " ".join(value.split())


def _position(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return line, column


def _suggestion(name: str) -> str:
    close = difflib.get_close_matches(name.lower(), list(MERGE_FIELDS), n=1, cutoff=0.6)
    return f" (did you mean '{{{close[0]}}}'?)" if close else ""


# -- templates ------------------------------------------------------------------------------------


class TemplateKind(StrEnum):
    ACKNOWLEDGMENT = "acknowledgment"  # automatic, within 60 s of receipt
    FIRST_TEXT = "first_text"  # first personal text: names the brand, says how to opt out
    FOLLOW_UP = "follow_up"
    PERSONAL_EMAIL = "personal_email"
    APPOINTMENT_CONFIRMATION = "appointment_confirmation"
    REMINDER = "reminder"
    NO_SHOW = "no_show"
    NURTURE = "nurture"
    EQUITY_MINING = "equity_mining"
    OPT_OUT_CONFIRMATION = "opt_out_confirmation"  # the single text allowed after STOP
    OPT_IN_CONFIRMATION = "opt_in_confirmation"  # reply to START
    HELP = "help"  # reply to HELP / INFO


# Kinds sent as automatic replies to keywords: they must name the brand and carry nothing else.
_KEYWORD_REPLY_FIELDS = frozenset({"dealership", "dealership_phone", "dealership_website"})
_TEMPLATE_KEYS = {"id", "name", "channel", "kind", "steps", "subject", "body"}
_ID = re.compile(r"[a-z0-9][a-z0-9_\-]*")
_STOP_WORD = re.compile(r"\bSTOP\b")


@dataclass(frozen=True, slots=True)
class Template:
    id: str
    name: str
    channel: Channel  # TEXT or EMAIL
    kind: TemplateKind
    body: str
    subject: str = ""  # email only
    steps: tuple[str, ...] = ()  # cadence step names it suits, e.g. "second_text"
    fields: tuple[str, ...] = ()  # merge fields used by subject and body
    source: str = ""
    line: int | None = None

    def suits(self, channel: Channel, kind: str) -> bool:
        return self.channel is channel and (self.kind == kind or kind in self.steps)


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    template_id: str
    channel: Channel
    subject: Rendered | None  # email only
    body: Rendered
    sms: SmsInfo | None  # text only: encoding and segments of the merged body

    @property
    def missing(self) -> tuple[str, ...]:
        names = (*(self.subject.missing if self.subject else ()), *self.body.missing)
        return tuple(dict.fromkeys(names))

    @property
    def complete(self) -> bool:
        return not self.missing


def render_template(template: Template, context: MergeContext) -> RenderedMessage:
    if not isinstance(template, Template):
        raise TemplateError(f"template must be a Template, got {type(template).__name__}")
    subject = None
    if template.channel is Channel.EMAIL:
        subject = render(template.subject, context, template_name=f"{template.id} subject")
    body = render(template.body, context, template_name=template.id)
    sms = sms_segments(body.text) if template.channel is Channel.TEXT else None
    return RenderedMessage(template.id, template.channel, subject, body, sms)


def parse_templates(text: str, source: str) -> tuple[Template, ...]:
    """The `[[template]]` tables of one TOML file, validated; a broken one raises ResourceError
    naming the file, the line and the field (for a bad merge field, the line inside the body)."""
    doc = RulesDocument(text, source)
    doc.check_keys(doc.data, (), {"template"})
    raw_lines = text.splitlines()
    entries = doc.array(("template",), doc.data.get("template", []))
    if not entries:
        raise ResourceError(source, "no [[template]] tables in this file", field="template")
    templates: list[Template] = []
    seen: dict[str, int | None] = {}
    for index, entry in enumerate(entries):
        path: tuple[str | int, ...] = ("template", index)
        table = doc.table(path, entry)
        doc.check_keys(table, path, _TEMPLATE_KEYS)
        template = _parse_template(doc, raw_lines, table, path)
        if template.id in seen:
            raise doc.error(
                (*path, "id"),
                f"duplicate template id '{template.id}' (first at line {seen[template.id]})",
            )
        seen[template.id] = template.line
        templates.append(template)
    return tuple(templates)


def _parse_template(
    doc: RulesDocument, raw_lines: list[str], table: Mapping[str, Any], path: tuple[str | int, ...]
) -> Template:
    template_id = doc.get(table, (*path, "id"), str).strip()
    if not _ID.fullmatch(template_id):
        raise doc.error(
            (*path, "id"), f"id {template_id!r} must be lower-case letters, digits, '_' or '-'"
        )
    channel_text = doc.get(table, (*path, "channel"), str)
    if channel_text not in (Channel.TEXT, Channel.EMAIL):
        raise doc.error(
            (*path, "channel"), f"channel must be 'text' or 'email', got {channel_text!r}"
        )
    channel = Channel(channel_text)
    kind_text = doc.get(table, (*path, "kind"), str)
    if kind_text not in TemplateKind.__members__.values():
        known = ", ".join(k.value for k in TemplateKind)
        raise doc.error((*path, "kind"), f"unknown kind {kind_text!r} (known: {known})")
    kind = TemplateKind(kind_text)
    steps_raw = doc.array((*path, "steps"), table.get("steps", []))
    steps: list[str] = []
    for position, step in enumerate(steps_raw):
        if not isinstance(step, str) or not step.strip():
            raise doc.error((*path, "steps", position), "each step must be a non-empty string")
        steps.append(step.strip())
    subject = doc.get(table, (*path, "subject"), str, required=False) or ""
    if channel is Channel.EMAIL and not subject.strip():
        raise doc.error((*path, "subject"), "an email template needs a subject")
    if channel is Channel.TEXT and subject:
        raise doc.error((*path, "subject"), "a text template has no subject")
    body = doc.get(table, (*path, "body"), str)
    if not body.strip():
        raise doc.error((*path, "body"), "body is empty")
    used = (
        *_checked_fields(doc, raw_lines, (*path, "subject"), subject, template_id),
        *_checked_fields(doc, raw_lines, (*path, "body"), body, template_id),
    )
    used = tuple(dict.fromkeys(used))
    _check_kind_rules(doc, path, channel, kind, body, used)
    return Template(
        id=template_id,
        name=(doc.get(table, (*path, "name"), str, required=False) or template_id).strip(),
        channel=channel,
        kind=kind,
        body=body.strip(),
        subject=subject.strip(),
        steps=tuple(steps),
        fields=used,
        source=doc.source,
        line=doc.line_of(path),
    )


def _checked_fields(
    doc: RulesDocument,
    raw_lines: list[str],
    path: tuple[str | int, ...],
    value: str,
    template_id: str,
) -> tuple[str, ...]:
    try:
        return fields_used(value, template_id)
    except TemplateTextError as exc:
        needle = re.compile(r"\{[ \t]*" + re.escape(exc.field) + r"[ \t]*\}") if exc.field else None
        raise ResourceError(
            doc.source,
            exc.detail,
            line=value_line(doc, raw_lines, path, exc.line, needle),
            field=_path_text(path),
        ) from exc


def value_line(
    doc: RulesDocument,
    raw_lines: list[str],
    path: tuple[str | int, ...],
    line_in_value: int,
    needle: re.Pattern[str] | None = None,
) -> int | None:
    """The file line of line `line_in_value` of a string value. A multi-line string that opens
    with a bare triple quote starts on the next line (TOML drops that newline); line-ending
    backslashes join lines, so when the offending text is known its own line is searched for."""
    key_line = doc.line_of(path)
    if key_line is None or key_line > len(raw_lines):
        return key_line
    if needle is not None:
        for number in range(key_line, len(raw_lines) + 1):
            if needle.search(raw_lines[number - 1]):
                return number
    opener = raw_lines[key_line - 1].split("=", 1)[-1].strip()
    first = key_line + 1 if opener in ('"""', "'''") else key_line
    return first + line_in_value - 1


def _check_kind_rules(
    doc: RulesDocument,
    path: tuple[str | int, ...],
    channel: Channel,
    kind: TemplateKind,
    body: str,
    used: tuple[str, ...],
) -> None:
    """CTIA practice: a first text and the HELP reply name the brand and say how to opt out; the
    keyword replies are texts that carry no marketing (only the store's own details)."""
    body_path = (*path, "body")
    if kind in (TemplateKind.FIRST_TEXT, TemplateKind.HELP):
        if "dealership" not in used:
            raise doc.error(body_path, f"a {kind} template must name the brand with {{dealership}}")
        if not _STOP_WORD.search(body):
            raise doc.error(
                body_path, f'a {kind} template must tell how to opt out ("Reply STOP to opt out")'
            )
    if kind in (
        TemplateKind.OPT_OUT_CONFIRMATION,
        TemplateKind.OPT_IN_CONFIRMATION,
        TemplateKind.HELP,
    ):
        if channel is not Channel.TEXT:
            raise doc.error((*path, "channel"), f"a {kind} template is a text")
        extra = [name for name in used if name not in _KEYWORD_REPLY_FIELDS]
        if extra:
            raise doc.error(
                body_path,
                f"a {kind} reply carries no marketing or personal details; remove {{{extra[0]}}}",
            )


def _path_text(path: tuple[str | int, ...]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


@dataclass(frozen=True, slots=True)
class TemplateLibrary:
    """All templates, ids unique across files."""

    templates: tuple[Template, ...] = ()
    _by_id: Mapping[str, Template] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_id: dict[str, Template] = {}
        for template in self.templates:
            if not isinstance(template, Template):
                raise TemplateError(f"not a Template: {type(template).__name__}")
            first = by_id.get(template.id)
            if first is not None:
                raise ResourceError(
                    template.source,
                    f"duplicate template id '{template.id}' (also in {first.source}"
                    f"{'' if first.line is None else f':{first.line}'})",
                    line=template.line,
                    field="id",
                )
            by_id[template.id] = template
        object.__setattr__(self, "_by_id", by_id)

    def __len__(self) -> int:
        return len(self.templates)

    def __contains__(self, template_id: object) -> bool:
        return template_id in self._by_id

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self._by_id)

    def get(self, template_id: str) -> Template:
        template = self._by_id.get(template_id)
        if template is None:
            raise TemplateError(f"no template with id {template_id!r}")
        return template

    def for_step(self, channel: Channel | str, kind: TemplateKind | str) -> tuple[Template, ...]:
        """Templates for `channel` whose kind is `kind` or which list `kind` among their steps."""
        try:
            wanted = Channel(channel)
        except ValueError as exc:
            raise TemplateError(f"unknown channel {channel!r}") from exc
        if not isinstance(kind, str):
            raise TemplateError(f"kind must be text, got {type(kind).__name__}")
        return tuple(t for t in self.templates if t.suits(wanted, str(kind)))


def load_templates(documents: Iterable[tuple[str, str]]) -> TemplateLibrary:
    """A library from (text, source) pairs, e.g. read_resource() of each templates/*.toml."""
    found: list[Template] = []
    for text, source in documents:
        found.extend(parse_templates(text, source))
    return TemplateLibrary(tuple(found))
