"""A snapshot the server gets wrong: refused with a message, never looped on or half-kept.

The server here is a local fake speaking the real protocol (httpx.MockTransport): what it
answers is what a buggy server or a broken proxy could."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.store.db import open_local_store
from app.sync.api import LeadApi, SnapshotError
from app.sync.engine import SyncEngine, SyncSettings
from tests.app.store.factories import lead_change, make_lead

KEY = "ab" * 32


def _entry(lead_id: str) -> dict[str, Any]:
    return {**lead_change(make_lead(lead_id))["data"], "activities": []}


@pytest.mark.parametrize(
    ("pages", "problem"),
    [
        # a page that points on but brings nothing
        ({None: {"leads": [], "next_cursor": "L1"}}, "does not move on past 'L1'"),
        # a page that points back at itself
        (
            {
                None: {"leads": [_entry("L1")], "next_cursor": "L1"},
                "L1": {"leads": [_entry("L2")], "next_cursor": "L1"},
            },
            "does not move on past 'L1'",
        ),
        ({None: {"leads": "all of them", "next_cursor": None}}, "no 'leads' list"),
    ],
)
def test_a_snapshot_that_does_not_move_on_or_is_malformed_is_refused(
    tmp_path: Path, pages: dict[str | None, dict[str, Any]], problem: str
) -> None:
    asked: list[str | None] = []

    def server(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/contact-blocks":
            return httpx.Response(200, json={"blocks": [], "next_cursor": None})
        if request.url.path == "/v1/snapshot":
            cursor = request.url.params.get("cursor")
            asked.append(cursor)
            assert len(asked) < 10, "looping on the same pages"
            return httpx.Response(200, json={"newest": 7, "total": 2, **pages[cursor]})
        return httpx.Response(404, json={"detail": "not here"})

    store = open_local_store(tmp_path / "local.db", KEY)
    api = LeadApi("http://lead-api.test", token="t", transport=httpx.MockTransport(server))
    engine = SyncEngine(api, store, settings=SyncSettings(use_sse=False))
    try:
        with pytest.raises(SnapshotError, match=problem):
            asyncio.run(engine.pull_once())
        assert store.repository.cursor() is None  # not finished: the next pull starts over
        assert problem in engine.state.last_error  # said on the status bar
    finally:
        asyncio.run(api.aclose())
        store.close()
