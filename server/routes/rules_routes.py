"""GET /v1/rules: the rules files the server decides by (templates, scripts, cadences,
dispositions, calling rules, scoring, hours, ZIP zones), for workstations to cache and use."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from server.auth import STAFF, Principal, authorize, rule
from server.rules import rules_set

router = APIRouter(tags=["rules"])


@router.get("/v1/rules", **rule(*STAFF))
def get_rules_files(
    request: Request,
    known: str | None = Query(
        None, max_length=64, description="the version you hold: answered without the files"
    ),
    principal: Principal = Depends(authorize(*STAFF)),
) -> dict[str, Any]:
    """{"version", "files": {name: text}} — every file the rulebook loads (names relative to
    resources/, e.g. "cadences/new_internet_lead.toml"); `version` is a hash of them all. With
    `known` equal to the current version: {"version", "unchanged": true} and no files."""
    del principal
    version, files = rules_set(request.app)
    if known == version:
        return {"version": version, "unchanged": True}
    return {"version": version, "unchanged": False, "files": files}
