"""ServerCallDialer against a scripted CallControl: the change feed's call changes become the
dialer's events in order, whatever order and repetition they come in."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from app.settings import DIALERS as SETTING_DIALERS
from app.telephony.factory import DIALERS, build_dialer
from app.telephony.model import (
    CallAnswered,
    CallDialing,
    CallEnded,
    CallInProgress,
    CallRinging,
    Dialer,
    DialerUnavailable,
    DialRequest,
    EndCause,
    TelephonyError,
)
from app.telephony.server import ServerCallDialer, end_cause
from tests.app.telephony.recorder import Recorder

NUMBER = "+13125550123"
T = "2025-06-03T15:00:{:02d}+00:00"


def call(call_id: str, state: str, **extra: Any) -> dict[str, Any]:
    return {"id": call_id, "state": state, "created_at": T.format(0), **extra}


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Control:
    def __init__(self) -> None:
        self.started: list[tuple[str, str, str | None]] = []
        self.hung_up: list[str] = []
        self.fail: Exception | None = None
        self.on_start: Any = None
        self.hangup_answer: dict[str, Any] | None = None

    async def start_call(
        self, call_id: str, lead_id: str, phone: str | None = None
    ) -> Mapping[str, Any]:
        self.started.append((call_id, lead_id, phone))
        if self.fail is not None:
            raise self.fail
        if self.on_start is not None:
            self.on_start(call_id)
        return call(call_id, "dialing")

    async def hang_up_call(self, call_id: str) -> Mapping[str, Any]:
        self.hung_up.append(call_id)
        return self.hangup_answer or call(call_id, "dialing")


def request() -> DialRequest:
    return DialRequest(NUMBER, lead_id="lead-1", agent_id="user-ana")


def test_changes_become_events_in_order_with_the_servers_times() -> None:
    async def scenario() -> None:
        control = Control()
        dialer = ServerCallDialer(control)
        assert isinstance(dialer, Dialer)
        record = Recorder(dialer)
        handle = await dialer.dial(request())
        assert control.started == [(handle.call_id, "lead-1", NUMBER)]
        assert dialer.active_call is not None and dialer.active_call.call_id == handle.call_id
        cid = handle.call_id
        dialer.on_call_change(call(cid, "ringing", ringing_at=T.format(2)))
        dialer.on_call_change(call(cid, "ringing", ringing_at=T.format(2)))  # a repeat
        dialer.on_call_change(call("someone-else", "answered", answered_at=T.format(3)))
        dialer.on_call_change(call(cid, "answered", answered_at=T.format(9), answered_by="human"))
        dialer.on_call_change(call(cid, "answered", answered_at=T.format(9)))
        dialer.on_call_change(call(cid, "ringing", ringing_at=T.format(2)))  # stale
        end = call(
            cid,
            "ended",
            answered_at=T.format(9),
            ended_at=T.format(51),
            cause="customer_hangup",
            detail="completed; the customer hung up",
            recording="https://rec.example/1",
        )
        dialer.on_call_change(end)
        dialer.on_call_change(end)
        assert record.kinds == ["CallDialing", "CallRinging", "CallAnswered", "CallEnded"]
        dialing, ringing, answered, ended = record.events
        assert isinstance(dialing, CallDialing) and dialing.backend == "server"
        assert dialing.at.isoformat() == T.format(0) and dialing.lead_id == "lead-1"
        assert isinstance(ringing, CallRinging) and ringing.at.isoformat() == T.format(2)
        assert isinstance(answered, CallAnswered) and answered.at.isoformat() == T.format(9)
        assert isinstance(ended, CallEnded)
        assert (ended.cause, ended.duration_s, ended.total_s) == (EndCause.CUSTOMER_HANGUP, 42, 51)
        assert ended.recording == "https://rec.example/1"
        assert dialer.active_call is None

    asyncio.run(scenario())


def test_a_change_that_skips_states_fills_them_in_and_early_changes_wait_for_dialing() -> None:
    async def scenario() -> None:
        control = Control()
        dialer = ServerCallDialer(control)
        record = Recorder(dialer)
        # The feed is faster than the POST's answer: "answered" arrives while dial() waits.
        control.on_start = lambda cid: dialer.on_call_change(
            call(cid, "answered", answered_at=T.format(7))
        )
        handle = await dialer.dial(request())
        assert record.kinds == ["CallDialing", "CallRinging", "CallAnswered"]
        dialer.on_call_change(
            call(handle.call_id, "ended", ended_at=T.format(20), cause="lost", detail="x")
        )
        ended = record.events[-1]
        assert isinstance(ended, CallEnded) and ended.cause is EndCause.LOST
        assert ended.answered_at is not None and ended.duration_s == 13

    asyncio.run(scenario())


def test_hang_up_asks_the_server_and_an_ended_answer_ends_the_call() -> None:
    async def scenario() -> None:
        control = Control()
        dialer = ServerCallDialer(control)
        record = Recorder(dialer)
        handle = await dialer.dial(request())
        with pytest.raises(CallInProgress):
            await dialer.dial(request())
        await dialer.hang_up()
        assert control.hung_up == [handle.call_id]
        assert record.kinds == ["CallDialing"]  # the end comes on the feed
        control.hangup_answer = call(
            handle.call_id, "ended", ended_at=T.format(4), cause="cancelled"
        )
        await dialer.hang_up(handle.call_id)
        assert record.kinds == ["CallDialing", "CallEnded"]
        assert record.events[-1].cause is EndCause.CANCELLED  # type: ignore[union-attr]
        await dialer.hang_up()  # nothing left: not an error
        assert len(control.hung_up) == 2

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (Refused(422, "not dialed: quiet hours until 8:00"), TelephonyError),
        (Refused(502, "the call could not be placed: busy provider"), DialerUnavailable),
        (OSError("offline"), DialerUnavailable),
    ],
)
def test_a_refused_dial_says_why_and_leaves_no_call(error: Exception, kind: type) -> None:
    async def scenario() -> None:
        control = Control()
        control.fail = error
        dialer = ServerCallDialer(control)
        record = Recorder(dialer)
        with pytest.raises(kind) as raised:
            await dialer.dial(request())
        assert type(raised.value) is kind
        assert str(error) in str(raised.value)
        assert dialer.active_call is None and record.events == []

    asyncio.run(scenario())


def test_a_call_needs_a_lead() -> None:
    with pytest.raises(TelephonyError, match="for a lead"):
        asyncio.run(ServerCallDialer(Control()).dial(DialRequest(NUMBER)))


def test_server_causes_map_to_end_causes() -> None:
    assert end_cause("completed") is EndCause.COMPLETED and EndCause.COMPLETED.answered
    assert end_cause("agent_unreachable") is EndCause.AGENT_UNREACHABLE
    assert end_cause("voicemail") is EndCause.VOICEMAIL
    assert end_cause("something new") is EndCause.FAILED
    for cause in EndCause:
        assert cause.label  # every cause has words for the agent


def test_the_factory_offers_it_as_server() -> None:
    class Settings:
        dialer = "server"
        dialer_uri_scheme = "tel"
        baresip_host = "127.0.0.1"
        baresip_port = 4444

    assert "server" in DIALERS and "server" in SETTING_DIALERS
    dialer = build_dialer(Settings(), call_control=Control())
    assert isinstance(dialer, ServerCallDialer) and dialer.records_calls
    with pytest.raises(TelephonyError, match="call_control"):
        build_dialer(Settings())
