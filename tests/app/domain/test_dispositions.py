"""The disposition catalog: resources/dispositions.toml, hotkeys, channels, activities."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.activities import ActivityKind, DispositionFlag
from app.domain.dispositions import (
    AfterEvent,
    DispositionCatalog,
    InvalidHotkeyError,
    UnknownDispositionError,
    disposition_activity,
    normalize_hotkey,
    parse_dispositions,
)
from app.domain.errors import DomainError, InvalidActivityError, ResourceError
from app.domain.leads import Channel
from app.rulebook import read_resource

F = DispositionFlag
AT = datetime(2024, 5, 6, 15, 0, tzinfo=UTC)
SHIPPED_TEXT, SHIPPED_SOURCE = read_resource("dispositions.toml")
CATALOG = parse_dispositions(SHIPPED_TEXT, SHIPPED_SOURCE)

EXPECTED = {
    "no_answer": (F.ATTEMPT, "F2", Channel.CALL),
    "left_voicemail": (F.ATTEMPT, "F3", Channel.CALL),
    "busy": (F.ATTEMPT, "F4", Channel.CALL),
    "bad_number": (F.ATTEMPT | F.BAD_NUMBER, "F5", Channel.CALL),
    "contacted_not_ready": (F.ATTEMPT | F.HUMAN_CONTACT, "F6", None),
    "callback_requested": (F.ATTEMPT | F.HUMAN_CONTACT | F.CALLBACK, "F7", None),
    "appointment_set": (F.ATTEMPT | F.HUMAN_CONTACT | F.APPOINTMENT_SET, "F8", None),
    "not_interested": (F.ATTEMPT | F.HUMAN_CONTACT | F.NOT_INTERESTED, "F9", None),
    "purchased_elsewhere": (F.ATTEMPT | F.HUMAN_CONTACT | F.NOT_INTERESTED, "Ctrl+3", None),
    "do_not_contact": (F.ATTEMPT | F.HUMAN_CONTACT | F.DO_NOT_CONTACT, "Ctrl+4", None),
    "sold": (F.ATTEMPT | F.HUMAN_CONTACT | F.SOLD, "Ctrl+5", None),
    "text_sent": (F.ATTEMPT, "Ctrl+1", Channel.TEXT),
    "email_sent": (F.ATTEMPT, "Ctrl+2", Channel.EMAIL),
}


# --- the shipped catalog ---------------------------------------------------------------------


def test_shipped_catalog_codes_flags_hotkeys_and_channels() -> None:
    assert CATALOG.codes == tuple(EXPECTED)
    for code, (flags, hotkey, channel) in EXPECTED.items():
        disposition = CATALOG.get(code)
        assert (disposition.flags, disposition.hotkey, disposition.channel) == (
            flags,
            hotkey,
            channel,
        ), code
    assert CATALOG.get("appointment_set").label == "Appointment set"
    assert CATALOG.get("contacted_not_ready").label == "Contacted – not ready"
    assert CATALOG.source_name == "resources/dispositions.toml"
    assert len(CATALOG) == 13
    assert "sold" in CATALOG
    assert "won" not in CATALOG


def test_only_callback_and_appointment_need_a_time() -> None:
    timed = [d.code for d in CATALOG if d.needs_time]
    assert timed == ["callback_requested", "appointment_set"]


def test_every_flag_is_carried_by_some_disposition() -> None:
    for flag in DispositionFlag:
        if flag.value:
            assert CATALOG.with_flag(flag), flag
    assert [d.code for d in CATALOG.with_flag(F.BAD_NUMBER)] == ["bad_number"]


def test_get_unknown_code_names_it() -> None:
    with pytest.raises(UnknownDispositionError, match="unknown disposition code 'won'"):
        CATALOG.get("won")
    assert issubclass(UnknownDispositionError, DomainError)


def test_by_hotkey_normalizes_the_key() -> None:
    assert CATALOG.by_hotkey("F2").code == "no_answer"  # type: ignore[union-attr]
    assert CATALOG.by_hotkey("ctrl + 1").code == "text_sent"  # type: ignore[union-attr]
    assert CATALOG.by_hotkey("Control+4").code == "do_not_contact"  # type: ignore[union-attr]
    assert CATALOG.by_hotkey("F11") is None
    assert CATALOG.by_hotkey("Alt+1") is None
    with pytest.raises(InvalidHotkeyError):
        CATALOG.by_hotkey("q")


def test_for_channel() -> None:
    shared = [
        "contacted_not_ready",
        "callback_requested",
        "appointment_set",
        "not_interested",
        "purchased_elsewhere",
        "do_not_contact",
        "sold",
    ]
    assert [d.code for d in CATALOG.for_channel(Channel.TEXT)] == [*shared, "text_sent"]
    assert [d.code for d in CATALOG.for_channel(Channel.EMAIL)] == [*shared, "email_sent"]
    calls = [d.code for d in CATALOG.for_channel(Channel.CALL)]
    assert calls == ["no_answer", "left_voicemail", "busy", "bad_number", *shared]
    with pytest.raises(DomainError, match="unknown channel 'fax'"):
        CATALOG.for_channel("fax")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("event", "code"),
    [
        (AfterEvent.CALL_UNANSWERED, "no_answer"),
        (AfterEvent.CALL_VOICEMAIL, "left_voicemail"),
        (AfterEvent.CALL_BUSY, "busy"),
        (AfterEvent.CALL_FAILED, "bad_number"),
        (AfterEvent.CALL_ANSWERED, "contacted_not_ready"),
        (AfterEvent.TEXT_SENT, "text_sent"),
        (AfterEvent.EMAIL_SENT, "email_sent"),
    ],
)
def test_likely_after(event: AfterEvent, code: str) -> None:
    suggestion = CATALOG.likely_after(event)
    assert suggestion is not None
    assert suggestion.code == code


def test_catalog_refuses_duplicate_codes_when_built_by_hand() -> None:
    one = CATALOG.get("sold")
    with pytest.raises(DomainError, match="unique"):
        DispositionCatalog((one, one))


# --- hotkeys ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("F2", "F2"),
        ("f12", "F12"),
        ("Ctrl+1", "Ctrl+1"),
        (" ctrl + shift + d ", "Ctrl+Shift+D"),
        ("Shift+Ctrl+D", "Ctrl+Shift+D"),
        ("Meta+Alt+x", "Alt+Meta+X"),
        ("Shift+F5", "Shift+F5"),
    ],
)
def test_normalize_hotkey(text: str, canonical: str) -> None:
    assert normalize_hotkey(text) == canonical


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "must be text"),
        ("D", "needs Ctrl, Alt or Meta"),
        ("Shift+1", "needs Ctrl, Alt or Meta"),
        ("F13", "not a key"),
        ("F0", "not a key"),
        ("Ctrl+", "empty part"),
        ("Hyper+1", "not a modifier"),
        ("Ctrl+Ctrl+1", "repeats Ctrl"),
        ("Ctrl+Enter", "not a key"),
        ("Ctrl+é", "not a key"),
    ],
)
def test_bad_hotkeys(text: str, message: str) -> None:
    with pytest.raises(InvalidHotkeyError, match=message):
        normalize_hotkey(text)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="CtrlAShifMea+F0123456789xd ", max_size=16))
def test_property_hotkeys_normalize_idempotently_or_fail_typed(text: str) -> None:
    try:
        canonical = normalize_hotkey(text)
    except InvalidHotkeyError:
        return
    assert normalize_hotkey(canonical) == canonical


# --- disposition activities ------------------------------------------------------------------


def test_appointment_activity_carries_flags_and_time() -> None:
    slot = AT + timedelta(days=1, hours=2)
    record = disposition_activity(
        CATALOG,
        "appointment_set",
        "lead-1",
        AT,
        activity_id="act-9",
        scheduled_for=slot,
        agent_id="agent-3",
        body="Sat 10am with Mike",
    )
    assert record.kind is ActivityKind.DISPOSITION
    assert (record.id, record.lead_id, record.at, record.agent_id) == (
        "act-9",
        "lead-1",
        AT,
        "agent-3",
    )
    assert record.disposition == "appointment_set"
    assert record.flags == F.ATTEMPT | F.HUMAN_CONTACT | F.APPOINTMENT_SET
    assert record.scheduled_for == slot
    assert record.is_conversation


def test_voicemail_activity_is_an_attempt_without_contact() -> None:
    record = disposition_activity(
        CATALOG, "left_voicemail", "lead-1", AT, activity_id="a1", phone="+13125550142"
    )
    assert record.flags == F.ATTEMPT
    assert record.scheduled_for is None
    assert record.phone == "+13125550142"
    assert not record.is_conversation


@pytest.mark.parametrize(
    ("code", "kwargs", "message"),
    [
        ("callback_requested", {}, "needs a date and time"),
        ("callback_requested", {"scheduled_for": datetime(2024, 5, 7, 9)}, "naive"),
        ("appointment_set", {"scheduled_for": AT - timedelta(minutes=1)}, "before the time"),
        ("no_answer", {"scheduled_for": AT + timedelta(hours=1)}, "does not take a date"),
        ("no_answer", {"at": datetime(2024, 5, 6, 15)}, "naive"),
        ("no_answer", {"lead_id": ""}, "lead's id"),
        ("no_answer", {"activity_id": ""}, "activity id"),
    ],
)
def test_disposition_activity_refuses_bad_input(
    code: str, kwargs: dict[str, object], message: str
) -> None:
    args: dict[str, object] = {"lead_id": "lead-1", "at": AT, "activity_id": "a1", **kwargs}
    with pytest.raises(InvalidActivityError, match=message):
        disposition_activity(CATALOG, code, **args)  # type: ignore[arg-type]


def test_disposition_activity_unknown_code() -> None:
    with pytest.raises(UnknownDispositionError, match="'won'"):
        disposition_activity(CATALOG, "won", "lead-1", AT, activity_id="a1")


# --- broken files ----------------------------------------------------------------------------

MINI = """\
[[disposition]]
code = "no_answer"
label = "No answer"
flags = ["ATTEMPT"]
hotkey = "F2"
channel = "call"

