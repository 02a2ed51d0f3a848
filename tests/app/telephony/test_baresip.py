"""The baresip backend against REAL baresip softphones on loopback (tests/app/telephony/
softphones.py): the agent's softphone dials the customer's, which answers or rejects when told
over its own ctrl_tcp. These fail, never skip, when baresip is not installed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from app.telephony.baresip import BaresipDialer
from app.telephony.model import (
    CallAnswered,
    CallDialing,
    CallEnded,
    CallInProgress,
    CallRinging,
    DialerUnavailable,
    DialRequest,
    EndCause,
)
from tests.app.telephony.recorder import Recorder
from tests.app.telephony.softphones import CUSTOMER, Softphone, free_port

pytestmark = pytest.mark.slow


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 20))


def dialer_for(agent: Softphone, far_port: int, **options: object) -> BaresipDialer:
    template = options.pop("uri_template", f"sip:{{digits}}@127.0.0.1:{far_port}")
    return BaresipDialer(
        "127.0.0.1",
        agent.ctrl_port,
        uri_template=str(template),
        reconnect_min_s=0.05,
        reconnect_max_s=0.2,
        **options,  # type: ignore[arg-type]
    )


async def far_end(phone: Softphone) -> BaresipDialer:
    """A ctrl_tcp client of the customer's softphone, to make it answer or reject."""
    client = BaresipDialer("127.0.0.1", phone.ctrl_port)
    assert await client.wait_connected(5), client.last_error
    return client


def test_dial_ring_answer_hang_up_reports_every_state_with_the_duration(
    agent_phone: Softphone, customer_phone: Softphone
) -> None:
    async def scenario() -> None:
        dialer = dialer_for(agent_phone, customer_phone.sip_port)
        far = await far_end(customer_phone)
        record = Recorder(dialer)
        try:
            request = DialRequest(CUSTOMER, lead_id="lead-1", display_name="Pat Lee")
            clicked = time.monotonic()
            handle = await dialer.dial(request)
            assert handle.call_id == request.call_id
            assert dialer.active_call == handle
            await record.wait_for(CallRinging, 5)
            ringing_after = time.monotonic() - clicked
            await far.command("accept")
            answered = await record.wait_for(CallAnswered, 5)
            await asyncio.sleep(1.3)
            await dialer.hang_up()
            ended = await record.wait_for(CallEnded, 5)
        finally:
            await far.close()
            await dialer.close()
        assert record.kinds == ["CallDialing", "CallRinging", "CallAnswered", "CallEnded"]
        dialing = record.events[0]
        assert isinstance(dialing, CallDialing)
        assert (dialing.number, dialing.lead_id, dialing.backend) == (CUSTOMER, "lead-1", "baresip")
        assert ended.cause is EndCause.AGENT_HANGUP
        assert ended.answered_at == answered.at
        assert ended.started_at == dialing.at
        assert 1 <= ended.duration_s <= 3
        assert ended.total_s >= ended.duration_s
        assert dialer.active_call is None
        assert ringing_after < 2.0, f"dial to ringing took {ringing_after:.3f} s"
        print(f"baresip dial-to-ringing: {ringing_after * 1000:.0f} ms")

    run(scenario)


def test_the_customer_hanging_up_ends_the_call_as_theirs(
    agent_phone: Softphone, customer_phone: Softphone
) -> None:
    async def scenario() -> None:
        dialer = dialer_for(agent_phone, customer_phone.sip_port)
        far = await far_end(customer_phone)
        record = Recorder(dialer)
        try:
            await dialer.dial(DialRequest(CUSTOMER))
            await record.wait_for(CallRinging, 5)
            await far.command("accept")
            await record.wait_for(CallAnswered, 5)
            await far.command("hangup")
            ended = await record.wait_for(CallEnded, 5)
        finally:
            await far.close()
            await dialer.close()
        assert ended.cause is EndCause.CUSTOMER_HANGUP
        assert ended.answered

    run(scenario)


def test_far_end_busy_ends_with_busy_and_no_talk_time(
    agent_phone: Softphone, customer_phone: Softphone
) -> None:
    async def scenario() -> None:
        dialer = dialer_for(agent_phone, customer_phone.sip_port)
        far = await far_end(customer_phone)
        record = Recorder(dialer)
        try:
            await dialer.dial(DialRequest(CUSTOMER))
            await record.wait_for(CallRinging, 5)
            await far.command("hangup")  # baresip rejects a ringing call with 486
            ended = await record.wait_for(CallEnded, 5)
        finally:
            await far.close()
            await dialer.close()
        assert record.kinds == ["CallDialing", "CallRinging", "CallEnded"]
        assert ended.cause is EndCause.BUSY
        assert ended.detail.startswith("486")
        assert not ended.answered
        assert ended.duration_s == 0

    run(scenario)


def test_an_auto_answering_far_end_is_answered_without_being_told(
    agent_phone: Softphone, tmp_path: Path
) -> None:
    auto = Softphone(tmp_path / "auto", CUSTOMER.lstrip("+"), "auto").start()

    async def scenario() -> None:
        dialer = dialer_for(agent_phone, auto.sip_port)
        record = Recorder(dialer)
        try:
            await dialer.dial(DialRequest(CUSTOMER))
            await record.wait_for(CallAnswered, 5)
            await dialer.hang_up()
            ended = await record.wait_for(CallEnded, 5)
        finally:
            await dialer.close()
        assert ended.cause is EndCause.AGENT_HANGUP

    try:
        run(scenario)
    finally:
        auto.stop()


