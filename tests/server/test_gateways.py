"""The gateways against real protocol peers on loopback: an aiosmtpd sink and the fake Twilio."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from server.messaging import (
    GatewayRefused,
    GatewayUnavailable,
    LogGateway,
    SmtpGateway,
    TwilioSmsGateway,
    build_gateways,
)
from server.messaging.twilio import twilio_signature, valid_twilio_signature
from server.settings import Settings
from tests.server.fakes.twilio_fake import FakeTwilio


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Sink:
    """An SMTP server's message handler: keeps what it accepts, refuses some recipients."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], Message]] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 no such mailbox"
        if address.startswith("busy@"):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(
            (envelope.mail_from, list(envelope.rcpt_tos), message_from_bytes(envelope.content))
        )
        return "250 Message accepted"


@pytest.fixture
def smtp_sink() -> Iterator[tuple[Sink, int]]:
    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


def test_log_gateway_records_and_sends_nothing() -> None:
    gateway = LogGateway()
    first = gateway.send("+13125550123", "Hello")
    second = gateway.send("ana@example.com", "Body", "Subject")
    assert first != second and first.startswith("log-")
    assert [(m.to, m.body, m.subject) for m in gateway.sent] == [
        ("+13125550123", "Hello", None),
        ("ana@example.com", "Body", "Subject"),
    ]


def test_smtp_gateway_delivers_to_the_sink(smtp_sink: tuple[Sink, int]) -> None:
    sink, port = smtp_sink
    gateway = SmtpGateway("127.0.0.1", port, "leads@lakeside.example")
    message_id = gateway.send("pat@example.com", "Hi Pat,\n\nYour Camry is ready.", "Your Camry")
    assert len(sink.messages) == 1
    mail_from, rcpt, message = sink.messages[0]
    assert mail_from == "leads@lakeside.example"
    assert rcpt == ["pat@example.com"]
    assert message["Subject"] == "Your Camry"
    assert message["Message-ID"] == f"<{message_id}>"
    assert message_id.endswith("@lakeside.example")
    body = message.get_payload(decode=True).decode().replace("\r\n", "\n")
    assert body.strip() == "Hi Pat,\n\nYour Camry is ready."


def test_smtp_refusals_are_final_and_4xx_is_retried(smtp_sink: tuple[Sink, int]) -> None:
    _sink, port = smtp_sink
    gateway = SmtpGateway("127.0.0.1", port, "leads@lakeside.example")
    with pytest.raises(GatewayRefused) as refused:
        gateway.send("nobody@example.com", "x", "y")
    assert refused.value.code == "smtp_550"
    assert "no such mailbox" in refused.value.reason
    with pytest.raises(GatewayUnavailable, match="451"):
        gateway.send("busy@example.com", "x", "y")


def test_smtp_unreachable_server_is_unavailable() -> None:
    gateway = SmtpGateway("127.0.0.1", free_port(), "leads@lakeside.example", timeout_s=2)
    with pytest.raises(GatewayUnavailable, match="unreachable"):
        gateway.send("pat@example.com", "x", "y")


def test_smtp_login() -> None:
    sink = Sink()
    port = free_port()

    def authenticator(
        server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
            b"relay",
            b"s3cret",
        )
        return AuthResult(success=ok)

    controller = Controller(
        sink,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticator,
        auth_require_tls=False,
    )
    controller.start()
    try:
        SmtpGateway(
            "127.0.0.1", port, "a@lakeside.example", username="relay", password="s3cret"
        ).send("pat@example.com", "body", "subject")
        assert len(sink.messages) == 1
    finally:
        controller.stop()


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake


def _gateway(fake: FakeTwilio, **overrides: Any) -> TwilioSmsGateway:
    values = {
        "base_url": fake.base_url,
        "account_sid": fake.account_sid,
        "auth_token": fake.auth_token,
        "from_number": fake.numbers[0],
    } | overrides
    return TwilioSmsGateway(**values)


def test_twilio_gateway_sends_through_the_rest_api(twilio: FakeTwilio) -> None:
    sid = _gateway(twilio).send("+13125550123", "Hi Pat, this is Ana from Lakeside Toyota.")
    assert sid.startswith("SM") and len(sid) == 34
    stored = twilio.messages[sid]
    assert stored["to"] == "+13125550123"
    assert stored["from"] == "+13125550100"
    assert stored["body"] == "Hi Pat, this is Ana from Lakeside Toyota."


