"""A real bdc-server on loopback for the workstation-core tests, plus edge fault injection.

`LiveServer` runs the lead API (SQLite file, real migrations, seeded stores and users) under a
real uvicorn on 127.0.0.1 in a thread; it can be stopped and restarted on the same port (the
"server stopped mid-shift" tests). `FaultyTransport` wraps httpx's real transport at the edge:
it can refuse to connect (offline), answer 500, lose the reply after the server handled the
request (a timeout), delay replies, or block SSE — everything else goes to the real server.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from sqlalchemy import func, select

from app.rulebook import Rulebook, load_rulebook
from app.services.workstation import Workstation, WorkstationConfig, build_workstation
from app.sync.credentials import MemoryKeyring
from app.sync.engine import SyncSettings
from app.sync.signin import Account, SignInService
from server.app import create_app
from server.db import ActivityRow, make_engine, make_sessionmaker
from server.hub import UvicornServer
from server.migrate import upgrade
from server.settings import Settings
from tests.server.conftest import PASSWORD, seed_stores_and_users

__all__ = ["PASSWORD"]

FAST_SYNC = SyncSettings(
    poll_interval=0.5,
    live_safety_interval=30.0,
    backoff_base=0.05,
    backoff_max=0.4,
    sleep_check_interval=0.2,
    sse_min_reconnect=0.05,
)

_rulebook: Rulebook | None = None


def rulebook() -> Rulebook:
    global _rulebook
    if _rulebook is None:
        _rulebook = load_rulebook()
    return _rulebook


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    def __init__(self, db_path: Path, **settings: Any) -> None:
        self.db_url = f"sqlite:///{db_path}"
        upgrade(self.db_url)
        self.api_key, _ = seed_stores_and_users(self.db_url)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._settings = Settings(
            db_url=self.db_url,
            run_scheduler=False,
            sse_heartbeat=timedelta(milliseconds=500),
            sse_coalesce=timedelta(milliseconds=20),
            change_poll_interval=timedelta(milliseconds=100),
            **settings,
        )
        self._server: UvicornServer | None = None
        self._thread: threading.Thread | None = None
        self._engine = make_engine(self.db_url)
        self.sessions = make_sessionmaker(self._engine)

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        assert self._server is None
        app = create_app(self._settings)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        config = uvicorn.Config(app, log_level="warning", lifespan="on", ws="none")
        server = UvicornServer(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.01)
        self._server, self._thread, self._socket = server, thread, sock

    def set_clock(self, clock: Callable[[], datetime]) -> None:
        """Run the server on `clock` (its X-Server-Time tells the workstations, which follow)."""
        assert self._server is not None, "start the server first"
        self._server.config.app.state.clock = clock

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.stop()
        self._thread.join(15)
        assert not self._thread.is_alive(), "uvicorn did not stop"
        self._socket.close()
        self._server = None
        self._thread = None

    def close(self) -> None:
        self.stop()
        self._engine.dispose()

    # Acting as other parties (a lead provider, a manager, another agent)

    def token(self, username: str) -> str:
        response = httpx.post(
            f"{self.base_url}/v1/auth/token",
            json={"username": username, "password": PASSWORD},
            timeout=20,
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def post_lead(self, first: str = "Zebediah", last: str = "Quackenbush", **extra: Any) -> str:
        body = {
            "person": {"first_name": first, "last_name": last},
            "phones": [
                {"number": f"(312) 555-{uuid.uuid4().int % 10000:04d}", "kind": "cellphone"}
            ],
            "emails": [{"address": f"{first.lower()}.{uuid.uuid4().hex[:6]}@example.com"}],
            "address": {"city": "Chicago", "state": "IL", "postal_code": "60614"},
            "vehicles": [{"year": 2026, "make": "Toyota", "model": "RAV4"}],
            **extra,
        }
        response = httpx.post(
            f"{self.base_url}/v1/leads",
            json=body,
            headers={"Authorization": f"Bearer {self.api_key}"},
            timeout=20,
        )
        assert response.status_code == 201, response.text
        return str(response.json()["leads"][0]["lead_id"])

    def request(self, method: str, path: str, username: str, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token(username)}", **kw.pop("headers", {})}
        return httpx.request(method, f"{self.base_url}{path}", headers=headers, timeout=20, **kw)

    def activity_ids(self, lead_id: str | None = None, kind: str | None = "note") -> list[str]:
        """Activity ids in the server's database (duplicates would show twice); by default the
        notes only (the server adds score changes and the like of its own)."""
        with self.sessions() as session:
            query = select(ActivityRow.id)
            if lead_id is not None:
                query = query.where(ActivityRow.lead_id == lead_id)
            if kind is not None:
                query = query.where(ActivityRow.kind == kind)
            return list(session.scalars(query))

    def activity_count(self) -> int:
        with self.sessions() as session:
            return int(session.scalar(select(func.count()).select_from(ActivityRow)) or 0)


@dataclass
class Faults:
    """What FaultyTransport does to the next requests (changed by the test as it runs)."""

    offline: bool = False  # every request fails to connect
    block_sse: bool = False  # GET /v1/events fails to connect
    fail_500: int = 0  # the next N writes get a 500 without reaching the server
    lose_reply: int = 0  # the next N writes reach the server, then the reply is lost
    delay_s: float = 0.0  # every reply is held this long
    delay_writes_s: float = 0.0  # replies to writes are held this long (after the server ran)
    clock_ahead_s: float = 0.0  # the server's clock headers run this far ahead of this PC
    seen: list[str] = field(default_factory=list)  # "METHOD path" of requests forwarded
    injected: int = 0


class _CuttableStream(httpx.AsyncByteStream):
    def __init__(self, inner: Any, faults: Faults) -> None:
        self._inner = inner
        self._faults = faults

    async def __aiter__(self) -> Any:
        async for chunk in self._inner:
            if self._faults.offline or self._faults.block_sse:
                raise httpx.ReadError("injected: the network went down")
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class FaultyTransport(httpx.AsyncBaseTransport):
    def __init__(self, faults: Faults | None = None) -> None:
        self.faults = faults or Faults()
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        faults = self.faults
        path = request.url.path
        if faults.offline or (faults.block_sse and path == "/v1/events"):
            faults.injected += 1
            raise httpx.ConnectError("injected: connection refused", request=request)
        write = request.method in ("POST", "PATCH") and path != "/v1/auth/token"
        if write and faults.fail_500 > 0:
            faults.fail_500 -= 1
            faults.injected += 1
            return httpx.Response(500, json={"detail": "injected failure"}, request=request)
        if faults.delay_s:
            await asyncio.sleep(faults.delay_s)
        faults.seen.append(f"{request.method} {path}")
        response = await self._inner.handle_async_request(request)
        if write and faults.lose_reply > 0:
            faults.lose_reply -= 1
            faults.injected += 1
            await response.aread()
            await response.aclose()
            raise httpx.ReadTimeout("injected: the reply was lost", request=request)
        if path == "/v1/events":
            # An open stream dies with the network, as a real one does.
            response.stream = _CuttableStream(response.stream, faults)  # type: ignore[arg-type]
        if faults.clock_ahead_s and "date" in response.headers:
            shifted = parsedate_to_datetime(response.headers["date"]) + timedelta(
                seconds=faults.clock_ahead_s
            )
            response.headers["date"] = format_datetime(shifted, usegmt=True)
        if faults.clock_ahead_s and "x-server-time" in response.headers:
            precise = datetime.fromisoformat(response.headers["x-server-time"]) + timedelta(
                seconds=faults.clock_ahead_s
            )
            response.headers["x-server-time"] = precise.isoformat(timespec="milliseconds")
        if write and faults.delay_writes_s:
            # A reply slower than the client's read timeout times out, as on a real socket.
            read_timeout = (request.extensions.get("timeout") or {}).get("read")
            if read_timeout is not None and faults.delay_writes_s > read_timeout:
                await asyncio.sleep(read_timeout)
                await response.aread()
                await response.aclose()
                faults.injected += 1
                raise httpx.ReadTimeout("injected: the reply was too slow", request=request)
            await asyncio.sleep(faults.delay_writes_s)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


class Floor:
    """Workstations for one test: each with its own keyring, data folder and transport."""

    def __init__(self, live: LiveServer, tmp_path: Path) -> None:
        self.live = live
        self.tmp_path = tmp_path
        self.keyrings: dict[str, MemoryKeyring] = {}
        self.opened: list[Workstation] = []

    def signin(
        self, username: str, transport: httpx.AsyncBaseTransport | None = None
    ) -> SignInService:
        backend = self.keyrings.setdefault(username, MemoryKeyring())
        return SignInService.open(self.live.base_url, keyring_backend=backend, transport=transport)

    async def open(
        self,
        username: str,
        *,
        faults: Faults | None = None,
        sync: SyncSettings = FAST_SYNC,
        api_timeout: float = 5.0,
        start: bool = True,
    ) -> tuple[Workstation, Faults]:
        transport = FaultyTransport(faults)
        signin = self.signin(username)
        account: Account | None = await signin.resume(username)
        if account is None:
            account = await signin.sign_in(username, PASSWORD)
        config = WorkstationConfig(
            server_url=self.live.base_url,
            data_dir=self.tmp_path / f"data-{username}",
            sync=sync,
            api_timeout=api_timeout,
            transport=transport,
        )
        workstation = build_workstation(config, account, signin, rulebook())
        self.opened.append(workstation)
        if start:
            await workstation.start()
        return workstation, transport.faults

    async def close_all(self) -> None:
        for workstation in self.opened:
            await workstation.close()
        self.opened.clear()


async def wait_for(
    condition: Callable[[], object], timeout: float, interval: float = 0.01
) -> float:
    """Seconds until `condition()` was true; AssertionError after `timeout`."""
    began = time.monotonic()
    while not condition():
        if time.monotonic() - began > timeout:
            raise AssertionError(f"not true within {timeout} s")
        await asyncio.sleep(interval)
    return time.monotonic() - began


def now() -> datetime:
    return datetime.now(UTC)
