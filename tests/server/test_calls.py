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
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import uvicorn
from sqlalchemy import update

from app.domain.activities import ActivityKind
from server.calls.ami import AmiCallProvider
from server.db import UserRow, transaction
from server.settings import Settings
from tests.server.fakes import NOW, MessagingEnv, messaging_env
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
def twilio_world(
    db_url: str, settings: Settings, fake: FakeTwilioCalls, **overrides: Any
) -> Iterator[MessagingEnv]:
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
        **overrides,
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
        assert final["cause"] == "agent_hangup"  # the <Dial action> said the agent's side left
        assert final["answered_by"] == "human"
        assert final["duration_s"] >= 1
        assert fake.hung_up == [call["provider_call_id"]]
        assert all(status == 200 for _url, _fields, status in fake.callbacks)
        states = [c.data["state"] for c in env.changes("call") if c.data["id"] == call["id"]]
        # The detection's verdict comes as a second "answered" change carrying answered_by.
        assert states == ["dialing", "ringing", "answered", "answered", "ended"]
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

        provider = AmiCallProvider(
            "127.0.0.1", fake.port, "bdc", secret, sink_for(env.app), clock=lambda: env.now
        )
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
        env.set_now(env.now + timedelta(seconds=5))  # the provider stamps events with the app clock
        hung = env.client.post(f"/v1/calls/{call['id']}/hangup", headers=env.headers("ana"))
        assert hung.status_code == 202
        assert fake.actions[-1]["Action"] == "Hangup"
        assert fake.actions[-1]["Channel"] == f"{call['id']}-a"
        final = ended(env, call["id"])
        assert final["cause"] == "agent_hangup"
        assert final["detail"].startswith("Q.850 16")
        assert final["duration_s"] == 5
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


def test_twilio_requests_machine_detection_on_the_customer_leg_and_a_dial_action(
    db_url: str, settings: Settings
) -> None:
    with FakeTwilioCalls(talk_s=0.3) as fake, twilio_world(db_url, settings, fake) as env:
        call = start_call(env, env.add_lead()).json()
        noun = fake.numbers[0]
        assert noun["machineDetection"] == "Enable"
        assert noun["amdStatusCallback"].endswith(f"call_id={call['id']}&leg=amd")
        assert "MachineDetection" not in dict(fake.created[0])  # not on the agent's own phone
        assert f"call_id={call['id']}&amp;leg=dial" in dict(fake.created[0])["Twiml"]
        final = ended(env, call["id"])
        # Nobody pressed hang-up: the customer's side ended the talk.
        assert final["cause"] == "customer_hangup"
        assert final["answered_by"] == "human"


def test_twilio_a_machine_answering_ends_as_voicemail(db_url: str, settings: Settings) -> None:
    with (
        FakeTwilioCalls(scenario="voicemail", talk_s=0.3) as fake,
        twilio_world(db_url, settings, fake) as env,
    ):
        lead_id = env.add_lead()
        call = start_call(env, lead_id).json()
        final = ended(env, call["id"])
        assert (final["cause"], final["answered_by"]) == ("voicemail", "machine_start")
        assert "machine_start" in final["detail"]
        amd = [c.data for c in env.changes("call") if c.data.get("answered_by")]
        assert amd and amd[0]["state"] == "answered"  # the workstation hears it before the end
        calls = [a for a in env.activities(lead_id) if a.kind is ActivityKind.CALL]
        assert len(calls) == 1 and "voicemail" in (calls[0].body or "")


def test_parse_status_maps_the_dial_action_and_amd() -> None:
    from server.calls.twilio import parse_status

    now = datetime(2025, 6, 3, 15, 0, tzinfo=UTC)
    dial = {"DialCallStatus": "completed", "DialCallDuration": "42", "DialCallSid": "CAx"}
    agent = parse_status({**dial, "CallStatus": "completed"}, "c1", "dial", now)
    customer = parse_status({**dial, "CallStatus": "in-progress"}, "c1", "dial", now)
    assert agent is not None and customer is not None
    assert (agent.cause, agent.duration_s) == ("agent_hangup", 42)
    assert customer.cause == "customer_hangup"
    busy = parse_status({"DialCallStatus": "busy", "CallStatus": "in-progress"}, "c", "dial", now)
    assert busy is not None and busy.cause == "busy"
    machine = parse_status({"AnsweredBy": "machine_end_beep"}, "c1", "amd", now)
    assert machine is not None and machine.answered_by == "machine_end_beep"
    assert parse_status({"AnsweredBy": ""}, "c1", "amd", now) is None
    # The customer leg's own "completed" waits for the Dial action, which tells who hung up.
    assert parse_status({"CallStatus": "completed"}, "c1", "customer", now) is None


