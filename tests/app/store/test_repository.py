"""Repository: frozen objects out, pulled changes applied atomically with the cursor."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest

from app.domain.activities import Activity
from app.domain.codec import lead_to_dict
from app.domain.leads import Lead
from app.store import (
    AgentInfo,
    BlockKind,
    ChangeFeedError,
    Dataset,
    LocalStore,
    StoreBugError,
)
from tests.app.store.factories import (
    T0,
    activity_change,
    lead_change,
    make_call,
    make_disposition,
    make_lead,
    removed_change,
)


def _seed(store: LocalStore, *leads: Lead, cursor: str = "1") -> None:
    store.repository.apply_changes([lead_change(lead) for lead in leads], cursor)


# Frozen objects out


def test_leads_and_activities_come_out_as_frozen_domain_objects(store: LocalStore) -> None:
    lead = make_lead()
    call = make_call()
    store.repository.apply_changes([lead_change(lead), activity_change(call)], "2")

    got = store.repository.get_lead("lead-1")
    assert got == lead
    assert isinstance(got, Lead)
    with pytest.raises(dataclasses.FrozenInstanceError):
        got.comments = "changed"  # type: ignore[misc]

    history = store.repository.history("lead-1")
    assert history == [call]
    assert isinstance(history[0], Activity)

    stored = store.repository.stored_lead("lead-1")
    assert stored is not None
    assert (stored.score, stored.tier, stored.grade, stored.removed_reason) == (
        80,
        "hot",
        "A",
        None,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        stored.score = 1  # type: ignore[misc]
    assert store.repository.get_lead("nope") is None


def test_queue_holds_own_and_unassigned_leads_with_history_in_order(store: LocalStore) -> None:
    mine = make_lead("lead-1", agent="agent-ann")
    pool = make_lead("lead-2", agent=None, first="Pat")
    theirs = make_lead("lead-3", agent="agent-bob", first="Sam")
    late, early = make_call("lead-1", minutes=9), make_disposition("lead-1", minutes=3)
    store.repository.apply_changes(
        [
            lead_change(mine),
            lead_change(pool),
            lead_change(theirs),
            activity_change(late),
            activity_change(early),
            activity_change(make_call("lead-3")),
        ],
        "6",
    )
    assert [lead.id for lead in store.repository.leads_for_agent("agent-ann")] == [
        "lead-1",
        "lead-2",
    ]
    queue = store.repository.all_leads_with_history("agent-ann")
    assert [(lead.id, [a.id for a in history]) for lead, history in queue] == [
        ("lead-1", [early.id, late.id]),
        ("lead-2", []),
    ]
    everyone = store.repository.all_leads_with_history()
    assert [lead.id for lead, _ in everyone] == ["lead-1", "lead-2", "lead-3"]
    assert store.repository.lead_count() == 3


def test_leads_with_history_reads_what_the_one_lead_reads_do(store: LocalStore) -> None:
    """The bulk read (the queue's, 500 leads a query) and the per-lead reads agree: every
    field, the scores beside the lead, the opt-outs applied, history oldest first."""
    leads = [make_lead(f"lead-{n}", phone=f"(312) 555-01{n:02d}") for n in range(5)]
    changes = [lead_change(lead) for lead in leads]
    changes[0]["data"].update(score=72, tier="hot", grade="A", due_at=T0.isoformat())
    changes += [activity_change(make_call("lead-1", minutes=m)) for m in (9, 3, 6)]
    changes.append(activity_change(make_disposition("lead-3", minutes=2)))
    store.repository.apply_changes(changes, "9")
    store.repository.replace_contact_blocks(
        BlockKind.OPT_OUT, [("+13125550102", T0)], fresh_as_of=T0
    )
    ids = [lead.id for lead in leads] + ["lead-missing"]
    found = store.repository.leads_with_history(ids)
    assert sorted(found) == sorted(lead.id for lead in leads)
    for lead in leads:
        stored, history = found[lead.id]
        assert stored == store.repository.stored_lead(lead.id)
        assert history == store.repository.history(lead.id)
    assert found["lead-0"][0].score == 72 and found["lead-0"][0].due_at == T0
    assert found["lead-2"][0].lead.opted_out_at == T0
    assert found["lead-1"][0].lead.opted_out_at is None
    assert [a.at for a in found["lead-1"][1]] == sorted(a.at for a in found["lead-1"][1])


# Pulled changes


def test_apply_changes_moves_the_cursor_with_the_data(store: LocalStore) -> None:
    due = T0 + timedelta(minutes=5)
    applied = store.repository.apply_changes(
        [lead_change(make_lead(), due_at=due), {"entity": "weather", "data": {"sunny": True}}],
        "17",
        fresh_as_of=T0,
    )
    assert applied.leads == ("lead-1",)
    assert applied.ignored == 1  # an entity from a newer server: skipped, not an error
    assert store.repository.cursor() == "17"
    assert store.repository.freshness(Dataset.LEADS) == T0
    stored = store.repository.stored_lead("lead-1")
    assert stored is not None and stored.due_at == due


def test_a_bad_change_applies_nothing_of_the_batch_and_keeps_the_cursor(
    store: LocalStore,
) -> None:
    _seed(store, make_lead("lead-1"), cursor="10")
    broken = lead_change(make_lead("lead-9"))
    broken["data"]["lead"]["favourite_colour"] = "teal"
    broken["seq"] = 12
    with pytest.raises(ChangeFeedError, match=r"change 12 \(lead\).*favourite_colour"):
        store.repository.apply_changes(
            [lead_change(make_lead("lead-2")), activity_change(make_call()), broken], "12"
        )
    assert store.repository.cursor() == "10"
    assert store.repository.get_lead("lead-2") is None
    assert store.repository.history("lead-1") == []


def test_an_older_copy_of_a_lead_does_not_overwrite_a_newer_one(store: LocalStore) -> None:
    _seed(store, make_lead(version=3, comments="v3"))
    store.repository.apply_changes([lead_change(make_lead(version=2, comments="v2"))], "2")
    lead = store.repository.get_lead("lead-1")
    assert lead is not None and lead.comments == "v3"
    store.repository.apply_changes([lead_change(make_lead(version=4, comments="v4"))], "3")
    lead = store.repository.get_lead("lead-1")
    assert lead is not None and lead.comments == "v4"


def test_the_servers_copy_confirms_a_pending_activity(store: LocalStore) -> None:
    _seed(store, make_lead())
    call = make_call()
    store.outbox.record_activity(call)
    assert _pending_flags(store) == {call.id: True}
    store.repository.apply_changes([activity_change(call)], "2")
    assert _pending_flags(store) == {call.id: False}
    assert store.repository.history("lead-1") == [call]  # once, not twice


def _pending_flags(store: LocalStore) -> dict[str, bool]:
    from app.store.models import ActivityRow

    with store.read("test") as session:
        return {row.id: row.pending for row in session.query(ActivityRow)}


def test_a_removed_lead_leaves_the_queue_at_once_when_nothing_is_pending(
    store: LocalStore,
) -> None:
    _seed(store, make_lead())
    store.repository.apply_changes([activity_change(make_call())], "2")
    applied = store.repository.apply_changes([removed_change("lead-1")], "3")
    assert applied.removed == (("lead-1", "reassigned"),)
    assert store.repository.get_lead("lead-1") is None
    assert store.repository.history("lead-1") == []


def test_a_removed_lead_keeps_its_activities_until_their_outbox_items_are_done(
    store: LocalStore,
) -> None:
    _seed(store, make_lead())
    call = make_call()
    item = store.outbox.record_activity(call)
    store.repository.apply_changes([removed_change("lead-1")], "2")

    assert store.repository.leads_for_agent("agent-ann") == []
    stored = store.repository.stored_lead("lead-1")
    assert stored is not None and stored.removed_reason == "reassigned"
    assert store.repository.history("lead-1") == [call]

    store.outbox.mark_sending(item.id)
    store.outbox.mark_done(item.id, {"status": 201})
    assert store.repository.stored_lead("lead-1") is None
    assert store.repository.history("lead-1") == []


def test_a_lead_given_back_returns_to_the_queue(store: LocalStore) -> None:
    _seed(store, make_lead())
    store.outbox.record_activity(make_call())
    store.repository.apply_changes([removed_change("lead-1")], "2")
    store.repository.apply_changes([lead_change(make_lead(version=3))], "3")
    assert [lead.id for lead in store.repository.leads_for_agent("agent-ann")] == ["lead-1"]


def test_opt_outs_and_dnc_from_the_server_always_win(store: LocalStore) -> None:
    _seed(store, make_lead())
    # The agent's local copy still shows the customer as callable ...
    store.outbox.record_activity(make_call(), lead_update=make_lead(comments="call back"))
    # ... the server says otherwise: its opt-out and lead state replace the local ones.
    opted = make_lead(version=2, do_not_call=True, opted_out_at=T0)
    applied = store.repository.apply_changes(
        [
            {"entity": "opt_out", "data": {"address": "+13125550199", "at": T0.isoformat()}},
            {"entity": "dnc", "data": {"address": "zebediah@example.org"}},
            lead_change(opted),
        ],
        "4",
    )
    assert applied.blocks == ("+13125550199", "zebediah@example.org")
    assert store.repository.opt_outs() == frozenset({"+13125550199"})
    assert store.repository.dnc() == frozenset({"zebediah@example.org"})
    assert store.repository.get_lead("lead-1") == opted

    store.repository.apply_changes(
        [{"entity": "opt_out", "data": {"address": "+13125550199", "removed": True}}], "5"
    )
    assert store.repository.opt_outs() == frozenset()


def _entry(lead: Lead, *activities: Activity) -> dict[str, Any]:
    """A GET /v1/snapshot entry: the "lead" change payload with the lead's history."""
    return {
        **lead_change(lead)["data"],
        "activities": [activity_change(a)["data"] for a in activities],
    }


def test_a_snapshot_page_stores_leads_with_their_histories_and_leaves_the_cursor(
    store: LocalStore,
) -> None:
    late, early = make_call("lead-1", minutes=9), make_disposition("lead-1", minutes=3)
    page = [_entry(make_lead("lead-1"), late, early), _entry(make_lead("lead-2", agent=None))]
    applied = store.repository.apply_snapshot_page(page)
    assert applied.leads == ("lead-1", "lead-2")
    assert applied.activity_leads == ("lead-1",)
    assert store.repository.history("lead-1") == [early, late]
    assert store.repository.cursor() is None  # moved by finish_snapshot only
    # A download started over after a failure applies its pages again: nothing doubles.
    store.repository.apply_snapshot_page(page)
    assert store.repository.history("lead-1") == [early, late]
    # An older copy (a page read before a change the feed already brought) changes nothing.
    store.repository.apply_snapshot_page([_entry(make_lead("lead-2", version=7, first="Newer"))])
    store.repository.apply_snapshot_page([_entry(make_lead("lead-2", version=3, first="Older"))])
    assert store.repository.get_lead("lead-2").person.first_name == "Newer"  # type: ignore[union-attr]


def test_a_first_downloads_page_answers_its_leads_as_a_read_would(store: LocalStore) -> None:
    """The queue derives a first download's leads from the page (no read back): what the page
    answers must be exactly what the store then reads — this PC's unconfirmed work, opt-outs
    and the queue columns included; an older copy than the stored lead is not answered."""
    _seed(store, make_lead("lead-old", version=9))
    mine = make_call("lead-1", minutes=4)
    store.outbox.record_activity(mine)  # recorded here before the download finished
    store.repository.replace_contact_blocks(
        BlockKind.OPT_OUT, [("+13125550102", T0)], fresh_as_of=T0
    )
    leads = [make_lead(f"lead-{n}", phone=f"(312) 555-01{n:02d}") for n in range(3)]
    page = [
        _entry(leads[0]),
        _entry(leads[1], make_call("lead-1", minutes=9), make_disposition("lead-1", minutes=2)),
        _entry(leads[2], make_call("lead-2", minutes=1)),
        _entry(make_lead("lead-old", version=3)),
    ]
    page[0].update(score=72, tier="hot", grade="A", due_at="2025-06-02T10:00:00-05:00")
    applied = store.repository.apply_snapshot_page(page, with_reads=True)
    assert applied.read is not None
    assert sorted(applied.read) == ["lead-0", "lead-1", "lead-2"]  # not the ignored old copy
    assert applied.read == store.repository.leads_with_history(sorted(applied.read))
    assert mine in applied.read["lead-1"][1]
    assert applied.read["lead-2"][0].lead.opted_out_at == T0
    assert store.repository.apply_snapshot_page(page).read is None  # only when asked


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("nope", "lead #1: must be an object"),
        ({"lead": {"id": "lead-9"}}, r"lead #1 \(lead-9\) cannot be read"),
        ({**_entry(make_lead("lead-9")), "activities": "none"}, "activities: must be a list"),
        (
            _entry(make_lead("lead-9"), make_call("lead-1")),
            "belongs to lead 'lead-1', not to this one",
        ),
        (
            {**_entry(make_lead("lead-9")), "activities": [{"lead_id": "lead-9", "kind": "?"}]},
            r"lead #1 \(lead-9\) cannot be read",
        ),
    ],
)
def test_a_snapshot_page_it_cannot_read_is_refused_whole_with_the_lead_named(
    store: LocalStore, entry: Any, message: str
) -> None:
    with pytest.raises(ChangeFeedError, match=message):
        store.repository.apply_snapshot_page([_entry(make_lead("lead-0")), entry])
    assert store.repository.lead_count() == 0  # nothing of the page


