"""The disposition catalog: outcomes an agent logs after an attempt, with flags and hotkeys.

The catalog comes from resources/dispositions.toml. Funnel metrics and cadence transitions read
only the flags a disposition carries (copied onto the activity when it is logged), so renaming or
adding a disposition never changes what the numbers mean.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from app.domain.activities import Activity, ActivityKind, DispositionFlag
from app.domain.errors import DomainError, InvalidActivityError
from app.domain.leads import Channel
from app.domain.rules_file import RulesDocument


class UnknownDispositionError(DomainError):
    """A disposition code that is not in the catalog."""


class InvalidHotkeyError(DomainError):
    """A hotkey that is not written like "F2", "Ctrl+1" or "Ctrl+Shift+D"."""


class AfterEvent(StrEnum):
    """What just happened, so the workstation can pre-select the likely disposition."""

    CALL_ANSWERED = "call_answered"
    CALL_UNANSWERED = "call_unanswered"
    CALL_BUSY = "call_busy"
    CALL_VOICEMAIL = "call_voicemail"
    CALL_FAILED = "call_failed"  # not in service, invalid number
    TEXT_SENT = "text_sent"
    EMAIL_SENT = "email_sent"

    @property
    def channel(self) -> Channel:
        if self is AfterEvent.TEXT_SENT:
            return Channel.TEXT
        if self is AfterEvent.EMAIL_SENT:
            return Channel.EMAIL
        return Channel.CALL


@dataclass(frozen=True, slots=True)
class Disposition:
    code: str
    label: str
    flags: DispositionFlag
    hotkey: str | None  # canonical form, e.g. "Ctrl+1"; None when it has no default key
    channel: Channel | None  # None: offered on every channel
    needs_time: bool = False  # the agent must pick a date-time (callback, appointment)
    likely_after: tuple[AfterEvent, ...] = ()
    description: str = ""

    def applies_to(self, channel: Channel) -> bool:
        return self.channel is None or self.channel is channel


@dataclass(frozen=True, slots=True)
class DispositionCatalog:
    dispositions: tuple[Disposition, ...]  # in file order: the order the buttons are shown
    source_name: str = ""

    def __post_init__(self) -> None:
        codes = [d.code for d in self.dispositions]
        if len(set(codes)) != len(codes):
            raise DomainError("disposition codes must be unique")

    def __iter__(self) -> Iterator[Disposition]:
        return iter(self.dispositions)

    def __len__(self) -> int:
        return len(self.dispositions)

    def __contains__(self, code: object) -> bool:
        return any(d.code == code for d in self.dispositions)

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(d.code for d in self.dispositions)

    def get(self, code: str) -> Disposition:
        for disposition in self.dispositions:
            if disposition.code == code:
                return disposition
        known = ", ".join(self.codes) or "none"
        raise UnknownDispositionError(f"unknown disposition code {code!r} (known: {known})")

    def by_hotkey(self, key: str) -> Disposition | None:
        """The disposition bound to `key` (any case or modifier order), or None when unbound."""
        wanted = normalize_hotkey(key)
        return next((d for d in self.dispositions if d.hotkey == wanted), None)

    def for_channel(self, channel: Channel) -> tuple[Disposition, ...]:
        if not isinstance(channel, Channel):
            raise DomainError(f"unknown channel {channel!r} (expected call, text or email)")
        return tuple(d for d in self.dispositions if d.applies_to(channel))

    def likely_after(self, event: AfterEvent) -> Disposition | None:
        """The disposition to pre-select after `event`, if the catalog suggests one."""
        return next((d for d in self.dispositions if event in d.likely_after), None)

    def with_flag(self, flag: DispositionFlag) -> tuple[Disposition, ...]:
        return tuple(d for d in self.dispositions if flag in d.flags)


def disposition_activity(
    catalog: DispositionCatalog,
    code: str,
    lead_id: str,
    at: datetime,
    *,
    activity_id: str,
    scheduled_for: datetime | None = None,
    agent_id: str | None = None,
    phone: str | None = None,
    body: str = "",
) -> Activity:
    """The DISPOSITION activity for logging `code` on a lead, carrying the disposition's flags.

    A disposition that needs a time (callback, appointment) requires `scheduled_for`: timezone-aware
    and not before `at`. Others refuse one, so a stray time never masquerades as a callback.
    """
    disposition = catalog.get(code)
    if not lead_id:
        raise InvalidActivityError("a disposition needs the lead's id")
    if not activity_id:
        raise InvalidActivityError("a disposition needs an activity id")
    if not _aware(at):
        raise InvalidActivityError(
            f"disposition {code!r}: 'at' must carry a time zone (got a naive datetime)"
        )
    if disposition.needs_time:
        if scheduled_for is None:
            raise InvalidActivityError(
                f"disposition {code!r} ({disposition.label}) needs a date and time"
            )
        if not _aware(scheduled_for):
            raise InvalidActivityError(
                f"disposition {code!r}: scheduled_for must carry a time zone (got a naive datetime)"
            )
        # In UTC: zoned datetimes sharing a zone compare by wall time, ignoring the DST fold.
        if scheduled_for.astimezone(UTC) < at.astimezone(UTC):
            raise InvalidActivityError(
                f"disposition {code!r}: scheduled_for {scheduled_for.isoformat()} is before "
                f"the time it was logged ({at.isoformat()})"
            )
    elif scheduled_for is not None:
        raise InvalidActivityError(
            f"disposition {code!r} ({disposition.label}) does not take a date and time"
        )
    return Activity(
        id=activity_id,
        lead_id=lead_id,
        kind=ActivityKind.DISPOSITION,
        at=at,
        agent_id=agent_id,
        phone=phone,
        disposition=disposition.code,
        flags=disposition.flags,
        scheduled_for=scheduled_for,
        body=body,
    )


def _aware(moment: datetime) -> bool:
    return isinstance(moment, datetime) and moment.utcoffset() is not None


# ---------------------------------------------------------------------------------------------
# Hotkeys

_MODIFIERS = {"ctrl": "Ctrl", "control": "Ctrl", "alt": "Alt", "shift": "Shift", "meta": "Meta"}
_MODIFIER_ORDER = ("Ctrl", "Alt", "Shift", "Meta")
_FUNCTION_KEY = re.compile(r"F([1-9]|1[0-2])")


def normalize_hotkey(text: str) -> str:
    """The canonical form of a key chord: "ctrl + 1" -> "Ctrl+1", "shift+ctrl+d" -> "Ctrl+Shift+D".

    Keys are F1-F12, letters and digits. A letter or digit needs Ctrl, Alt or Meta: alone (or with
    Shift only) it would fire while the agent types.
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidHotkeyError(f"hotkey must be text like 'F2' or 'Ctrl+1', got {text!r}")
    parts = [part.strip() for part in text.split("+")]
    if any(not part for part in parts):
        raise InvalidHotkeyError(f"hotkey {text!r} has an empty part")
    *modifier_names, key_name = parts
    modifiers: set[str] = set()
    for name in modifier_names:
        modifier = _MODIFIERS.get(name.lower())
        if modifier is None:
            raise InvalidHotkeyError(
                f"hotkey {text!r}: {name!r} is not a modifier (use Ctrl, Alt, Shift or Meta)"
            )
        if modifier in modifiers:
            raise InvalidHotkeyError(f"hotkey {text!r} repeats {modifier}")
        modifiers.add(modifier)
    key = key_name.upper()
    if _FUNCTION_KEY.fullmatch(key):
        pass
    elif len(key) == 1 and (key.isascii() and key.isalnum()):
        if not modifiers & {"Ctrl", "Alt", "Meta"}:
            raise InvalidHotkeyError(
                f"hotkey {text!r}: a letter or digit needs Ctrl, Alt or Meta, "
                "or it fires while the agent types"
            )
    else:
        raise InvalidHotkeyError(
            f"hotkey {text!r}: {key_name!r} is not a key (use F1-F12, a letter or a digit)"
        )
    ordered = [m for m in _MODIFIER_ORDER if m in modifiers]
    return "+".join([*ordered, key])