# --- Calls the provider stops reporting on -------------------------------------------------------


def _run_scheduler(env: MessagingEnv, owner: str = "test-owner", *, beat: bool = True) -> int:
    """The scheduler's tick at env.now (after the agent's PC sent its heartbeat, as it does every
    30 s: an agent silent for longer is offline and keeps no wrap-up)."""
    from server.scheduler import run_due_jobs

    if beat:
        answer = env.client.post("/v1/presence/heartbeat", headers=env.headers("ana"))
        assert answer.status_code in (200, 204), answer.text

    return run_due_jobs(env.app, env.now, owner)


def _watch_jobs(env: MessagingEnv) -> list[Any]:
    return [j for j in env.jobs() if j.kind == "call_watch"]


@contextmanager
def quiet_world(db_url: str, settings: Settings, **overrides: Any) -> Iterator[MessagingEnv]:
    """Calls opened straight through the service, with no provider: nothing ever reports."""
    with messaging_env(db_url, settings, **overrides) as env:
        give_agent_a_phone(env)
        yield env


def _open_by_hand(env: MessagingEnv) -> str:
    """A call opened as POST /v1/calls does, whose provider will never say a word."""
    from server.auth import Principal, Role
    from server.calls.service import open_call
    from server.db import LeadRow

    lead_id = env.add_lead()
    call_id = str(uuid.uuid4())
    customer_phone = lead_of_phone(env, lead_id)
    with transaction(env.sessions) as session:
        lead_row = session.get(LeadRow, lead_id)
        assert lead_row is not None
        open_call(
            session,
            Principal("user-ana", Role.AGENT, "lakeside", "ana"),
            lead_row,
            call_id=call_id,
            provider="twilio",
            agent_phone=AGENT_PHONE,
            customer_phone=customer_phone,
            now=env.now,
            timeout=env.app.state.settings.heartbeat_timeout,
            watch_after=env.app.state.settings.call_setup_timeout,
        )
    return call_id


def lead_of_phone(env: MessagingEnv, lead_id: str) -> str:
    phone = env.lead(lead_id).primary_phone
    assert phone is not None and phone.e164
    return phone.e164


def test_a_call_whose_callbacks_never_come_is_ended_as_failed_once(
    db_url: str, settings: Settings
) -> None:
    with (
        FakeTwilioCalls(scenario="silent") as fake,
        twilio_world(
            db_url,
            settings,
            fake,
            call_setup_timeout=timedelta(minutes=2),
            heartbeat_timeout=timedelta(hours=5),  # the agent's PC keeps beating meanwhile
        ) as env,
    ):
        lead_id = env.add_lead()
        call = start_call(env, lead_id).json()
        assert call["state"] == "dialing"
        presence = [c.data for c in env.changes("presence")]
        assert presence[-1]["state"] == "on_call"
        [job] = _watch_jobs(env)
        assert job.due_at == NOW + timedelta(minutes=2)
        env.set_now(NOW + timedelta(minutes=1, seconds=59))
        _run_scheduler(env)
        assert call_state(env, call["id"])["state"] == "dialing"
        env.set_now(NOW + timedelta(minutes=2, seconds=1))
        _run_scheduler(env)
        final = call_state(env, call["id"])
        assert (final["state"], final["cause"]) == ("ended", "failed")
        assert "ended by the server" in final["detail"]
        assert final["ended_at"].startswith("2025-06-03T15:02:01")
        _run_scheduler(env)  # nothing left to do
        calls = [a for a in env.activities(lead_id) if a.kind is ActivityKind.CALL]
        assert len(calls) == 1 and calls[0].answered is False
        assert [c.data["state"] for c in env.changes("presence")][-1] == "wrap_up"
        [job] = _watch_jobs(env)
        assert job.result.startswith("ended as failed")


