"""Texts and e-mails to leads, and the provider webhooks for texts coming back."""

from __future__ import annotations

import hmac
import uuid
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select

from app.domain.leads import Channel
from server import scheduler
from server.auth import PUBLIC, STAFF, Principal, authorize, rule
from server.db import MessageRow, transaction
from server.idempotency import idempotency_key
from server.messaging.twilio import valid_twilio_signature
from server.rules import clock_of
from server.services.common import get_lead_for
from server.services.messages import (
    MAX_EMAIL_CHARS,
    MAX_TEXT_CHARS,
    InboundError,
    MessageIdInUse,
    MessageRefused,
    NewMessage,
    UnknownTemplate,
    context_of,
    create_message,
    handle_inbound_sms,
    message_to_dict,
    provider_status,
)

router = APIRouter(tags=["messages"])

MAX_WEBHOOK_BYTES = 20_000
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


class MessageRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(description="client-generated UUID of the message", max_length=64)
    lead_id: str = Field(min_length=1, max_length=64)
    channel: Literal["text", "email"]
    template_id: str | None = Field(None, min_length=1, max_length=80)
    body: str = Field(min_length=1, max_length=MAX_EMAIL_CHARS)
    subject: str | None = Field(None, max_length=300)

    @field_validator("id")
    @classmethod
    def _uuid(cls, value: str) -> str:
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise ValueError("must be a UUID") from None


class MessageOut(BaseModel):
    id: str
    lead_id: str
    channel: str
    direction: str
    to: str
    subject: str
    body: str
    template_id: str | None
    status: str
    reason_code: str | None
    reason: str
    provider_id: str | None
    created_at: str
    sent_at: str | None


def _problem(field: str, message: str) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"{field}: {message}")


def _refused(refusal: MessageRefused) -> JSONResponse:
    return JSONResponse(refusal.to_dict(), status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


@router.post(
    "/v1/messages",
    status_code=201,
    response_model=MessageOut,
    responses={
        202: {"description": "queued: the gateway is unreachable; the server keeps retrying"},
        409: {"description": "the message id is already used by another message"},
        422: {"description": "refused, with a reason code (QUIET_HOURS, OPTED_OUT, ...)"},
    },
    **rule(*STAFF),
)
def send_message(
    body: MessageRequest,
    request: Request,
    principal: Principal = Depends(authorize(*STAFF)),
    _key: str | None = Depends(idempotency_key(required=True)),
) -> Any:
    """Text or e-mail a lead. Compliance (quiet hours in the customer's time, opt-out, consent,
    do-not-call) is checked again now, whatever the desktop decided."""
    text = body.body.strip()
    if not text:
        raise _problem("body", "must not be blank")
    channel = Channel(body.channel)
    if channel is Channel.TEXT:
        if body.subject:
            raise _problem("subject", "texts have no subject")
        if len(body.body) > MAX_TEXT_CHARS:
            raise _problem("body", f"a text is at most {MAX_TEXT_CHARS} characters")
    elif not (body.subject or "").strip():
        raise _problem("subject", "an e-mail needs a subject")
    ctx = context_of(request.app)
    now = clock_of(request.app)
    wanted = NewMessage(
        id=body.id,
        lead_id=body.lead_id,
        channel=channel,
        body=body.body,
        subject=(body.subject or "").strip(),
        template_id=body.template_id,
    )
    try:
        with transaction(ctx.sessions) as session:
            lead_row = get_lead_for(session, principal, body.lead_id, lock=True)
            row, job_id = create_message(session, ctx.rules, lead_row, wanted, principal.id, now)
    except MessageRefused as refusal:
        return _refused(refusal)
    except UnknownTemplate as exc:
        raise _problem("template_id", str(exc)) from None
    except MessageIdInUse as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    if job_id is not None:
        scheduler.run_now(ctx, job_id, now)
    with ctx.sessions() as session:
        stored = session.get(MessageRow, row.id)
        assert stored is not None
        out = message_to_dict(stored)
    if out["status"] == "refused":
        return JSONResponse(
            {
                "detail": out["reason"].split(": ", 1)[-1],
                "code": out["reason_code"] or "REFUSED",
                "reasons": [{"code": out["reason_code"] or "REFUSED", "message": out["reason"]}],
                "next_allowed_at": None,
                "message_id": out["id"],
                "message": out,
            },
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )
    code = status.HTTP_202_ACCEPTED if out["status"] == "queued" else status.HTTP_201_CREATED
    return JSONResponse(out, status_code=code)


@router.get("/v1/messages", response_model=list[MessageOut], **rule(*STAFF))
def list_messages(
    request: Request,
    lead_id: Annotated[str, Query(min_length=1, max_length=64)],
    principal: Principal = Depends(authorize(*STAFF)),
) -> list[dict[str, Any]]:
    """A lead's messages, both directions, oldest first."""
    with request.app.state.sessions() as session:
        get_lead_for(session, principal, lead_id)
        rows = session.scalars(
            select(MessageRow)
            .where(MessageRow.lead_id == lead_id)
            .order_by(MessageRow.created_at, MessageRow.id)
        ).all()
        return [message_to_dict(r) for r in rows]


# --- Webhooks ----------------------------------------------------------------------------------


async def _webhook_form(request: Request) -> dict[str, str]:
    """The form fields of a provider webhook, after checking who sent it (403 otherwise)."""
    raw = await request.body()
    if len(raw) > MAX_WEBHOOK_BYTES:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "webhook body too large")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            "send the fields form-encoded (application/x-www-form-urlencoded)",
        )
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise _problem("body", "must be UTF-8") from None
    settings = request.app.state.settings
    token = request.headers.get("x-webhook-token", "")
    by_token = bool(settings.webhook_token) and hmac.compare_digest(
        token.encode(), settings.webhook_token.encode()
    )
    if not by_token:
        url = str(request.url)
        if settings.public_base_url:
            url = settings.public_base_url.rstrip("/") + request.url.path
        signature = request.headers.get("x-twilio-signature", "")
        if not valid_twilio_signature(settings.twilio_auth_token, url, pairs, signature):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                "webhook not authenticated: send X-Webhook-Token or a valid X-Twilio-Signature",
            )
    return dict(pairs)


