"""Outbox: actions recorded with their local effect in one transaction, drained in order."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

import pytest

from app.domain.codec import DecodeError, activity_to_dict
from app.domain.leads import Channel
from app.store import LocalStore, OutboxKind, OutboxState, StoreBugError
from tests.app.store.factories import T0, lead_change, make_call, make_lead

LATER = T0 + timedelta(days=3650)  # "now" far enough ahead that every item is due


def _seed(store: LocalStore, *lead_ids: str) -> None:
    store.repository.apply_changes(
        [lead_change(make_lead(lead_id)) for lead_id in lead_ids or ("lead-1",)], "1"
    )


def test_record_activity_saves_it_pending_with_its_outbox_item(store: LocalStore) -> None:
    _seed(store)
    call = make_call()
    new_state = make_lead(comments="voicemail left")
    item = store.outbox.record_activity(call, lead_update=new_state)

    assert (item.kind, item.method, item.path) == (OutboxKind.ACTIVITY, "POST", "/v1/activities")
    assert item.idempotency_key == call.id
    assert item.body == activity_to_dict(call)
    assert json.loads(item.body_json) == activity_to_dict(call)
    assert (item.state, item.attempts, item.lead_id) == (OutboxState.PENDING, 0, "lead-1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        item.state = OutboxState.DONE  # type: ignore[misc]

    assert store.repository.history("lead-1") == [call]
    assert store.repository.get_lead("lead-1") == new_state
    assert store.outbox.pending_count() == 1
    assert store.outbox.get(item.id) == item


def test_a_transaction_failing_midway_leaves_neither_activity_nor_outbox_row(
    store: LocalStore,
) -> None:
    _seed(store)
    clash = "00000000-0000-4000-8000-00000000abcd"
    store.outbox.record_message(
        lead_id="lead-1", channel=Channel.TEXT, body="Hi!", message_id=clash
    )
    # The activity row goes in, then its outbox row breaks the unique Idempotency-Key.
    with pytest.raises(StoreBugError, match="broke a database rule"):
        store.outbox.record_activity(
            make_call(activity_id=clash), lead_update=make_lead(comments="changed")
        )
    assert store.repository.history("lead-1") == []
    assert [i.kind for i in store.outbox.open_items()] == [OutboxKind.MESSAGE]
    lead = store.repository.get_lead("lead-1")
    assert lead is not None and lead.comments == ""


def test_an_update_of_an_unknown_lead_stores_nothing(store: LocalStore) -> None:
    with pytest.raises(StoreBugError, match="lead-404 is not in the local store"):
        store.outbox.record_activity(make_call("lead-404"), lead_update=make_lead("lead-404"))
    assert store.repository.history("lead-404") == []
    assert store.outbox.pending_count() == 0


def test_the_same_activity_twice_is_refused_and_not_doubled(store: LocalStore) -> None:
    _seed(store)
    call = make_call()
    store.outbox.record_activity(call)
    with pytest.raises(StoreBugError):
        store.outbox.record_activity(call)
    assert store.outbox.pending_count() == 1
    assert store.repository.history("lead-1") == [call]


def test_items_go_in_seq_order_one_at_a_time_per_lead(store: LocalStore) -> None:
    _seed(store, "lead-a", "lead-b")
    a1 = store.outbox.record_activity(make_call("lead-a", minutes=1))
    a2 = store.outbox.record_activity(make_call("lead-a", minutes=2))
    b1 = store.outbox.record_activity(make_call("lead-b", minutes=3))
    assert a1.seq < a2.seq < b1.seq

    assert store.outbox.next_due(LATER) == a1
    store.outbox.mark_sending(a1.id)
    # a2 waits behind a1 (same lead, still in flight); b1 is free to go.
    due = store.outbox.next_due(LATER)
    assert due is not None and due.id == b1.id

    retry_at = T0 + timedelta(seconds=30)
    store.outbox.mark_retry(a1.id, "HTTP 503", retry_at)
    store.outbox.mark_sending(b1.id)
    store.outbox.mark_done(b1.id, {"status": 201})
    # a1 is backing off: nothing for lead-a is due before retry_at, and a2 may not jump it.
    assert store.outbox.next_due(retry_at - timedelta(seconds=1)) is None
    due = store.outbox.next_due(retry_at)
    assert due is not None and (due.id, due.attempts, due.last_error) == (a1.id, 1, "HTTP 503")


def test_a_refused_item_is_kept_and_blocks_nothing(store: LocalStore) -> None:
    _seed(store)
    first = store.outbox.record_activity(make_call(minutes=1))
    second = store.outbox.record_activity(make_call(minutes=2))
    store.outbox.mark_sending(first.id)
    failed = store.outbox.mark_failed(first.id, 422, "flags: unknown flag 'teleport'")
    assert (failed.state, failed.failed_status, failed.last_error) == (
        OutboxState.FAILED,
        422,
        "flags: unknown flag 'teleport'",
    )
    due = store.outbox.next_due(LATER)
    assert due is not None and due.id == second.id
    assert [i.id for i in store.outbox.failed_items()] == [first.id]
    assert store.outbox.pending_count() == 1  # the failed one is shown apart, not dropped

    again = store.outbox.requeue(first.id, T0)
    assert (again.state, again.failed_status, again.next_attempt_at) == (
        OutboxState.PENDING,
        None,
        T0,
    )
    assert store.outbox.failed_items() == []


def test_done_confirms_the_activity_and_counts_go_down(store: LocalStore) -> None:
    _seed(store)
    item = store.outbox.record_activity(make_call())
    sending = store.outbox.mark_sending(item.id)
    assert (sending.state, sending.attempts) == (OutboxState.SENDING, 1)
    with pytest.raises(StoreBugError, match="is sending, not pending"):
        store.outbox.mark_sending(item.id)
    done = store.outbox.mark_done(item.id, {"id": item.idempotency_key})
    assert done.state is OutboxState.DONE
    assert store.outbox.pending_count() == 0
    assert store.outbox.next_due(LATER) is None
    assert store.outbox.open_items() == []
    with pytest.raises(StoreBugError, match="no outbox item nope"):
        store.outbox.mark_done("nope")
    assert store.outbox.prune_done(T0) == 0
    assert store.outbox.prune_done(LATER) == 1
    assert store.outbox.get(item.id) is None


def test_recover_returns_items_caught_mid_send_to_pending(store: LocalStore) -> None:
    _seed(store)
    item = store.outbox.record_activity(make_call())
    store.outbox.mark_sending(item.id)
    assert store.outbox.recover() == 1
    got = store.outbox.get(item.id)
    assert got is not None and got.state is OutboxState.PENDING


def test_record_message_queues_a_text_for_when_online(store: LocalStore) -> None:
    _seed(store)
    item = store.outbox.record_message(
        lead_id="lead-1",
        channel=Channel.TEXT,
        body="Hi Zebediah, the Civic is in!",
        template_id="first_touch",
        message_id="6f1c1f2e-0000-4000-8000-000000000001",
    )
    assert (item.method, item.path, item.kind) == ("POST", "/v1/messages", OutboxKind.MESSAGE)
    assert item.body == {
        "id": "6f1c1f2e-0000-4000-8000-000000000001",
        "lead_id": "lead-1",
        "channel": "text",
        "body": "Hi Zebediah, the Civic is in!",
        "template_id": "first_touch",
    }
    assert item.idempotency_key == "6f1c1f2e-0000-4000-8000-000000000001"
    assert [i.id for i in store.outbox.open_items("lead-1")] == [item.id]
    with pytest.raises(ValueError, match="not call"):
        store.outbox.record_message(lead_id="lead-1", channel=Channel.CALL, body="x")
    with pytest.raises(ValueError, match="needs a body"):
        store.outbox.record_message(lead_id="lead-1", channel=Channel.EMAIL, body="  ")


def test_record_lead_edit_changes_the_local_copy_and_queues_the_patch(store: LocalStore) -> None:
    _seed(store)
    fields = {
        "person": {"first_name": "Zeb", "last_name": "Quackenbush"},
        "phones": [{"number": "312-555-0177", "kind": "cellphone", "preferred": True}],
    }
    item = store.outbox.record_lead_edit("lead-1", 1, fields)
    assert (item.method, item.path) == ("PATCH", "/v1/leads/lead-1")
    assert item.body == {"base_version": 1, **fields}
    lead = store.repository.get_lead("lead-1")
    assert lead is not None
    assert lead.person.first_name == "Zeb"
    assert [p.e164 for p in lead.phones] == ["+13125550177"]
    assert lead.version == 1  # the server's version stays the base until it answers


def test_a_bad_lead_edit_is_refused_naming_the_field_and_saves_nothing(
    store: LocalStore,
) -> None:
    _seed(store)
    with pytest.raises(DecodeError, match="not editable: status"):
        store.outbox.record_lead_edit("lead-1", 1, {"status": "sold"})
    with pytest.raises(DecodeError, match=r"vehicles\[0\].year"):
        store.outbox.record_lead_edit("lead-1", 1, {"vehicles": [{"year": "soon"}]})
    with pytest.raises(StoreBugError, match="lead-404"):
        store.outbox.record_lead_edit("lead-404", 1, {"comments": "x"})
    assert store.outbox.pending_count() == 0
    assert store.repository.get_lead("lead-1") == make_lead()


def test_presence_changes_queue_in_order_without_a_lead(store: LocalStore) -> None:
    paused = store.outbox.record_presence("paused", "lunch")
    back = store.outbox.record_presence("available")
    assert paused.body == {"state": "paused", "reason": "lunch", "lead_id": None}
    assert (paused.path, paused.lead_id) == ("/v1/presence", None)
    assert store.outbox.next_due(LATER) == paused
    store.outbox.mark_sending(paused.id)
    assert store.outbox.next_due(LATER) is None  # "available" must not overtake "paused"
    store.outbox.mark_done(paused.id)
    assert store.outbox.next_due(LATER) == back