def test_twilio_21610_is_a_refusal_saying_opted_out(twilio: FakeTwilio) -> None:
    twilio.opted_out.add("+13125550123")
    with pytest.raises(GatewayRefused) as refused:
        _gateway(twilio).send("+13125550123", "Hello")
    assert refused.value.code == "21610"
    assert refused.value.reason == "recipient opted out (replied STOP to this sender)"
    assert twilio.messages == {}


def test_twilio_invalid_number_is_refused(twilio: FakeTwilio) -> None:
    with pytest.raises(GatewayRefused) as refused:
        _gateway(twilio).send("+1312", "Hello")
    assert refused.value.code == "21211"


def test_twilio_outage_and_bad_credentials_keep_the_message_for_later(twilio: FakeTwilio) -> None:
    twilio.unavailable = 1
    with pytest.raises(GatewayUnavailable, match="503"):
        _gateway(twilio).send("+13125550123", "Hello")
    with pytest.raises(GatewayUnavailable, match="credentials"):
        _gateway(twilio, auth_token="wrong").send("+13125550123", "Hello")
    assert _gateway(twilio).send("+13125550123", "Hello").startswith("SM")


def test_twilio_unreachable_is_unavailable() -> None:
    gateway = TwilioSmsGateway(
        f"http://127.0.0.1:{free_port()}", "AC1", "token", "+13125550100", timeout_s=2
    )
    with pytest.raises(GatewayUnavailable, match="unreachable"):
        gateway.send("+13125550123", "Hello")


def test_twilio_signature_matches_twilios_published_vector() -> None:
    # From twilio-ruby's request validator spec (a real Twilio voice webhook).
    params = {
        "ToState": "California", "CalledState": "California", "Direction": "inbound",
        "FromState": "CA", "AccountSid": "ACba8bc05eacf94afdae398e642c9cc32d",
        "Caller": "+14153595711", "CallerZip": "94108", "CallerCountry": "US",
        "From": "+14153595711", "FromCity": "SAN FRANCISCO", "CallerCity": "SAN FRANCISCO",
        "To": "+14157669926", "FromZip": "94108", "FromCountry": "US", "ToCity": "",
        "CallStatus": "ringing", "CalledCity": "", "CallerState": "CA", "CalledZip": "",
        "ToZip": "", "ToCountry": "US", "CallSid": "CA136d09cd59a3c0ec8dbff44da5c03f31",
        "CalledCountry": "US", "Called": "+14157669926", "ApiVersion": "2010-04-01",
        "ApplicationSid": "AP44efecad51364e80b133bb7c07eb8204",
    }  # fmt: skip
    token = "2bd9e9638872de601313dc77410d3b23"
    url = "http://twiliotests.heroku.com/validate/voice"
    assert twilio_signature(token, url, params.items()) == "oVb2kXoVy8GEfwBDjR8bk/ZZ6eA="
    assert valid_twilio_signature(token, url, params.items(), "oVb2kXoVy8GEfwBDjR8bk/ZZ6eA=")
    tampered = params | {"CallStatus": "completed"}
    assert not valid_twilio_signature(token, url, tampered.items(), "oVb2kXoVy8GEfwBDjR8bk/ZZ6eA=")
    assert not valid_twilio_signature("", url, params.items(), "")


def test_gateways_are_chosen_by_settings(twilio: FakeTwilio) -> None:
    demo = build_gateways(Settings(db_url=""))
    assert isinstance(demo.text, LogGateway) and isinstance(demo.email, LogGateway)
    real = build_gateways(
        Settings(
            db_url="",
            email_gateway="smtp",
            smtp_port=2525,
            sms_gateway="twilio",
            twilio_base_url=twilio.base_url,
            twilio_account_sid=twilio.account_sid,
            twilio_auth_token=twilio.auth_token,
            twilio_from_number="+13125550100",
            public_base_url="https://bdc.lakeside.example/",
        )
    )
    assert isinstance(real.email, SmtpGateway) and real.email.port == 2525
    assert isinstance(real.text, TwilioSmsGateway)
    assert real.text.status_callback == "https://bdc.lakeside.example/v1/webhooks/sms/status"
    assert real.for_channel("email") is real.email
    with pytest.raises(ValueError, match="sms_gateway: unknown gateway 'carrier-pigeon'"):
        build_gateways(Settings(db_url="", sms_gateway="carrier-pigeon"))
    with pytest.raises(ValueError, match="needs an account SID"):
        build_gateways(Settings(db_url="", sms_gateway="twilio"))
