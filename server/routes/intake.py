"""Lead intake: POST /v1/leads (JSON) and POST /v1/leads/adf (ADF 1.0 XML).

Order of checks, each answered before the next runs: who is calling (401/403), how big the body
is (413, from Content-Length and again while streaming, before any parsing), its content type
(415), then the document itself (422, naming every problem). Every body that gets past the
sign-in is kept in raw_payloads, accepted or rejected.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from app.domain.errors import DomainError
from server.auth import Principal, Role, authorize, rule
from server.db import StoreRow, transaction
from server.idempotency import settle_in
from server.intake.adf import AdfError, parse_adf
from server.rules import clock_of, get_rules
from server.services.intake import (
    MAX_LEADS_PER_DOCUMENT,
    IncomingLead,
    IntakeOutcome,
    IntakeRejected,
    LeadIn,
    clean_text,
    default_source_for,
    from_adf_lead,
    ingest,
    leads_from_json,
    parse_json_document,
    record_payload,
)

router = APIRouter(tags=["intake"])

INTAKE_ROLES = (Role.INTEGRATION, Role.MANAGER, Role.ADMIN)
JSON_TYPES = frozenset({"application/json"})
# text/xml too: plenty of real providers send it, and the body is the same ADF.
ADF_TYPES = frozenset({"application/xml", "application/x-adf+xml", "text/xml"})
AUDIT_PREFIX_BYTES = 4096  # how much of an oversized body is kept for audit


class IntakeLeadOut(BaseModel):
    lead_id: str
    merged_into: str | None
    score: int
    tier: str
    grade: str
    assigned_agent_id: str | None
    due_at: datetime | None
    warnings: list[str]


class IntakeResponse(BaseModel):
    payload_id: int
    leads: list[IntakeLeadOut]
    warnings: list[str]


class Problems(BaseModel):
    detail: str
    problems: list[str]


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic JSON schema with its $defs inlined, so it can sit inside an operation."""
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(dict(defs[ref.removeprefix("#/$defs/")]))
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    return dict(resolve(schema))


_LEAD_SCHEMA = _inline(LeadIn.model_json_schema())
_ERRORS = {
    "413": {"description": "body larger than the limit", "model": Problems},
    "415": {"description": "wrong content type", "model": Problems},
    "422": {"description": "rejected: every problem named, nothing stored", "model": Problems},
}


def _openapi(body: dict[str, Any]) -> dict[str, Any]:
    extra = dict(rule(*INTAKE_ROLES)["openapi_extra"])
    extra["requestBody"] = {"required": True, "content": body}
    return {"openapi_extra": extra}