def test_hanging_up_while_it_rings_cancels_the_call(
    agent_phone: Softphone, customer_phone: Softphone
) -> None:
    async def scenario() -> None:
        dialer = dialer_for(agent_phone, customer_phone.sip_port)
        record = Recorder(dialer)
        try:
            await dialer.dial(DialRequest(CUSTOMER))
            await record.wait_for(CallRinging, 5)
            with pytest.raises(CallInProgress):
                await dialer.dial(DialRequest(CUSTOMER))
            await dialer.hang_up()
            ended = await record.wait_for(CallEnded, 5)
        finally:
            await dialer.close()
        assert ended.cause is EndCause.CANCELLED
        assert not ended.answered

    run(scenario)


def test_unknown_number_at_the_far_end_is_not_in_service(
    agent_phone: Softphone, customer_phone: Softphone
) -> None:
    async def scenario() -> None:
        dialer = dialer_for(agent_phone, customer_phone.sip_port)
        record = Recorder(dialer)
        try:
            await dialer.dial(DialRequest("+13125550199"))  # nobody has that number there
            ended = await record.wait_for(CallEnded, 5)
        finally:
            await dialer.close()
        assert ended.cause is EndCause.INVALID_NUMBER
        assert ended.detail.startswith("404")

    run(scenario)


def test_far_end_refusing_connections_is_unreachable(agent_phone: Softphone) -> None:
    closed = free_port()

    async def scenario() -> None:
        dialer = dialer_for(
            agent_phone, closed, uri_template=f"sip:{{digits}}@127.0.0.1:{closed};transport=tcp"
        )
        record = Recorder(dialer)
        try:
            await dialer.dial(DialRequest(CUSTOMER))
            ended = await record.wait_for(CallEnded, 5)
        finally:
            await dialer.close()
        assert ended.cause is EndCause.UNREACHABLE
        assert "refused" in ended.detail.lower()

    run(scenario)


def test_far_end_silent_on_udp_is_unreachable_after_the_setup_timeout(
    agent_phone: Softphone,
) -> None:
    silent = free_port()

    async def scenario() -> None:
        dialer = dialer_for(agent_phone, silent, setup_timeout_s=1.5)
        record = Recorder(dialer)
        try:
            started = time.monotonic()
            await dialer.dial(DialRequest(CUSTOMER))
            ended = await record.wait_for(CallEnded, 5)
            waited = time.monotonic() - started
            # The softphone is free for the next call at once.
            assert dialer.active_call is None
        finally:
            await dialer.close()
        assert ended.cause is EndCause.UNREACHABLE
        assert "1.5 s" in ended.detail
        assert 1.4 <= waited < 4

    run(scenario)


def test_no_softphone_listening_refuses_the_dial_and_says_where_it_looked() -> None:
    port = free_port()

    async def scenario() -> None:
        dialer = BaresipDialer("127.0.0.1", port, command_timeout_s=0.5, reconnect_min_s=0.05)
        record = Recorder(dialer)
        try:
            with pytest.raises(DialerUnavailable, match=f"127.0.0.1:{port}"):
                await dialer.dial(DialRequest(CUSTOMER))
        finally:
            await dialer.close()
        assert record.events == []
        assert dialer.active_call is None

    run(scenario)


def test_reconnects_when_the_softphone_restarts_and_a_call_it_dropped_ends(
    agent_phone: Softphone, customer_phone: Softphone
) -> None:
    async def scenario() -> None:
        dialer = dialer_for(agent_phone, customer_phone.sip_port)
        statuses: list[bool] = []
        dialer.subscribe_status(lambda up, _detail: statuses.append(up))
        record = Recorder(dialer)
        try:
            await dialer.dial(DialRequest(CUSTOMER))
            await record.wait_for(CallRinging, 5)
            agent_phone.stop()  # the softphone dies mid-call
            lost = await record.wait_for(CallEnded, 5)
            assert lost.cause is EndCause.SOFTPHONE_LOST
            assert not dialer.connected
            await asyncio.to_thread(agent_phone.start)  # same ports: IT restarts it
            assert await dialer.wait_connected(5), dialer.last_error
            assert dialer.connects >= 2
            again = Recorder(dialer)
            await dialer.dial(DialRequest(CUSTOMER))
            await again.wait_for(CallRinging, 5)
            await dialer.hang_up()
            await again.wait_for(CallEnded, 5)
        finally:
            await dialer.close()
        assert statuses[:3] == [True, False, True]

    run(scenario)


def test_check_reports_the_softphone_accounts(agent_phone: Softphone) -> None:
    async def scenario() -> None:
        dialer = BaresipDialer("127.0.0.1", agent_phone.ctrl_port)
        try:
            text = await dialer.check()
        finally:
            await dialer.close()
        assert agent_phone.aor in text

    run(scenario)
