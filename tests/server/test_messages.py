"""POST /v1/messages: compliance re-checked at send time, gateways, queueing and idempotency."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app.domain.activities import ActivityKind, Direction
from app.domain.leads import LeadStatus
from server.db import ContactBlockRow, JobRow, transaction
from server.messaging import GatewayUnavailable, LogGateway, TwilioSmsGateway
from server.scheduler import run_due_jobs
from server.settings import Settings
from tests.server.fakes import NOW, STORE_NUMBER, MessagingEnv, messaging_env
from tests.server.fakes.twilio_fake import FakeTwilio
from tests.server.test_gateways import Sink, free_port


@pytest.fixture
def env(db_url: str, settings: Settings) -> Iterator[MessagingEnv]:
    with messaging_env(db_url, settings) as environment:
        yield environment


def text(
    lead_id: str, body: str = "Hi Pat, it's Ana. Is 3 PM good for a test drive?", **extra: object
) -> dict[str, object]:
    return {"id": str(uuid.uuid4()), "lead_id": lead_id, "channel": "text", "body": body} | extra


def email(lead_id: str, **extra: object) -> dict[str, object]:
    return {
        "id": str(uuid.uuid4()),
        "lead_id": lead_id,
        "channel": "email",
        "subject": "Your 2024 Camry SE",
        "body": "Hi Pat,\n\nHere are the details you asked for.",
    } | extra


def test_text_is_sent_and_recorded_as_an_outbound_activity(env: MessagingEnv) -> None:
    lead_id = env.add_lead()
    payload = text(lead_id)
    answer = env.client.post("/v1/messages", json=payload, headers=env.headers("ana"))
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["id"] == payload["id"]
    assert body["status"] == "sent"
    assert body["to"] == "+13125550123"
    assert body["sent_at"] == NOW.isoformat()
    [sent] = env.sent_texts()
    assert (sent.to, sent.body, sent.subject) == ("+13125550123", payload["body"], None)
    assert body["provider_id"] == sent.provider_id
    [activity] = [a for a in env.activities(lead_id) if a.kind is ActivityKind.TEXT]
    assert activity.id == payload["id"]
    assert activity.direction is Direction.OUTBOUND
    assert activity.agent_id == "user-ana" and not activity.automatic
    assert activity.phone == "+13125550123"
    assert activity.is_agent_attempt
    row = env.lead_row(lead_id)
    assert row.first_attempt_at == NOW
    assert env.lead(lead_id).status is LeadStatus.WORKING
    statuses = [c.data["status"] for c in env.changes("message")]
    assert statuses == ["queued", "sent"]
    assert [c.entity_id for c in env.changes("activity")] == [payload["id"]]
    assert env.jobs(lead_id)[0].result.startswith("sent via sms-log")


def test_quiet_hours_refuse_with_the_next_allowed_time(env: MessagingEnv) -> None:
    lead_id = env.add_lead()
    env.set_now(datetime(2025, 6, 4, 3, 30, tzinfo=UTC))  # 22:30 in Chicago
    answer = env.client.post("/v1/messages", json=text(lead_id), headers=env.headers("ana"))
    assert answer.status_code == 422
    body = answer.json()
    assert body["code"] == "QUIET_HOURS"
    assert body["detail"].startswith("quiet hours: it is 22:30 in America/Chicago")
    assert body["next_allowed_at"] == "2025-06-04T08:00:00-05:00"
    assert env.messages() == [] and env.sent_texts() == []
    # E-mail has no calling window.
    assert (
        env.client.post("/v1/messages", json=email(lead_id), headers=env.headers("ana")).status_code
        == 201
    )


def test_opted_out_lead_gets_nothing_on_any_channel(env: MessagingEnv) -> None:
    lead_id = env.add_lead(opted_out_at=NOW - timedelta(days=1))
    for payload in (text(lead_id), email(lead_id)):
        answer = env.client.post("/v1/messages", json=payload, headers=env.headers("ana"))
        assert answer.status_code == 422
        assert answer.json()["code"] == "OPTED_OUT"
        assert "opted out on 2025-06-02" in answer.json()["detail"]
    assert env.messages() == []


def test_number_on_the_opt_out_list_blocks_every_lead_that_has_it(env: MessagingEnv) -> None:
    lead_id = env.add_lead()
    with transaction(env.sessions) as session:
        session.add(
            ContactBlockRow(
                store_id="lakeside", address="+13125550123", kind="opt_out", source="test"
            )
        )
    answer = env.client.post("/v1/messages", json=email(lead_id), headers=env.headers("ana"))
    assert answer.status_code == 422
    assert answer.json()["code"] == "OPTED_OUT"


def test_no_consent_and_do_not_call(env: MessagingEnv) -> None:
    no_consent = env.add_lead(text_consent=False)
    answer = env.client.post("/v1/messages", json=text(no_consent), headers=env.headers("ana"))
    assert answer.status_code == 422
    assert answer.json()["code"] == "NO_CONSENT"
    on_dnc = env.add_lead(phone="+13125550177")
    with transaction(env.sessions) as session:
        session.add(
            ContactBlockRow(
                store_id="lakeside", address="+13125550177", kind="dnc", source="national registry"
            )
        )
    answer = env.client.post("/v1/messages", json=text(on_dnc), headers=env.headers("ana"))
    assert answer.status_code == 422
    assert answer.json()["code"] == "DO_NOT_CALL"
    assert [r["code"] for r in answer.json()["reasons"]] == ["DO_NOT_CALL"]
    # Do-not-call stops calls and texts, not e-mail.
    assert (
        env.client.post("/v1/messages", json=email(on_dnc), headers=env.headers("ana")).status_code
        == 201
    )


def test_marketing_template_needs_marketing_consent(env: MessagingEnv) -> None:
    lead_id = env.add_lead()  # informational text consent only
    payload = text(
        lead_id,
        body="Pat, your trade could be worth more than you think.",
        template_id="equity_text",
    )
    answer = env.client.post("/v1/messages", json=payload, headers=env.headers("ana"))
    assert answer.status_code == 422
    assert answer.json()["code"] == "NO_CONSENT"
    assert "marketing" in answer.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        "Hi [first name?], the Camry is ready.",
        "Hi {first_name}, the Camry is ready.",
        "Hi Pat, see you at [appointment time?]",
    ],
)
def test_unfilled_merge_fields_are_refused(env: MessagingEnv, body: str) -> None:
    lead_id = env.add_lead()
    answer = env.client.post(
        "/v1/messages", json=text(lead_id, body=body), headers=env.headers("ana")
    )
    assert answer.status_code == 422
    assert answer.json()["code"] == "UNFILLED_MERGE_FIELDS"
    assert env.messages() == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id": "not-a-uuid"}, "id"),
        ({"channel": "fax"}, "channel"),
        ({"body": ""}, "body"),
        ({"body": "   "}, "body"),
        ({"subject": "Hello"}, "subject"),
        ({"body": "x" * 1601}, "body"),
        ({"template_id": "no_such_template"}, "template_id"),
        ({"template_id": "ack_email"}, "template_id"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_input_names_the_field_and_stores_nothing(
    env: MessagingEnv, change: dict[str, object], field: str
) -> None:
    lead_id = env.add_lead()
    answer = env.client.post(
        "/v1/messages", json=text(lead_id) | change, headers=env.headers("ana")
    )
    assert answer.status_code == 422, answer.text
    assert field in answer.text
    assert env.messages() == []


def test_email_needs_a_subject(env: MessagingEnv) -> None:
    lead_id = env.add_lead()
    answer = env.client.post(
        "/v1/messages", json=email(lead_id, subject=" "), headers=env.headers("ana")
    )
    assert answer.status_code == 422
    assert "subject" in answer.json()["detail"]


def test_who_may_send(env: MessagingEnv) -> None:
    lead_id = env.add_lead(agent="user-ana")
    pool_lead = env.add_lead(agent=None, phone="+13125550124")
    assert env.client.post("/v1/messages", json=text(lead_id)).status_code == 401
    for username in ("ben", "zed", "rita"):  # another agent's lead, another store's users
        answer = env.client.post("/v1/messages", json=text(lead_id), headers=env.headers(username))
        assert answer.status_code == 404, username
    api_key = {"Authorization": f"Bearer {_api_key(env)}", "Idempotency-Key": str(uuid.uuid4())}
    assert env.client.post("/v1/messages", json=text(lead_id), headers=api_key).status_code == 403
    assert (
        env.client.post("/v1/messages", json=text(lead_id), headers=env.headers("mia")).status_code
        == 201
    )
    assert (
        env.client.post(
            "/v1/messages", json=text(pool_lead), headers=env.headers("ben")
        ).status_code
        == 201
    )
    listed = env.client.get("/v1/messages", params={"lead_id": lead_id}, headers=env.headers("zed"))
    assert listed.status_code == 404
    assert env.client.get("/v1/messages", params={"lead_id": lead_id}).status_code == 401


def _api_key(env: MessagingEnv) -> str:
    from server.auth import create_api_key

    with transaction(env.sessions) as session:
        return create_api_key(session, "Test provider", "lakeside")


def test_idempotency_key_is_required_and_replays(env: MessagingEnv) -> None:
    lead_id = env.add_lead()
    payload = text(lead_id)
    headers = env.headers("ana")
    no_key = {"Authorization": headers["Authorization"]}
    answer = env.client.post("/v1/messages", json=payload, headers=no_key)
    assert answer.status_code == 400
    assert "Idempotency-Key" in answer.json()["detail"]
    first = env.client.post("/v1/messages", json=payload, headers=headers)
    again = env.client.post("/v1/messages", json=payload, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    # The same message id under a new key: still one message, sent once.
    third = env.client.post("/v1/messages", json=payload, headers=env.headers("ana"))
    assert third.status_code == 201 and third.json()["id"] == payload["id"]
    assert len(env.sent_texts()) == 1 and len(env.messages()) == 1
    reused = env.client.post(
        "/v1/messages", json=payload | {"body": "Something else"}, headers=env.headers("ana")
    )
    assert reused.status_code == 409
    assert "already used" in reused.json()["detail"]


def test_messages_of_a_lead_are_listed(env: MessagingEnv) -> None:
    lead_id = env.add_lead()
    first = text(lead_id)
    env.client.post("/v1/messages", json=first, headers=env.headers("ana"))
    env.set_now(NOW + timedelta(minutes=1))
    env.client.post("/v1/messages", json=email(lead_id), headers=env.headers("ana"))
    listed = env.client.get("/v1/messages", params={"lead_id": lead_id}, headers=env.headers("ana"))
    assert listed.status_code == 200
    assert [(m["channel"], m["status"]) for m in listed.json()] == [
        ("text", "sent"),
        ("email", "sent"),
    ]
    assert listed.json()[0]["id"] == first["id"]


class DownGateway:
    """A gateway that is unreachable until told otherwise."""

    name = "down"

    def __init__(self) -> None:
        self.up = False
        self.log = LogGateway("recovered")

    def send(self, to: str, body: str, subject: str | None = None) -> str:
        if not self.up:
            raise GatewayUnavailable("connection refused")
        return self.log.send(to, body, subject)


def test_gateway_down_keeps_the_message_queued_and_the_scheduler_sends_it(
    db_url: str, settings: Settings
) -> None:
    gateway = DownGateway()
    with messaging_env(db_url, settings, texts=gateway) as env:
        lead_id = env.add_lead()
        payload = text(lead_id)
        answer = env.client.post("/v1/messages", json=payload, headers=env.headers("ana"))
        assert answer.status_code == 202
        assert answer.json()["status"] == "queued"
        [job] = env.jobs(lead_id)
        assert (job.kind, job.attempts, job.done_at) == ("send_message", 1, None)
        assert job.due_at == NOW + timedelta(seconds=30)
        assert "connection refused" in job.result
        assert [a for a in env.activities(lead_id) if a.kind is ActivityKind.TEXT] == []
        # Not due yet: nothing happens.
        assert run_due_jobs(env.app, NOW + timedelta(seconds=10), "worker-1") == 0
        gateway.up = True
        later = NOW + timedelta(seconds=31)
        assert run_due_jobs(env.app, later, "worker-1") == 1
        [message] = env.messages(lead_id)
        assert (message.status, message.sent_at) == ("sent", later)
        assert len(gateway.log.sent) == 1
        [activity] = [a for a in env.activities(lead_id) if a.kind is ActivityKind.TEXT]
        assert activity.id == payload["id"] and activity.at == later
        assert run_due_jobs(env.app, later + timedelta(hours=1), "worker-1") == 0


def test_queued_message_is_rechecked_when_it_is_finally_sent(
    db_url: str, settings: Settings
) -> None:
    gateway = DownGateway()
    with messaging_env(db_url, settings, texts=gateway) as env:
        lead_id = env.add_lead()
        env.set_now(datetime(2025, 6, 4, 1, 55, tzinfo=UTC))  # 20:55 in Chicago
        assert (
            env.client.post(
                "/v1/messages", json=text(lead_id), headers=env.headers("ana")
            ).status_code
            == 202
        )
        gateway.up = True
        assert run_due_jobs(env.app, datetime(2025, 6, 4, 2, 1, tzinfo=UTC), "w") == 1  # 21:01
        [message] = env.messages(lead_id)
        assert message.status == "refused"
        assert message.reason.startswith("QUIET_HOURS: quiet hours: it is 21:01")
        assert gateway.log.sent == []


def test_twilio_refusal_21610_is_an_attempt_that_did_not_happen(
    db_url: str, settings: Settings
) -> None:
    with FakeTwilio(numbers=(STORE_NUMBER,)) as twilio:
        twilio.opted_out.add("+13125550123")
        gateway = TwilioSmsGateway(
            twilio.base_url, twilio.account_sid, twilio.auth_token, STORE_NUMBER
        )
        with messaging_env(db_url, settings, texts=gateway) as env:
            lead_id = env.add_lead()
            answer = env.client.post("/v1/messages", json=text(lead_id), headers=env.headers("ana"))
            assert answer.status_code == 422
            assert answer.json()["code"] == "OPTED_OUT"
            assert "recipient opted out" in answer.json()["detail"]
            [message] = env.messages(lead_id)
            assert message.status == "refused"
            assert message.reason.endswith("(provider code 21610)")
            kinds = [a.kind for a in env.activities(lead_id)]
            assert ActivityKind.TEXT not in kinds  # not counted as an attempt
            assert kinds == [ActivityKind.NOTE]
            assert env.lead_row(lead_id).first_attempt_at is None
            with env.sessions() as session:
                blocks = session.scalars(select(ContactBlockRow)).all()
                assert [(b.address, b.kind) for b in blocks] == [("+13125550123", "opt_out")]
            # Next time our own check stops it before the carrier sees it.
            again = env.client.post("/v1/messages", json=text(lead_id), headers=env.headers("ana"))
            assert again.json()["code"] == "OPTED_OUT"
            assert twilio.requests == 1
            # A text through Twilio to a subscribed number goes out.
            other = env.add_lead(phone="+13125550142")
            sent = env.client.post("/v1/messages", json=text(other), headers=env.headers("ana"))
            assert sent.status_code == 201
            assert twilio.messages[sent.json()["provider_id"]]["to"] == "+13125550142"


def test_email_through_smtp_end_to_end(db_url: str, settings: Settings) -> None:
    from aiosmtpd.controller import Controller

    from server.messaging import SmtpGateway

    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        gateway = SmtpGateway("127.0.0.1", port, "leads@lakeside.example")
        with messaging_env(db_url, settings, emails=gateway) as env:
            lead_id = env.add_lead()
            answer = env.client.post(
                "/v1/messages", json=email(lead_id), headers=env.headers("ana")
            )
            assert answer.status_code == 201
            [(_, rcpt, message)] = sink.messages
            assert rcpt == ["pat@example.com"]
            assert message["Subject"] == "Your 2024 Camry SE"
            assert message["Message-ID"] == f"<{answer.json()['provider_id']}>"
            [activity] = [a for a in env.activities(lead_id) if a.kind is ActivityKind.EMAIL]
            assert activity.body.startswith("Your 2024 Camry SE\n\nHi Pat,")
            with env.sessions() as session:
                assert session.scalars(select(JobRow.result)).all()[0].startswith("sent via smtp")
    finally:
        controller.stop()
