"""A fake Twilio Messages API on loopback, speaking the real wire format.

POST /2010-04-01/Accounts/{AccountSid}/Messages.json   form-encoded To, From, Body[, StatusCallback]
GET  /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json
HTTP basic auth with the account SID and auth token. Answers are Twilio-shaped JSON: 201 with the
message resource, or {"code", "message", "more_info", "status"} errors — 20003 bad credentials,
21211 invalid To, 21602 no Body, 21606 From not on the account, 21610 recipient replied STOP.
A StatusCallback URL gets "sent" then "delivered" reports, signed with X-Twilio-Signature the way
Twilio signs them (HMAC-SHA1 over the URL and the sorted fields, keyed with the auth token).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import httpx

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_CREATE = re.compile(r"^/2010-04-01/Accounts/([^/]+)/Messages\.json$")
_FETCH = re.compile(r"^/2010-04-01/Accounts/([^/]+)/Messages/([^/]+)\.json$")


def sign(auth_token: str, url: str, fields: dict[str, str]) -> str:
    payload = url + "".join(k + fields[k] for k in sorted(fields))
    return base64.b64encode(
        hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    ).decode()


@dataclass
class FakeTwilio:
    account_sid: str = "AC" + "0" * 32
    auth_token: str = "fake-auth-token"
    numbers: tuple[str, ...] = ("+13125550100",)
    opted_out: set[str] = field(default_factory=set)  # numbers that replied STOP: error 21610
    unavailable: int = 0  # answer this many sends with 503 (a Twilio outage)
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    callbacks: list[tuple[str, dict[str, str], int]] = field(default_factory=list)
    requests: int = 0
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeTwilio:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                fake._handle(self, "POST")

            def do_GET(self) -> None:
                fake._handle(self, "GET")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        return self

    def stop(self) -> None:
        for thread in self._threads:
            thread.join(timeout=10)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> FakeTwilio:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- HTTP ------------------------------------------------------------------------------------

    def _reply(self, handler: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json; charset=utf-8")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _error(self, handler: BaseHTTPRequestHandler, status: int, code: int, message: str) -> None:
        self._reply(
            handler,
            status,
            {
                "code": code,
                "message": message,
                "more_info": f"https://www.twilio.com/docs/errors/{code}",
                "status": status,
            },
        )

    def _authorized(self, handler: BaseHTTPRequestHandler, sid: str) -> bool:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        given = handler.headers.get("Authorization", "")
        return sid == self.account_sid and hmac.compare_digest(given, f"Basic {expected}")

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        with self._lock:
            self.requests += 1
        create = _CREATE.match(handler.path)
        fetch = _FETCH.match(handler.path)
        match = create if method == "POST" else fetch
        if match is None:
            self._error(handler, 404, 20404, "The requested resource was not found")
            return
        if not self._authorized(handler, match.group(1)):
            self._error(handler, 401, 20003, "Authenticate")
            return
        if method == "GET":
            assert fetch is not None
            found = self.messages.get(fetch.group(2))
            if found is None:
                self._error(handler, 404, 20404, "The requested resource was not found")
            else:
                self._reply(handler, 200, found)
            return
        length = int(handler.headers.get("Content-Length", "0"))
        form = dict(parse_qsl(handler.rfile.read(length).decode(), keep_blank_values=True))
        self._create(handler, form)

    def _create(self, handler: BaseHTTPRequestHandler, form: dict[str, str]) -> None:
        with self._lock:
            if self.unavailable > 0:
                self.unavailable -= 1
                self._error(handler, 503, 20500, "Service Unavailable")
                return
        to, sender, body = form.get("To", ""), form.get("From", ""), form.get("Body", "")
        if not _E164.match(to):
            self._error(handler, 400, 21211, f"The 'To' number {to} is not a valid phone number.")
            return
        if sender not in self.numbers:
            self._error(
                handler,
                400,
                21606,
                f"The From phone number {sender} is not a valid, "
                "SMS-capable inbound phone number or short code for your account.",
            )
            return
        if not body:
            self._error(handler, 400, 21602, "Message body is required.")
            return
        if to in self.opted_out:
            self._error(handler, 400, 21610, "Attempt to send to unsubscribed recipient")
            return
        sid = "SM" + secrets.token_hex(16)
        now = formatdate(usegmt=True)
        resource = {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": sender,
            "messaging_service_sid": None,
            "num_media": "0",
            "num_segments": str(max(1, -(-len(body) // 153))),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued",
            "subresource_uris": {
                "media": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}/Media.json"
            },
            "to": to,
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
        }
        with self._lock:
            self.messages[sid] = resource
        self._reply(handler, 201, resource)
        callback = form.get("StatusCallback")
        if callback:
            thread = threading.Thread(target=self._report, args=(callback, resource), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _report(self, url: str, resource: dict[str, Any]) -> None:
        for state in ("sent", "delivered"):
            with self._lock:
                resource["status"] = state
            fields = {
                "AccountSid": self.account_sid,
                "ApiVersion": "2010-04-01",
                "From": resource["from"],
                "MessageSid": resource["sid"],
                "MessageStatus": state,
                "SmsSid": resource["sid"],
                "SmsStatus": state,
                "To": resource["to"],
            }
            headers = {"X-Twilio-Signature": sign(self.auth_token, url, fields)}
            try:
                answer = httpx.post(url, data=fields, headers=headers, timeout=10)
                status = answer.status_code
            except httpx.HTTPError:
                status = 0
            with self._lock:
                self.callbacks.append((state, fields, status))

    # -- test helpers ----------------------------------------------------------------------------

    def sent_to(self, number: str) -> list[dict[str, Any]]:
        with self._lock:
            return [m for m in self.messages.values() if m["to"] == number]
