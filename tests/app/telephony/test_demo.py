from __future__ import annotations

import asyncio
import random
from collections import Counter

from app.telephony.demo import OUTCOME_ODDS, DemoDialer, draw_script
from app.telephony.model import CallAnswered, CallEnded, CallRinging, DialRequest, EndCause
from tests.app.telephony.recorder import Recorder


def test_odds_add_up_and_the_draws_follow_them() -> None:
    assert abs(sum(p for _, p in OUTCOME_ODDS) - 1.0) < 1e-9
    rng = random.Random(1)
    scripts = [draw_script(rng) for _ in range(5000)]
    counts = Counter(s.outcome for s in scripts)
    for cause, odds in OUTCOME_ODDS:
        assert abs(counts[cause] / 5000 - odds) < 0.025, (cause, counts[cause])
    for script in scripts:
        assert 0 < script.ring_after_s < script.end_after_s
        if script.answer_after_s is not None:
            assert script.ring_after_s < script.answer_after_s < script.end_after_s
    talks = [s.end_after_s - s.answer_after_s for s in scripts if s.outcome.answered]
    assert talks
    assert all(a is not None for a in talks)
    assert min(talks) >= 40 and max(talks) <= 480


def test_same_seed_same_calls() -> None:
    first = [draw_script(random.Random(42)) for _ in range(3)]
    again = [draw_script(random.Random(42)) for _ in range(3)]
    assert first == again


def test_demo_calls_play_out_live_in_order_with_durations() -> None:
    async def scenario() -> list[list[object]]:
        dialer = DemoDialer(seed=3, speed=2000)
        calls = []
        for _ in range(12):
            record = Recorder(dialer)
            await dialer.dial(DialRequest("+13125550123"))
            await record.wait_for(CallEnded, 5)
            record.unsubscribe()
            calls.append(list(record.events))
        await dialer.close()
        return calls

    calls = asyncio.run(scenario())
    outcomes = set()
    for events in calls:
        kinds = [type(e) for e in events]
        assert kinds[1] is CallRinging
        ended = events[-1]
        assert isinstance(ended, CallEnded)
        outcomes.add(ended.cause)
        assert (CallAnswered in kinds) == (
            ended.cause in (EndCause.CUSTOMER_HANGUP, EndCause.VOICEMAIL)
        )
        if ended.cause is EndCause.CUSTOMER_HANGUP:
            assert ended.duration_s >= 40
        else:
            assert ended.cause is EndCause.VOICEMAIL or ended.duration_s == 0
    assert len(outcomes) >= 3, outcomes


def test_agent_hang_up_on_an_answered_demo_call() -> None:
    async def scenario() -> CallEnded:
        # Find a seed whose first call is answered, then hang up during the conversation.
        seed = next(
            s
            for s in range(100)
            if draw_script(random.Random(s)).outcome is EndCause.CUSTOMER_HANGUP
        )
        dialer = DemoDialer(seed=seed, speed=50)
        record = Recorder(dialer)
        await dialer.dial(DialRequest("+13125550123"))
        await record.wait_for(CallAnswered, 5)
        await dialer.hang_up()
        return await record.wait_for(CallEnded, 1)

    ended = asyncio.run(scenario())
    assert ended.cause is EndCause.AGENT_HANGUP
    assert ended.answered
