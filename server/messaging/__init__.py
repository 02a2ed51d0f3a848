"""Outbound messaging: one gateway interface (log, SMTP, Twilio), chosen by the settings."""

from __future__ import annotations

import threading
from typing import Any

from server.messaging.gateways import (
    Gateway,
    GatewayRefused,
    Gateways,
    GatewayUnavailable,
    LogGateway,
    LoggedMessage,
)
from server.messaging.smtp import SmtpGateway
from server.messaging.twilio import TwilioSmsGateway
from server.settings import Settings

__all__ = [
    "Gateway",
    "GatewayRefused",
    "GatewayUnavailable",
    "Gateways",
    "LogGateway",
    "LoggedMessage",
    "SmtpGateway",
    "TwilioSmsGateway",
    "build_gateways",
    "gateways_of",
]

STATUS_CALLBACK_PATH = "/v1/webhooks/sms/status"


def build_gateways(settings: Settings) -> Gateways:
    """The gateways `settings` name: email_gateway log|smtp, sms_gateway log|twilio."""
    email: Gateway
    text: Gateway
    if settings.email_gateway == "log":
        email = LogGateway("email-log")
    elif settings.email_gateway == "smtp":
        email = SmtpGateway(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_sender,
            username=settings.smtp_username,
            password=settings.smtp_password,
            starttls=settings.smtp_starttls,
        )
    else:
        raise ValueError(f"email_gateway: unknown gateway {settings.email_gateway!r} (log, smtp)")
    if settings.sms_gateway == "log":
        text = LogGateway("sms-log")
    elif settings.sms_gateway == "twilio":
        callback = ""
        if settings.public_base_url:
            callback = settings.public_base_url.rstrip("/") + STATUS_CALLBACK_PATH
        text = TwilioSmsGateway(
            settings.twilio_base_url,
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            settings.twilio_from_number,
            status_callback=callback,
        )
    else:
        raise ValueError(f"sms_gateway: unknown gateway {settings.sms_gateway!r} (log, twilio)")
    return Gateways(text=text, email=email)


_build_lock = threading.Lock()


def gateways_of(app: Any) -> Gateways:
    """The app's gateways, built from its settings on first use (tests may set app.state.gateways
    beforehand to substitute their own)."""
    state = app.state
    gateways = getattr(state, "gateways", None)
    if gateways is None:
        with _build_lock:
            gateways = getattr(state, "gateways", None)
            if gateways is None:
                gateways = build_gateways(state.settings)
                state.gateways = gateways
    assert isinstance(gateways, Gateways)
    return gateways
