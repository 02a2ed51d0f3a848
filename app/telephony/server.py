"""Server-side call control as a dialer (setting dialer = "server"): the lead API rings the agent's
phone and bridges the customer (POST /v1/calls), and the call's progress comes back on the change
feed as "call" changes, which the sync layer hands to `on_call_change`.

The dialer speaks to the lead API through a small injected client (`CallControl`; app.sync's
LeadApi is one) so this package depends on the domain only. The server writes the call's CALL
activity itself when the call ends (`records_calls`): the services must not log a second one
from this dialer's events (the same id with other content would be refused as a conflict).

One call at a time. Events are emitted in order — CallDialing, [CallRinging], [CallAnswered],
CallEnded — whatever order the changes arrive in: a change that skips a state fills it in from
the call's times, repeats and stale changes are ignored, and a change arriving before the POST's
answer is held until CallDialing has gone out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from app.telephony.model import (
    CallAnswered,
    CallDialing,
    CallEnded,
    CallHandle,
    CallInProgress,
    CallRinging,
    Clock,
    DialerUnavailable,
    DialRequest,
    EndCause,
    EventHub,
    Listener,
    TelephonyError,
    utc_now,
)

_ORDER = {"dialing": 0, "ringing": 1, "answered": 2, "ended": 3}
# The server's causes (server/calls) that the workstation's EndCause spells the same way, plus
# the server-only ones.
_CAUSES = {cause.value: cause for cause in EndCause}


class CallControl(Protocol):
    """What ServerCallDialer needs from the lead API client (app.sync.api.LeadApi has both).

    Failures raise an exception; one with a `status` attribute of 404, 409 or 422 means the
    server refused this call (compliance, no phone, not your lead) and the dialer reports it as
    a TelephonyError with the server's message; anything else (offline, 5xx, 502 from the
    provider) is a DialerUnavailable."""

    async def start_call(
        self, call_id: str, lead_id: str, phone: str | None = None
    ) -> Mapping[str, Any]: ...

    async def hang_up_call(self, call_id: str) -> Mapping[str, Any]: ...


@dataclass
class _Call:
    handle: CallHandle
    state: int = -1  # -1: the POST has not answered yet
    held: list[Mapping[str, Any]] = field(default_factory=list)
    answered_at: datetime | None = None


def _time(payload: Mapping[str, Any], key: str) -> datetime | None:
    value = payload.get(key)
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def end_cause(server_cause: str | None) -> EndCause:
    """The EndCause for a server call's cause ("completed", "lost", "agent_unreachable" and the
    workstation's own words); an unknown word is a failure."""
    return _CAUSES.get(server_cause or "", EndCause.FAILED)


class ServerCallDialer:
    name = "server"
    reports_state = True
    records_calls = True  # the lead API writes the CALL activity when the call ends

    def __init__(self, control: CallControl, *, clock: Clock = utc_now) -> None:
        self._control = control
        self._clock = clock
        self._hub = EventHub()
        self._calls: dict[str, _Call] = {}
        self._active: CallHandle | None = None

    @property
    def active_call(self) -> CallHandle | None:
        return self._active

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        return self._hub.subscribe(listener)

    async def dial(self, request: DialRequest) -> CallHandle:
        if self._active is not None:
            raise CallInProgress("a call is already in progress: hang up first")
        if not request.lead_id:
            raise TelephonyError("calls through the lead API are placed for a lead")
        handle = CallHandle(request.call_id, request, self._clock(), self.name)
        call = _Call(handle)
        self._calls[request.call_id] = call
        self._active = handle
        try:
            answer = await self._control.start_call(
                request.call_id, request.lead_id, request.number
            )
        except Exception as exc:
            self._calls.pop(request.call_id, None)
            self._active = None
            raise _error(exc, "the call could not be placed") from exc
        started = _time(answer, "created_at") or handle.started_at
        handle = CallHandle(request.call_id, request, started, self.name)
        call.handle = handle
        if self._active is not None and self._active.call_id == handle.call_id:
            self._active = handle
        call.state = 0
        self._hub.emit(
            CallDialing(handle.call_id, started, request.number, request.lead_id, self.name)
        )
        for payload in [answer, *call.held]:
            self._apply(call, payload)
        call.held.clear()
        return handle

    async def hang_up(self, call_id: str | None = None) -> None:
        handle = self._active
        target = call_id or (handle.call_id if handle is not None else None)
        if target is None or target not in self._calls:
            return
        try:
            answer = await self._control.hang_up_call(target)
        except Exception as exc:
            if getattr(exc, "status", None) == 404:
                return
            raise _error(exc, "the hang-up did not reach the lead API") from exc
        self.on_call_change(answer)  # an already ended call ends here too

    def on_call_change(self, payload: Mapping[str, Any]) -> None:
        """A "call" change from the change feed (its data: the call as GET /v1/calls/{id} shows
        it). Changes of calls this dialer did not place are ignored."""
        call = self._calls.get(str(payload.get("id", "")))
        if call is None:
            return
        if call.state < 0:
            call.held.append(payload)
            return
        self._apply(call, payload)

    def _apply(self, call: _Call, payload: Mapping[str, Any]) -> None:
        target = _ORDER.get(str(payload.get("state", "")), -1)
        call_id = call.handle.call_id
        while call.state < target:
            call.state += 1
            # A skipped state is filled in only when the call's times say it happened.
            if call.state == 1:
                at = _time(payload, "ringing_at") or _time(payload, "answered_at")
                if at is None and target == 1:
                    at = self._clock()
                if at is not None:
                    self._hub.emit(CallRinging(call_id, at))
            elif call.state == 2:
                at = _time(payload, "answered_at")
                if at is None and target == 2:
                    at = self._clock()
                if at is not None:
                    call.answered_at = at
                    self._hub.emit(CallAnswered(call_id, at))
            elif call.state == 3:
                self._end(call, payload)

    def _end(self, call: _Call, payload: Mapping[str, Any]) -> None:
        handle = call.handle
        cause = end_cause(payload.get("cause"))
        answered_at = _time(payload, "answered_at") or call.answered_at
        at = _time(payload, "ended_at") or self._clock()
        detail = str(payload.get("detail") or "")
        recording = payload.get("recording")
        self._calls.pop(handle.call_id, None)
        if self._active is not None and self._active.call_id == handle.call_id:
            self._active = None
        self._hub.emit(
            CallEnded(
                handle.call_id,
                max(at, handle.started_at),
                cause,
                detail,
                started_at=handle.started_at,
                answered_at=answered_at,
                recording=recording if isinstance(recording, str) else None,
            )
        )

    async def close(self) -> None:
        """Stops listening. A bridged call goes on on the agent's phone; the lead API records
        its end (and ends it itself if its provider goes quiet)."""
        self._calls.clear()
        self._active = None


def _error(exc: Exception, what: str) -> TelephonyError:
    status = getattr(exc, "status", None)
    if status in (404, 409, 422):
        return TelephonyError(str(exc) or what)
    return DialerUnavailable(f"{what}: {exc}")