# ---------------------------------------------------------------------------------------------
# Parsing dispositions.toml

_CODE = re.compile(r"[a-z][a-z0-9_]{0,39}")
_KEYS = {
    "code",
    "label",
    "flags",
    "hotkey",
    "channel",
    "needs_time",
    "likely_after",
    "description",
}
_FLAG_NAMES = {flag.name: flag for flag in DispositionFlag if flag.name and flag.value}
_CHANNELS = {"any": None, **{c.value: c for c in Channel}}
_TIMED = DispositionFlag.CALLBACK | DispositionFlag.APPOINTMENT_SET


def parse_dispositions(text: str, source: str) -> DispositionCatalog:
    """A validated catalog; a broken file raises ResourceError naming the line and field."""
    doc = RulesDocument(text, source)
    doc.check_keys(doc.data, (), {"disposition"})
    entries = doc.array(("disposition",), doc.get(doc.data, ("disposition",), list))
    if not entries:
        raise doc.error(("disposition",), "the catalog lists no dispositions")
    dispositions: list[Disposition] = []
    codes: dict[str, int] = {}
    hotkeys: dict[str, str] = {}
    suggested: dict[AfterEvent, str] = {}
    for index, raw in enumerate(entries):
        path: tuple[str | int, ...] = ("disposition", index)
        disposition = _parse_one(doc, path, doc.table(path, raw))
        if disposition.code in codes:
            raise doc.error(
                (*path, "code"),
                f"duplicate code {disposition.code!r} "
                f"(also disposition #{codes[disposition.code] + 1})",
            )
        codes[disposition.code] = index
        if disposition.hotkey is not None:
            if disposition.hotkey in hotkeys:
                raise doc.error(
                    (*path, "hotkey"),
                    f"hotkey {disposition.hotkey} is already used by "
                    f"{hotkeys[disposition.hotkey]!r}",
                )
            hotkeys[disposition.hotkey] = disposition.code
        for event in disposition.likely_after:
            if event in suggested:
                raise doc.error(
                    (*path, "likely_after"),
                    f"{event.value} already suggests {suggested[event]!r}; each event suggests one",
                )
            suggested[event] = disposition.code
        dispositions.append(disposition)
    return DispositionCatalog(dispositions=tuple(dispositions), source_name=source)


