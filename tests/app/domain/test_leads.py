from datetime import UTC, datetime

import pytest

from app.domain.activities import Activity, ActivityKind, Direction, DispositionFlag, in_order
from app.domain.dealership import Dealership
from app.domain.errors import DomainError, InvalidActivityError, InvalidLeadError
from app.domain.leads import (
    Channel,
    Consent,
    ConsentScope,
    Email,
    Lead,
    LeadSource,
    Person,
    SourceType,
    Vehicle,
    VehicleInterest,
    normalize_email,
)
from app.domain.phones import PhoneKind, make_phone

T0 = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


def _lead(**changes: object) -> Lead:
    base: dict[str, object] = {
        "id": "L1",
        "store_id": "S1",
        "received_at": T0,
        "person": Person("Maria", "Lopez"),
        "source": LeadSource("Dealer website", SourceType.FIRST_PARTY),
    }
    base.update(changes)
    return Lead(**base)  # type: ignore[arg-type]


def test_naive_receipt_time_is_refused_with_a_clear_message() -> None:
    with pytest.raises(InvalidLeadError, match="time zone"):
        _lead(received_at=datetime(2026, 11, 25, 15, 0))


def test_trade_in_must_be_a_trade_in_vehicle() -> None:
    with pytest.raises(InvalidLeadError, match="trade_in"):
        _lead(trade_in=Vehicle(2019, "Honda", "Civic"))
    lead = _lead(trade_in=Vehicle(2019, "Honda", "Civic", interest=VehicleInterest.TRADE_IN))
    assert lead.trade_in is not None


def test_primary_phone_prefers_the_preferred_reachable_number() -> None:
    bad = make_phone("555-01", PhoneKind.CELL, preferred=True)
    home = make_phone("312-867-5309", PhoneKind.VOICE)
    cell = make_phone("312-867-5310", PhoneKind.CELL, preferred=True)
    lead = _lead(phones=(bad, home, cell))
    assert lead.primary_phone == cell
    assert lead.text_phone == cell
    assert _lead(phones=(bad, home)).primary_phone == home
    assert _lead(phones=(bad, home)).text_phone is None
    assert not _lead(phones=(bad,)).reachable


def test_primary_email_skips_invalid_addresses() -> None:
    lead = _lead(emails=(Email("not-an-email"), Email("maria@example.com")))
    assert lead.primary_email == Email("maria@example.com")
    assert lead.reachable


def test_normalize_email() -> None:
    assert normalize_email("  Maria.Lopez@Example.COM ") == "Maria.Lopez@example.com"
    with pytest.raises(InvalidLeadError, match="no '@'"):
        normalize_email("maria.example.com")
    with pytest.raises(InvalidLeadError, match="not a valid"):
        normalize_email("maria@")


def test_vehicle_description_and_specificity() -> None:
    camry = Vehicle(2024, "Toyota", "Camry", "SE")
    assert camry.description == "2024 Toyota Camry SE"
    assert camry.is_specific
    assert not Vehicle(make="Toyota").is_specific
    assert Vehicle(vin="4T1G11AK5RU000001").is_specific


def test_consent_is_active_between_grant_and_revocation() -> None:
    consent = Consent(
        Channel.TEXT,
        ConsentScope.MARKETING,
        granted_at=T0,
        method="web form checkbox",
        revoked_at=datetime(2026, 11, 26, tzinfo=UTC),
    )
    lead = _lead(consents=(consent,))
    assert lead.consent_for(Channel.TEXT, datetime(2026, 11, 25, 20, tzinfo=UTC)) == (consent,)
    assert lead.consent_for(Channel.TEXT, datetime(2026, 11, 26, 1, tzinfo=UTC)) == ()
    assert lead.consent_for(Channel.CALL, datetime(2026, 11, 25, 20, tzinfo=UTC)) == ()


def test_activity_classification() -> None:
    ack = Activity("a1", "L1", ActivityKind.EMAIL, T0, direction=Direction.OUTBOUND, automatic=True)
    call = Activity("a2", "L1", ActivityKind.CALL, T0, direction=Direction.OUTBOUND, answered=True)
    reply = Activity("a3", "L1", ActivityKind.TEXT, T0, direction=Direction.INBOUND)
    contact = Activity(
        "a4",
        "L1",
        ActivityKind.DISPOSITION,
        T0,
        disposition="contacted",
        flags=DispositionFlag.ATTEMPT | DispositionFlag.HUMAN_CONTACT,
    )
    assert ack.is_outbound_touch and not ack.is_agent_attempt
    assert call.is_agent_attempt and call.is_conversation and call.channel is Channel.CALL
    assert not reply.is_outbound_touch and not reply.is_agent_attempt
    assert contact.is_conversation and contact.channel is None


def test_activity_rejects_inconsistent_records() -> None:
    with pytest.raises(InvalidActivityError, match="time zone"):
        Activity("a", "L1", ActivityKind.NOTE, datetime(2026, 1, 1))
    with pytest.raises(InvalidActivityError, match="negative"):
        Activity("a", "L1", ActivityKind.CALL, T0, duration_s=-1)
    with pytest.raises(InvalidActivityError, match="code"):
        Activity("a", "L1", ActivityKind.DISPOSITION, T0)
    with pytest.raises(InvalidActivityError, match="status"):
        Activity("a", "L1", ActivityKind.APPOINTMENT, T0)


def test_in_order_is_stable_for_equal_times() -> None:
    first = Activity("a", "L1", ActivityKind.NOTE, T0)
    second = Activity("b", "L1", ActivityKind.NOTE, T0)
    earlier = Activity("c", "L1", ActivityKind.NOTE, datetime(2026, 1, 1, tzinfo=UTC))
    assert [a.id for a in in_order([first, second, earlier])] == ["c", "a", "b"]


def test_dealership_zone_and_local_zip() -> None:
    store = Dealership(
        "S1", "Lakeside Toyota", "America/Chicago", "IL", "60601", market_zips=("606",)
    )
    assert store.is_local_zip("60614-2201")
    assert not store.is_local_zip("46201")
    assert not store.is_local_zip("abc")
    with pytest.raises(DomainError, match="time zone"):
        Dealership("S2", "X", "Mars/Olympus", "IL", "60601")
