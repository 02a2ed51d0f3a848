"""POST /v1/calls: the lead API bridges the agent's phone to the customer through a provider —
a fake Twilio Calls API sending signed status callbacks to the real API on loopback, and a fake
Asterisk manager interface replaying recorded conversations — with compliance re-checked, call
state on the change feed, presence "on call with <lead>", and one CALL activity per call."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
import uvicorn
from sqlalchemy import update

from app.domain.activities import ActivityKind
from server.calls.ami import AmiCallProvider
from server.db import UserRow, transaction
from server.settings import Settings
from tests.server.fakes import MessagingEnv, messaging_env
from tests.server.fakes.ami_fake import FakeAmi
from tests.server.fakes.twilio_calls_fake import FakeTwilioCalls
from tests.server.fakes.twilio_fake import sign

AGENT_PHONE = "+13125550142"


def wait_until(check: Callable[[], Any], timeout_s: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def give_agent_a_phone(env: MessagingEnv, user_id: str = "user-ana") -> None:
    with transaction(env.sessions) as session:
        session.execute(update(UserRow).where(UserRow.id == user_id).values(phone=AGENT_PHONE))


def start_call(env: MessagingEnv, lead_id: str, key: str | None = None, **extra: Any) -> Any:
    body = {"id": str(uuid.uuid4()), "lead_id": lead_id, **extra}
    return env.client.post("/v1/calls", json=body, headers=env.headers("ana", key))


def call_state(env: MessagingEnv, call_id: str) -> dict[str, Any]:
    answer = env.client.get(f"/v1/calls/{call_id}", headers=env.headers("ana"))
    assert answer.status_code == 200, answer.text
    return answer.json()


def ended(env: MessagingEnv, call_id: str) -> dict[str, Any]:
    return wait_until(lambda: (s := call_state(env, call_id))["state"] == "ended" and s)


# --- Twilio ---------------------------------------------------------------------------------------


@contextmanager
def twilio_world(db_url: str, settings: Settings, fake: FakeTwilioCalls) -> Iterator[MessagingEnv]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with messaging_env(
        db_url,
        settings,
        call_provider="twilio",
        twilio_base_url=fake.base_url,
        twilio_account_sid=fake.account_sid,
        twilio_auth_token=fake.auth_token,
        public_base_url=base,
    ) as env:
        give_agent_a_phone(env)
        server = uvicorn.Server(uvicorn.Config(env.app, log_level="warning", lifespan="off"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        wait_until(lambda: server.started)
        try:
            yield env
        finally:
            server.should_exit = True
            thread.join(10)


def test_twilio_bridges_agent_and_customer_and_the_feed_tells_every_state(
    db_url: str, settings: Settings
) -> None:
    with FakeTwilioCalls() as fake, twilio_world(db_url, settings, fake) as env:
        lead_id = env.add_lead()
        answer = start_call(env, lead_id)
        assert answer.status_code == 201, answer.text
        call = answer.json()
        assert call["state"] == "dialing" and call["provider"] == "twilio"
        sent = dict(fake.created[0])
        assert (sent["To"], sent["From"]) == (AGENT_PHONE, "+13125550100")
        assert "+13125550123</Number>" in sent["Twiml"]
        assert [v for k, v in fake.created[0] if k == "StatusCallbackEvent"] == [
            "initiated",
            "ringing",
            "answered",
            "completed",
        ]
        wait_until(lambda: call_state(env, call["id"])["state"] == "answered")
        presence = [c.data for c in env.changes("presence")]
        assert presence[-1]["state"] == "on_call" and presence[-1]["lead_id"] == lead_id
        hung = env.client.post(f"/v1/calls/{call['id']}/hangup", headers=env.headers("ana"))
        assert hung.status_code == 202, hung.text
        final = ended(env, call["id"])
        assert final["cause"] == "completed"
        assert final["duration_s"] >= 1
        assert fake.hung_up == [call["provider_call_id"]]
        assert all(status == 200 for _url, _fields, status in fake.callbacks)
        states = [c.data["state"] for c in env.changes("call") if c.data["id"] == call["id"]]
        assert states == ["dialing", "ringing", "answered", "ended"]
        calls = [a for a in env.activities(lead_id) if a.kind is ActivityKind.CALL]
        assert len(calls) == 1
        assert calls[0].id == call["id"]
        assert calls[0].answered is True and calls[0].duration_s == final["duration_s"]
        assert calls[0].agent_id == "user-ana" and calls[0].phone == "+13125550123"
        assert env.lead_row(lead_id).first_attempt_at is not None
        assert [c.data["state"] for c in env.changes("presence")][-1] == "wrap_up"


@pytest.mark.parametrize(
    ("scenario", "cause"), [("busy", "busy"), ("agent-no-answer", "agent_unreachable")]
)
def test_twilio_busy_and_agent_no_answer_end_with_their_cause(
    db_url: str, settings: Settings, scenario: str, cause: str
) -> None:
    with FakeTwilioCalls(scenario=scenario) as fake, twilio_world(db_url, settings, fake) as env:
        lead_id = env.add_lead()
        call = start_call(env, lead_id).json()
        final = ended(env, call["id"])
        assert final["cause"] == cause
        assert final["duration_s"] == 0
        calls = [a for a in env.activities(lead_id) if a.kind is ActivityKind.CALL]
        assert len(calls) == 1 and calls[0].answered is False


def test_a_forged_status_callback_is_refused_and_changes_nothing(
    db_url: str, settings: Settings
) -> None:
    with FakeTwilioCalls(talk_s=0.1, ring_s=5) as fake, twilio_world(db_url, settings, fake) as env:
        lead_id = env.add_lead()
        call = start_call(env, lead_id).json()
        path = f"/v1/webhooks/calls/twilio?call_id={call['id']}&leg=customer"
        form = {"CallSid": "CAforged", "CallStatus": "completed", "CallDuration": "99"}
        forged = env.client.post(
            path, data=form, headers={"X-Twilio-Signature": sign("wrong-token", "x", form)}
        )
        assert forged.status_code == 403
        assert call_state(env, call["id"])["state"] in ("dialing", "ringing")


def test_compliance_is_checked_again_at_the_server(db_url: str, settings: Settings) -> None:
    with FakeTwilioCalls() as fake, twilio_world(db_url, settings, fake) as env:
        dnc = env.add_lead(do_not_call=True)
        refused = start_call(env, dnc)
        assert refused.status_code == 422
        assert refused.json()["code"] == "DO_NOT_CALL"
        env.set_now(datetime(2025, 6, 4, 3, 30, tzinfo=UTC))  # 22:30 in Chicago
        late = start_call(env, env.add_lead(phone="+13125550177"))
        assert late.status_code == 422
        body = late.json()
        assert body["code"] == "QUIET_HOURS"
        assert "quiet hours" in body["detail"]
        assert body["next_allowed_at"].startswith("2025-06-04T08:00")
        assert fake.created == []
        assert env.changes("call") == []


def test_a_retried_request_replays_and_dials_once(db_url: str, settings: Settings) -> None:
    with FakeTwilioCalls(talk_s=0.2) as fake, twilio_world(db_url, settings, fake) as env:
        lead_id = env.add_lead()
        key = str(uuid.uuid4())
        body = {"id": str(uuid.uuid4()), "lead_id": lead_id}
        first = env.client.post("/v1/calls", json=body, headers=env.headers("ana", key))
        again = env.client.post("/v1/calls", json=body, headers=env.headers("ana", key))
        assert first.status_code == again.status_code == 201
        assert again.json() == first.json()
        assert again.headers.get("Idempotent-Replayed") == "true"
        assert len(fake.created) == 1
        missing = env.client.post(
            "/v1/calls",
            json={"id": str(uuid.uuid4()), "lead_id": lead_id},
            headers={"Authorization": env.headers("ana")["Authorization"]},
        )
        assert missing.status_code == 400
        ended(env, body["id"])


def test_no_provider_configured_says_so(db_url: str, settings: Settings) -> None:
    with messaging_env(db_url, settings) as env:
        give_agent_a_phone(env)
        answer = start_call(env, env.add_lead())
        assert answer.status_code == 503
        assert "call_provider" in answer.json()["detail"]


def test_agents_only_see_their_own_calls(db_url: str, settings: Settings) -> None:
    with FakeTwilioCalls(talk_s=0.2) as fake, twilio_world(db_url, settings, fake) as env:
        call = start_call(env, env.add_lead()).json()
        other = env.client.get(f"/v1/calls/{call['id']}", headers=env.headers("ben"))
        assert other.status_code == 404
        manager = env.client.get(f"/v1/calls/{call['id']}", headers=env.headers("mia"))
        assert manager.status_code == 200
        ended(env, call["id"])


# --- Asterisk AMI ---------------------------------------------------------------------------------


@contextmanager
def ami_world(
    db_url: str, settings: Settings, fake: FakeAmi, secret: str = "ami-secret"
) -> Iterator[MessagingEnv]:
    with messaging_env(db_url, settings, call_provider="ami") as env:
        give_agent_a_phone(env)
        from server.calls.service import sink_for

        provider = AmiCallProvider("127.0.0.1", fake.port, "bdc", secret, sink_for(env.app))
        env.app.state.call_provider = provider
        try:
            yield env
        finally:
            provider.close()


def test_ami_originate_events_and_hang_up(db_url: str, settings: Settings) -> None:
    with FakeAmi("answered") as fake, ami_world(db_url, settings, fake) as env:
        lead_id = env.add_lead()
        answer = start_call(env, lead_id)
        assert answer.status_code == 201, answer.text
        call = answer.json()
        login, originate = fake.actions[0], fake.actions[1]
        assert (login["Action"], login["Username"]) == ("Login", "bdc")
        assert originate["Action"] == "Originate"
        assert originate["ActionID"] == call["id"]
        assert originate["Async"] == "true"
        assert originate["Channel"] == f"PJSIP/{AGENT_PHONE}"
        assert originate["Exten"] == "+13125550123"
        wait_until(lambda: call_state(env, call["id"])["state"] == "answered")
        time.sleep(1.1)
        hung = env.client.post(f"/v1/calls/{call['id']}/hangup", headers=env.headers("ana"))
        assert hung.status_code == 202
        assert fake.actions[-1]["Action"] == "Hangup"
        assert fake.actions[-1]["Channel"] == f"{call['id']}-a"
        final = ended(env, call["id"])
        assert final["cause"] == "agent_hangup"
        assert final["detail"].startswith("Q.850 16")
        assert final["duration_s"] >= 1
        states = [c.data["state"] for c in env.changes("call") if c.data["id"] == call["id"]]
        assert states == ["dialing", "ringing", "answered", "ended"]
        calls = [a for a in env.activities(lead_id) if a.kind is ActivityKind.CALL]
        assert len(calls) == 1 and calls[0].answered and calls[0].duration_s == final["duration_s"]


@pytest.mark.parametrize(
    ("scenario", "cause"), [("busy", "busy"), ("agent_no_answer", "agent_unreachable")]
)
def test_ami_busy_and_agent_no_answer(
    db_url: str, settings: Settings, scenario: str, cause: str
) -> None:
    with FakeAmi(scenario) as fake, ami_world(db_url, settings, fake) as env:
        lead_id = env.add_lead()
        call = start_call(env, lead_id).json()
        final = ended(env, call["id"])
        assert final["cause"] == cause
        calls = [a for a in env.activities(lead_id) if a.kind is ActivityKind.CALL]
        assert len(calls) == 1 and calls[0].answered is False


def test_ami_login_refused_is_a_502_and_no_attempt(db_url: str, settings: Settings) -> None:
    with FakeAmi("answered") as fake, ami_world(db_url, settings, fake, secret="wrong") as env:
        lead_id = env.add_lead()
        answer = start_call(env, lead_id)
        assert answer.status_code == 502
        assert "login refused" in answer.json()["detail"]
        final = call_state(env, answer.json()["call_id"])
        assert (final["state"], final["cause"]) == ("ended", "failed")
