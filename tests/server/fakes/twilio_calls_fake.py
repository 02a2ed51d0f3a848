"""A fake Twilio Calls API on loopback that sends signed status callbacks like Twilio does.

POST /2010-04-01/Accounts/{sid}/Calls.json   form: To, From, Twiml (with <Dial><Number
    statusCallback=...>), StatusCallback, StatusCallbackEvent (repeated) — basic auth
POST /2010-04-01/Accounts/{sid}/Calls/{CallSid}.json   Status=completed hangs the call up
The agent's leg (the parent call) and the customer's leg (a child call with ParentCallSid) each
report initiated → ringing → in-progress → completed (or busy / no-answer) to their callback URL,
form-encoded and signed with X-Twilio-Signature. When the <Dial> ends, the fake requests the Dial's
`action` URL like Twilio does: DialCallStatus/DialCallDuration/DialCallSid for the customer's leg
and CallStatus for the agent's call — "completed" when the agent's side hung up (a REST hang-up),
"in-progress" when the customer hung up — before the agent leg's final "completed". A <Number>
with machineDetection="Enable" gets its amdStatusCallback posted with AnsweredBy a moment after
the answer. `scenario` picks what the customer does: "answer" (talks until hung up, at most
`talk_s`, then the customer hangs up), "voicemail" (a machine answers: AnsweredBy=machine_start),
"busy", "no-answer"; "agent-no-answer" makes the agent's own phone ring out; "silent" accepts the
call and never reports anything (a provider whose callbacks are lost).
"""

from __future__ import annotations

import base64
import hmac
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import httpx

from tests.server.fakes.twilio_fake import sign

_CREATE = re.compile(r"^/2010-04-01/Accounts/([^/]+)/Calls\.json$")
_UPDATE = re.compile(r"^/2010-04-01/Accounts/([^/]+)/Calls/([^/]+)\.json$")
_NUMBER = re.compile(r"<Number([^>]*)>([^<]+)</Number>")
_DIAL = re.compile(r"<Dial([^>]*)>")
_ATTR = re.compile(r'(\w+)="([^"]*)"')


def _attrs(text: str) -> dict[str, str]:
    return {k: v.replace("&amp;", "&") for k, v in _ATTR.findall(text)}


