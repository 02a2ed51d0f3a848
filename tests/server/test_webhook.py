"""The inbound-SMS webhook: opt-out first and everywhere, exactly one confirmation, HELP, START,
replies to the agent's queue, replays ignored, and only trusted senders heard."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.domain.activities import ActivityKind, Direction
from server.db import ContactBlockRow, transaction
from server.scheduler import enqueue
from server.settings import Settings
from tests.server.fakes import (
    NOW,
    RIVERSIDE_NUMBER,
    STORE_NUMBER,
    WEBHOOK_TOKEN,
    MessagingEnv,
    messaging_env,
)
from tests.server.fakes.twilio_fake import sign

CUSTOMER = "+13125550123"


@pytest.fixture
def env(db_url: str, settings: Settings) -> Iterator[MessagingEnv]:
    with messaging_env(
        db_url, settings, twilio_auth_token="twilio-token", public_base_url="http://testserver"
    ) as environment:
        yield environment


def inbound(
    env: MessagingEnv,
    body: str,
    *,
    sender: str = CUSTOMER,
    to: str = STORE_NUMBER,
    sid: str | None = None,
    token: str | None = WEBHOOK_TOKEN,
) -> object:
    form = {
        "From": sender,
        "To": to,
        "Body": body,
        "MessageSid": sid or f"SM{uuid.uuid4().hex}",
        "AccountSid": "AC1",
        "NumMedia": "0",
    }
    headers = {"X-Webhook-Token": token} if token is not None else {}
    return env.client.post("/v1/webhooks/sms", data=form, headers=headers)


def kinds(env: MessagingEnv, lead_id: str) -> list[ActivityKind]:
    return [a.kind for a in env.activities(lead_id)]


def blocks(env: MessagingEnv) -> list[tuple[str, str, str]]:
    with env.sessions() as session:
        return [
            (b.store_id, b.address, b.kind)
            for b in session.scalars(select(ContactBlockRow).order_by(ContactBlockRow.store_id))
        ]


def test_webhook_refuses_callers_without_the_token(env: MessagingEnv) -> None:
    lead_id = env.add_lead()
    for token in (None, "", "wrong"):
        answer = inbound(env, "STOP", token=token)
        assert answer.status_code == 403
        assert "X-Webhook-Token" in answer.json()["detail"]
    assert env.lead(lead_id).opted_out_at is None
    assert env.messages() == []
    wrong_type = env.client.post(
        "/v1/webhooks/sms", json={"From": CUSTOMER}, headers={"X-Webhook-Token": WEBHOOK_TOKEN}
    )
    assert wrong_type.status_code == 415


def test_a_twilio_signature_is_accepted_instead_of_the_token(env: MessagingEnv) -> None:
    lead_id = env.add_lead()
    form = {
        "From": CUSTOMER,
        "To": STORE_NUMBER,
        "Body": "Is it still available?",
        "MessageSid": "SM1",
    }
    url = "http://testserver/v1/webhooks/sms"
    good = env.client.post(
        "/v1/webhooks/sms",
        data=form,
        headers={"X-Twilio-Signature": sign("twilio-token", url, form)},
    )
    assert good.status_code == 200
    assert good.headers["content-type"].startswith("text/xml")
    assert "<Response>" in good.text
    forged = env.client.post(
        "/v1/webhooks/sms",
        data=form | {"MessageSid": "SM2"},
        headers={"X-Twilio-Signature": sign("other", url, form)},
    )
    assert forged.status_code == 403
    assert kinds(env, lead_id).count(ActivityKind.TEXT) == 1


def test_stop_opts_out_every_lead_with_the_number_and_confirms_once(env: MessagingEnv) -> None:
    first = env.add_lead()
    second = env.add_lead(
        phone="+13125550999", phones=(CUSTOMER,), first_name="Sam"
    )  # as a second number
    other = env.add_lead(phone="+13125550142")
    with transaction(env.sessions) as session:
        for lead_id in (first, second, other):
            enqueue(
                session,
                kind="ack_email",
                store_id="lakeside",
                lead_id=lead_id,
                due_at=NOW + timedelta(minutes=5),
                dedupe_key=f"ack:{lead_id}",
            )
    answer = inbound(env, "Stop. Thank you")
    assert answer.status_code == 200
    for lead_id in (first, second):
        assert env.lead(lead_id).opted_out_at == NOW
        [opt_out] = [a for a in env.activities(lead_id) if a.kind is ActivityKind.OPT_OUT]
        assert (opt_out.direction, opt_out.phone, opt_out.body) == (
            Direction.INBOUND,
            CUSTOMER,
            "Stop. Thank you",
        )
        assert ActivityKind.TEXT not in [
            a.kind for a in env.activities(lead_id) if a.direction is Direction.INBOUND
        ]
        [ack] = [j for j in env.jobs(lead_id) if j.kind == "ack_email"]
        assert ack.done_at == NOW and ack.result == "cancelled: the customer opted out"
    assert env.lead(other).opted_out_at is None
    assert [j.done_at for j in env.jobs(other)] == [None]
    assert blocks(env) == [("lakeside", CUSTOMER, "opt_out")]
    # Exactly one confirmation, sent although the number is now blocked.
    [confirmation] = env.sent_texts()
    assert confirmation.to == CUSTOMER
    assert (
        confirmation.body
        == "You're unsubscribed from Lakeside Toyota texts. No more messages will be sent."
    )
    sent = [m for m in env.messages() if m.direction == "outbound"]
    assert [(m.template_id, m.status) for m in sent] == [("opt_out_confirmation", "sent")]
    # A second STOP is recorded but not confirmed again; e-mail is stopped too.
    env.set_now(NOW + timedelta(minutes=1))
    assert inbound(env, "STOP").status_code == 200
    assert len(env.sent_texts()) == 1
    assert kinds(env, first).count(ActivityKind.OPT_OUT) == 2
    mail = {
        "id": str(uuid.uuid4()),
        "lead_id": first,
        "channel": "email",
        "subject": "Hi",
        "body": "Hello",
    }
    refused = env.client.post("/v1/messages", json=mail, headers=env.headers("ana"))
    assert refused.status_code == 422 and refused.json()["code"] == "OPTED_OUT"


def test_a_replayed_message_sid_changes_nothing(env: MessagingEnv) -> None:
    lead_id = env.add_lead()
    assert inbound(env, "STOP", sid="SMsame").status_code == 200
    before = (env.activities(lead_id), len(env.messages()), len(env.changes()))
    env.set_now(NOW + timedelta(seconds=30))
    again = inbound(env, "STOP", sid="SMsame")
    assert again.status_code == 200
    assert (env.activities(lead_id), len(env.messages()), len(env.changes())) == before
    assert len(env.sent_texts()) == 1


def test_help_gets_the_help_text(env: MessagingEnv) -> None:
    lead_id = env.add_lead()
    assert inbound(env, "help").status_code == 200
    [reply] = env.sent_texts()
    assert reply.to == CUSTOMER
    assert reply.body == (
        "Lakeside Toyota: for help call us at (312) 555-0100. "
        "Msg & data rates may apply. Reply STOP to opt out."
    )
    inbound_texts = [
        a
        for a in env.activities(lead_id)
        if a.kind is ActivityKind.TEXT and a.direction is Direction.INBOUND
    ]
    assert [a.body for a in inbound_texts] == ["help"]
    assert env.lead(lead_id).opted_out_at is None


def test_start_opts_back_in_and_is_confirmed(env: MessagingEnv) -> None:
    lead_id = env.add_lead()
    inbound(env, "STOP")
    env.set_now(NOW + timedelta(hours=2))
    assert inbound(env, "START").status_code == 200
    assert env.lead(lead_id).opted_out_at is None
    assert kinds(env, lead_id)[-2:] == [
        ActivityKind.OPT_IN,
        ActivityKind.TEXT,
    ]  # then the confirmation
    assert blocks(env) == []
    confirmation = env.sent_texts()[-1]
    assert confirmation.body.startswith("Lakeside Toyota: you're subscribed to texts again.")
    assert len(env.sent_texts()) == 2
    text = {
        "id": str(uuid.uuid4()),
        "lead_id": lead_id,
        "channel": "text",
        "body": "Welcome back, Pat!",
    }
    assert env.client.post("/v1/messages", json=text, headers=env.headers("ana")).status_code == 201


def test_yes_from_a_subscribed_number_is_an_ordinary_reply(env: MessagingEnv) -> None:
    lead_id = env.add_lead()
    assert inbound(env, "Yes").status_code == 200
    assert ActivityKind.OPT_IN not in kinds(env, lead_id)
    assert env.sent_texts() == []
    [change] = [c for c in env.changes("lead") if c.data.get("reply_waiting")]
    assert change.data["reply_waiting"]["preview"] == "Yes"


def test_a_reply_puts_the_lead_on_top_of_its_agents_queue(env: MessagingEnv) -> None:
    lead_id = env.add_lead()
    before = env.lead_row(lead_id)
    assert inbound(env, "Can I come by at 5 to see the Camry?").status_code == 200
    [reply] = [a for a in env.activities(lead_id) if a.kind is ActivityKind.TEXT]
    assert (reply.direction, reply.phone, reply.body) == (
        Direction.INBOUND,
        CUSTOMER,
        "Can I come by at 5 to see the Camry?",
    )
    change = env.changes("lead")[-1]
    assert change.entity_id == lead_id and change.agent_id == "user-ana"
    waiting = change.data["reply_waiting"]
    assert waiting == {
        "activity_id": reply.id,
        "at": NOW.isoformat(),
        "preview": "Can I come by at 5 to see the Camry?",
        "needs_review": False,
        "review_reason": None,
    }
    after = env.lead_row(lead_id)
    assert after.version == before.version + 1
    assert change.data["version"] == after.version
    # Rescored from the history: the reply counts as engagement.
    assert after.score != before.score
    assert kinds(env, lead_id) == [ActivityKind.TEXT, ActivityKind.SCORE_CHANGE]
    inbound_row = [m for m in env.messages(lead_id) if m.direction == "inbound"]
    assert [(m.status, m.to_address) for m in inbound_row] == [("received", CUSTOMER)]
    assert env.sent_texts() == []


def test_an_unclear_stop_is_flagged_for_a_person_not_obeyed(env: MessagingEnv) -> None:
    lead_id = env.add_lead()
    assert inbound(env, "STOP this terrible bill, I will come by Tuesday").status_code == 200
    assert env.lead(lead_id).opted_out_at is None
    assert blocks(env) == []
    waiting = env.changes("lead")[-1].data["reply_waiting"]
    assert waiting["needs_review"] is True and "may be an opt-out" in waiting["review_reason"]
    assert env.sent_texts() == []


def test_stop_from_an_unknown_number_still_blocks_it(env: MessagingEnv) -> None:
    assert inbound(env, "STOP", sender="+13125550888").status_code == 200
    assert blocks(env) == [("lakeside", "+13125550888", "opt_out")]
    assert env.messages() == [] and env.sent_texts() == []
    # A lead arriving later with that number is already opted out.
    lead_id = env.add_lead(phone="+13125550888")
    text = {"id": str(uuid.uuid4()), "lead_id": lead_id, "channel": "text", "body": "Hi Pat"}
    assert (
        env.client.post("/v1/messages", json=text, headers=env.headers("ana")).json()["code"]
        == "OPTED_OUT"
    )


def test_stores_do_not_cross(env: MessagingEnv) -> None:
    lakeside = env.add_lead()
    riverside = env.add_lead(store="riverside", agent="user-zed")
    assert inbound(env, "STOP", to=STORE_NUMBER).status_code == 200
    assert env.lead(lakeside).opted_out_at == NOW
    assert env.lead(riverside).opted_out_at is None
    assert blocks(env) == [("lakeside", CUSTOMER, "opt_out")]
    assert inbound(env, "unsubscribe", to=RIVERSIDE_NUMBER).status_code == 200
    assert env.lead(riverside).opted_out_at == NOW


def test_bad_webhook_input_is_a_4xx_naming_the_field(env: MessagingEnv) -> None:
    headers = {"X-Webhook-Token": WEBHOOK_TOKEN}
    missing = env.client.post(
        "/v1/webhooks/sms", data={"From": CUSTOMER, "Body": "hi"}, headers=headers
    )
    assert missing.status_code == 422 and "MessageSid" in missing.json()["detail"]
    garbage = env.client.post(
        "/v1/webhooks/sms",
        data={"From": "'; DROP TABLE leads;--", "Body": "STOP", "MessageSid": "SM9"},
        headers=headers,
    )
    assert garbage.status_code == 422 and "From" in garbage.json()["detail"]
    big = env.client.post(
        "/v1/webhooks/sms",
        content=b"Body=" + b"x" * 30_000,
        headers=headers | {"content-type": "application/x-www-form-urlencoded"},
    )
    assert big.status_code == 413
    assert blocks(env) == []


def test_delivery_reports_update_the_message(env: MessagingEnv) -> None:
    lead_id = env.add_lead()
    text = {"id": str(uuid.uuid4()), "lead_id": lead_id, "channel": "text", "body": "Hi Pat"}
    provider_id = env.client.post("/v1/messages", json=text, headers=env.headers("ana")).json()[
        "provider_id"
    ]
    url = "http://testserver/v1/webhooks/sms/status"
    for state in ("sent", "delivered"):
        form = {"MessageSid": provider_id, "MessageStatus": state, "To": CUSTOMER}
        answer = env.client.post(
            "/v1/webhooks/sms/status",
            data=form,
            headers={"X-Twilio-Signature": sign("twilio-token", url, form)},
        )
        assert answer.status_code == 200
    assert env.messages(lead_id)[0].status == "delivered"
    unsigned = env.client.post(
        "/v1/webhooks/sms/status", data={"MessageSid": provider_id, "MessageStatus": "failed"}
    )
    assert unsigned.status_code == 403
    assert env.changes("message")[-1].data["status"] == "delivered"
