from datetime import UTC, datetime

from app.demo.generator import DEMO_STORE, demo_leads
from app.domain.codec import lead_from_dict, lead_to_dict

NOW = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)


def test_demo_data_is_deterministic_and_realistic() -> None:
    first = demo_leads(NOW, 200)
    assert demo_leads(NOW, 200) == first
    leads = [lead for lead, _ in first]
    assert all(lead.store_id == DEMO_STORE.id for lead in leads)
    assert all(lead.received_at <= NOW for lead in leads)
    assert len({lead.source.name for lead in leads}) >= 6
    reachable = sum(1 for lead in leads if lead.reachable)
    assert reachable >= 190  # a few junk contacts, as real feeds send
    fresh = [lead for lead in leads if (NOW - lead.received_at).total_seconds() < 300]
    assert len(fresh) == 6  # the demo opens with live countdowns
    assert all(lead_from_dict(lead_to_dict(lead)) == lead for lead in leads)
    for lead, history in first:
        assert all(a.lead_id == lead.id and a.at <= NOW for a in history)
        assert [a.at for a in history] == sorted(a.at for a in history)
