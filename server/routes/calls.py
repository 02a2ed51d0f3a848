"""Server-side call control: POST /v1/calls rings the agent's phone and bridges it to the
customer through the configured provider (server/calls); the provider's status comes back through
its webhook (Twilio) or event stream (AMI) and out on the change feed as "call" changes, presence
("on call with <lead>") and, at the end, one CALL activity."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qsl

import anyio.to_thread
from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.domain.phones import normalize_e164
from server.auth import PUBLIC, STAFF, Principal, Role, authorize, rule
from server.calls import (
    ENDED,
    FAILED,
    OutboundCall,
    ProviderEvent,
    ProviderRefused,
    ProviderUnavailable,
)
from server.calls.service import (
    apply_event,
    call_to_dict,
    check_call,
    open_call,
    provider_of,
)
from server.calls.twilio import CALLBACK_PATH, parse_status
from server.db import CallRow, StoreRow, UserRow, transaction
from server.idempotency import idempotency_key
from server.messaging.twilio import valid_twilio_signature
from server.rules import clock_of, get_rules
from server.services.common import get_lead_for, lead_of

router = APIRouter(tags=["calls"])
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
MAX_WEBHOOK_BYTES = 20_000


class CallRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(description="client-generated UUID of the call", max_length=64)
    lead_id: str = Field(min_length=1, max_length=64)
    phone: str | None = Field(
        None, max_length=40, description="the lead's number to call (default: its primary)"
    )

    @field_validator("id")
    @classmethod
    def _uuid(cls, value: str) -> str:
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise ValueError("must be a UUID") from None


def _problem(status_code: int, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=status_code)


@router.post(
    "/v1/calls",
    status_code=201,
    responses={
        404: {"description": "a lead that does not exist or is not yours"},
        409: {"description": "the call id is already used"},
        422: {"description": "refused by compliance (reasons and when allowed) or bad input"},
        502: {"description": "the calling provider refused or could not be reached"},
        503: {"description": "no calling provider is configured on this server"},
    },
    **rule(*STAFF),
)
def start_call(
    body: CallRequest,
    request: Request,
    principal: Principal = Depends(authorize(*STAFF)),
    _key: str | None = Depends(idempotency_key(required=True)),
) -> Any:
    """Ring my phone, then the lead. Compliance (quiet hours in the customer's time, do-not-call,
    opt-out, call caps) is checked again here, whatever the desktop decided."""
    app = request.app
    now = clock_of(app)
    rules = get_rules(app)
    settings = app.state.settings
    with transaction(app.state.sessions) as session:
        lead_row = get_lead_for(session, principal, body.lead_id, lock=True)
        if session.get(CallRow, body.id) is not None:
            return _problem(409, f"id: call {body.id} already exists (use a new id)")
        lead = lead_of(lead_row)
        phone = None
        if body.phone is not None:
            phone = normalize_e164(body.phone)
            if phone is None or phone not in {p.e164 for p in lead.phones}:
                return _problem(422, "phone: not one of this lead's numbers")
        store = session.get(StoreRow, lead_row.store_id)
        assert store is not None
        decision = check_call(session, rules, store, lead_row, now, phone)
        if not decision.allowed:
            return _problem(
                422,
                f"not dialed: {decision.message}",
                code=decision.reasons[0].code.value.upper(),
                reasons=[
                    {"code": r.code.value.upper(), "message": r.message} for r in decision.reasons
                ],
                next_allowed_at=decision.next_allowed_at.isoformat()
                if decision.next_allowed_at
                else None,
            )
        provider = provider_of(app)
        if provider is None:
            return _problem(503, "no calling provider is configured on this server (call_provider)")
        user = session.get(UserRow, principal.id)
        agent_phone = user.phone.strip() if user is not None else ""
        if not agent_phone:
            return _problem(422, "agent_phone: your user has no phone to ring; ask an admin")
        if not store.phone:
            return _problem(422, "caller_id: the store has no phone number to call from")
        assert decision.address is not None
        row = open_call(
            session,
            principal,
            lead_row,
            call_id=body.id,
            provider=provider.name,
            agent_phone=agent_phone,
            customer_phone=decision.address,
            now=now,
            timeout=settings.heartbeat_timeout,
            watch_after=settings.call_setup_timeout,
        )
        call = OutboundCall(row.id, agent_phone, decision.address, store.phone)
    try:
        provider_id = provider.start(call)
    except (ProviderRefused, ProviderUnavailable) as exc:
        apply_event(
            app.state.sessions,
            rules,
            settings,
            ProviderEvent(call.id, None, ENDED, clock_of(app), FAILED, str(exc)),
        )
        return _problem(502, f"the call could not be placed: {exc}", call_id=call.id)
    with transaction(app.state.sessions) as session:
        stored = session.get(CallRow, call.id, with_for_update=True)
        assert stored is not None
        if stored.provider_call_id is None:
            stored.provider_call_id = provider_id
        out = call_to_dict(stored)
    return JSONResponse(out, status_code=201)


def _call_for(session: Any, principal: Principal, call_id: str) -> CallRow:
    row = session.get(CallRow, call_id)
    if (
        row is None
        or row.store_id != principal.store_id
        or (principal.role is Role.AGENT and row.agent_id != principal.id)
    ):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"call '{call_id}' not found")
    return row


@router.get("/v1/calls/{call_id}", **rule(*STAFF))
def get_call(
    call_id: str, request: Request, principal: Principal = Depends(authorize(*STAFF))
) -> dict[str, Any]:
    """A call's state: dialing, ringing, answered or ended (with cause and duration)."""
    with request.app.state.sessions() as session:
        return call_to_dict(_call_for(session, principal, call_id))


