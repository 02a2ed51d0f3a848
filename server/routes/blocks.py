"""GET /v1/contact-blocks: the store's opt-outs and do-not-call entries, paged (for a full
download; the change feed carries each one added or lifted as entity "contact_block")."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from server.auth import STAFF, Principal, authorize, rule
from server.changes import newest_seq
from server.services.blocks import list_blocks

router = APIRouter(tags=["sync"])


@router.get("/v1/contact-blocks", **rule(*STAFF))
def get_contact_blocks(
    request: Request,
    cursor: int = Query(0, ge=0, le=2**62, description="next_cursor of the previous page"),
    limit: int = Query(1000, ge=1, le=5000, description="at most this many entries per page"),
    principal: Principal = Depends(authorize(*STAFF)),
) -> dict[str, Any]:
    """Every opt-out and do-not-call entry of your store: {"address" (E.164 phone or lower-case
    e-mail), "kind" ("opt_out" | "dnc"), "at"}. Continue with `next_cursor` until it is null.
    `newest` is the change feed's newest seq when read: changes after it may add or lift some."""
    with request.app.state.sessions() as session:
        newest = newest_seq(session)
        blocks, next_cursor = list_blocks(session, principal.store_id, cursor, limit)
    return {
        "blocks": blocks,
        "next_cursor": next_cursor,
        "newest": newest,
    }