@router.post(
    "/v1/webhooks/sms",
    response_class=Response,
    responses={200: {"content": {"text/xml": {}}, "description": "empty TwiML"}},
    **rule(PUBLIC),
)
async def inbound_sms(request: Request) -> Response:
    """A text from a customer (Twilio's form fields From, To, Body, MessageSid). Opt-out words
    stop every channel before anything else; HELP and START are answered; any other reply goes
    to the agent's queue. The same MessageSid twice changes nothing."""
    form = await _webhook_form(request)
    ctx = context_of(request.app)
    now = clock_of(request.app)
    try:
        outcome = await _in_thread(handle_inbound_sms, ctx, form, now)
    except InboundError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    for job_id in outcome.jobs:
        await _in_thread(scheduler.run_now, ctx, job_id, now)
    return Response(EMPTY_TWIML, media_type="text/xml")


@router.post(
    "/v1/webhooks/sms/status",
    response_class=Response,
    responses={200: {"content": {"text/xml": {}}, "description": "empty TwiML"}},
    **rule(PUBLIC),
)
async def sms_status(request: Request) -> Response:
    """A provider's delivery report (Twilio StatusCallback: MessageSid, MessageStatus,
    ErrorCode)."""
    form = await _webhook_form(request)
    sid = form.get("MessageSid", "").strip()
    if not sid:
        raise _problem("MessageSid", "required")
    state = form.get("MessageStatus", "").strip().lower()
    if not state:
        raise _problem("MessageStatus", "required")
    sessions = request.app.state.sessions

    def apply() -> None:
        with transaction(sessions) as session:
            provider_status(session, sid, state, form.get("ErrorCode", "").strip())

    await _in_thread(apply)
    return Response(EMPTY_TWIML, media_type="text/xml")


async def _in_thread(fn: Any, *args: Any) -> Any:
    import anyio.to_thread

    return await anyio.to_thread.run_sync(fn, *args)