class _TooLarge(Exception):
    def __init__(self, message: str, prefix: bytes) -> None:
        super().__init__(message)
        self.prefix = prefix


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused (before anything parses it) once it is over `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise _TooLarge(f"body: {int(declared)} bytes; the limit is {limit}", b"")
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            prefix = b"".join([*chunks, chunk[:AUDIT_PREFIX_BYTES]])[:AUDIT_PREFIX_BYTES]
            raise _TooLarge(f"body: more than {limit} bytes; the limit is {limit}", prefix)
        chunks.append(chunk)
    return b"".join(chunks)


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _problems(status_code: int, detail: str, problems: list[str]) -> JSONResponse:
    return JSONResponse({"detail": detail, "problems": problems}, status_code=status_code)


Build = Callable[[bytes, datetime], tuple[list[IncomingLead], list[str]]]


def _audit_name(principal: Principal) -> str:
    return f"{principal.key} {principal.name}"


def _reject(
    request: Request, principal: Principal, content_type: str, body: bytes, exc: IntakeRejected
) -> JSONResponse:
    with transaction(request.app.state.sessions) as session:
        record_payload(
            session,
            store_id=principal.store_id,
            principal=_audit_name(principal),
            content_type=content_type,
            body=body,
            outcome="rejected",
            problems=exc.problems,
            received_at=clock_of(request.app),
        )
    detail = {413: "body too large", 415: "unsupported content type"}.get(
        exc.status_code, "lead document rejected; nothing was stored"
    )
    return _problems(exc.status_code, detail, exc.problems)


def _accept(
    request: Request, principal: Principal, content_type: str, body: bytes, build: Build
) -> JSONResponse:
    app = request.app
    now = clock_of(app)
    try:
        leads, doc_warnings = build(body, now)
    except IntakeRejected as exc:
        return _reject(request, principal, content_type, body, exc)
    try:
        with transaction(app.state.sessions) as session:
            store = session.get(StoreRow, principal.store_id)
            if store is None:  # a key whose store was deleted
                raise IntakeRejected(422, [f"store '{principal.store_id}' does not exist"])
            outcomes = ingest(
                session,
                store=store,
                leads=leads,
                rules=get_rules(app),
                settings=app.state.settings,
                now=now,
            )
            payload = record_payload(
                session,
                store_id=store.id,
                principal=_audit_name(principal),
                content_type=content_type,
                body=body,
                outcome="accepted",
                problems=doc_warnings,
                lead_ids=[o.lead_id for o in outcomes],
                received_at=now,
            )
            response = IntakeResponse(
                payload_id=payload.id,
                leads=[_out(o) for o in outcomes],
                warnings=doc_warnings,
            )
            answer = JSONResponse(response.model_dump(mode="json"), status_code=201)
            # With the leads: a server killed after this commit replays the answer to the
            # provider's retry instead of taking the document again.
            settle_in(session, request.scope, 201, bytes(answer.body))
    except IntakeRejected as exc:
        return _reject(request, principal, content_type, body, exc)
    except DomainError as exc:  # rolled back: nothing half-stored
        return _reject(request, principal, content_type, body, IntakeRejected(422, [str(exc)]))
    return answer


def _out(outcome: IntakeOutcome) -> IntakeLeadOut:
    return IntakeLeadOut(
        lead_id=outcome.lead_id,
        merged_into=outcome.merged_into,
        score=outcome.score,
        tier=outcome.tier,
        grade=outcome.grade,
        assigned_agent_id=outcome.assigned_agent_id,
        due_at=outcome.due_at,
        warnings=list(outcome.warnings),
    )


async def _intake(
    request: Request, principal: Principal, allowed: frozenset[str], build: Build
) -> JSONResponse:
    content_type = request.headers.get("content-type", "")
    try:
        body = await read_body(request, request.app.state.settings.max_body_bytes)
    except _TooLarge as exc:
        rejected = IntakeRejected(413, [str(exc)])
        return await run_in_threadpool(
            _reject, request, principal, content_type, exc.prefix, rejected
        )
    if _media_type(request) not in allowed:
        got = clean_text(_media_type(request) or "none", 100)
        rejected = IntakeRejected(
            415, [f"content-type: {got!r}; send {' or '.join(sorted(allowed))}"]
        )
        return await run_in_threadpool(_reject, request, principal, content_type, body, rejected)
    return await run_in_threadpool(_accept, request, principal, content_type, body, build)


@router.post(
    "/v1/leads",
    status_code=201,
    response_model=IntakeResponse,
    responses=_ERRORS,  # type: ignore[arg-type]
    summary="Submit a lead (JSON)",
    **_openapi(
        {
            "application/json": {
                "schema": {
                    "oneOf": [
                        _LEAD_SCHEMA,
                        {
                            "type": "array",
                            "items": _LEAD_SCHEMA,
                            "minItems": 1,
                            "maxItems": MAX_LEADS_PER_DOCUMENT,
                        },
                    ]
                }
            }
        }
    ),
)
async def create_leads(
    request: Request,
    principal: Principal = Depends(authorize(*INTAKE_ROLES)),
) -> JSONResponse:
    """One lead object (or an array of up to 50) in the intake schema (LeadIn). Providers use
    their API key; managers and admins may enter leads by hand. Duplicates merge (`merged_into`)."""
    source = default_source_for(principal.name, principal.role is Role.INTEGRATION)

    def build(body: bytes, now: datetime) -> tuple[list[IncomingLead], list[str]]:
        leads = leads_from_json(
            parse_json_document(body),
            store_id=principal.store_id,
            received_at=now,
            default_source=source,
        )
        return leads, []

    return await _intake(request, principal, JSON_TYPES, build)


@router.post(
    "/v1/leads/adf",
    status_code=201,
    response_model=IntakeResponse,
    responses=_ERRORS,  # type: ignore[arg-type]
    summary="Submit leads as ADF 1.0 XML",
    **_openapi(
        {
            media: {"schema": {"type": "string", "description": "an ADF 1.0 document"}}
            for media in sorted(ADF_TYPES)
        }
    ),
)
async def create_leads_adf(
    request: Request,
    principal: Principal = Depends(authorize(*INTAKE_ROLES)),
) -> JSONResponse:
    """An ADF document (one lead per `<prospect>`). Known provider quirks are accepted; DTDs and
    entities are refused. `prospect@status="resend"` merges into the earlier lead."""

    def build(body: bytes, now: datetime) -> tuple[list[IncomingLead], list[str]]:
        try:
            result = parse_adf(
                body,
                received_at=now,
                store_id=principal.store_id,
                max_bytes=request.app.state.settings.max_body_bytes,
            )
        except AdfError as exc:
            raise IntakeRejected(422, [str(p) for p in exc.problems]) from None
        except DomainError as exc:
            raise IntakeRejected(422, [str(exc)]) from None
        leads: list[IncomingLead] = []
        problems: list[str] = []
        for prospect in result.prospects:
            try:
                lead, notes = from_adf_lead(prospect.lead)
            except DomainError as exc:
                problems.append(f"prospect {prospect.index}: {exc}")
                continue
            warnings = [str(w) for w in prospect.warnings]
            warnings += [f"prospect {prospect.index}: {note}" for note in notes]
            leads.append(IncomingLead(lead, prospect.is_resend, tuple(warnings)))
        if problems:
            raise IntakeRejected(422, problems)
        return leads, [str(w) for w in result.warnings]

    return await _intake(request, principal, ADF_TYPES, build)
