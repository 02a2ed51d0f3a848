"""Texts through Twilio's REST API (or any service that speaks it), and checking its webhooks.

POST {base}/2010-04-01/Accounts/{sid}/Messages.json, form-encoded, HTTP basic auth (account SID
and auth token). A 201 carries the message SID; a 4xx carries Twilio's numeric error code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable

import httpx

from server.messaging.gateways import GatewayRefused, GatewayUnavailable

# Twilio error codes that say this message can never be delivered, in words for the agent.
REFUSAL_REASONS = {
    "21610": "recipient opted out (replied STOP to this sender)",
    "21211": "the 'To' number is not a valid phone number",
    "21612": "the carrier cannot route texts to this number",
    "21614": "the number cannot receive texts (not a mobile number)",
    "21408": "texting to this region is not enabled on the account",
}
OPTED_OUT_CODE = "21610"


class TwilioSmsGateway:
    name = "twilio"

    def __init__(
        self,
        base_url: str,
        account_sid: str,
        auth_token: str,
        from_number: str,
        *,
        status_callback: str = "",
        timeout_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not account_sid or not auth_token or not from_number:
            raise ValueError("the Twilio gateway needs an account SID, an auth token and a number")
        self.account_sid = account_sid
        self.from_number = from_number
        self.status_callback = status_callback
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            auth=(account_sid, auth_token),
            timeout=timeout_s,
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def send(self, to: str, body: str, subject: str | None = None) -> str:
        form = {"To": to, "From": self.from_number, "Body": body}
        if self.status_callback:
            form["StatusCallback"] = self.status_callback
        path = f"/2010-04-01/Accounts/{self.account_sid}/Messages.json"
        try:
            response = self._client.post(path, data=form)
        except httpx.HTTPError as exc:
            raise GatewayUnavailable(f"texting service unreachable: {exc}") from exc
        if response.status_code in (200, 201):
            sid = _json(response).get("sid")
            if not isinstance(sid, str) or not sid:
                raise GatewayUnavailable("texting service answered without a message SID")
            return sid
        error = _json(response)
        code = str(error.get("code") or response.status_code)
        message = str(error.get("message") or response.reason_phrase)
        if response.status_code in (401, 403):
            # Wrong credentials are a setup problem, not this message's: keep it queued.
            raise GatewayUnavailable(f"texting service refused our credentials ({code} {message})")
        if response.status_code == 429 or response.status_code >= 500:
            raise GatewayUnavailable(f"texting service busy ({response.status_code} {message})")
        raise GatewayRefused(code, REFUSAL_REASONS.get(code, message))


def _json(response: httpx.Response) -> dict[str, object]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def twilio_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """Twilio's X-Twilio-Signature: base64(HMAC-SHA1(token, url + each key+value, keys sorted))."""
    payload = url + "".join(f"{key}{value}" for key, value in sorted(params))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def valid_twilio_signature(
    auth_token: str, url: str, params: Iterable[tuple[str, str]], signature: str
) -> bool:
    if not auth_token or not signature:
        return False
    expected = twilio_signature(auth_token, url, params)
    return hmac.compare_digest(expected.encode(), signature.encode())
