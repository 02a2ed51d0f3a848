"""The demo softphone for `make demo`: simulated calls with realistic odds and timings, so the
window shows live ringing, talk timers and outcomes. Deterministic for a given seed.

Odds per dial (outbound BDC calls to fresh internet leads): answered 30%, voicemail 22%, no answer
36%, busy 8%, number not in service 4%. Rings 3–20 s before an answer; voicemail picks up after
18–28 s; an unanswered call rings 30 s; a conversation lasts 40 s to 8 min (customer hangs up)
unless the agent hangs up first. `speed` > 1 compresses time (tests use 1000).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.telephony.model import (
    CallAnswered,
    CallDialing,
    CallEnded,
    CallHandle,
    CallInProgress,
    CallRinging,
    Clock,
    DialRequest,
    EndCause,
    EventHub,
    Listener,
    utc_now,
)

OUTCOME_ODDS: tuple[tuple[EndCause, float], ...] = (
    (EndCause.CUSTOMER_HANGUP, 0.30),  # answered; the customer ends the conversation
    (EndCause.VOICEMAIL, 0.22),
    (EndCause.NO_ANSWER, 0.36),
    (EndCause.BUSY, 0.08),
    (EndCause.INVALID_NUMBER, 0.04),
)


@dataclass(frozen=True, slots=True)
class Script:
    """What one simulated call will do, in seconds from the dial."""

    outcome: EndCause
    ring_after_s: float
    answer_after_s: float | None  # a person or a voicemail greeting picks up
    end_after_s: float
    detail: str


def draw_script(rng: random.Random) -> Script:
    roll = rng.random()
    outcome = OUTCOME_ODDS[-1][0]
    for cause, odds in OUTCOME_ODDS:
        if roll < odds:
            outcome = cause
            break
        roll -= odds
    ring = rng.uniform(0.8, 2.5)
    if outcome is EndCause.CUSTOMER_HANGUP:
        answer = ring + rng.uniform(3, 20)
        talk = min(480.0, max(40.0, rng.lognormvariate(4.9, 0.7)))  # median ~2 min 15 s
        return Script(outcome, ring, answer, answer + talk, "the customer hung up")
    if outcome is EndCause.VOICEMAIL:
        answer = ring + rng.uniform(18, 28)
        return Script(outcome, ring, answer, answer + rng.uniform(25, 40), "voicemail greeting")
    if outcome is EndCause.NO_ANSWER:
        return Script(outcome, ring, None, ring + 30.0, "480 Temporarily Unavailable")
    if outcome is EndCause.BUSY:
        return Script(outcome, ring, None, ring + rng.uniform(1, 3), "486 Busy Here")
    return Script(outcome, ring, None, ring + 1.5, "404 Not Found: number not in service")


class DemoDialer:
    name = "demo"
    reports_state = True
    records_calls = False  # the services log the call from its events

    def __init__(self, seed: int = 7, *, speed: float = 1.0, clock: Clock = utc_now) -> None:
        self._rng = random.Random(seed)
        self.speed = speed
        self._clock = clock
        self._hub = EventHub()
        self._active: CallHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._answered_at: datetime | None = None
        self.scripts: list[Script] = []  # every call's script, for tests and the demo's log

    @property
    def active_call(self) -> CallHandle | None:
        return self._active

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        return self._hub.subscribe(listener)

    def on_call_change(self, payload: Mapping[str, Any]) -> None:
        """Server-side calls only: this backend's calls do not come through the sync feed."""

    def _at(self, started: datetime, seconds: float) -> datetime:
        """Simulated time: the dial time plus `seconds` of call time."""
        return started + timedelta(seconds=seconds)

    async def dial(self, request: DialRequest) -> CallHandle:
        if self._active is not None:
            raise CallInProgress("a call is already in progress: hang up first")
        started = self._clock()
        handle = CallHandle(request.call_id, request, started, self.name)
        script = draw_script(self._rng)
        self.scripts.append(script)
        self._active = handle
        self._answered_at = None
        self._hub.emit(
            CallDialing(request.call_id, started, request.number, request.lead_id, self.name)
        )
        self._task = asyncio.get_running_loop().create_task(self._play(handle, script))
        return handle

    async def _sleep_until(self, seconds: float, elapsed: float) -> None:
        await asyncio.sleep(max(0.0, seconds - elapsed) / self.speed)

    async def _play(self, handle: CallHandle, script: Script) -> None:
        started = handle.started_at
        call_id = handle.call_id
        await self._sleep_until(script.ring_after_s, 0)
        self._hub.emit(CallRinging(call_id, self._at(started, script.ring_after_s)))
        elapsed = script.ring_after_s
        if script.answer_after_s is not None:
            await self._sleep_until(script.answer_after_s, elapsed)
            self._answered_at = self._at(started, script.answer_after_s)
            self._hub.emit(CallAnswered(call_id, self._answered_at))
            elapsed = script.answer_after_s
        await self._sleep_until(script.end_after_s, elapsed)
        self._finish(handle, script.outcome, script.detail, script.end_after_s)

    def _finish(self, handle: CallHandle, cause: EndCause, detail: str, after_s: float) -> None:
        if self._active is not handle:
            return
        self._active = None
        self._hub.emit(
            CallEnded(
                handle.call_id,
                self._at(handle.started_at, after_s),
                cause,
                detail,
                started_at=handle.started_at,
                answered_at=self._answered_at,
            )
        )

    async def hang_up(self, call_id: str | None = None) -> None:
        handle = self._active
        if handle is None or call_id not in (None, handle.call_id):
            return
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        elapsed = (self._clock() - handle.started_at).total_seconds() * self.speed
        answered = self._answered_at is not None
        script = self.scripts[-1]
        if answered and script.outcome is EndCause.VOICEMAIL:
            cause, detail = EndCause.VOICEMAIL, "left a voicemail"
        elif answered:
            cause, detail = EndCause.AGENT_HANGUP, "you hung up"
        else:
            cause, detail = EndCause.CANCELLED, "hung up before an answer"
        self._finish(handle, cause, detail, elapsed)

    async def close(self) -> None:
        await self.hang_up()
