"""POST /v1/activities: append-only activity records from the workstation (Idempotency-Key
required). The logic is in server/services/activities.py."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError

from server.auth import STAFF, Principal, authorize, rule
from server.db import transaction
from server.idempotency import idempotency_key
from server.rules import clock_of, get_rules
from server.services.activities import MAX_BATCH, ActivityProblem, post_activities

router = APIRouter(tags=["activities"])


@router.post(
    "/v1/activities",
    status_code=201,
    responses={
        200: {"description": "every activity was already recorded with the same content"},
        403: {"description": "an agent's activity on a lead that was not theirs at its time"},
        404: {"description": "a lead that does not exist or is in another store"},
        409: {"description": "an activity id already recorded with other content"},
        422: {"description": "bad input; the message names the field"},
    },
    **rule(*STAFF),
)
def create_activities(
    request: Request,
    body: dict[str, Any] = Body(
        ...,
        description=(
            "One activity in the wire format (app.domain.codec activity_to_dict), or "
            f'{{"activities": [...]}} with at most {MAX_BATCH}.'
        ),
    ),
    principal: Principal = Depends(authorize(*STAFF)),
    _key: str | None = Depends(idempotency_key(required=True)),
) -> JSONResponse:
    """Record activities (calls, dispositions, notes, texts, e-mails, appointments, opt-outs)
    and apply their effects: lead status, do-not-contact and opt-out blocks, appointment
    reminders, rescoring and the server-side cadence plan. All or nothing."""
    app = request.app
    try:
        with transaction(app.state.sessions) as session:
            outcome = post_activities(
                session, principal, body, rules=get_rules(app), now=clock_of(app)
            )
    except ActivityProblem as exc:
        return _problem(exc.status_code, exc.message)
    except IntegrityError:
        # Another request recorded one of these ids at the same moment; a retry sees it.
        return _problem(409, "id: one of these activities was recorded concurrently; retry")
    return JSONResponse(outcome.as_dict(), status_code=201 if outcome.created else 200)


def _problem(status_code: int, message: str) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status_code)
