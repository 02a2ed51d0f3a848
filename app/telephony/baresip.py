"""The baresip softphone, driven over its `ctrl_tcp` module: real call state from a real SIP UA.

Wire format (baresip 1.0 ctrl_tcp): netstrings (`<length>:<bytes>,`) carrying JSON.
- Commands: {"command": "dial", "params": "sip:...", "token": "t1"} → a response
  {"response": true, "ok": true|false, "data": "...", "token": "t1"}.
- Events: {"event": true, "type": "CALL_RINGING", "class": "call", "id": "<call id>",
  "direction": "outgoing", "peeruri": "sip:...", "param": "..."}; CALL_CLOSED's param says why
  ("486 Rejected", "Connection refused", "Connection reset by peer").
Baresip's dial answer carries no call id: the first outgoing call event after our dial is ours
(one call at a time per agent). Events may arrive before the dial's response.

The connection is kept open by a background task that reconnects (with back-off) whenever the
softphone restarts; a call open when the link drops ends with SOFTPHONE_LOST. The softphone's
baresip config needs `module_app menu.so` (the commands) and `module_app ctrl_tcp.so` with
`ctrl_tcp_listen HOST:PORT` — see docs/telephony.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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
    log,
    utc_now,
)

MAX_NETSTRING = 1_000_000
StatusListener = Callable[[bool, str], None]


def netstring(payload: dict[str, Any]) -> bytes:
    data = json.dumps(payload, separators=(",", ":")).encode()
    return str(len(data)).encode() + b":" + data + b","


async def read_netstring(reader: asyncio.StreamReader) -> dict[str, Any]:
    """One netstring-framed JSON object; raises ConnectionError on a broken frame or EOF."""
    try:
        head = await reader.readuntil(b":")
    except asyncio.IncompleteReadError as exc:
        raise ConnectionError("softphone closed the connection") from exc
    except asyncio.LimitOverrunError as exc:
        raise ConnectionError("softphone sent a bad frame header") from exc
    digits = head[:-1].strip()
    if not digits.isdigit() or int(digits) > MAX_NETSTRING:
        raise ConnectionError(f"softphone sent a bad frame length {digits[:20]!r}")
    try:
        body = await reader.readexactly(int(digits) + 1)
    except asyncio.IncompleteReadError as exc:
        raise ConnectionError("softphone closed the connection mid-frame") from exc
    if body[-1:] != b",":
        raise ConnectionError("softphone sent a frame without its closing comma")
    try:
        message = json.loads(body[:-1])
    except ValueError as exc:
        raise ConnectionError("softphone sent a frame that is not JSON") from exc
    if not isinstance(message, dict):
        raise ConnectionError("softphone sent a JSON frame that is not an object")
    return message


_SIP_CODE = re.compile(r"^\s*(\d{3})\b")
_UNREACHABLE = ("refused", "unreachable", "timed out", "timeout", "no route", "not connected")


def end_cause(reason: str, *, answered: bool, hangup_requested: bool) -> EndCause:
    """What baresip's CALL_CLOSED reason means for the agent."""
    match = _SIP_CODE.match(reason)
    if match:
        code = int(match.group(1))
        if code in (486, 600):
            return EndCause.BUSY
        if code == 603:
            return EndCause.DECLINED
        if code in (404, 410, 484, 485, 604):
            return EndCause.INVALID_NUMBER
        if code in (408, 480):
            return EndCause.NO_ANSWER
        if code == 487:
            return EndCause.CANCELLED if hangup_requested else EndCause.NO_ANSWER
        if code == 503 and not answered:
            return EndCause.UNREACHABLE
        if code >= 300:
            return EndCause.FAILED
    if answered:
        if hangup_requested or "by user" in reason.lower():
            return EndCause.AGENT_HANGUP
        return EndCause.CUSTOMER_HANGUP
    if hangup_requested:
        return EndCause.CANCELLED
    lowered = reason.lower()
    if any(word in lowered for word in _UNREACHABLE):
        return EndCause.UNREACHABLE
    return EndCause.FAILED


def _sip_user(uri: str) -> str:
    """The user part of a SIP/tel URI, for matching baresip's peer URI to what we dialed."""
    text = uri.strip().strip("<>")
    for scheme in ("sips:", "sip:", "tel:"):
        if text.lower().startswith(scheme):
            text = text[len(scheme) :]
            break
    return text.split("@", 1)[0].split(";", 1)[0]


@dataclass
class _Call:
    handle: CallHandle
    uri: str
    baresip_id: str | None = None
    ringing_at: datetime | None = None
    answered_at: datetime | None = None
    hangup_requested: bool = False
    setup_timer: asyncio.TimerHandle | None = None


