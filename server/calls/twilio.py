"""Calls through Twilio's REST Calls API (or any service that speaks it).

POST {base}/2010-04-01/Accounts/{sid}/Calls.json (form, HTTP basic auth) rings the agent's phone
(`To`), shown the store's number (`From`); inline TwiML then <Dial>s the customer, whose leg reports
to our status callback. Both legs post StatusCallback forms (CallSid, CallStatus, CallDuration,
ParentCallSid, SipResponseCode) to /v1/webhooks/calls/twilio?call_id=<ours>&leg=agent|customer,
signed with X-Twilio-Signature. Hanging up: POST .../Calls/{sid}.json with Status=completed.

Answering-machine detection: the customer's <Number> carries machineDetection="Enable" (the REST
parameter MachineDetection=Enable would test the agent's own phone, which rings first) and an
amdStatusCallback (leg=amd) that receives AnsweredBy: human, machine_start, machine_end_beep,
machine_end_silence, machine_end_other, fax or unknown. A machine's answer ends the call as
"voicemail" (the agent may still leave a message; the talk time is kept).

Who hung up: Twilio's status callbacks do not say; the <Dial action> request does. When the
bridge ends, Twilio posts the action URL (leg=dial) with DialCallStatus and DialCallDuration for
the customer's leg and CallStatus for the agent's (parent) call: "completed" when the agent's side
hung up, "in-progress" when the customer hung up and the agent is still on the line (our empty
TwiML answer then ends the agent's leg). So the customer leg's own "completed" callback is not the
end; the agent leg's "completed" is the fallback end ("completed": who hung up not known) should
the action request be lost.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlencode
from xml.sax.saxutils import escape, quoteattr

import httpx

from server.calls import (
    AGENT_HANGUP,
    AGENT_UNREACHABLE,
    ANSWERED,
    BUSY,
    CANCELLED,
    COMPLETED,
    CUSTOMER_HANGUP,
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
        action = self._callback(call.id, "dial")
        amd = self._callback(call.id, "amd")
        return (
            '<Response><Dial answerOnBridge="true" callerId='
            f'{quoteattr(call.caller_id)} action={quoteattr(action)} method="POST">'
            f"<Number statusCallbackEvent={quoteattr(EVENTS)} "
            f'statusCallback={quoteattr(customer_cb)} statusCallbackMethod="POST" '
            f'machineDetection="Enable" amdStatusCallback={quoteattr(amd)} '
            f'amdStatusCallbackMethod="POST">'
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
        # The agent's leg: its failure, or the fallback end (the <Dial action> is the real one).
        if status in ("busy", "no-answer", "failed", "canceled"):
            return ProviderEvent(
                call_id, None, ENDED, now, AGENT_UNREACHABLE, f"your phone: {detail}"
            )
        if status == "completed":
            return ProviderEvent(call_id, None, ENDED, now, COMPLETED, "agent leg completed")
        return None
    if leg == "amd":
        answered_by = form.get("AnsweredBy", "").strip().lower()
        if not answered_by:
            return None
        return ProviderEvent(call_id, None, ANSWERED, now, answered_by=answered_by)
    if leg == "dial":
        return _dial_ended(form, call_id, now)
    if status == "ringing":
        return ProviderEvent(call_id, sid, RINGING, now)
    if status in ("in-progress", "answered"):
        return ProviderEvent(call_id, sid, ANSWERED, now)
    if status == "completed":
        return None  # the <Dial action> request that follows tells who hung up
    if status in _CUSTOMER_END:
        return ProviderEvent(call_id, sid, ENDED, now, _failure(status, sip), detail)
    return None


def _failure(status: str, sip: str) -> str:
    cause = _CUSTOMER_END[status]
    if status == "failed" and sip in ("404", "410", "484", "604"):
        cause = INVALID_NUMBER
    elif status == "failed" and sip in ("503", "408"):
        cause = UNREACHABLE
    return cause


def _dial_ended(form: dict[str, str], call_id: str, now: datetime) -> ProviderEvent | None:
    """The <Dial action> request: the bridge is over; the parent's CallStatus says who left."""
    dial_status = form.get("DialCallStatus", "").strip().lower()
    parent = form.get("CallStatus", "").strip().lower()
    sid = form.get("DialCallSid", "").strip() or None
    duration = form.get("DialCallDuration", "").strip()
    recording = form.get("RecordingUrl") or None
    if dial_status in ("completed", "answered"):
        if parent == "completed":
            cause, detail = AGENT_HANGUP, "completed; the agent's side hung up"
        elif parent == "in-progress":
            cause, detail = CUSTOMER_HANGUP, "completed; the customer hung up"
        else:
            cause, detail = COMPLETED, "completed"
        seconds = int(duration) if duration.isdigit() else None
        return ProviderEvent(call_id, sid, ENDED, now, cause, detail, seconds, recording)
    if dial_status == "canceled" or (dial_status == "no-answer" and parent == "completed"):
        return ProviderEvent(call_id, sid, ENDED, now, CANCELLED, f"{dial_status}; agent hung up")
    if dial_status in _CUSTOMER_END:
        sip = form.get("SipResponseCode", "").strip()
        detail = f"{dial_status} (SIP {sip})" if sip else dial_status
        return ProviderEvent(call_id, sid, ENDED, now, _failure(dial_status, sip), detail)
    return None