def test_finishing_a_snapshot_drops_unnamed_leads_keeps_pending_work_and_moves_the_cursor(
    store: LocalStore,
) -> None:
    _seed(store, make_lead("lead-1"), make_lead("lead-2"), make_lead("lead-3"))
    store.outbox.record_activity(make_call("lead-2"))
    applied = store.repository.apply_snapshot_page(
        [_entry(make_lead("lead-1", version=5)), _entry(make_lead("lead-4"))]
    )
    assert set(applied.leads) == {"lead-1", "lead-4"}
    finished = store.repository.finish_snapshot({"lead-1", "lead-4"}, "900")
    assert {lead_id for lead_id, _ in finished.removed} == {"lead-2", "lead-3"}
    assert [lead.id for lead in store.repository.leads_for_agent("agent-ann")] == [
        "lead-1",
        "lead-4",
    ]
    assert store.repository.stored_lead("lead-2") is not None  # its call is still to send
    assert store.repository.stored_lead("lead-3") is None
    assert store.repository.cursor() == "900"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"entity": "lead_removed", "data": {"reason": "x"}}, "lead_id is required"),
        ({"entity": "lead", "data": "oops"}, "data must be an object"),
        ({"entity": "opt_out", "data": {"address": 5}}, "address: must be a string"),
        ("not a change", "must be an object"),
        (
            {"entity": "lead", "data": {**lead_change(make_lead())["data"], "due_at": "soon"}},
            "due_at: 'soon' is not an ISO 8601",
        ),
    ],
)
def test_malformed_changes_are_refused_with_the_field_named(
    store: LocalStore, change: Any, message: str
) -> None:
    with pytest.raises(ChangeFeedError, match=message):
        store.repository.apply_changes([change], "2")
    assert store.repository.cursor() is None


