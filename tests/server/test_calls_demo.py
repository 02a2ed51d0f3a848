"""call_provider = "demo": the simulated bridge `make demo` uses — the workstation demo
softphone's odds, every call through the real call service (changes, presence, CALL activity)."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

from app.domain.activities import ActivityKind
from app.telephony.demo import OUTCOME_ODDS as WORKSTATION_ODDS
from server.calls import (
    AGENT_HANGUP,
    ANSWERED,
    CANCELLED,
    CUSTOMER_HANGUP,
    ENDED,
    RINGING,
    VOICEMAIL,
    OutboundCall,
    ProviderEvent,
)
from server.calls.demo import OUTCOME_ODDS, DemoCallProvider, draw_script
from server.settings import Settings
from tests.server.fakes import messaging_env
from tests.server.test_calls import ended, give_agent_a_phone, start_call, wait_until

T0 = datetime(2025, 6, 3, 15, 0, tzinfo=UTC)


def test_the_odds_are_the_workstation_demo_softphones() -> None:
    assert [(cause, odds) for cause, odds in OUTCOME_ODDS] == [
        (cause.value, odds) for cause, odds in WORKSTATION_ODDS
    ]
    assert abs(sum(odds for _cause, odds in OUTCOME_ODDS) - 1.0) < 1e-9


def test_drawn_scripts_follow_the_odds_and_realistic_timings() -> None:
    rng = random.Random(1)
    scripts = [draw_script(rng) for _ in range(4000)]
    counts = Counter(s.outcome for s in scripts)
    for cause, odds in OUTCOME_ODDS:
        assert abs(counts[cause] / len(scripts) - odds) < 0.03, (cause, counts[cause])
    for script in scripts:
        assert 1.0 <= script.agent_answer_s <= 3.0
        assert script.agent_answer_s < script.ring_after_s < script.end_after_s
        if script.outcome == CUSTOMER_HANGUP:
            assert script.answer_after_s is not None and script.answered_by == "human"
            assert 40 <= script.end_after_s - script.answer_after_s <= 480
        elif script.outcome == VOICEMAIL:
            assert script.answered_by.startswith("machine_")
        else:
            assert script.answer_after_s is None


def _seed_for(outcome: str) -> int:
    return next(s for s in range(1000) if draw_script(random.Random(s)).outcome == outcome)


def _call() -> OutboundCall:
    return OutboundCall(str(uuid.uuid4()), "+13125550142", "+13125550123", "+13125550100")


def test_a_conversation_plays_out_and_the_agent_can_hang_up() -> None:
    events: list[ProviderEvent] = []
    seed = _seed_for(CUSTOMER_HANGUP)
    provider = DemoCallProvider(events.append, seed=seed, speed=25, clock=lambda: T0)
    try:
        call = _call()
        provider_id = provider.start(call)
        wait_until(lambda: any(e.state == ANSWERED for e in events))
        provider.hang_up(provider_id)
        wait_until(lambda: any(e.state == ENDED for e in events))
    finally:
        provider.close()
    assert [e.state for e in events] == [RINGING, ANSWERED, ENDED]
    assert {e.call_id for e in events} == {call.id}
    assert events[1].answered_by == "human"
    assert events[-1].cause == AGENT_HANGUP
    script = provider.scripts[0]
    # Times are simulated from the dial: the answer came when the script said.
    assert events[1].at == T0 + (events[1].at - T0)
    assert round((events[1].at - T0).total_seconds(), 3) == round(script.answer_after_s or 0, 3)
    assert events[-1].at >= events[1].at


def test_hanging_up_while_it_rings_cancels() -> None:
    events: list[ProviderEvent] = []
    provider = DemoCallProvider(
        events.append, seed=_seed_for(CUSTOMER_HANGUP), speed=5, clock=lambda: T0
    )
    try:
        provider.hang_up(provider.start(_call()))
        wait_until(lambda: any(e.state == ENDED for e in events))
    finally:
        provider.close()
    assert [(e.state, e.cause) for e in events] == [(ENDED, CANCELLED)]


def test_server_side_demo_calls_end_to_end(db_url: str, settings: Settings) -> None:
    with messaging_env(
        db_url,
        settings,
        call_provider="demo",
        demo_call_speed=2000,
        heartbeat_timeout=timedelta(hours=1),  # the test clock stands still; call time does not
    ) as env:
        give_agent_a_phone(env)
        lead_ids = [env.add_lead(phone=f"+1312555{n:04d}") for n in range(150, 158)]
        finals = []
        for lead_id in lead_ids:
            answer = start_call(env, lead_id)
            assert answer.status_code == 201, answer.text
            assert answer.json()["provider"] == "demo"
            finals.append(ended(env, answer.json()["id"]))
        provider = env.app.state.call_provider
        assert [f["cause"] for f in finals] == [s.outcome for s in provider.scripts]
        for final, lead_id in zip(finals, lead_ids, strict=True):
            calls = [a for a in env.activities(lead_id) if a.kind is ActivityKind.CALL]
            assert len(calls) == 1 and calls[0].id == final["id"]
            states = [c.data["state"] for c in env.changes("call") if c.data["id"] == final["id"]]
            assert states[0] == "dialing" and states[-1] == "ended"
            if final["cause"] in (CUSTOMER_HANGUP, VOICEMAIL):
                assert final["answered_at"] is not None and final["duration_s"] >= 25
            else:
                assert final["duration_s"] == 0
        assert [c.data["state"] for c in env.changes("presence")][-1] == "wrap_up"


def test_the_demo_provider_stops_with_the_server(db_url: str, settings: Settings) -> None:
    with messaging_env(db_url, settings, call_provider="demo", demo_call_speed=1) as env:
        give_agent_a_phone(env)
        call = start_call(env, env.add_lead()).json()
        provider = env.app.state.call_provider
        thread_names = {t.name for t in threading.enumerate()}
        assert f"demo-call-{call['id']}" in thread_names
    deadline = time.monotonic() + 5
    while f"demo-call-{call['id']}" in {t.name for t in threading.enumerate()}:
        assert time.monotonic() < deadline, "the demo call's thread outlived the server"
        time.sleep(0.02)
    assert provider.scripts
