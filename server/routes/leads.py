"""Staff routes over leads: list, detail, versioned edit, manager assignment, agent claim.

Agents see their own leads and the unassigned pool; managers and admins their whole store. A
lead of another store (or another agent's lead, for an agent) is 404, never 403.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from app.domain.leads import LeadStatus
from server.auth import MANAGERS, STAFF, Principal, Role, authorize, rule
from server.db import StoreRow, transaction
from server.rules import clock_of, get_rules
from server.services import routing
from server.services.common import get_lead_for
from server.services.leads import (
    MAX_PAGE,
    Assigned,
    BadRequest,
    LeadPatch,
    VersionConflict,
    detail,
    list_leads,
    patch_lead,
    summary,
)

router = APIRouter(tags=["leads"])

LeadId = Path(min_length=1, max_length=64, description="the lead's id")


class LeadSummary(BaseModel):
    id: str
    version: int
    status: str
    received_at: str
    assigned_agent_id: str | None
    score: int
    tier: str
    grade: str
    due_at: str | None
    first_attempt_at: str | None
    lead: dict[str, Any] = Field(description="the lead in the wire format (app.domain.codec)")


class LeadPage(BaseModel):
    leads: list[LeadSummary]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null: done")


class LeadDetail(LeadSummary):
    grade_reason: str
    score_reasons: list[dict[str, Any]]
    clocks: dict[str, Any] | None
    activities: list[dict[str, Any]]


class AssignRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agent_id: str | None = Field(
        max_length=64, description="an active agent of the store, or null for the pool"
    )


def _bad(exc: BadRequest | ValueError) -> JSONResponse:
    problems = exc.problems if isinstance(exc, BadRequest) else [str(exc)]
    return JSONResponse({"detail": "invalid request", "problems": problems}, status_code=422)


def _store(session: Any, principal: Principal) -> StoreRow:
    store = session.get(StoreRow, principal.store_id)
    if store is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "store not found")
    assert isinstance(store, StoreRow)
    return store


@router.get("/v1/leads", **rule(*STAFF))
def get_leads(
    request: Request,
    assigned: Assigned = Query(
        "all", description="me: mine; pool: unassigned; all: everything I may see"
    ),
    status_filter: list[LeadStatus] | None = Query(
        None, alias="status", description="repeat to allow several statuses"
    ),
    limit: int = Query(100, ge=1, le=MAX_PAGE),
    cursor: str | None = Query(None, max_length=400),
    principal: Principal = Depends(authorize(*STAFF)),
) -> LeadPage:
    """Leads newest first, a page at a time."""
    with request.app.state.sessions() as session:
        try:
            rows, next_cursor = list_leads(
                session,
                principal,
                assigned=assigned,
                statuses=status_filter or (),
                limit=limit,
                cursor=cursor,
            )
        except BadRequest as exc:
            return _bad(exc)  # type: ignore[return-value]
        return LeadPage(leads=[LeadSummary(**summary(r)) for r in rows], next_cursor=next_cursor)


@router.get("/v1/leads/{lead_id}", **rule(*STAFF))
def get_lead(
    request: Request,
    lead_id: str = LeadId,
    principal: Principal = Depends(authorize(*STAFF)),
) -> LeadDetail:
    """The lead, its activities, its score with reasons and its response clocks."""
    app = request.app
    with app.state.sessions() as session:
        row = get_lead_for(session, principal, lead_id)
        body = detail(session, row, get_rules(app), _store(session, principal), clock_of(app))
        return LeadDetail(**body)


@router.patch(
    "/v1/leads/{lead_id}",
    responses={409: {"description": "the lead changed since base_version; body holds it"}},
    **rule(*STAFF),
)
def edit_lead(
    request: Request,
    patch: LeadPatch,
    lead_id: str = LeadId,
    principal: Principal = Depends(authorize(*STAFF)),
) -> LeadDetail:
    """Change name, contacts, address, vehicles, timeframe or comments. Refused with 409 (and
    the current lead) when `base_version` is not the lead's version: nothing is overwritten."""
    app = request.app
    now = clock_of(app)
    conflict: dict[str, Any] | None = None
    try:
        with transaction(app.state.sessions) as session:
            row = get_lead_for(session, principal, lead_id, lock=True)
            store = _store(session, principal)
            try:
                patch_lead(
                    session,
                    row,
                    patch,
                    principal=principal,
                    rules=get_rules(app),
                    store=store,
                    now=now,
                )
            except VersionConflict:
                conflict = detail(session, row, get_rules(app), store, now)
            else:
                body = detail(session, row, get_rules(app), store, now)
    except BadRequest as exc:
        return _bad(exc)  # type: ignore[return-value]
    if conflict is not None:
        return JSONResponse(  # type: ignore[return-value]
            {
                "detail": f"lead changed: you edited version {patch.base_version}, the server "
                f"has version {conflict['version']}; nothing was saved",
                "current": conflict,
            },
            status_code=409,
        )
    return LeadDetail(**body)


@router.post("/v1/leads/{lead_id}/assign", **rule(*MANAGERS))
def assign_lead(
    request: Request,
    body: AssignRequest,
    lead_id: str = LeadId,
    principal: Principal = Depends(authorize(*MANAGERS)),
) -> LeadSummary:
    """Give the lead to an active agent of the store, or to the pool (agent_id null). The
    previous agent's feed gets "lead_removed"."""
    app = request.app
    try:
        with transaction(app.state.sessions) as session:
            row = get_lead_for(session, principal, lead_id, lock=True)
            routing.reassign(
                session,
                row,
                body.agent_id,
                by=principal.id,
                by_name=principal.name,
                now=clock_of(app),
            )
            result = summary(row)
    except routing.NotAnAgent as exc:
        return _bad(exc)  # type: ignore[return-value]
    return LeadSummary(**result)


@router.post(
    "/v1/leads/{lead_id}/claim",
    responses={409: {"description": "somebody claimed the lead first"}},
    **rule(Role.AGENT),
)
def claim_lead(
    request: Request,
    lead_id: str = LeadId,
    principal: Principal = Depends(authorize(Role.AGENT)),
) -> LeadSummary:
    """Take a lead from the unassigned pool. 409 when somebody else has it already."""
    app = request.app
    try:
        with transaction(app.state.sessions) as session:
            row = routing.claim(session, principal.store_id, principal.id, lead_id, clock_of(app))
            result = summary(row)
    except LookupError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"lead '{lead_id}' not found") from None
    except routing.ClaimConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return LeadSummary(**result)