def test_a_ringing_call_is_watched_from_when_it_started_ringing(
    db_url: str, settings: Settings
) -> None:
    with quiet_world(db_url, settings) as env:  # no provider: events come by hand
        from server.calls import ProviderEvent
        from server.calls.service import apply_event
        from server.rules import get_rules

        call = _open_by_hand(env)
        env.set_now(NOW + timedelta(seconds=90))
        apply_event(
            env.sessions,
            get_rules(env.app),
            env.app.state.settings,
            ProviderEvent(call, None, "ringing", env.now),
        )
        env.set_now(NOW + timedelta(minutes=2, seconds=30))
        _run_scheduler(env)
        assert call_state(env, call)["state"] == "ringing"  # rang only 60 s so far
        stages = sorted(j.dedupe_key for j in _watch_jobs(env))
        assert stages == [f"call_watch:{call}:dialing", f"call_watch:{call}:ringing"]
        env.set_now(NOW + timedelta(minutes=3, seconds=31))
        _run_scheduler(env)
        final = call_state(env, call)
        assert (final["state"], final["cause"]) == ("ended", "failed")


def test_an_answered_call_with_no_end_is_ended_as_lost_after_the_maximum(
    db_url: str, settings: Settings
) -> None:
    with quiet_world(
        db_url, settings, call_max_duration=timedelta(hours=4), heartbeat_timeout=timedelta(hours=5)
    ) as env:
        from server.calls import ProviderEvent
        from server.calls.service import apply_event
        from server.rules import get_rules

        call = _open_by_hand(env)
        apply = apply_event
        rules, conf = get_rules(env.app), env.app.state.settings
        apply(env.sessions, rules, conf, ProviderEvent(call, None, "answered", env.now))
        env.set_now(NOW + timedelta(minutes=5))
        _run_scheduler(env)
        assert call_state(env, call)["state"] == "answered"
        env.set_now(NOW + timedelta(hours=4, seconds=1))
        _run_scheduler(env)
        final = call_state(env, call)
        assert (final["state"], final["cause"]) == ("ended", "lost")
        assert final["duration_s"] == 4 * 3600 + 1
        # A late "ended" from the provider changes nothing: the call ended once.
        apply(env.sessions, rules, conf, ProviderEvent(call, None, "ended", env.now, "busy"))
        assert call_state(env, call)["cause"] == "lost"
        states = [c.data["state"] for c in env.changes("call") if c.data["id"] == call]
        assert states == ["dialing", "answered", "ended"]


def test_the_watch_runs_exactly_once_across_processes(db_url: str, settings: Settings) -> None:
    with quiet_world(db_url, settings) as env:
        calls = [_open_by_hand(env) for _ in range(6)]
        env.set_now(NOW + timedelta(minutes=3))
        results: list[int] = []
        threads = [
            threading.Thread(
                target=lambda n=n: results.append(_run_scheduler(env, f"p{n}", beat=False))
            )
            for n in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sum(results) == len(calls)
        for call in calls:
            assert call_state(env, call)["cause"] == "failed"
            ends = [c for c in env.changes("call") if c.data["id"] == call]
            assert [c.data["state"] for c in ends] == ["dialing", "ended"]
            lead_id = call_state(env, call)["lead_id"]
            assert len([a for a in env.activities(lead_id) if a.kind is ActivityKind.CALL]) == 1


def test_ami_connection_lost_mid_call_ends_it_as_lost(db_url: str, settings: Settings) -> None:
    with FakeAmi("answered", talk_s=30) as fake, ami_world(db_url, settings, fake) as env:
        lead_id = env.add_lead()
        call = start_call(env, lead_id).json()
        wait_until(lambda: call_state(env, call["id"])["state"] == "answered")
        fake.drop_connections()
        final = ended(env, call["id"])
        assert final["cause"] == "lost"
        assert "connection lost" in final["detail"]
        calls = [a for a in env.activities(lead_id) if a.kind is ActivityKind.CALL]
        assert len(calls) == 1 and calls[0].answered is True
        assert [c.data["state"] for c in env.changes("presence")][-1] == "wrap_up"
        # The next call logs in again on a new connection.
        again = start_call(env, env.add_lead(phone="+13125550177"))
        assert again.status_code == 201, again.text
        assert [a["Action"] for a in fake.actions].count("Login") == 2
        fake.drop_connections()
        ended(env, again.json()["id"])