# Datasets, sync state, agents, conflicts


def test_contact_block_lists_are_replaced_whole_and_marked_fresh(store: LocalStore) -> None:
    store.repository.replace_contact_blocks(
        BlockKind.DNC, [("+13125550100", T0), ("+13125550101", T0)], T0
    )
    later = T0 + timedelta(hours=1)
    store.repository.replace_contact_blocks(BlockKind.DNC, [("+13125550102", later)], later)
    assert store.repository.dnc() == frozenset({"+13125550102"})
    assert store.repository.freshness(Dataset.DNC) == later
    assert store.repository.freshness(Dataset.OPT_OUTS) is None
    blocks = store.repository.contact_blocks()
    assert [(b.address, b.kind, b.at) for b in blocks] == [("+13125550102", BlockKind.DNC, later)]


def test_sync_state_round_trips(store: LocalStore) -> None:
    assert store.repository.sync_state().cursor is None
    store.repository.set_cursor("55")
    store.repository.record_sync_failure("server unreachable")
    state = store.repository.sync_state()
    assert (state.cursor, state.last_error, state.last_success_at) == (
        "55",
        "server unreachable",
        None,
    )
    store.repository.record_sync_success(T0, server_offset_s=-42.5)
    state = store.repository.sync_state()
    assert (state.last_error, state.last_success_at, state.server_offset_s) == (None, T0, -42.5)
    store.repository.set_freshness("templates", T0)
    assert store.repository.freshness("templates") == T0