[[disposition]]
code = "appointment_set"
label = "Appointment set"
flags = ["ATTEMPT", "HUMAN_CONTACT", "APPOINTMENT_SET"]
hotkey = "F8"
channel = "any"
needs_time = true
"""


def test_mini_file_parses() -> None:
    catalog = parse_dispositions(MINI, "mini.toml")
    assert catalog.codes == ("no_answer", "appointment_set")


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    lines = [n for n, line in enumerate(text.splitlines(), 1) if needle in line]
    return lines[occurrence - 1]


def broken(old: str, new: str, count: int = 1) -> tuple[str, ResourceError]:
    assert old in MINI
    text = MINI.replace(old, new, count)
    with pytest.raises(ResourceError) as caught:
        parse_dispositions(text, "resources/dispositions.toml")
    return text, caught.value


def test_unknown_flag_names_line_and_field() -> None:
    text, err = broken('"HUMAN_CONTACT"', '"HUMAN_CONTACTED"')
    assert err.field == "disposition[1].flags[1]"
    assert err.line == line_of(text, "HUMAN_CONTACTED")
    assert "unknown flag 'HUMAN_CONTACTED'" in err.detail
    assert str(err).startswith(f"resources/dispositions.toml:{err.line} [disposition[1].flags[1]]")


def test_duplicate_code() -> None:
    text, err = broken('code = "appointment_set"', 'code = "no_answer"')
    assert err.field == "disposition[1].code"
    assert err.line == line_of(text, 'code = "no_answer"', 2)
    assert "duplicate code 'no_answer'" in err.detail


def test_duplicate_hotkey_in_another_spelling() -> None:
    text, err = broken('hotkey = "F8"', 'hotkey = "f2"')
    assert err.field == "disposition[1].hotkey"
    assert err.line == line_of(text, 'hotkey = "f2"')
    assert "F2 is already used by 'no_answer'" in err.detail


def test_bad_hotkey_syntax() -> None:
    text, err = broken('hotkey = "F8"', 'hotkey = "Ctrl-8"')
    assert (err.field, err.line) == ("disposition[1].hotkey", line_of(text, "Ctrl-8"))


def test_unknown_channel() -> None:
    _, err = broken('channel = "any"', 'channel = "fax"')
    assert err.field == "disposition[1].channel"
    assert "unknown channel 'fax'" in err.detail


def test_appointment_without_needs_time() -> None:
    text, err = broken("needs_time = true\n", "")
    assert err.field == "disposition[1].needs_time"
    assert err.line == line_of(text, "[[disposition]]", 2)  # the entry: the field is missing
    assert "needs_time = true" in err.detail


def test_contradictory_flags() -> None:
    text, err = broken('flags = ["ATTEMPT"]', 'flags = ["BAD_NUMBER", "HUMAN_CONTACT"]')
    assert (err.field, err.line) == ("disposition[0].flags", line_of(text, "BAD_NUMBER"))


def test_unknown_field_missing_field_and_wrong_type() -> None:
    _, err = broken('hotkey = "F2"', 'hotkey = "F2"\nhotkeys = "F3"')
    assert err.field == "disposition[0].hotkeys"
    _, err = broken('label = "No answer"\n', "")
    assert err.field == "disposition[0]"
    assert "missing required field 'label'" in err.detail
    assert err.line == 1
    _, err = broken('flags = ["ATTEMPT"]', 'flags = "ATTEMPT"')
    assert err.field == "disposition[0].flags"
    assert "must be list, got a string" in err.detail


def test_bad_code_and_empty_label() -> None:
    _, err = broken('code = "no_answer"', 'code = "No Answer"')
    assert err.field == "disposition[0].code"
    _, err = broken('label = "No answer"', 'label = "  "')
    assert err.field == "disposition[0].label"


def test_likely_after_rules() -> None:
    text, err = broken('channel = "call"', 'channel = "call"\nlikely_after = ["call_ringing"]')
    assert err.field == "disposition[0].likely_after[0]"
    assert err.line == line_of(text, "call_ringing")
    _, err = broken('channel = "call"', 'channel = "call"\nlikely_after = ["text_sent"]')
    assert "text_sent is a text event" in err.detail
    twice = MINI.replace('channel = "call"', 'channel = "call"\nlikely_after = ["call_answered"]')
    twice = twice.replace(
        "needs_time = true", 'needs_time = true\nlikely_after = ["call_answered"]'
    )
    with pytest.raises(ResourceError, match="already suggests 'no_answer'") as caught:
        parse_dispositions(twice, "x.toml")
    assert caught.value.field == "disposition[1].likely_after"


def test_empty_and_invalid_files() -> None:
    with pytest.raises(ResourceError, match="missing required field 'disposition'"):
        parse_dispositions("", "x.toml")
    with pytest.raises(ResourceError, match="lists no dispositions"):
        parse_dispositions("disposition = []", "x.toml")
    with pytest.raises(ResourceError, match="not valid TOML") as caught:
        parse_dispositions("[[disposition]]\ncode = \n", "x.toml")
    assert caught.value.line == 2
    with pytest.raises(ResourceError, match="unknown field 'dispositions'"):
        parse_dispositions(MINI.replace("[[disposition]]", "[[dispositions]]"), "x.toml")
