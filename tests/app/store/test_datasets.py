"""Cached datasets with "fresh as of", the per-user store opener, settling outbox items, and a
refused lead edit turned into conflicts in one transaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.store import LocalStore, open_user_store
from app.store.outbox import OutboxState
from app.store.repository import Dataset
from app.sync.credentials import SessionSecretStore
from tests.app.store.factories import T0, lead_change, make_lead


def test_a_dataset_is_kept_whole_with_its_fresh_as_of_time(store: LocalStore) -> None:
    assert store.repository.document(Dataset.TEMPLATES) is None
    store.repository.save_document(Dataset.TEMPLATES, [{"id": "ack", "body": "Hi"}], T0)
    cached = store.repository.document(Dataset.TEMPLATES)
    assert cached is not None and cached.fresh_as_of == T0
    assert cached.content[0]["id"] == "ack"
    with pytest.raises(TypeError):
        cached.content[0]["id"] = "changed"  # read-only
    store.repository.save_document(Dataset.TEMPLATES, [], T0.replace(hour=17))
    assert store.repository.document(Dataset.TEMPLATES).content == ()  # type: ignore[union-attr]
    assert store.repository.freshness(Dataset.TEMPLATES) == T0.replace(hour=17)


def test_one_store_per_server_and_user_keyed_from_the_secret_store(tmp_path: Path) -> None:
    secrets = SessionSecretStore()
    first = open_user_store("https://a.example", "ann", secrets, data_dir=tmp_path)
    other = open_user_store("https://a.example", "bob", secrets, data_dir=tmp_path)
    try:
        assert first.path != other.path and first.path.parent == tmp_path  # type: ignore[union-attr]
        assert secrets.get("db-key:ann") and secrets.get("db-key:ann") != secrets.get("db-key:bob")
    finally:
        first.close()
        other.close()
    reopened = open_user_store("https://a.example", "ann", secrets, data_dir=tmp_path)
    reopened.close()
    session = open_user_store("https://a.example", "ann", None, data_dir=tmp_path / "x")
    try:
        assert session.session_only and not (tmp_path / "x").exists()
    finally:
        session.close()


def test_a_refused_edit_keeps_both_values_and_takes_the_servers_lead(store: LocalStore) -> None:
    lead = make_lead(version=3, comments="old")
    store.repository.apply_changes([lead_change(lead)], "1")
    item = store.outbox.record_lead_edit(
        lead.id, 3, {"comments": "mine", "timeframe": {"description": "Soon"}}
    )
    server = lead_change(make_lead(version=4, comments="theirs"))["data"]
    server["lead"]["timeframe"] = {"description": "Soon", "within_days": None}
    conflicts = store.outbox.edit_refused(item.id, server, "Ben")
    assert [(c.field, c.mine, c.theirs) for c in conflicts] == [("comments", "mine", "theirs")]
    assert store.outbox.get(item.id).state is OutboxState.DONE  # type: ignore[union-attr]
    stored = store.repository.stored_lead(lead.id)
    assert stored is not None and stored.lead.comments == "theirs" and stored.lead.version == 4
    assert store.repository.cursor() == "1"


def test_settling_a_failed_item_closes_it_without_sending(store: LocalStore) -> None:
    item = store.outbox.record_presence("paused", "nap")
    store.outbox.mark_sending(item.id)
    store.outbox.mark_failed(item.id, 422, "reason: not a pause reason")
    settled = store.outbox.settle(item.id, "dismissed by the agent")
    assert settled.state is OutboxState.DONE
    assert store.outbox.failed_items() == [] and store.outbox.pending_count() == 0
