"""GET /v1/snapshot: the leads a workstation loads on its first sync and after a 410 (resync),
with their histories. See server/services/snapshot.py."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from server.auth import STAFF, Principal, authorize, rule
from server.services.snapshot import MAX_SNAPSHOT_PAGE, read_snapshot

router = APIRouter(tags=["sync"])


class SnapshotLead(BaseModel):
    """What a "lead" change carries (common.lead_change_payload), plus the lead's history."""

    lead: dict[str, Any] = Field(description="the lead in the wire format (app.domain.codec)")
    score: int
    tier: str
    grade: str
    due_at: str | None
    version: int
    activities: list[dict[str, Any]] = Field(
        description="every activity of the lead, whoever logged it, oldest first"
    )


class SnapshotPage(BaseModel):
    newest: int = Field(
        description="the first page's: follow GET /v1/changes?since=newest after the last page"
    )
    total: int = Field(description="how many leads you may see now")
    leads: list[SnapshotLead] = Field(description="by lead id, after `cursor`")
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null: done")


# Documented, not used to serialize: the route answers with the stored JSON texts spliced.
@router.get(
    "/v1/snapshot",
    response_model=None,
    responses={200: {"model": SnapshotPage, "description": "a page of leads"}},
    **rule(*STAFF),
)
def get_snapshot(
    request: Request,
    cursor: str | None = Query(
        None,
        max_length=64,
        pattern=r"^[^\x00]*$",  # PostgreSQL refuses NUL in text: 422, not 500
        description="the last lead id you have (next_cursor); none: start",
    ),
    limit: int = Query(500, ge=1, le=MAX_SNAPSHOT_PAGE, description="at most this many leads"),
    principal: Principal = Depends(authorize(*STAFF)),
) -> Response:
    """The leads you may see, by lead id, each with its whole activity history: load them all
    (first sync or resync), then follow GET /v1/changes from the first page's `newest`."""
    with request.app.state.read_sessions() as session:
        body = read_snapshot(session, principal, cursor, limit)
    return Response(body, media_type="application/json")
