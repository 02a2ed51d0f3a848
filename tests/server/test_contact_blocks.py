"""Opt-outs and do-not-call entries reach every PC of the store: each block added or lifted is a
store-wide "contact_block" change, and GET /v1/contact-blocks lists them for a full download."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from server.db import ContactBlockRow, transaction
from server.settings import Settings
from tests.server.fakes import NOW, STORE_NUMBER, WEBHOOK_TOKEN, MessagingEnv, messaging_env

CUSTOMER = "+13125550123"


@pytest.fixture
def env(db_url: str, settings: Settings) -> Iterator[MessagingEnv]:
    with messaging_env(db_url, settings) as environment:
        yield environment


def text_in(env: MessagingEnv, body: str, sender: str = CUSTOMER) -> None:
    form = {"From": sender, "To": STORE_NUMBER, "Body": body, "MessageSid": f"SM{uuid.uuid4().hex}"}
    answer = env.client.post(
        "/v1/webhooks/sms", data=form, headers={"X-Webhook-Token": WEBHOOK_TOKEN}
    )
    assert answer.status_code == 200, answer.text


def block_changes(env: MessagingEnv, user: str, since: int = 0) -> list[dict[str, Any]]:
    answer = env.client.get(
        "/v1/changes", params={"since": since, "limit": 1000}, headers=env.headers(user)
    )
    assert answer.status_code == 200, answer.text
    return [c["data"] for c in answer.json()["changes"] if c["entity"] == "contact_block"]


def listed(env: MessagingEnv, user: str, limit: int = 1000) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    cursor = 0
    pages = 0
    while True:
        answer = env.client.get(
            "/v1/contact-blocks",
            params={"cursor": cursor, "limit": limit},
            headers=env.headers(user),
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        found += [(b["address"], b["kind"]) for b in body["blocks"]]
        pages += 1
        assert pages < 100
        if body["next_cursor"] is None:
            return found
        cursor = body["next_cursor"]


def test_a_stop_is_sent_to_every_agent_of_the_store_and_no_other(env: MessagingEnv) -> None:
    env.add_lead(phone=CUSTOMER, agent="user-ana")
    text_in(env, "STOP")
    # Ben holds no lead with this number: he gets the block all the same, as do managers.
    for user in ("ana", "ben", "mia"):
        changes = block_changes(env, user)
        assert [(c["address"], c["kind"], c["removed"]) for c in changes] == [
            (CUSTOMER, "opt_out", False)
        ], user
        assert changes[0]["at"] == NOW.isoformat()
    assert listed(env, "ben") == [(CUSTOMER, "opt_out")]
    # The other store's agent neither sees it in the feed nor in the list... unless his store
    # blocked it too (a STOP sent to lakeside's number is lakeside's).
    assert block_changes(env, "zed") == []
    assert listed(env, "zed") == []
    # A repeated STOP adds no second change.
    text_in(env, "STOP")
    assert len(block_changes(env, "ben")) == 1


def test_start_lifts_the_block_in_the_feed(env: MessagingEnv) -> None:
    env.add_lead(phone=CUSTOMER, agent="user-ana")
    text_in(env, "STOP")
    env.set_now(NOW + timedelta(minutes=5))
    text_in(env, "START")
    changes = block_changes(env, "ben")
    assert [(c["address"], c["removed"]) for c in changes] == [(CUSTOMER, False), (CUSTOMER, True)]
    assert changes[1]["at"] == (NOW + timedelta(minutes=5)).isoformat()
    assert listed(env, "ana") == []


def test_do_not_contact_disposition_blocks_every_address_for_everyone(env: MessagingEnv) -> None:
    lead_id = env.add_lead(phone=CUSTOMER, email="pat@example.com", agent="user-ana")
    activity = {
        "id": str(uuid.uuid4()),
        "lead_id": lead_id,
        "kind": "disposition",
        "at": NOW.isoformat(),
        "disposition": "do_not_contact",
    }
    headers = {**env.headers("ana"), "Idempotency-Key": str(uuid.uuid4())}
    answer = env.client.post("/v1/activities", json=activity, headers=headers)
    assert answer.status_code == 201, answer.text
    expected = [(CUSTOMER, "dnc"), ("pat@example.com", "dnc")]
    assert sorted((c["address"], c["kind"]) for c in block_changes(env, "ben")) == expected
    assert sorted(listed(env, "mia")) == expected


def test_the_list_pages_through_every_block_once(env: MessagingEnv) -> None:
    with transaction(env.sessions) as session:
        for n in range(7):
            session.add(
                ContactBlockRow(store_id="lakeside", address=f"+1312555{n:04d}", kind="dnc")
            )
        session.add(ContactBlockRow(store_id="riverside", address="+12125550001", kind="dnc"))
    found = listed(env, "ana", limit=3)
    assert sorted(found) == [(f"+1312555{n:04d}", "dnc") for n in range(7)]


def test_the_list_is_for_staff_only_and_validated(env: MessagingEnv) -> None:
    assert env.client.get("/v1/contact-blocks").status_code == 401
    bad = env.client.get("/v1/contact-blocks", params={"limit": 0}, headers=env.headers("ana"))
    assert bad.status_code == 422