class BaresipDialer:
    name = "baresip"
    reports_state = True
    records_calls = False  # the services log the call from its events

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 4444,
        *,
        uri_template: str = "{number}",
        setup_timeout_s: float = 45.0,
        command_timeout_s: float = 5.0,
        reconnect_min_s: float = 0.2,
        reconnect_max_s: float = 5.0,
        clock: Clock = utc_now,
    ) -> None:
        """`uri_template` turns the E.164 number into what baresip dials: "{number}" lets the
        softphone's account complete it (sip:+1312...@its-domain); "sip:{number}@pbx.example"
        names the PBX; "{digits}" is the number without "+". A call with no ringing or answer
        within `setup_timeout_s` is hung up as unreachable."""
        self.host = host
        self.port = port
        self.uri_template = uri_template
        self.setup_timeout_s = setup_timeout_s
        self.command_timeout_s = command_timeout_s
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s
        self._clock = clock
        self._hub = EventHub()
        self._status_listeners: list[StatusListener] = []
        self._writer: asyncio.StreamWriter | None = None
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._tokens = itertools.count(1)
        self._call: _Call | None = None
        self._retired: set[str] = set()
        self._closed = False
        self.connects = 0  # successful connections so far (1 + reconnects)
        self.last_error = ""

    # -- connection ------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def active_call(self) -> CallHandle | None:
        return self._call.handle if self._call is not None else None

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        return self._hub.subscribe(listener)

    def on_call_change(self, payload: Mapping[str, Any]) -> None:
        """Server-side calls only: this backend's calls do not come through the sync feed."""

    def subscribe_status(self, listener: StatusListener) -> Callable[[], None]:
        """`listener(connected, detail)` on every connect and disconnect (for the status bar)."""
        self._status_listeners.append(listener)
        return lambda: self._status_listeners.remove(listener)

    def start(self) -> None:
        """Begin connecting (and keep reconnecting) in the background. Needs a running loop."""
        if self._task is None or self._task.done():
            self._closed = False
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def wait_connected(self, timeout_s: float | None = None) -> bool:
        self.start()
        try:
            await asyncio.wait_for(self._connected.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        self._closed = True
        if self._call is not None:
            with contextlib.suppress(TelephonyError):
                await self.hang_up()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._drop("closed")

    def _status(self, connected: bool, detail: str) -> None:
        for listener in list(self._status_listeners):
            try:
                listener(connected, detail)
            except Exception:
                log.exception("softphone status listener failed")

    async def _run(self) -> None:
        delay = self.reconnect_min_s
        while not self._closed:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port), self.command_timeout_s
                )
            except (OSError, TimeoutError) as exc:
                self.last_error = f"softphone not reachable at {self.host}:{self.port} ({exc})"
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.reconnect_max_s)
                continue
            delay = self.reconnect_min_s
            self._writer = writer
            self.connects += 1
            self.last_error = ""
            self._connected.set()
            self._status(True, f"connected to baresip at {self.host}:{self.port}")
            try:
                while True:
                    self._dispatch(await read_netstring(reader))
            except (ConnectionError, OSError) as exc:
                self.last_error = f"softphone connection lost: {exc}"
            await self._drop(self.last_error)

    async def _drop(self, why: str) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(DialerUnavailable(why or "softphone disconnected"))
        self._pending.clear()
        if self._call is not None:
            self._end(EndCause.SOFTPHONE_LOST, why or "softphone disconnected")
        if was_connected:
            self._status(False, why or "disconnected")

    # -- commands --------------------------------------------------------------------------------

    async def command(self, name: str, params: str = "") -> str:
        """Run a baresip command; its text answer, or TelephonyError with baresip's words."""
        if self._writer is None or not self.connected:
            raise DialerUnavailable(
                self.last_error or f"softphone not connected ({self.host}:{self.port})"
            )
        token = f"bdc{next(self._tokens)}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[token] = future
        try:
            self._writer.write(netstring({"command": name, "params": params, "token": token}))
            await self._writer.drain()
            answer = await asyncio.wait_for(future, self.command_timeout_s)
        except TimeoutError:
            raise DialerUnavailable(f"softphone did not answer '{name}' in time") from None
        except (ConnectionError, OSError) as exc:
            raise DialerUnavailable(f"softphone connection lost: {exc}") from exc
        finally:
            self._pending.pop(token, None)
        data = str(answer.get("data") or "")
        if not answer.get("ok", False):
            raise TelephonyError(f"softphone refused '{name}': {data.strip() or 'no reason'}")
        return data

    async def check(self) -> str:
        """The settings dialog's "test" button: connect and ask the softphone for its accounts."""
        if not await self.wait_connected(self.command_timeout_s):
            raise DialerUnavailable(self.last_error or "softphone not reachable")
        return (await self.command("reginfo")).strip()

    def dial_uri(self, number: str) -> str:
        return self.uri_template.format(number=number, digits=number.lstrip("+"))

    async def dial(self, request: DialRequest) -> CallHandle:
        if self._call is not None:
            raise CallInProgress("a call is already in progress: hang up first")
        self.start()
        if not self.connected and not await self.wait_connected(self.command_timeout_s):
            raise DialerUnavailable(
                self.last_error or f"softphone not reachable at {self.host}:{self.port}"
            )
        started = self._clock()
        handle = CallHandle(request.call_id, request, started, self.name)
        call = _Call(handle, self.dial_uri(request.number))
        self._call = call
        call.setup_timer = asyncio.get_running_loop().call_later(
            self.setup_timeout_s, self._setup_timed_out, call
        )
        self._hub.emit(
            CallDialing(request.call_id, started, request.number, request.lead_id, self.name)
        )
        try:
            await self.command("dial", call.uri)
        except TelephonyError as exc:
            if self._call is call:
                self._end(EndCause.FAILED, str(exc))
        return handle

    async def hang_up(self, call_id: str | None = None) -> None:
        call = self._call
        if call is None or call_id not in (None, call.handle.call_id):
            return
        call.hangup_requested = True
        if call.baresip_id is None and call.answered_at is None and call.ringing_at is None:
            # Nothing reached the network yet that baresip reported; still tell it to stop.
            with contextlib.suppress(TelephonyError):
                await self.command("hangup")
            if self._call is call:
                self._end(EndCause.CANCELLED, "hung up before the call connected")
            return
        try:
            await self.command("hangup")
        except TelephonyError as exc:
            if self._call is call:
                self._end(EndCause.SOFTPHONE_LOST, str(exc))
            return
        # baresip reports CALL_CLOSED right after; if it does not, close our record anyway.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.command_timeout_s
        while self._call is call and loop.time() < deadline:
            await asyncio.sleep(0.05)
        if self._call is call:
            self._end(EndCause.AGENT_HANGUP if call.answered_at else EndCause.CANCELLED, "")

    # -- events ----------------------------------------------------------------------------------

    def _dispatch(self, message: dict[str, Any]) -> None:
        if message.get("response"):
            future = self._pending.get(str(message.get("token", "")))
            if future is not None and not future.done():
                future.set_result(message)
            return
        if not message.get("event") or message.get("class") != "call":
            return
        call = self._call
        if call is None or message.get("direction") != "outgoing":
            return
        baresip_id = str(message.get("id") or "")
        if baresip_id in self._retired:
            return  # a late event of a call we already closed
        if call.baresip_id is None and baresip_id:
            peer = str(message.get("peeruri") or "")
            if peer and _sip_user(peer) != _sip_user(call.uri):
                return  # another call on the softphone (the agent dialed from its own keypad)
            call.baresip_id = baresip_id
        elif baresip_id and baresip_id != call.baresip_id:
            return
        kind = message.get("type")
        now = self._clock()
        if kind in ("CALL_RINGING", "CALL_PROGRESS") and call.ringing_at is None:
            call.ringing_at = now
            self._cancel_setup_timer(call)
            self._hub.emit(CallRinging(call.handle.call_id, now))
        elif kind == "CALL_ESTABLISHED" and call.answered_at is None:
            call.answered_at = now
            self._cancel_setup_timer(call)
            self._hub.emit(CallAnswered(call.handle.call_id, now))
        elif kind == "CALL_CLOSED":
            reason = str(message.get("param") or "")
            cause = end_cause(
                reason,
                answered=call.answered_at is not None,
                hangup_requested=call.hangup_requested,
            )
            self._end(cause, reason)

    def _setup_timed_out(self, call: _Call) -> None:
        if self._call is not call or call.ringing_at or call.answered_at:
            return
        call.hangup_requested = True
        self._end(
            EndCause.UNREACHABLE,
            f"no ringing or answer from the network within {self.setup_timeout_s:g} s",
        )
        if self.connected:
            task = asyncio.get_running_loop().create_task(self._quiet_hangup())
            task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

    async def _quiet_hangup(self) -> None:
        with contextlib.suppress(TelephonyError):
            await self.command("hangup")

    def _cancel_setup_timer(self, call: _Call) -> None:
        if call.setup_timer is not None:
            call.setup_timer.cancel()
            call.setup_timer = None

    def _end(self, cause: EndCause, detail: str) -> None:
        call = self._call
        if call is None:
            return
        self._call = None
        self._cancel_setup_timer(call)
        if call.baresip_id:
            self._retired.add(call.baresip_id)
        self._hub.emit(
            CallEnded(
                call.handle.call_id,
                self._clock(),
                cause,
                detail,
                started_at=call.handle.started_at,
                answered_at=call.answered_at,
            )
        )
