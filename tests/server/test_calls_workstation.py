"""The workstation's ServerCallDialer end to end: LeadApi against a real lead API on loopback
(uvicorn) whose calls go through the fake Twilio Calls API or the demo provider; the test plays
the sync layer, polling GET /v1/changes and handing "call" changes to on_call_change."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
import uvicorn

from app.store.db import session_only_store
from app.sync.api import LeadApi
from app.sync.engine import SyncEngine, SyncSettings
from app.telephony.model import (
    CallAnswered,
    CallEnded,
    CallRinging,
    DialRequest,
    EndCause,
    TelephonyError,
)
from app.telephony.server import ServerCallDialer
from server.settings import Settings
from tests.app.telephony.recorder import Recorder
from tests.server.conftest import PASSWORD
from tests.server.fakes import NOW, MessagingEnv, messaging_env
from tests.server.fakes.twilio_calls_fake import FakeTwilioCalls
from tests.server.test_calls import give_agent_a_phone, twilio_world, wait_until

NUMBER = "+13125550123"


async def feed(api: LeadApi, dialer: ServerCallDialer) -> None:
    """What the sync layer does: pull changes, hand each "call" change to the dialer."""
    cursor = 0
    while True:
        page = await api.changes(cursor)
        for change in page.changes:
            if change.entity == "call":
                dialer.on_call_change(change.data)
        cursor = page.next_cursor
        if not page.has_more:
            await asyncio.sleep(0.03)


@contextlib.asynccontextmanager
async def workstation(base_url: str):  # type: ignore[no-untyped-def]
    api = LeadApi(base_url)
    await api.sign_in("ana", PASSWORD)
    dialer = ServerCallDialer(api)
    pulling = asyncio.create_task(feed(api, dialer))
    try:
        yield api, dialer
    finally:
        pulling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pulling
        await dialer.close()
        await api.aclose()


@contextlib.asynccontextmanager
async def synced_workstation(base_url: str):  # type: ignore[no-untyped-def]
    """The real thing: the sync engine pulls the feed and hands "call" changes to the dialer."""
    api = LeadApi(base_url)
    await api.sign_in("ana", PASSWORD)
    dialer = ServerCallDialer(api)
    store = session_only_store()
    engine = SyncEngine(api, store, settings=SyncSettings(poll_interval=0.1))
    engine.on_entity("call", dialer.on_call_change)
    engine.start()
    try:
        yield api, dialer
    finally:
        await engine.stop()
        await dialer.close()
        await api.aclose()
        store.close()


def base_of(env: MessagingEnv) -> str:
    return str(env.app.state.settings.public_base_url)


def test_dial_answer_hang_up_through_the_lead_api_and_twilio(
    db_url: str, settings: Settings
) -> None:
    with FakeTwilioCalls(talk_s=30) as fake, twilio_world(db_url, settings, fake) as env:
        lead_id = env.add_lead()

        async def scenario() -> CallEnded:
            async with workstation(base_of(env)) as (api, dialer):
                record = Recorder(dialer)
                handle = await dialer.dial(DialRequest(NUMBER, lead_id=lead_id))
                assert dialer.active_call is not None
                await record.wait_for(CallAnswered)
                env.set_now(NOW + timedelta(seconds=7))
                await dialer.hang_up()
                ended = await record.wait_for(CallEnded)
                assert ended.call_id == handle.call_id
                assert record.kinds == ["CallDialing", "CallRinging", "CallAnswered", "CallEnded"]
                assert dialer.active_call is None
                # The same call id again is the same request: replayed, never dialed twice.
                again = await api.start_call(handle.call_id, lead_id, NUMBER)
                assert again["id"] == handle.call_id
                return ended

        ended = asyncio.run(scenario())
        assert ended.cause is EndCause.AGENT_HANGUP
        assert ended.duration_s == 7
        assert len(fake.created) == 1
        assert fake.hung_up and len(fake.hung_up) == 1


def test_the_sync_engine_feeds_call_state_to_the_dialer(db_url: str, settings: Settings) -> None:
    with FakeTwilioCalls(talk_s=30) as fake, twilio_world(db_url, settings, fake) as env:
        lead_id = env.add_lead()

        async def scenario() -> list[str]:
            async with synced_workstation(base_of(env)) as (_api, dialer):
                record = Recorder(dialer)
                await dialer.dial(DialRequest(NUMBER, lead_id=lead_id))
                await record.wait_for(CallAnswered)
                await dialer.hang_up()
                await record.wait_for(CallEnded)
                return record.kinds

        assert asyncio.run(scenario()) == [
            "CallDialing",
            "CallRinging",
            "CallAnswered",
            "CallEnded",
        ]


def test_a_refused_dial_names_the_reason(db_url: str, settings: Settings) -> None:
    with FakeTwilioCalls() as fake, twilio_world(db_url, settings, fake) as env:
        lead_id = env.add_lead(do_not_call=True)

        async def scenario() -> None:
            async with workstation(base_of(env)) as (_api, dialer):
                with pytest.raises(TelephonyError, match=r"(?i)do.not.call"):
                    await dialer.dial(DialRequest(NUMBER, lead_id=lead_id))
                assert dialer.active_call is None

        asyncio.run(scenario())
        assert fake.created == []


@contextmanager
def live(env: MessagingEnv) -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(env.app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_until(lambda: server.started)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def test_demo_provider_calls_show_live_state_on_the_workstation(
    db_url: str, settings: Settings
) -> None:
    with messaging_env(
        db_url,
        settings,
        call_provider="demo",
        demo_call_speed=3000,
        heartbeat_timeout=timedelta(hours=1),
    ) as env:
        give_agent_a_phone(env)
        leads = [env.add_lead(phone=f"+1312555{n:04d}") for n in range(160, 166)]
        with live(env) as base:

            async def scenario() -> list[CallEnded]:
                ends = []
                async with workstation(base) as (_api, dialer):
                    for lead_id in leads:
                        record = Recorder(dialer)
                        number = env.lead(lead_id).phones[0].e164
                        assert number is not None
                        await dialer.dial(DialRequest(number, lead_id=lead_id))
                        ended = await record.wait_for(CallEnded)
                        record.unsubscribe()
                        if ended.answered:
                            assert any(isinstance(e, CallAnswered) for e in record.events)
                        assert any(isinstance(e, CallRinging) for e in record.events)
                        ends.append(ended)
                return ends

            ends = asyncio.run(scenario())
        scripts = env.app.state.call_provider.scripts
        assert [e.cause.value for e in ends] == [s.outcome for s in scripts]
        assert len({e.call_id for e in ends}) == len(leads)
        assert str(uuid.UUID(ends[0].call_id)) == ends[0].call_id