@router.post("/v1/calls/{call_id}/hangup", **rule(*STAFF))
def hang_up_call(
    call_id: str, request: Request, principal: Principal = Depends(authorize(*STAFF))
) -> Any:
    """End the call (both legs). An ended call stays ended (200 with its state)."""
    app = request.app
    with app.state.sessions() as session:
        row = _call_for(session, principal, call_id)
        out = call_to_dict(row)
    if out["state"] == ENDED or not out["provider_call_id"]:
        return out
    provider = provider_of(app)
    if provider is None:
        return _problem(503, "no calling provider is configured on this server")
    try:
        provider.hang_up(out["provider_call_id"])
    except (ProviderRefused, ProviderUnavailable) as exc:
        return _problem(502, f"the hang-up did not go through: {exc}")
    return JSONResponse(out, status_code=202)


@router.post(
    CALLBACK_PATH,
    response_class=Response,
    responses={200: {"content": {"text/xml": {}}, "description": "empty TwiML"}},
    **rule(PUBLIC),
)
async def twilio_call_status(request: Request) -> Response:
    """Twilio's call StatusCallback (CallSid, CallStatus, CallDuration, ...), signed with
    X-Twilio-Signature over our public URL (query included) and the form fields."""
    raw = await request.body()
    if len(raw) > MAX_WEBHOOK_BYTES:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "webhook body too large")
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        raise HTTPException(422, "body: must be UTF-8") from None
    settings = request.app.state.settings
    url = str(request.url)
    if settings.public_base_url:
        url = settings.public_base_url.rstrip("/") + request.url.path
        if request.url.query:
            url += "?" + request.url.query
    signature = request.headers.get("x-twilio-signature", "")
    if not valid_twilio_signature(settings.twilio_auth_token, url, pairs, signature):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "call status not signed by the provider")
    call_id = request.query_params.get("call_id", "")
    leg = request.query_params.get("leg", "customer")
    event = parse_status(dict(pairs), call_id, leg, clock_of(request.app))
    if event is not None and call_id:
        app = request.app
        await anyio.to_thread.run_sync(
            apply_event, app.state.sessions, get_rules(app), settings, event
        )
    return Response(EMPTY_TWIML, media_type="text/xml")
