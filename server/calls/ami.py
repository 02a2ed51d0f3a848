"""Calls through an Asterisk PBX's Manager Interface (AMI, TCP, `key: value` lines, a blank line
ends each message).

Login, then per call an `Originate` (ActionID = our call id, Async: true) that rings the agent's
device (`ami_agent_channel`, e.g. PJSIP/201) and, once the agent answers, sends the customer's
number into the dialplan (`ami_context`). `ChannelId` names the agent's channel `<call id>-a`, so
every channel of the call carries Linkedid `<call id>-a`. Events read:
- OriginateResponse (ActionID): Failure → the agent's phone did not answer;
- Newstate of the customer channel: Ringing → ringing, Up → answered;
- DialEnd: DialStatus ANSWER → answered; BUSY, NOANSWER, CHANUNAVAIL, CONGESTION, CANCEL → ended;
- Hangup: the first channel to hang up after an answer tells who ended it; before an answer its
  Q.850 Cause (17 busy, 19 no answer, 1 unallocated, 21 rejected …) is the outcome.
Hang-up: `Hangup` action on the agent's channel. The connection is opened at the first call and
re-opened (with a new Login) when it dropped; the calls it was following end at once as "lost"
(their events are gone with the connection).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from server.calls import (
    AGENT_HANGUP,
    AGENT_UNREACHABLE,
    ANSWERED,
    BUSY,
    CANCELLED,
    CUSTOMER_HANGUP,
    DECLINED,
    ENDED,
    FAILED,
    INVALID_NUMBER,
    LOST,
    NO_ANSWER,
    RINGING,
    UNREACHABLE,
    EventSink,
    OutboundCall,
    ProviderEvent,
    ProviderRefused,
    ProviderUnavailable,
)

DIAL_STATUS = {
    "BUSY": BUSY,
    "NOANSWER": NO_ANSWER,
    "CHANUNAVAIL": UNREACHABLE,
    "CONGESTION": FAILED,
    "CANCEL": CANCELLED,
}
Q850 = {
    "1": INVALID_NUMBER,
    "3": INVALID_NUMBER,
    "17": BUSY,
    "18": NO_ANSWER,
    "19": NO_ANSWER,
    "21": DECLINED,
    "22": INVALID_NUMBER,
    "27": UNREACHABLE,
    "28": INVALID_NUMBER,
    "34": FAILED,
    "38": FAILED,
}
# OriginateResponse Reason codes (Asterisk's AST_CONTROL_*): why the agent's leg failed.
ORIGINATE_REASONS = {
    "0": "no such device or it failed",
    "1": "hung up",
    "3": "rang out",
    "5": "busy",
    "8": "congested",
}


def format_message(fields: list[tuple[str, str]]) -> bytes:
    return "".join(f"{k}: {v}\r\n" for k, v in fields).encode() + b"\r\n"


def parse_message(block: str) -> dict[str, str]:
    message: dict[str, str] = {}
    for line in block.split("\r\n"):
        key, sep, value = line.partition(":")
        if sep:
            message.setdefault(key.strip(), value.strip())
    return message


@dataclass
class _Track:
    call_id: str
    agent_uid: str
    answered: bool = False
    ended: bool = False
    queued: bool = False  # the PBX accepted the Originate (before that, start() reports failures)


class AmiCallProvider:
    name = "ami"

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        secret: str,
        sink: EventSink,
        *,
        context: str = "from-internal",
        agent_channel: str = "PJSIP/{phone}",
        timeout_s: float = 5.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.host, self.port = host, port
        self._clock = clock
        self.username, self.secret = username, secret
        self.sink = sink
        self.context = context
        self.agent_channel = agent_channel
        self.timeout_s = timeout_s
        self._sock: socket.socket | None = None
        self._stream: object = None
        self._reader: threading.Thread | None = None
        self._lock = threading.Lock()  # one writer / one connect at a time
        self._waiting: dict[str, tuple[threading.Event, list[dict[str, str]]]] = {}
        self._calls: dict[str, _Track] = {}  # by agent channel uniqueid (the Linkedid)
        self._ids = 0
        self.banner = ""

    # -- connection ------------------------------------------------------------------------------

    def _connect(self) -> None:
        if self._sock is not None:
            return
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
        except OSError as exc:
            raise ProviderUnavailable(
                f"PBX manager not reachable at {self.host}:{self.port}: {exc}"
            ) from exc
        sock.settimeout(None)
        stream = sock.makefile("rb")
        self.banner = stream.readline().decode(errors="replace").strip()
        if not self.banner.startswith("Asterisk Call Manager"):
            sock.close()
            raise ProviderUnavailable(f"not an Asterisk manager interface: {self.banner[:60]!r}")
        self._sock = sock
        self._stream = stream
        self._reader = threading.Thread(target=self._read, args=(sock, stream), daemon=True)
        self._reader.start()
        answer = self._action_locked(
            [("Action", "Login"), ("Username", self.username), ("Secret", self.secret)]
        )
        if answer.get("Response") != "Success":
            self._drop(sock)
            raise ProviderUnavailable(f"PBX manager login refused: {answer.get('Message', '')}")

    def _drop(self, sock: socket.socket) -> None:
        if self._sock is sock:
            self._sock = None
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()
        for event, box in list(self._waiting.values()):
            box.append({"Response": "Error", "Message": "connection closed"})
            event.set()
        # Calls followed over this connection can no longer be followed: their end would never
        # be reported, so they end now as "lost" (the PBX may still carry them for a while).
        lost, self._calls = list(self._calls.values()), {}
        for track in lost:
            if track.queued and not track.ended:
                self._emit(
                    track, ENDED, LOST, "PBX manager connection lost; the call's end was not seen"
                )

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._drop(self._sock)
            reader, self._reader = self._reader, None
        if reader is not None:
            reader.join(self.timeout_s)

    def _action_locked(self, fields: list[tuple[str, str]], action_id: str = "") -> dict[str, str]:
        sock = self._sock
        if sock is None:
            raise ProviderUnavailable("PBX manager not connected")
        if not action_id:
            self._ids += 1
            action_id = f"bdc-{self._ids}"
        done, box = threading.Event(), []
        self._waiting[action_id] = (done, box)
        try:
            sock.sendall(format_message([*fields, ("ActionID", action_id)]))
            if not done.wait(self.timeout_s):
                raise ProviderUnavailable(f"PBX manager did not answer {fields[0][1]} in time")
        except OSError as exc:
            self._drop(sock)
            raise ProviderUnavailable(f"PBX manager connection lost: {exc}") from exc
        finally:
            self._waiting.pop(action_id, None)
        return box[0]

    def _read(self, sock: socket.socket, stream: object) -> None:
        try:
            for message in _messages(stream):
                self._dispatch(message)
        except (OSError, ValueError):
            pass
        finally:
            with contextlib.suppress(OSError):
                stream.close()  # type: ignore[attr-defined]
        self._drop(sock)

    # -- actions ---------------------------------------------------------------------------------

    def start(self, call: OutboundCall) -> str:
        agent_uid = f"{call.id}-a"
        with self._lock:
            self._connect()
            self._calls[agent_uid] = _Track(call.id, agent_uid)
            answer = self._action_locked(
                [
                    ("Action", "Originate"),
                    ("Channel", self.agent_channel.format(phone=call.agent_phone)),
                    ("Context", self.context),
                    ("Exten", call.customer_phone),
                    ("Priority", "1"),
                    ("CallerID", call.caller_id),
                    ("Async", "true"),
                    ("ChannelId", agent_uid),
                    ("Variable", f"BDC_CALL_ID={call.id}"),
                ],
                action_id=call.id,
            )
        if answer.get("Response") != "Success":
            self._calls.pop(agent_uid, None)
            raise ProviderRefused(f"PBX refused the call: {answer.get('Message', 'no reason')}")
        track = self._calls.get(agent_uid)
        if track is not None:
            track.queued = True
        return agent_uid

    def hang_up(self, provider_call_id: str) -> None:
        with self._lock:
            self._connect()
            answer = self._action_locked([("Action", "Hangup"), ("Channel", provider_call_id)])
        if answer.get("Response") != "Success" and "No such channel" not in answer.get(
            "Message", ""
        ):
            raise ProviderUnavailable(f"PBX refused the hang-up: {answer.get('Message', '')}")

    # -- events ----------------------------------------------------------------------------------

    def _dispatch(self, message: dict[str, str]) -> None:
        if "Response" in message and "Event" not in message:
            waiting = self._waiting.get(message.get("ActionID", ""))
            if waiting is not None:
                waiting[1].append(message)
                waiting[0].set()
            return
        kind = message.get("Event", "")
        if kind == "OriginateResponse":
            track = self._calls.get(f"{message.get('ActionID', '')}-a")
            if track is not None and message.get("Response") == "Failure":
                reason = ORIGINATE_REASONS.get(message.get("Reason", ""), "failed")
                self._emit(track, ENDED, AGENT_UNREACHABLE, f"your phone {reason}")
            return
        track = self._calls.get(message.get("Linkedid", "")) or self._calls.get(
            message.get("DestLinkedid", "")
        )
        if track is None or track.ended:
            return
        uid = message.get("Uniqueid", "")
        if kind == "Newstate" and uid != track.agent_uid:
            state = message.get("ChannelStateDesc", "")
            if state == "Ringing":
                self._emit(track, RINGING)
            elif state == "Up":
                self._emit(track, ANSWERED)
        elif kind == "DialEnd":
            status = message.get("DialStatus", "")
            if status == "ANSWER":
                self._emit(track, ANSWERED)
            elif status in DIAL_STATUS:
                self._emit(track, ENDED, DIAL_STATUS[status], f"DialStatus {status}")
        elif kind == "Hangup":
            cause = message.get("Cause", "")
            detail = f"Q.850 {cause} {message.get('Cause-txt', '')}".strip()
            if track.answered:
                who = AGENT_HANGUP if uid == track.agent_uid else CUSTOMER_HANGUP
                self._emit(track, ENDED, who, detail)
            elif uid == track.agent_uid:
                self._emit(track, ENDED, CANCELLED, detail)
            else:
                self._emit(track, ENDED, Q850.get(cause, FAILED), detail)

    def _emit(self, track: _Track, state: str, cause: str = "", detail: str = "") -> None:
        if state == ANSWERED:
            if track.answered:
                return
            track.answered = True
        if state == ENDED:
            track.ended = True
            self._calls.pop(track.agent_uid, None)
        event = ProviderEvent(track.call_id, track.agent_uid, state, self._clock(), cause, detail)
        try:
            self.sink(event)
        except Exception:  # the reader thread must survive a failing sink
            import logging

            logging.getLogger("bdc.calls").exception("applying %s failed", event)


def _messages(stream: object) -> Iterator[dict[str, str]]:
    lines: list[str] = []
    readline = stream.readline  # type: ignore[attr-defined]
    while True:
        raw = readline()
        if not raw:
            return
        line = raw.decode(errors="replace").rstrip("\r\n")
        if line:
            lines.append(line)
            continue
        if lines:
            yield parse_message("\r\n".join(lines))
            lines = []
