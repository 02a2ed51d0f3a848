"""The sync feed: GET /v1/changes (pull) and GET /v1/events (SSE pokes). See server/hub.py."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from server.auth import STAFF, Principal, authorize, principal_for, rule
from server.db import utcnow
from server.hub import CursorGone, event_stream, hub_of, read_changes

router = APIRouter(tags=["sync"])
_bearer = HTTPBearer(auto_error=False)


@router.get(
    "/v1/changes",
    responses={410: {"description": "the cursor is past retention (or ahead of the log): resync"}},
    **rule(*STAFF),
)
def get_changes(
    request: Request,
    since: int = Query(
        0, ge=0, le=2**62, description="the last seq you have seen (next_cursor of the last page)"
    ),
    limit: int = Query(500, ge=1, le=1000, description="at most this many rows per page"),
    principal: Principal = Depends(authorize(*STAFF)),
) -> Any:
    """Changes after `since` visible to you, oldest first. Continue with `next_cursor` while
    `has_more`; the cursor also moves past changes you may not see."""
    with request.app.state.read_sessions() as session:
        try:
            page = read_changes(session, principal, since, limit)
        except CursorGone as gone:
            return JSONResponse(
                {
                    "detail": str(gone),
                    "resync": True,
                    "oldest": gone.oldest,
                    "newest": gone.newest,
                },
                status_code=410,
            )
    return {
        "changes": page.changes,
        "next_cursor": page.next_cursor,
        "has_more": page.has_more,
        "newest": page.newest,
    }


@router.get(
    "/v1/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "an endless stream"}},
    **rule(*STAFF),
)
async def get_events(
    request: Request,
    principal: Principal = Depends(authorize(*STAFF)),
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
    last_event_id: str | None = Header(None, alias="Last-Event-ID", max_length=40),
) -> StreamingResponse:
    """Server-sent events: `event: poke` with `{"seq": N}` (the store's newest change) at once
    and after each burst of changes, `: ping` heartbeats. On a poke, pull GET /v1/changes.
    A reconnect (with or without Last-Event-ID) is poked at once, so nothing is missed."""
    del last_event_id  # honoured by the immediate poke: the client pulls from its own cursor
    app = request.app
    secret = credentials.credentials if credentials is not None else ""

    async def still_allowed() -> bool:
        def check() -> bool:
            with app.state.read_sessions() as session:
                return principal_for(session, secret, utcnow()) == principal

        return bool(await anyio.to_thread.run_sync(check))

    stream = event_stream(hub_of(app), principal.store_id, app.state.settings, still_allowed)
    return StreamingResponse(
        stream,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
