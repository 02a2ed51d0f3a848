import json
from dataclasses import replace
from datetime import UTC, datetime

from app.demo.generator import DEMO_STORE, demo_leads, intake_document
from app.domain.codec import lead_from_dict, lead_to_dict
from app.domain.leads import (
    Address,
    Channel,
    Consent,
    ConsentScope,
    Lead,
    LeadSource,
    Person,
    SourceType,
)
from app.domain.phones import TimeOfDay, make_phone
from server.services.intake import leads_from_json

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


def _through_intake(lead: Lead) -> Lead:
    """`lead` posted as its intake document and read back the way POST /v1/leads reads it."""
    [incoming] = leads_from_json(
        [json.loads(json.dumps(intake_document(lead)))],
        store_id=lead.store_id,
        received_at=lead.received_at,
        default_source=LeadSource("Manual entry", SourceType.WALK_IN),
    )
    return incoming.lead


def test_the_intake_document_carries_every_field_the_intake_schema_reads() -> None:
    not_sent = ("status", "assigned_agent_id", "duplicate_of", "is_spam", "do_not_call")
    for lead, _ in demo_leads(NOW, 200):
        if not lead.reachable:  # junk contacts: the intake refuses them, as it should
            continue
        read = _through_intake(lead)
        kept = {name: getattr(read, name) for name in not_sent}
        assert replace(read, id=lead.id) == replace(lead, opted_out_at=None, **kept)


def test_the_intake_document_keeps_call_times_names_and_places_and_drops_revoked_consent() -> None:
    lead, _ = demo_leads(NOW, 1)[0]
    consent = Consent(Channel.TEXT, ConsentScope.MARKETING, NOW, "web form", "Texts OK")
    lead = replace(
        lead,
        person=Person("Ann", "Lee", middle_name="Marie", business_name="Lee Plumbing"),
        phones=(make_phone("(312) 555-0134", preferred_time=TimeOfDay.EVENING, preferred=True),),
        address=Address(state="WI", country="US"),
        consents=(consent, replace(consent, scope=ConsentScope.INFORMATIONAL, revoked_at=NOW)),
    )
    document = intake_document(lead)
    assert document["phones"][0]["preferred_time"] == "evening"
    assert document["person"]["business_name"] == "Lee Plumbing"
    assert document["address"]["state"] == "WI"  # a state alone still places the customer
    assert [c["scope"] for c in document["consents"]] == ["marketing"]
    read = _through_intake(lead)
    assert (read.person, read.phones, read.address) == (lead.person, lead.phones, lead.address)
