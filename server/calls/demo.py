"""A simulated bridge for `make demo` (call_provider = "demo"): no telephone network, but the
call changes, presence and CALL activities a real provider produces, with realistic odds and
timings. Deterministic for a given seed (the order of the dials decides each call's script).

The odds and timings are those of the workstation's demo softphone (app/telephony/demo.py; the
server may not import app.telephony, and a test keeps the two in step): answered 30%, voicemail
22%, no answer 36%, busy 8%, number not in service 4%. The agent's own phone picks up after
1-3 s; the customer's phone rings 3-20 s before an answer, a voicemail greeting picks up after
18-28 s (answered by a machine), an unanswered call rings 30 s, a conversation lasts 40 s to 8 min
(the customer hangs up) unless the agent hangs up first. `speed` > 1 compresses time; the
events' times are simulated from the dial time, so durations stay realistic at any speed.
"""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from server.calls import (
    AGENT_HANGUP,
    ANSWERED,
    BUSY,
    CANCELLED,
    CUSTOMER_HANGUP,
    ENDED,
    INVALID_NUMBER,
    NO_ANSWER,
    RINGING,
    VOICEMAIL,
    EventSink,
    OutboundCall,
    ProviderEvent,
)

OUTCOME_ODDS: tuple[tuple[str, float], ...] = (
    (CUSTOMER_HANGUP, 0.30),  # answered; the customer ends the conversation
    (VOICEMAIL, 0.22),
    (NO_ANSWER, 0.36),
    (BUSY, 0.08),
    (INVALID_NUMBER, 0.04),
)


@dataclass(frozen=True, slots=True)
class DemoScript:
    """What one simulated call does, in seconds from the dial."""

    outcome: str
    agent_answer_s: float
    ring_after_s: float
    answer_after_s: float | None
    end_after_s: float
    detail: str
    answered_by: str = ""


def draw_script(rng: random.Random) -> DemoScript:
    roll = rng.random()
    outcome = OUTCOME_ODDS[-1][0]
    for cause, odds in OUTCOME_ODDS:
        if roll < odds:
            outcome = cause
            break
        roll -= odds
    agent = rng.uniform(1.0, 3.0)
    ring = agent + rng.uniform(0.8, 2.5)
    if outcome == CUSTOMER_HANGUP:
        answer = ring + rng.uniform(3, 20)
        talk = min(480.0, max(40.0, rng.lognormvariate(4.9, 0.7)))  # median ~2 min 15 s
        return DemoScript(
            outcome, agent, ring, answer, answer + talk, "the customer hung up", "human"
        )
    if outcome == VOICEMAIL:
        answer = ring + rng.uniform(18, 28)
        end = answer + rng.uniform(25, 40)
        return DemoScript(
            outcome, agent, ring, answer, end, "voicemail greeting", "machine_end_beep"
        )
    if outcome == NO_ANSWER:
        return DemoScript(outcome, agent, ring, None, ring + 30.0, "480 Temporarily Unavailable")
    if outcome == BUSY:
        return DemoScript(outcome, agent, ring, None, ring + rng.uniform(1, 3), "486 Busy Here")
    return DemoScript(
        outcome, agent, ring, None, ring + 1.5, "404 Not Found: number not in service"
    )


@dataclass
class _Call:
    call: OutboundCall
    script: DemoScript
    started: datetime
    hang_up: threading.Event
    thread: threading.Thread | None = None


class DemoCallProvider:
    name = "demo"

    def __init__(
        self,
        sink: EventSink,
        *,
        seed: int = 7,
        speed: float = 1.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if speed <= 0:
            raise ValueError("demo_call_speed must be above 0")
        self.sink = sink
        self.speed = speed
        self._clock = clock
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._calls: dict[str, _Call] = {}
        self._closed = threading.Event()
        self.scripts: list[DemoScript] = []  # every call's script, for tests and the demo log

    def start(self, call: OutboundCall) -> str:
        with self._lock:
            script = draw_script(self._rng)
            self.scripts.append(script)
            provider_id = f"demo-{next(self._ids)}"
            entry = _Call(call, script, self._clock(), threading.Event())
            self._calls[provider_id] = entry
        entry.thread = threading.Thread(
            target=self._play, args=(provider_id, entry), name=f"demo-call-{call.id}", daemon=True
        )
        entry.thread.start()
        return provider_id

    def hang_up(self, provider_call_id: str) -> None:
        with self._lock:
            entry = self._calls.get(provider_call_id)
        if entry is not None:
            entry.hang_up.set()

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            entries = list(self._calls.values())
        for entry in entries:
            entry.hang_up.set()
        for entry in entries:
            if entry.thread is not None and entry.thread is not threading.current_thread():
                entry.thread.join(5)

    # -- the simulation ----------------------------------------------------------------------------

    def _emit(
        self,
        entry: _Call,
        provider_id: str,
        state: str,
        after_s: float,
        *,
        cause: str = "",
        detail: str = "",
        answered_by: str = "",
    ) -> None:
        at = entry.started + timedelta(seconds=after_s)
        event = ProviderEvent(
            entry.call.id, provider_id, state, at, cause, detail, answered_by=answered_by
        )
        try:
            self.sink(event)
        except Exception:  # a failing sink must not kill the simulation of other calls
            import logging

            logging.getLogger("bdc.calls").exception("demo call event %s failed", event)

    def _play(self, provider_id: str, entry: _Call) -> None:
        script = entry.script
        waited = 0.0

        def wait_until(seconds: float) -> bool:
            """Sleep to `seconds` of call time; True when the agent hung up meanwhile."""
            nonlocal waited
            hung = entry.hang_up.wait(max(0.0, seconds - waited) / self.speed)
            if not hung:
                waited = seconds
            return hung

        answered = False
        try:
            if wait_until(script.agent_answer_s):
                return self._ended_by_agent(entry, provider_id, answered, waited)
            if wait_until(script.ring_after_s):
                return self._ended_by_agent(entry, provider_id, answered, waited)
            self._emit(entry, provider_id, RINGING, script.ring_after_s)
            if script.answer_after_s is not None:
                if wait_until(script.answer_after_s):
                    return self._ended_by_agent(entry, provider_id, answered, waited)
                answered = True
                self._emit(
                    entry,
                    provider_id,
                    ANSWERED,
                    script.answer_after_s,
                    answered_by=script.answered_by,
                )
            if wait_until(script.end_after_s):
                return self._ended_by_agent(entry, provider_id, answered, waited)
            self._emit(
                entry,
                provider_id,
                ENDED,
                script.end_after_s,
                cause=script.outcome,
                detail=script.detail,
            )
        finally:
            with self._lock:
                self._calls.pop(provider_id, None)

    def _ended_by_agent(
        self, entry: _Call, provider_id: str, answered: bool, waited: float
    ) -> None:
        if self._closed.is_set():
            return  # the server is stopping: the watch job ends what is left
        # Call time: what was simulated so far, or the clock's time since the dial scaled by
        # the speed, whichever is later (a test's clock may stand still).
        real = (self._clock() - entry.started).total_seconds() * self.speed
        elapsed = max(waited, real)
        cause = AGENT_HANGUP if answered else CANCELLED
        detail = "you hung up" if answered else "hung up before an answer"
        self._emit(entry, provider_id, ENDED, max(0.0, elapsed), cause=cause, detail=detail)
