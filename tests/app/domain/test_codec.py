import contextlib
import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.demo.generator import make_history, make_lead
from app.domain.codec import (
    DecodeError,
    activity_from_dict,
    activity_to_dict,
    lead_from_dict,
    lead_to_dict,
)
from app.domain.errors import DomainError

NOW = datetime(2026, 11, 25, 16, 0, tzinfo=UTC)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32))
def test_leads_and_histories_round_trip(seed: int) -> None:
    rng = random.Random(seed)
    lead = make_lead(rng, NOW - timedelta(hours=rng.randint(0, 500)))
    assert lead_from_dict(lead_to_dict(lead)) == lead
    for activity in make_history(rng, lead, NOW):
        assert activity_from_dict(activity_to_dict(activity)) == activity


def _doc() -> dict[str, object]:
    return lead_to_dict(make_lead(random.Random(1), NOW))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("received_at"), "received_at: required"),
        (
            lambda d: d.update(received_at="2026-11-25T10:00:00"),
            "received_at: must include a time zone",
        ),
        (lambda d: d.update(received_at="yesterday"), "is not an ISO 8601 date-time"),
        (lambda d: d.update(colour="red"), "unknown field(s) colour"),
        (lambda d: d["source"].update(type="billboard"), "source.type: 'billboard' is not one of"),
        (lambda d: d["vehicles"][0].update(year="2024"), "vehicles[0].year: must be an integer"),
        (lambda d: d["vehicles"][0].update(year=1200), "vehicles[0].year: must be between"),
        (lambda d: d.update(phones="312"), "phones: must be an array"),
        (lambda d: d["person"].update(first_name="", last_name=""), "name is required"),
        (lambda d: d.update(comments="x" * 5000), "comments: longer than 4000"),
        (lambda d: d.update(is_spam="no"), "is_spam: must be true or false"),
    ],
)
def test_bad_documents_name_the_field(change: object, message: str) -> None:
    doc = _doc()
    change(doc)  # type: ignore[operator]
    with pytest.raises(DomainError) as info:
        lead_from_dict(doc)
    assert message in str(info.value)


def test_phone_is_renormalized_from_the_raw_text() -> None:
    doc = _doc()
    doc["phones"] = [{"raw": "(312) 867-5309", "e164": "+19999999999", "kind": "cellphone"}]
    assert lead_from_dict(doc).phones[0].e164 == "+13128675309"


def test_activity_flags_by_name() -> None:
    doc = {
        "id": "a1",
        "lead_id": "L1",
        "kind": "disposition",
        "at": NOW.isoformat(),
        "disposition": "appointment_set",
        "flags": ["attempt", "human_contact", "appointment_set"],
        "answered": None,
    }
    activity = activity_from_dict(doc)
    assert activity_to_dict(activity)["flags"] == ["attempt", "human_contact", "appointment_set"]
    doc["flags"] = ["teleport"]
    with pytest.raises(DecodeError, match="unknown flag 'teleport'"):
        activity_from_dict(doc)


@given(st.dictionaries(st.text(max_size=12), st.none() | st.text(max_size=10) | st.integers()))
def test_garbage_only_ever_raises_domain_errors(data: dict[str, object]) -> None:
    for decode in (lead_from_dict, activity_from_dict):
        with contextlib.suppress(DomainError):
            decode(data)