def test_agents_for_managers_follow_presence_changes(store: LocalStore) -> None:
    store.repository.replace_agents(
        [
            AgentInfo("agent-bob", "Bob", "agent", "available"),
            AgentInfo("agent-ann", "Ann", "agent", "offline"),
        ],
        T0,
    )
    store.repository.apply_changes(
        [
            {
                "entity": "presence",
                "data": {
                    "user_id": "agent-bob",
                    "state": "paused",
                    "reason": "lunch",
                    "since": T0.isoformat(),
                },
            },
            {"entity": "presence", "data": {"user_id": "agent-zed", "state": "available"}},
        ],
        "3",
    )
    assert store.repository.agents() == [
        AgentInfo("agent-ann", "Ann", "agent", "offline"),
        AgentInfo("agent-bob", "Bob", "agent", "paused", "lunch", T0),
    ]
    assert store.repository.freshness(Dataset.AGENTS) == T0


def test_conflicts_keep_both_values_until_the_agent_chooses(store: LocalStore) -> None:
    _seed(store, make_lead())
    conflict = store.repository.add_conflict(
        "lead-1",
        "person",
        mine={"first_name": "Zeb"},
        theirs={"first_name": "Zebediah"},
        server_version=4,
        changed_by="Bob",
    )
    assert [c.id for c in store.repository.conflicts("lead-1")] == [conflict.id]
    assert conflict.mine["first_name"] == "Zeb"
    with pytest.raises(TypeError):
        conflict.mine["first_name"] = "X"  # read-only all the way down
    resolved = store.repository.resolve_conflict(conflict.id, "mine", at=T0)
    assert (resolved.resolution, resolved.resolved_at) == ("mine", T0)
    assert store.repository.conflicts() == []
    with pytest.raises(ValueError, match="'mine' or 'theirs'"):
        store.repository.resolve_conflict(conflict.id, "both")
    with pytest.raises(StoreBugError, match="not in the local store"):
        store.repository.add_conflict(
            "lead-404", "comments", mine="a", theirs="b", server_version=1, changed_by="x"
        )


