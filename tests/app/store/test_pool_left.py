"""A pool lead somebody else took ("pool_left"): gone from this PC's pool, silently — unless this
PC has work waiting on it (then the agent is told); the one who took it keeps it."""

from __future__ import annotations

from typing import Any

from app.store import LocalStore
from tests.app.store.factories import lead_change, make_call, make_lead


def pool_left(lead_id: str, agent_id: str, version: int) -> dict[str, Any]:
    return {
        "seq": 7,
        "entity": "pool_left",
        "entity_id": lead_id,
        "data": {
            "lead_id": lead_id,
            "agent_id": agent_id,
            "reason": "taken from the pool by Ana",
            "version": version,
        },
    }


def test_other_pcs_drop_the_lead_silently(store: LocalStore) -> None:
    store.repository.apply_changes([lead_change(make_lead(agent=None))], "1")
    applied = store.repository.apply_changes([pool_left("lead-1", "agent-ann", 2)], "2")
    assert applied.removed == ()  # no notice: this agent never worked it
    assert applied.leads == ("lead-1",)  # the queue re-reads it and finds it gone
    assert store.repository.stored_lead("lead-1") is None
    assert store.repository.all_leads_with_history("agent-bob") == []


def test_the_pc_that_took_it_and_managers_keep_it(store: LocalStore) -> None:
    claimed = make_lead(agent="agent-ann", version=2)
    store.repository.apply_changes(
        [
            lead_change(make_lead(agent=None)),
            lead_change(claimed),
            pool_left("lead-1", "agent-ann", 2),
        ],
        "2",
    )
    stored = store.repository.stored_lead("lead-1")
    assert stored is not None and stored.removed_reason is None
    assert stored.lead.assigned_agent_id == "agent-ann"


def test_work_waiting_on_it_keeps_the_row_and_tells_the_agent(store: LocalStore) -> None:
    store.repository.apply_changes([lead_change(make_lead(agent=None))], "1")
    store.outbox.record_activity(make_call())  # logged on the pool lead, not sent yet
    applied = store.repository.apply_changes([pool_left("lead-1", "agent-ann", 2)], "2")
    assert applied.removed == (("lead-1", "taken from the pool by Ana"),)
    stored = store.repository.stored_lead("lead-1")
    assert stored is not None and stored.removed_reason == "taken from the pool by Ana"
    assert store.repository.all_leads_with_history("agent-bob") == []


def test_an_older_announcement_does_not_drop_a_newer_copy(store: LocalStore) -> None:
    # Given back to the pool (version 3) before this PC heard it was taken (version 2).
    store.repository.apply_changes([lead_change(make_lead(agent=None, version=3))], "1")
    store.repository.apply_changes([pool_left("lead-1", "agent-ann", 2)], "2")
    stored = store.repository.stored_lead("lead-1")
    assert stored is not None and stored.removed_reason is None
