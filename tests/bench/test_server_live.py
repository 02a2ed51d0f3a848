"""The lead API under load, as `bdc-server serve` (its own process, production settings):
ADF intake throughput from concurrent provider clients on SQLite and on PostgreSQL, and the
fan-out of one ingested lead to 200 connected SSE clients."""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from app.demo.generator import make_lead
from server.auth import hash_password
from server.db import UserRow, make_engine, make_sessionmaker, transaction
from tests.bench.data import adf_document
from tests.bench.recorder import FULL, Recorder, percentile, size
from tests.bench.servers import PASSWORD, ServerProcess, postgres_database, prepared_database

INTAKE_LEADS = size(3000, 20)
PROVIDERS = size(8, 4)
SSE_CLIENTS = size(200, 3)
SSE_LEADS = size(20, 2)
# `serve --workers N` for the PostgreSQL figure (docs/deploy.md); 1 by default: on the 2-core
# bench box, shared with the load generator and PostgreSQL, a second worker measured slower.
PG_WORKERS = int(os.environ.get("BDC_BENCH_SERVER_WORKERS", "1"))


def _documents(count: int, seed: int = 3) -> list[bytes]:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    return [adf_document(make_lead(rng, now)) for _ in range(count)]


async def _intake(server: ServerProcess, documents: list[bytes], clients: int) -> float:
    """Leads per second: `clients` providers posting ADF documents back to back."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for document in documents:
        queue.put_nowait(document)
    headers = {"Authorization": f"Bearer {server.api_key}", "Content-Type": "application/xml"}
    statuses: list[int] = []

    async def provider() -> None:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
            while not queue.empty():
                document = queue.get_nowait()
                response = await client.post("/v1/leads/adf", content=document, headers=headers)
                statuses.append(response.status_code)

    began = time.perf_counter()
    await asyncio.gather(*(provider() for _ in range(clients)))
    seconds = time.perf_counter() - began
    # 422: a generated lead with a junk number and no e-mail (real feeds send those) is refused
    assert set(statuses) <= {201, 422}, sorted(set(statuses))
    assert statuses.count(201) >= len(documents) * 0.9
    return len(documents) / seconds


def _intake_figure(bench: Recorder, server: ServerProcess, name: str, budget: float) -> None:
    # Documents are rendered before the clock starts: the figure is the server's, not the XML
    # generator's.
    rate = asyncio.run(_intake(server, _documents(INTAKE_LEADS), PROVIDERS))
    # the naive baseline: one provider client posting one lead at a time (make bench only)
    single = (
        asyncio.run(_intake(server, _documents(INTAKE_LEADS // 4, seed=4), 1)) if FULL else None
    )
    print(
        f"[bench] {name}: {INTAKE_LEADS} ADF leads from {PROVIDERS} providers, "
        f"{server.workers} server process(es), load {os.getloadavg()[0]:.1f}"
    )
    bench.record(name, rate, "leads/s", budget, lower_is_better=False, baseline=single)


def _agents(db_url: str) -> list[str]:
    """SSE_CLIENTS agents of the store "lakeside" (each its own sign-in)."""
    usernames = [f"agent{i:03d}" for i in range(SSE_CLIENTS)]
    engine = make_engine(db_url)
    password_hash = hash_password(PASSWORD)
    with transaction(make_sessionmaker(engine)) as session:
        for name in usernames:
            session.add(
                UserRow(
                    id=f"user-{name}",
                    username=name,
                    display_name=name.title(),
                    password_hash=password_hash,
                    role="agent",
                    store_id="lakeside",
                )
            )
    engine.dispose()
    return usernames


@pytest.fixture(scope="module")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    folder = tmp_path_factory.mktemp("server")
    url = f"sqlite:///{folder / 'leads.db'}"
    key = prepared_database(url)
    server = ServerProcess(url, key, folder / "server.log")
    server.usernames = _agents(url)  # type: ignore[attr-defined]
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_adf_intake_sqlite(bench: Recorder, sqlite_server: ServerProcess) -> None:
    _intake_figure(bench, sqlite_server, "adf_intake_sqlite", 200)


def test_adf_intake_postgresql(bench: Recorder, tmp_path: Path) -> None:
    if not FULL:
        pytest.skip("make bench only: the smoke run checks the intake harness on SQLite")
    with postgres_database(tmp_path) as url:
        server = ServerProcess(
            url, prepared_database(url), tmp_path / "server.log", workers=PG_WORKERS
        )
        server.start()
        try:
            _intake_figure(bench, server, "adf_intake_postgresql", 500)
        finally:
            server.stop()


async def _fan_out(server: ServerProcess, tokens: list[str]) -> list[float]:
    """Latency (ms) from each lead's POST to each client's poke."""
    pokes: list[list[float]] = [[] for _ in tokens]
    connected = asyncio.Event()
    ready = 0

    async def listen(index: int, client: httpx.AsyncClient) -> None:
        nonlocal ready
        headers = {"Authorization": f"Bearer {tokens[index]}", "Accept": "text/event-stream"}
        async with client.stream("GET", "/v1/events", headers=headers) as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if line.startswith("event: poke"):
                    pokes[index].append(time.perf_counter())
                    if len(pokes[index]) == 1:
                        ready += 1
                        if ready == len(tokens):
                            connected.set()

    limits = httpx.Limits(max_connections=len(tokens) + 10)
    latencies: list[float] = []
    async with httpx.AsyncClient(
        base_url=server.base_url, timeout=httpx.Timeout(60, read=None), limits=limits
    ) as client:
        tasks = [asyncio.ensure_future(listen(i, client)) for i in range(len(tokens))]
        try:
            await asyncio.wait_for(connected.wait(), 120)
            rng = random.Random(5)
            provider = {"Authorization": f"Bearer {server.api_key}"}
            from server.demo_seed import lead_document

            for number in range(1, SSE_LEADS + 1):
                await asyncio.sleep(0.5)
                lead = make_lead(rng, datetime.now(UTC), lead_id=str(uuid.uuid4()))
                began = time.perf_counter()
                response = await client.post(
                    "/v1/leads", json=lead_document(lead), headers=provider
                )
                assert response.status_code == 201
                deadline = time.perf_counter() + 30
                while any(len(p) <= number for p in pokes):
                    assert time.perf_counter() < deadline, "a client was never poked"
                    await asyncio.sleep(0.002)
                latencies += [(p[number] - began) * 1000 for p in pokes]
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return latencies


def test_sse_fan_out(bench: Recorder, sqlite_server: ServerProcess) -> None:
    tokens = [sqlite_server.token(name) for name in sqlite_server.usernames]  # type: ignore[attr-defined]
    latencies = asyncio.run(_fan_out(sqlite_server, tokens))
    print(
        f"[bench] SSE fan-out: {len(tokens)} clients × {SSE_LEADS} leads, "
        f"p50 {percentile(latencies, 50):.0f} ms, max {max(latencies):.0f} ms"
    )
    bench.record("sse_fan_out_p99_ms", percentile(latencies, 99), "ms", 500.0)
