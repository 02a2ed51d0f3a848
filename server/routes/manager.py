"""The manager view's reads and QA reviews: queue health, calls to review, QA scorecards.

The floor (presence, today's counts) and the funnel metrics are in server/routes/floor.py;
reassignment is POST /v1/leads/{id}/assign. The logic is in server/services/manager_views.py.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse

from app.domain.codec import activity_from_dict
from server.auth import MANAGERS, Principal, authorize, rule
from server.db import transaction
from server.rules import clock_of, get_rules
from server.services import manager_views
from server.services.activities import ActivityProblem, post_activities
from server.services.floor_metrics import PeriodName

router = APIRouter(tags=["manager"])


@router.get("/v1/queue-health", **rule(*MANAGERS))
def queue_health(
    request: Request,
    principal: Principal = Depends(authorize(*MANAGERS)),
) -> dict[str, Any]:
    """Every unworked lead of my store with its response deadline, breached and soonest first."""
    with request.app.state.sessions() as session:
        return manager_views.queue_health(session, principal.store_id, now=clock_of(request.app))


@router.get("/v1/review/calls", **rule(*MANAGERS))
def review_calls(
    request: Request,
    period: PeriodName = Query(PeriodName.TODAY, description="today, week or month"),
    agent_id: str | None = Query(None, max_length=64),
    principal: Principal = Depends(authorize(*MANAGERS)),
) -> dict[str, Any]:
    """The agents' calls in the period: lead, agent, talk time, outcome, recording, scorecard."""
    if period is PeriodName.CUSTOM:
        return JSONResponse(  # type: ignore[return-value]
            {"detail": "period: one of today, week, month"}, status_code=422
        )
    with request.app.state.sessions() as session:
        return manager_views.calls(
            session,
            principal.store_id,
            get_rules(request.app),
            period_name=period.value,
            agent_id=agent_id,
            now=clock_of(request.app),
        )


@router.get("/v1/review/scorecards", **rule(*MANAGERS))
def list_scorecards(
    request: Request,
    agent_id: str | None = Query(None, max_length=64),
    principal: Principal = Depends(authorize(*MANAGERS)),
) -> dict[str, Any]:
    """QA scorecards of my store (or of one agent), newest first."""
    with request.app.state.sessions() as session:
        cards = manager_views.scorecards(session, principal.store_id, agent_id=agent_id)
    return {"scorecards": cards}


@router.post(
    "/v1/review/scorecards",
    status_code=201,
    responses={404: {"description": "no such call in my store"}, 422: {"description": "bad"}},
    **rule(*MANAGERS),
)
def save_scorecard(
    request: Request,
    body: dict[str, Any] = Body(
        ...,
        description='{"id": uuid, "call_id": the CALL activity id, "scores": {criterion: 1..5}, '
        '"comments": {criterion: text}, "summary": text}; criteria: greeting, '
        "needs_assessment, product_knowledge, objection_handling, appointment_setting, crm_notes",
    ),
    principal: Principal = Depends(authorize(*MANAGERS)),
) -> JSONResponse:
    """Save a QA scorecard for a call: a note on the call's lead in the agent's history. The
    same id again with the same content is answered 200 and recorded once."""
    app = request.app
    now = clock_of(app)
    try:
        with transaction(app.state.sessions) as session:
            existing = manager_views.existing_scorecard(session, principal.store_id, body)
            if existing is not None:  # a retry of one already saved
                return JSONResponse(existing, status_code=200)
            note = manager_views.scorecard_activity(session, principal, body, now=now)
            outcome = post_activities(session, principal, note, rules=get_rules(app), now=now)
    except LookupError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except manager_views.ReviewError as exc:
        return JSONResponse({"detail": str(exc)}, status_code=422)
    except ActivityProblem as exc:
        return JSONResponse({"detail": exc.message}, status_code=exc.status_code)
    posted = outcome.results[0]["activity"] if outcome.results else note
    card = manager_views.parse_scorecard(activity_from_dict(posted))
    return JSONResponse(card, status_code=201 if outcome.created else 200)