@dataclass
class FakeTwilioCalls:
    account_sid: str = "AC" + "c" * 32
    auth_token: str = "calls-token"
    scenario: str = "answer"
    ring_s: float = 0.1
    talk_s: float = 8.0
    created: list[list[tuple[str, str]]] = field(default_factory=list)
    callbacks: list[tuple[str, dict[str, str], int]] = field(default_factory=list)
    hung_up: list[str] = field(default_factory=list)
    numbers: list[dict[str, str]] = field(default_factory=list)  # each <Number>'s attributes
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _hangups: dict[str, threading.Event] = field(default_factory=dict)
    _threads: list[threading.Thread] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeTwilioCalls:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_POST(self) -> None:
                fake._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_exc: object) -> None:
        for event in self._hangups.values():
            event.set()
        for thread in self._threads:
            thread.join(timeout=10)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _reply(self, handler: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if not hmac.compare_digest(handler.headers.get("Authorization", ""), f"Basic {expected}"):
            self._reply(handler, 401, {"code": 20003, "message": "Authenticate", "status": 401})
            return
        length = int(handler.headers.get("Content-Length", "0"))
        form = parse_qsl(handler.rfile.read(length).decode(), keep_blank_values=True)
        update = _UPDATE.match(handler.path)
        if update is not None:
            sid = update.group(2)
            with self._lock:
                self.hung_up.append(sid)
                event = self._hangups.get(sid)
            if event is None:
                self._reply(handler, 404, {"code": 20404, "message": "not found", "status": 404})
                return
            event.set()
            self._reply(handler, 200, {"sid": sid, "status": "completed"})
            return
        if _CREATE.match(handler.path) is None:
            self._reply(handler, 404, {"code": 20404, "message": "not found", "status": 404})
            return
        fields = dict(form)
        to, twiml = fields.get("To", ""), fields.get("Twiml", "")
        number = _NUMBER.search(twiml)
        if not re.match(r"^\+[1-9]\d{6,14}$", to) or number is None:
            self._reply(
                handler, 400, {"code": 21211, "message": f"Invalid 'To': {to}", "status": 400}
            )
            return
        sid = "CA" + secrets.token_hex(16)
        with self._lock:
            self.created.append(form)
            self._hangups[sid] = threading.Event()
        self._reply(
            handler, 201, {"sid": sid, "status": "queued", "to": to, "from": fields.get("From")}
        )
        noun = _attrs(number.group(1))
        dial = _DIAL.search(twiml)
        self.numbers.append(noun)
        urls = {
            "agent": fields.get("StatusCallback", ""),
            "customer": noun.get("statusCallback", ""),
            "amd": noun.get("amdStatusCallback", "")
            if noun.get("machineDetection") in ("Enable", "DetectMessageEnd")
            else "",
            "action": _attrs(dial.group(1)).get("action", "") if dial else "",
        }
        if self.scenario == "silent":
            return
        thread = threading.Thread(
            target=self._play, args=(sid, fields, urls, number.group(2)), daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def _post(self, url: str, fields: dict[str, str]) -> None:
        headers = {"X-Twilio-Signature": sign(self.auth_token, url, fields)}
        try:
            status = httpx.post(url, data=fields, headers=headers, timeout=10).status_code
        except httpx.HTTPError:
            status = 0
        with self._lock:
            self.callbacks.append((url, fields, status))

    def _leg(
        self, sid: str, status: str, to: str, parent: str = "", **extra: str
    ) -> dict[str, str]:
        fields = {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "CallSid": sid,
            "CallStatus": status,
            "Direction": "outbound-dial" if parent else "outbound-api",
            "To": to,
            "Timestamp": time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime()),
            **extra,
        }
        if parent:
            fields["ParentCallSid"] = parent
        return fields

    def _play(self, sid: str, form: dict[str, str], urls: dict[str, str], number: str) -> None:
        agent = form["To"]
        agent_cb, child_cb = urls["agent"], urls["customer"]
        self._post(agent_cb, self._leg(sid, "initiated", agent))
        self._post(agent_cb, self._leg(sid, "ringing", agent))
        time.sleep(self.ring_s)
        if self.scenario == "agent-no-answer":
            self._post(agent_cb, self._leg(sid, "no-answer", agent, CallDuration="0"))
            return
        self._post(agent_cb, self._leg(sid, "in-progress", agent))
        child = "CA" + secrets.token_hex(16)
        self._post(child_cb, self._leg(child, "initiated", number, sid))
        self._post(child_cb, self._leg(child, "ringing", number, sid))
        time.sleep(self.ring_s)
        if self.scenario in ("busy", "no-answer"):
            extra = {"SipResponseCode": "486"} if self.scenario == "busy" else {}
            self._post(
                child_cb, self._leg(child, self.scenario, number, sid, CallDuration="0", **extra)
            )
            self._action(urls, sid, agent, child, self.scenario, "in-progress", "0")
            self._post(agent_cb, self._leg(sid, "completed", agent, CallDuration="1"))
            return
        self._post(child_cb, self._leg(child, "in-progress", number, sid))
        started = time.monotonic()
        if urls["amd"]:
            answered_by = "machine_start" if self.scenario == "voicemail" else "human"
            self._post(
                urls["amd"],
                self._leg(child, "in-progress", number, sid, AnsweredBy=answered_by,
                          MachineDetectionDuration="2100"),
            )  # fmt: skip
        agent_hung_up = self._hangups[sid].wait(self.talk_s)
        talk = str(max(1, round(time.monotonic() - started)))
        self._post(child_cb, self._leg(child, "completed", number, sid, CallDuration=talk))
        parent = "completed" if agent_hung_up else "in-progress"
        self._action(urls, sid, agent, child, "completed", parent, talk)
        self._post(agent_cb, self._leg(sid, "completed", agent, CallDuration=talk))

    def _action(
        self, urls: dict[str, str], sid: str, agent: str, child: str, dial: str, parent: str,
        talk: str,
    ) -> None:  # fmt: skip
        """The <Dial action> request Twilio makes when the dialed leg is over."""
        if not urls["action"]:
            return
        bridged = "true" if dial == "completed" else "false"
        fields = self._leg(
            sid,
            parent,
            agent,
            DialCallStatus=dial,
            DialCallSid=child,
            DialCallDuration=talk,
            DialBridged=bridged,
        )
        self._post(urls["action"], fields)
