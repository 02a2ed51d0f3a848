"""The call floor: agent presence and heartbeats, the managers' floor view and funnel metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from app.domain.metrics import GroupBy
from server.auth import MANAGERS, STAFF, Principal, authorize, rule
from server.db import PresenceRow, transaction
from server.rules import clock_of, get_rules
from server.services import floor_metrics, presence

router = APIRouter(tags=["floor"])


def _invalid(location: str, field: str, message: str) -> RequestValidationError:
    # Answered by the app's validation handler, so every 422 has the same shape.
    return RequestValidationError(
        [{"loc": (location, field), "msg": message, "type": "value_error"}]
    )


class PresenceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    state: presence.PresenceState
    reason: presence.PauseReason | None = Field(
        default=None, description="Required when paused; only paused takes one."
    )
    lead_id: str | None = Field(
        default=None, min_length=1, max_length=64, description="The lead on the line (on_call)."
    )


class PresenceOut(BaseModel):
    user_id: str
    state: str
    reason: str | None
    lead_id: str | None
    since: str | None
    server_time: str
    heartbeat_timeout_s: int


def _presence_out(row: PresenceRow, request: Request) -> PresenceOut:
    timeout = request.app.state.settings.heartbeat_timeout
    now = clock_of(request.app)
    state = presence.effective(row, now, timeout)
    return PresenceOut(
        user_id=row.user_id,
        state=state.state,
        reason=state.reason or None,
        lead_id=state.lead_id,
        since=state.since.isoformat() if state.since else None,
        server_time=now.isoformat(),
        heartbeat_timeout_s=int(timeout.total_seconds()),
    )


@router.post("/v1/presence", **rule(*STAFF))
def set_presence(
    body: PresenceRequest,
    request: Request,
    principal: Principal = Depends(authorize(*STAFF)),
) -> PresenceOut:
    """Set my state: available, on_call (with the lead), wrap_up, or paused with a reason code."""
    try:
        with transaction(request.app.state.sessions) as session:
            row = presence.set_state(
                session,
                principal,
                body.state.value,
                reason=body.reason.value if body.reason else None,
                lead_id=body.lead_id,
                now=clock_of(request.app),
                timeout=request.app.state.settings.heartbeat_timeout,
            )
    except presence.PresenceError as exc:
        raise _invalid("body", exc.field, exc.message) from None
    return _presence_out(row, request)


@router.post("/v1/presence/heartbeat", **rule(*STAFF))
def presence_heartbeat(
    request: Request,
    principal: Principal = Depends(authorize(*STAFF)),
) -> PresenceOut:
    """I am still here. Send more often than `heartbeat_timeout_s`, or count as offline."""
    with transaction(request.app.state.sessions) as session:
        row = presence.heartbeat(
            session,
            principal,
            now=clock_of(request.app),
            timeout=request.app.state.settings.heartbeat_timeout,
        )
    return _presence_out(row, request)


@router.get("/v1/floor", **rule(*MANAGERS))
def floor_view(
    request: Request,
    principal: Principal = Depends(authorize(*MANAGERS)),
) -> dict[str, Any]:
    """Every agent of my store: state, time in state, call in progress, today's numbers."""
    rules = get_rules(request.app)
    with request.app.state.sessions() as session:
        return presence.floor(
            session,
            principal.store_id,
            rules,
            now=clock_of(request.app),
            timeout=request.app.state.settings.heartbeat_timeout,
        )


@router.get("/v1/metrics", **rule(*MANAGERS))
def funnel_metrics(
    request: Request,
    period: floor_metrics.PeriodName = Query(
        floor_metrics.PeriodName.TODAY, description="Calendar period in the store's time zone."
    ),
    start: str | None = Query(
        None,
        max_length=40,
        description="custom only: a date (local day) or a datetime with offset",
    ),
    end: str | None = Query(
        None,
        max_length=40,
        description="custom only: a date (included) or a datetime with offset (excluded)",
    ),
    group_by: GroupBy | None = Query(None),
    principal: Principal = Depends(authorize(*MANAGERS)),
) -> dict[str, Any]:
    """The lead funnel of my store (DESIGN.md §5) with benchmarks, by agent, source or date."""
    rules = get_rules(request.app)
    try:
        with request.app.state.sessions() as session:
            return floor_metrics.metrics_report(
                session,
                principal.store_id,
                rules,
                period_name=period.value,
                start=start,
                end=end,
                group_by=group_by.value if group_by else None,
                now=clock_of(request.app),
            )
    except floor_metrics.MetricsParamError as exc:
        raise _invalid("query", exc.param, exc.message) from None
