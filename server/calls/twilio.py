"""Calls through Twilio's REST Calls API (or any service that speaks it).

POST {base}/2010-04-01/Accounts/{sid}/Calls.json (form, HTTP basic auth) rings the agent's phone
(`To`), shown the store's number (`From`); inline TwiML then <Dial>s the customer, whose leg reports
to our status callback. Both legs post StatusCallback forms (CallSid, CallStatus, CallDuration,
ParentCallSid, SipResponseCode) to /v1/webhooks/calls/twilio?call_id=<ours>&leg=agent|customer,
signed with X-Twilio-Signature. Hanging up: POST .../Calls/{sid}.json with Status=completed.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlencode
from xml.sax.saxutils import escape, quoteattr

import httpx

from server.calls import (
    AGENT_UNREACHABLE,
    ANSWERED,
    BUSY,
    CANCELLED,
    COMPLETED,
    ENDED,
    FAILED,
    INVALID_NUMBER,
    NO_ANSWER,
    RINGING,
    UNREACHABLE,
    OutboundCall,
    ProviderEvent,
    ProviderRefused,
    ProviderUnavailable,
)

CALLBACK_PATH = "/v1/webhooks/calls/twilio"
EVENTS = "initiated ringing answered completed"


def callback_url(public_base_url: str) -> str:
    return public_base_url.rstrip("/") + CALLBACK_PATH if public_base_url else ""


class TwilioCallProvider:
    name = "twilio"

    def __init__(
        self,
        base_url: str,
        account_sid: str,
        auth_token: str,
        *,
        status_callback: str,
        timeout_s: float = 10.0,
    ) -> None:
        if not account_sid or not auth_token:
            raise ValueError("the Twilio call provider needs an account SID and an auth token")
        if not status_callback:
            raise ValueError("the Twilio call provider needs public_base_url for status callbacks")
        self.account_sid = account_sid
        self.status_callback = status_callback
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"), auth=(account_sid, auth_token), timeout=timeout_s
        )

    def close(self) -> None:
        self._client.close()

    def _callback(self, call_id: str, leg: str) -> str:
        return f"{self.status_callback}?call_id={call_id}&leg={leg}"

    def twiml(self, call: OutboundCall) -> str:
        customer_cb = self._callback(call.id, "customer")
        return (
            '<Response><Dial answerOnBridge="true" callerId='
            f"{quoteattr(call.caller_id)}><Number statusCallbackEvent={quoteattr(EVENTS)} "
            f'statusCallback={quoteattr(customer_cb)} statusCallbackMethod="POST">'
            f"{escape(call.customer_phone)}</Number></Dial></Response>"
        )

    def start(self, call: OutboundCall) -> str:
        form = [
            ("To", call.agent_phone),
            ("From", call.caller_id),
            ("Twiml", self.twiml(call)),
            ("StatusCallback", self._callback(call.id, "agent")),
            ("StatusCallbackMethod", "POST"),
            *(("StatusCallbackEvent", e) for e in EVENTS.split()),
        ]
        path = f"/2010-04-01/Accounts/{self.account_sid}/Calls.json"
        try:
            response = self._client.post(
                path,
                content=urlencode(form),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"calling service unreachable: {exc}") from exc
        body = _json(response)
        if response.status_code in (200, 201):
            sid = body.get("sid")
            if not isinstance(sid, str) or not sid:
                raise ProviderUnavailable("calling service answered without a call SID")
            return sid
        message = f"{body.get('code') or response.status_code} {body.get('message') or ''}"
        if response.status_code in (401, 403, 429) or response.status_code >= 500:
            raise ProviderUnavailable(f"calling service refused the request: {message.strip()}")
        raise ProviderRefused(message.strip())

    def hang_up(self, provider_call_id: str) -> None:
        path = f"/2010-04-01/Accounts/{self.account_sid}/Calls/{provider_call_id}.json"
        try:
            response = self._client.post(path, data={"Status": "completed"})
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"calling service unreachable: {exc}") from exc
        if response.status_code >= 400 and response.status_code != 404:
            raise ProviderUnavailable(f"hang-up refused: {response.status_code}")


def _json(response: httpx.Response) -> dict[str, object]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


_CUSTOMER_END = {
    "busy": BUSY,
    "no-answer": NO_ANSWER,
    "canceled": CANCELLED,
    "failed": FAILED,
}


def parse_status(
    form: dict[str, str], call_id: str, leg: str, now: datetime
) -> ProviderEvent | None:
    """The event a status callback means for the bridged call, or None (nothing to report)."""
    status = form.get("CallStatus", "").strip().lower()
    sid = form.get("CallSid", "").strip() or None
    detail = status
    sip = form.get("SipResponseCode", "").strip()
    if sip:
        detail = f"{status} (SIP {sip})"
    if leg == "agent":
        # The agent's leg: only its failure matters (the customer leg reports the rest).
        if status in ("busy", "no-answer", "failed", "canceled"):
            return ProviderEvent(
                call_id, None, ENDED, now, AGENT_UNREACHABLE, f"your phone: {detail}"
            )
        if status == "completed":
            return ProviderEvent(call_id, None, ENDED, now, COMPLETED, "agent leg completed")
        return None
    if status == "ringing":
        return ProviderEvent(call_id, sid, RINGING, now)
    if status in ("in-progress", "answered"):
        return ProviderEvent(call_id, sid, ANSWERED, now)
    if status == "completed":
        duration = form.get("CallDuration", "").strip()
        return ProviderEvent(
            call_id,
            sid,
            ENDED,
            now,
            COMPLETED,
            "completed",
            int(duration) if duration.isdigit() else None,
            form.get("RecordingUrl") or None,
        )
    if status in _CUSTOMER_END:
        cause = _CUSTOMER_END[status]
        if status == "failed" and sip in ("404", "410", "484", "604"):
            cause = INVALID_NUMBER
        elif status == "failed" and sip in ("503", "408"):
            cause = UNREACHABLE
        return ProviderEvent(call_id, sid, ENDED, now, cause, detail)
    return None
