"""Leads, activities and change-feed entries for the store tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from app.domain.activities import Activity, ActivityKind, Direction, DispositionFlag
from app.domain.codec import activity_to_dict, lead_to_dict
from app.domain.leads import Email, Lead, LeadSource, Person, SourceType
from app.domain.phones import PhoneKind, make_phone

T0 = datetime(2026, 3, 4, 16, 0, tzinfo=UTC)


def make_lead(
    lead_id: str = "lead-1",
    *,
    first: str = "Zebediah",
    last: str = "Quackenbush",
    phone: str = "(312) 555-0199",
    agent: str | None = "agent-ann",
    version: int = 1,
    **changes: Any,
) -> Lead:
    return Lead(
        id=lead_id,
        store_id="lakeside",
        received_at=T0,
        person=Person(first_name=first, last_name=last),
        source=LeadSource("Cars.com", SourceType.THIRD_PARTY),
        phones=(make_phone(phone, PhoneKind.CELL),),
        emails=(Email(f"{first.lower()}@example.org"),),
        assigned_agent_id=agent,
        version=version,
        **changes,
    )


def make_call(
    lead_id: str = "lead-1", *, minutes: int = 1, activity_id: str | None = None
) -> Activity:
    return Activity(
        id=activity_id or str(uuid.uuid4()),
        lead_id=lead_id,
        kind=ActivityKind.CALL,
        at=T0 + timedelta(minutes=minutes),
        direction=Direction.OUTBOUND,
        agent_id="agent-ann",
        phone="+13125550199",
        answered=False,
    )


def make_disposition(lead_id: str = "lead-1", *, minutes: int = 2) -> Activity:
    return Activity(
        id=str(uuid.uuid4()),
        lead_id=lead_id,
        kind=ActivityKind.DISPOSITION,
        at=T0 + timedelta(minutes=minutes),
        agent_id="agent-ann",
        disposition="left_voicemail",
        flags=DispositionFlag.ATTEMPT,
    )


def lead_change(
    lead: Lead, *, score: int | None = 80, due_at: datetime | None = None
) -> dict[str, Any]:
    """A "lead" entry as GET /v1/changes sends it."""
    return {
        "seq": 1,
        "entity": "lead",
        "entity_id": lead.id,
        "data": {
            "lead": lead_to_dict(lead),
            "score": score,
            "tier": "hot",
            "grade": "A",
            "due_at": due_at.isoformat() if due_at else None,
            "version": lead.version,
        },
    }


def activity_change(activity: Activity) -> dict[str, Any]:
    return {
        "seq": 2,
        "entity": "activity",
        "entity_id": activity.id,
        "data": activity_to_dict(activity),
    }


def removed_change(lead_id: str, reason: str = "reassigned") -> dict[str, Any]:
    return {
        "seq": 3,
        "entity": "lead_removed",
        "entity_id": lead_id,
        "data": {"lead_id": lead_id, "reason": reason, "version": 2},
    }
