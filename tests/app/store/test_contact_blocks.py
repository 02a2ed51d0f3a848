"""The store's opt-out and do-not-call lists from the change feed ("contact_block") and from a
full download: an opted-out address makes every local lead carrying it read as opted out."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from app.store import LocalStore
from app.store.repository import BlockKind, Dataset
from tests.app.store.factories import T0, lead_change, make_lead

PHONE = "+13125550199"


def block(address: str, kind: str = "opt_out", *, removed: bool = False) -> dict[str, Any]:
    return {
        "seq": 9,
        "entity": "contact_block",
        "entity_id": f"{kind}:{address}",
        "data": {"address": address, "kind": kind, "at": T0.isoformat(), "removed": removed},
    }


def test_an_opt_out_from_the_feed_opts_out_every_lead_with_the_address(store: LocalStore) -> None:
    store.repository.apply_changes(
        [lead_change(make_lead("lead-1")), lead_change(make_lead("lead-2", phone="3125550100"))],
        "1",
    )
    applied = store.repository.apply_changes([block(PHONE)], "2")
    assert applied.blocks == (PHONE,)
    assert applied.leads == ("lead-1",)  # the queue re-reads the lead that carries it
    assert store.repository.opt_outs() == frozenset({PHONE})
    lead = store.repository.get_lead("lead-1")
    assert lead is not None and lead.opted_out_at == T0
    stored = store.repository.stored_lead("lead-1")
    assert stored is not None and stored.lead.opted_out_at == T0
    other = store.repository.get_lead("lead-2")
    assert other is not None and other.opted_out_at is None
    queue = {lead.id: lead for lead, _ in store.repository.all_leads_with_history()}
    assert queue["lead-1"].opted_out_at == T0 and queue["lead-2"].opted_out_at is None
    # A newer copy of the lead from the server does not undo the block ...
    store.repository.apply_changes([lead_change(make_lead("lead-1", version=2))], "3")
    lead = store.repository.get_lead("lead-1")
    assert lead is not None and lead.opted_out_at == T0
    # ... lifting it (START) does.
    applied = store.repository.apply_changes([block(PHONE, removed=True)], "4")
    assert applied.leads == ("lead-1",)
    lead = store.repository.get_lead("lead-1")
    assert lead is not None and lead.opted_out_at is None
    assert store.repository.opt_outs() == frozenset()


def test_do_not_call_entries_and_unknown_kinds(store: LocalStore) -> None:
    applied = store.repository.apply_changes(
        [block(PHONE, "dnc"), block("x@example.org", "litigator")], "1"
    )
    assert store.repository.dnc() == frozenset({PHONE})
    assert store.repository.opt_outs() == frozenset()
    assert applied.ignored == 1


def test_a_full_download_replaces_both_lists_then_pulls_keep_them_fresh(store: LocalStore) -> None:
    store.repository.apply_changes([lead_change(make_lead("lead-1"))], "1", fresh_as_of=T0)
    # Never downloaded: a pull alone does not make the lists "fresh".
    assert store.repository.freshness(Dataset.OPT_OUTS) is None
    store.repository.apply_changes([block("+13125550111", "dnc")], "2", fresh_as_of=T0)
    later = T0 + timedelta(minutes=1)
    touched = store.repository.replace_all_contact_blocks(
        [(PHONE, BlockKind.OPT_OUT, T0), ("zebediah@example.org", BlockKind.DNC, T0)], later
    )
    assert touched == ["lead-1"]
    assert store.repository.opt_outs() == frozenset({PHONE})
    assert store.repository.dnc() == frozenset({"zebediah@example.org"})  # the old entry is gone
    assert store.repository.freshness(Dataset.OPT_OUTS) == later
    assert store.repository.freshness(Dataset.DNC) == later
    # Lifting the e-mail's entry touches its lead; the same lists again touch none.
    assert store.repository.replace_all_contact_blocks([(PHONE, BlockKind.OPT_OUT, T0)], later) == [
        "lead-1"
    ]
    assert (
        store.repository.replace_all_contact_blocks([(PHONE, BlockKind.OPT_OUT, T0)], later) == []
    )
    even_later = later + timedelta(minutes=5)
    store.repository.apply_changes([], "3", fresh_as_of=even_later)
    assert store.repository.freshness(Dataset.OPT_OUTS) == even_later
    assert store.repository.freshness(Dataset.DNC) == even_later