def _parse_one(
    doc: RulesDocument, path: tuple[str | int, ...], table: Mapping[str, Any]
) -> Disposition:
    doc.check_keys(table, path, _KEYS)
    code = doc.get(table, (*path, "code"), str)
    if not _CODE.fullmatch(code):
        raise doc.error(
            (*path, "code"),
            f"code {code!r} must be lower case letters, digits and underscores (max 40)",
        )
    label = doc.get(table, (*path, "label"), str).strip()
    if not label:
        raise doc.error((*path, "label"), "label cannot be empty")

    flags = DispositionFlag.NONE
    flags_path = (*path, "flags")
    for index, name in enumerate(doc.array(flags_path, doc.get(table, flags_path, list))):
        flag = _FLAG_NAMES.get(name) if isinstance(name, str) else None
        if flag is None:
            raise doc.error(
                (*flags_path, index),
                f"unknown flag {name!r} (known: {', '.join(_FLAG_NAMES)})",
            )
        flags |= flag

    hotkey: str | None = None
    if "hotkey" in table:
        hotkey_text = doc.get(table, (*path, "hotkey"), str)
        try:
            hotkey = normalize_hotkey(hotkey_text)
        except InvalidHotkeyError as exc:
            raise doc.error((*path, "hotkey"), str(exc)) from None

    channel_text = doc.get(table, (*path, "channel"), str).strip().lower()
    if channel_text not in _CHANNELS:
        raise doc.error(
            (*path, "channel"),
            f"unknown channel {channel_text!r} (use {', '.join(_CHANNELS)})",
        )
    channel = _CHANNELS[channel_text]

    needs_time = doc.get(table, (*path, "needs_time"), bool, required=False) or False
    if flags & _TIMED and not needs_time:
        raise doc.error(
            (*path, "needs_time"),
            "a callback or appointment disposition needs a date-time: set needs_time = true",
        )
    if DispositionFlag.BAD_NUMBER in flags and DispositionFlag.HUMAN_CONTACT in flags:
        raise doc.error(flags_path, "BAD_NUMBER and HUMAN_CONTACT contradict each other")

    events: list[AfterEvent] = []
    after_path = (*path, "likely_after")
    if "likely_after" in table:
        for index, name in enumerate(doc.array(after_path, table["likely_after"])):
            try:
                event = AfterEvent(name)
            except ValueError:
                known = ", ".join(e.value for e in AfterEvent)
                raise doc.error(
                    (*after_path, index), f"unknown event {name!r} (known: {known})"
                ) from None
            if channel is not None and event.channel is not channel:
                raise doc.error(
                    (*after_path, index),
                    f"{event.value} is a {event.channel.value} event but this disposition "
                    f"applies to {channel.value}",
                )
            events.append(event)

    description = doc.get(table, (*path, "description"), str, required=False) or ""
    return Disposition(
        code=code,
        label=label,
        flags=flags,
        hotkey=hotkey,
        channel=channel,
        needs_time=needs_time,
        likely_after=tuple(dict.fromkeys(events)),
        description=description.strip(),
    )
