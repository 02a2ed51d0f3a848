from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.domain.activities import ActivityKind, Direction, DispositionFlag
from app.domain.dispositions import AfterEvent
from app.telephony.baresip import end_cause
from app.telephony.model import (
    CallAnswered,
    CallDialing,
    CallEnded,
    CallRinging,
    EndCause,
    TelephonyError,
)
from app.telephony.record import CallRecord

T0 = datetime(2025, 6, 3, 15, 0, tzinfo=UTC)
CALL = "6f1c1a52-3d6e-4a51-9d0e-2b8d5c0f7a10"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def answered_call() -> list[object]:
    return [
        CallDialing(CALL, at(0), "+13125550123", "lead-1", "baresip"),
        CallRinging(CALL, at(1)),
        CallAnswered(CALL, at(9)),
        CallEnded(CALL, at(9 + 154), EndCause.CUSTOMER_HANGUP, "", at(0), at(9), "rec/1.wav"),
    ]


def test_an_answered_call_becomes_a_call_activity_with_its_talk_time() -> None:
    record = CallRecord.from_events(answered_call())  # type: ignore[arg-type]
    assert (record.started_at, record.ringing_at, record.answered_at, record.ended_at) == (
        at(0),
        at(1),
        at(9),
        at(163),
    )
    assert record.duration_s == 154
    assert record.total_s == 163
    assert record.after_event is AfterEvent.CALL_ANSWERED
    activity = record.activity(agent_id="user-ana")
    assert activity.kind is ActivityKind.CALL
    assert activity.direction is Direction.OUTBOUND
    assert activity.id == CALL
    assert (activity.lead_id, activity.agent_id, activity.phone) == (
        "lead-1",
        "user-ana",
        "+13125550123",
    )
    assert activity.at == at(0)
    assert activity.answered is True
    assert activity.duration_s == 154
    assert activity.is_agent_attempt
    assert activity.is_conversation
    assert "talk 2:34" in activity.body
    assert "rec/1.wav" in activity.body


def test_a_busy_call_is_an_attempt_without_conversation() -> None:
    events = [
        CallDialing(CALL, at(0), "+13125550123", "lead-1", "baresip"),
        CallRinging(CALL, at(1)),
        CallEnded(CALL, at(4), EndCause.BUSY, "486 Busy Here", at(0), None),
    ]
    record = CallRecord.from_events(events)
    activity = record.activity()
    assert activity.answered is False
    assert activity.duration_s == 0
    assert activity.is_agent_attempt and not activity.is_conversation
    assert record.after_event is AfterEvent.CALL_BUSY
    assert "busy (486 Busy Here)" in activity.body


def test_a_handoff_call_ends_at_the_disposition_and_takes_its_answer_from_the_flags() -> None:
    events = [CallDialing(CALL, at(0), "+13125550123", "lead-1", "handoff")]
    record = CallRecord.from_events(
        events,
        ended_at=at(200),
        disposition_flags=DispositionFlag.ATTEMPT | DispositionFlag.HUMAN_CONTACT,
    )
    assert record.outcome is EndCause.HANDED_OFF
    assert record.answered is True
    assert record.duration_s == 200
    assert record.after_event is AfterEvent.CALL_ANSWERED
    unanswered = CallRecord.from_events(
        events, ended_at=at(30), disposition_flags=DispositionFlag.ATTEMPT
    )
    assert unanswered.answered is False
    assert unanswered.duration_s == 0


def test_bad_inputs_say_what_is_missing() -> None:
    with pytest.raises(TelephonyError, match="dialing"):
        CallRecord.from_events([CallRinging(CALL, at(1))])
    with pytest.raises(TelephonyError, match="not ended"):
        CallRecord.from_events([CallDialing(CALL, at(0), "+13125550123", None, "demo")])
    with pytest.raises(TelephonyError, match="several calls"):
        CallRecord.from_events(
            [CallDialing(CALL, at(0), "+13125550123", None, "demo"), CallRinging("other", at(1))]
        )
    record = CallRecord.from_events(
        [CallDialing(CALL, at(0), "+13125550123", None, "demo")], ended_at=at(5)
    )
    with pytest.raises(TelephonyError, match="lead"):
        record.activity()


@pytest.mark.parametrize(
    ("reason", "answered", "requested", "cause"),
    [
        ("486 Rejected", False, False, EndCause.BUSY),
        ("486 Busy Here", False, False, EndCause.BUSY),
        ("600 Busy Everywhere", False, False, EndCause.BUSY),
        ("603 Decline", False, False, EndCause.DECLINED),
        ("404 Not Found", False, False, EndCause.INVALID_NUMBER),
        ("480 Temporarily Unavailable", False, False, EndCause.NO_ANSWER),
        ("408 Request Timeout", False, False, EndCause.NO_ANSWER),
        ("487 Request Terminated", False, True, EndCause.CANCELLED),
        ("503 Service Unavailable", False, False, EndCause.UNREACHABLE),
        ("500 Server Internal Error", False, False, EndCause.FAILED),
        ("Connection refused", False, False, EndCause.UNREACHABLE),
        ("Connection timed out", False, False, EndCause.UNREACHABLE),
        ("Connection reset by user", True, True, EndCause.AGENT_HANGUP),
        ("Connection reset by peer", True, False, EndCause.CUSTOMER_HANGUP),
        ("Connection reset by user", False, True, EndCause.CANCELLED),
        ("end of file", False, False, EndCause.FAILED),
    ],
)
def test_baresip_close_reasons(
    reason: str, answered: bool, requested: bool, cause: EndCause
) -> None:
    assert end_cause(reason, answered=answered, hangup_requested=requested) is cause
