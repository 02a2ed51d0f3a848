"""Hostile documents through the real HTTP endpoint (uvicorn on loopback): XXE, entity expansion,
a 50 MB body (declared and streamed), deep nesting, invalid UTF-8. Each is refused with a 4xx that
names the problem, the server stays up, and no lead is stored."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import func, select

from server.db import LeadRow
from tests.app.sync.live import LiveServer
from tests.reliability.support import figures

HEAD = b'<?xml version="1.0"?>'
PROSPECT = (
    b"<prospect><customer><contact><name part='full'>{NAME}</name>"
    b"<phone>312-555-0100</phone></contact></customer></prospect>"
)
HOSTILE = {
    "xxe file": HEAD
    + b'<!DOCTYPE adf [<!ENTITY x SYSTEM "file:///etc/passwd">]><adf>'
    + PROSPECT.replace(b"{NAME}", b"&x;")
    + b"</adf>",
    "xxe url": HEAD
    + b'<!DOCTYPE adf [<!ENTITY x SYSTEM "http://127.0.0.1:9/x">]><adf>'
    + PROSPECT.replace(b"{NAME}", b"&x;")
    + b"</adf>",
    "external dtd": HEAD + b'<!DOCTYPE adf SYSTEM "http://127.0.0.1:9/adf.dtd"><adf></adf>',
    "billion laughs": HEAD
    + b"<!DOCTYPE adf [<!ENTITY a 'lol'>"
    + b"".join(
        b"<!ENTITY %s '%s'>" % (chr(98 + n).encode(), (b"&" + chr(97 + n).encode() + b";") * 10)
        for n in range(9)
    )
    + b"]><adf>"
    + PROSPECT.replace(b"{NAME}", b"&j;")
    + b"</adf>",
    "parameter entity": HEAD
    + b'<!DOCTYPE adf [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]><adf></adf>',
    "deep nesting": HEAD + b"<adf>" + b"<a>" * 200_000 + b"</a>" * 200_000 + b"</adf>",
    "invalid utf-8": b'<?xml version="1.0" encoding="UTF-8"?><adf>'
    + PROSPECT.replace(b"{NAME}", b"\xc3\x28\xff\xfe")
    + b"</adf>",
}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path_factory.mktemp("hostile") / "server.db")
    server.start()
    try:
        yield server
    finally:
        server.close()


def _post(live: LiveServer, content: object, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{live.base_url}/v1/leads/adf",
        content=content,  # type: ignore[arg-type]
        headers={
            "Authorization": f"Bearer {live.api_key}",
            "Content-Type": "application/xml",
            **headers,
        },
        timeout=60,
    )


def _leads(live: LiveServer) -> int:
    with live.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(LeadRow)) or 0)


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_document_is_refused_by_name(live: LiveServer, name: str) -> None:
    before = _leads(live)
    response = _post(live, HOSTILE[name])
    assert response.status_code in (413, 422), (name, response.status_code, response.text[:300])
    body = response.json()
    assert body["problems"], body
    assert "passwd" not in response.text and "root:" not in response.text
    assert _leads(live) == before
    assert httpx.get(f"{live.base_url}/healthz", timeout=10).status_code == 200


def test_fifty_megabytes_declared_or_streamed_are_refused_before_parsing(live: LiveServer) -> None:
    before = _leads(live)
    big = b"<adf>" + b" " * (50 * 1024 * 1024) + b"</adf>"
    outcomes = []
    try:
        declared = _post(live, big)
        outcomes.append(declared.status_code)
    except httpx.TransportError:  # the server may answer 413 and close while we still send
        outcomes.append("closed")

    def chunks() -> Iterator[bytes]:
        for _ in range(50):
            yield b" " * (1024 * 1024)

    try:
        streamed = _post(live, chunks())
        outcomes.append(streamed.status_code)
    except httpx.TransportError:
        outcomes.append("closed")
    assert all(o in (413, "closed") for o in outcomes), outcomes
    assert 413 in outcomes
    assert _leads(live) == before
    assert httpx.get(f"{live.base_url}/healthz", timeout=10).status_code == 200
    figures("hostile HTTP", documents=len(HOSTILE) + 2, refused=len(HOSTILE) + 2, stored=0)