def test_stored_lead_data_is_the_codec_form(store: LocalStore) -> None:
    lead = make_lead()
    _seed(store, lead)
    from app.store.models import LeadRow

    with store.read("test") as session:
        row = session.get(LeadRow, "lead-1")
        assert row is not None
        assert row.data == lead_to_dict(lead)
        assert (row.version, row.assigned_agent_id) == (1, "agent-ann")


# Bulk reads (the queue's refresh of many leads at once)


def test_leads_with_history_reads_many_leads_as_the_per_lead_reads_do(store: LocalStore) -> None:
    leads = [make_lead(f"lead-{n}", agent=None if n % 2 else "agent-ann") for n in range(7)]
    _seed(store, *leads)
    calls = [make_call(f"lead-{n % 5}", minutes=10 - n) for n in range(12)]
    same_time = [make_call("lead-3", minutes=30, activity_id=f"tie-{n}") for n in range(3)]
    store.repository.apply_changes(
        [activity_change(a) for a in [*calls, *same_time, make_disposition("lead-0")]], "2"
    )
    store.repository.apply_changes(
        [
            {"entity": "opt_out", "data": {"address": "+13125550199", "at": T0.isoformat()}},
            removed_change("lead-6"),
        ],
        "3",
    )
    asked = [f"lead-{n}" for n in (4, 0, 3, 6, 9, 0)]
    found = store.repository.leads_with_history(asked)
    assert sorted(found) == ["lead-0", "lead-3", "lead-4"]  # the stored ones
    for lead_id, (stored, history) in found.items():
        assert stored == store.repository.stored_lead(lead_id)
        assert history == store.repository.history(lead_id)
        assert stored.lead.opted_out_at == T0  # the store's opt-out list applies
    assert [a.id for a in found["lead-3"][1]][-3:] == ["tie-0", "tie-1", "tie-2"]
    assert store.repository.leads_with_history([]) == {}


def test_new_activities_of_a_batch_are_stored_together_even_twice_or_purged(
    store: LocalStore,
) -> None:
    _seed(store, make_lead("lead-1"), make_lead("lead-2"))
    first = make_call("lead-1", minutes=1, activity_id="a-1")
    again = dataclasses.replace(first, answered=True)  # a later copy in the same batch wins
    gone = make_call("lead-2", minutes=2, activity_id="a-2")
    applied = store.repository.apply_changes(
        [
            activity_change(first),
            activity_change(gone),
            activity_change(again),
            removed_change("lead-2"),
        ],
        "2",
    )
    assert applied.activities == ("a-1", "a-2")
    assert store.repository.history("lead-1") == [again]
    assert store.repository.history("lead-2") == []  # purged with its lead, in the batch
    # the leads to refresh, as the changes said (lead-2 was purged in the batch, but still named)
    assert applied.activity_leads == ("lead-1", "lead-2")
