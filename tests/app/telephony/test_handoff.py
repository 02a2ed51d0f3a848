from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from app.telephony.handoff import HandoffDialer, dial_url
from app.telephony.model import (
    CallDialing,
    CallEnded,
    CallInProgress,
    DialerUnavailable,
    DialRequest,
    EndCause,
    TelephonyError,
)
from app.telephony.record import CallRecord
from tests.app.telephony.recorder import Recorder

T0 = datetime(2025, 6, 3, 15, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("scheme", "domain", "url"),
    [
        ("tel", "", "tel:+13125550123"),
        ("callto", "", "callto:+13125550123"),
        ("sip", "", "sip:+13125550123"),
        ("sip", "pbx.lakeside.example", "sip:+13125550123@pbx.lakeside.example"),
    ],
)
def test_dial_links_per_scheme(scheme: str, domain: str, url: str) -> None:
    assert dial_url("+13125550123", scheme, domain) == url


def test_unknown_scheme_is_refused_when_the_dialer_is_built() -> None:
    with pytest.raises(TelephonyError, match="fax"):
        HandoffDialer(lambda _url: True, scheme="fax")


def test_handoff_opens_the_link_and_the_disposition_time_ends_the_call() -> None:
    opened: list[str] = []
    now = [T0]
    dialer = HandoffDialer(lambda url: opened.append(url) is None, clock=lambda: now[0])

    async def scenario() -> list[object]:
        record = Recorder(dialer)
        handle = await dialer.dial(DialRequest("+13125550123", lead_id="lead-1"))
        with pytest.raises(CallInProgress):
            await dialer.dial(DialRequest("+13125550123"))
        dialer.finish(handle.call_id, T0 + timedelta(minutes=3, seconds=5))
        return list(record.events)

    events = asyncio.run(scenario())
    assert opened == ["tel:+13125550123"]
    assert [type(e) for e in events] == [CallDialing, CallEnded]
    ended = events[1]
    assert isinstance(ended, CallEnded)
    assert ended.cause is EndCause.HANDED_OFF
    assert ended.total_s == 185
    assert dialer.active_call is None
    record = CallRecord.from_events(events)  # type: ignore[arg-type]
    assert record.total_s == 185
    assert record.answered is None
    assert record.after_event is None


def test_no_program_for_the_link_refuses_the_dial_with_advice() -> None:
    dialer = HandoffDialer(lambda _url: False)

    async def scenario() -> None:
        record = Recorder(dialer)
        with pytest.raises(DialerUnavailable, match="default handler"):
            await dialer.dial(DialRequest("+13125550123"))
        assert record.events == []

    asyncio.run(scenario())
    assert dialer.active_call is None


def test_opener_crash_is_reported_not_raised_raw() -> None:
    def broken(_url: str) -> bool:
        raise OSError("no such program: xdg-open")

    dialer = HandoffDialer(broken)
    with pytest.raises(DialerUnavailable, match="xdg-open"):
        asyncio.run(dialer.dial(DialRequest("+13125550123")))
