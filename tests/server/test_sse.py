"""GET /v1/events against a real uvicorn on 127.0.0.1: the first poke, a poke within a second of
a write (this process, another connection, another API process), heartbeats, reconnects,
coalescing, store isolation, sign-out and prompt shutdown."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from server.app import create_app
from server.changes import record
from server.db import ChangeRow, make_engine, make_sessionmaker, transaction, utcnow
from server.hub import UvicornServer
from server.migrate import upgrade
from server.settings import Settings
from tests.server.conftest import PASSWORD, seed_stores_and_users
from tests.server.test_floor import add_lead

REPO = Path(__file__).resolve().parents[2]
HEARTBEAT = timedelta(milliseconds=400)


class SseClient:
    """Reads an event stream in a thread; events (dicts of field → value) land in a queue."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.events: queue.Queue[dict[str, str]] = queue.Queue()
        self.status: int | None = None
        self.opened = threading.Event()
        self.ended = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(url, headers), daemon=True)
        self._thread.start()
        assert self.opened.wait(10), "the stream did not open"

    def _run(self, url: str, headers: dict[str, str]) -> None:
        try:
            with (
                httpx.Client(timeout=httpx.Timeout(10.0)) as client,
                client.stream("GET", url, headers=headers) as response,
            ):
                self.status = response.status_code
                self.content_type = response.headers.get("content-type", "")
                self.opened.set()
                event: dict[str, str] = {}
                for line in response.iter_lines():
                    if self._stop.is_set():
                        break
                    if not line:
                        if event:
                            self.events.put(event)
                        event = {}
                    elif line.startswith(":"):
                        self.events.put({"comment": line[1:].strip()})
                    else:
                        name, _, value = line.partition(":")
                        event[name] = value.removeprefix(" ")
        except httpx.HTTPError:
            pass  # the server went away: `ended` tells the test
        finally:
            self.opened.set()
            self.ended.set()

    def next(
        self, timeout: float, match: Callable[[dict[str, str]], bool] = lambda e: True
    ) -> dict[str, str]:
        """The next event that `match`es within `timeout` seconds (others are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching event within {timeout} s")
            try:
                event = self.events.get(timeout=remaining)
            except queue.Empty:
                raise AssertionError(f"no matching event within {timeout} s") from None
            if match(event):
                return event

    def drain(self, seconds: float) -> list[dict[str, str]]:
        got: list[dict[str, str]] = []
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            with contextlib.suppress(queue.Empty):
                got.append(self.events.get(timeout=remaining))
        return got

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        assert not self._thread.is_alive()


def is_poke(event: dict[str, str]) -> bool:
    return event.get("event") == "poke"


def seq_of(event: dict[str, str]) -> int:
    return int(json.loads(event["data"])["seq"])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sign_in(base_url: str, username: str) -> dict[str, str]:
    response = httpx.post(
        f"{base_url}/v1/auth/token", json={"username": username, "password": PASSWORD}, timeout=20
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@dataclass
class Live:
    base_url: str
    app: FastAPI
    server: UvicornServer
    thread: threading.Thread
    lead_id: str
    sessions: sessionmaker[Session]
    clients: list[SseClient] = field(default_factory=list)
    tokens: dict[str, dict[str, str]] = field(default_factory=dict)

    def headers(self, username: str) -> dict[str, str]:
        if username not in self.tokens:
            self.tokens[username] = sign_in(self.base_url, username)
        return self.tokens[username]

    def stream(self, username: str, **headers: str) -> SseClient:
        client = SseClient(f"{self.base_url}/v1/events", {**self.headers(username), **headers})
        self.clients.append(client)
        return client

    def newest(self) -> int:
        with self.sessions() as session:
            return int(session.scalar(select(func.max(ChangeRow.seq))) or 0)

    def post_note(self, username: str = "ana", base_url: str | None = None) -> httpx.Response:
        body = {
            "id": str(uuid.uuid4()),
            "lead_id": self.lead_id,
            "kind": "note",
            "at": datetime.now(UTC).isoformat(),
            "body": "customer asked for a callback",
        }
        headers = {**self.headers(username), "Idempotency-Key": str(uuid.uuid4())}
        return httpx.post(
            f"{base_url or self.base_url}/v1/activities", json=body, headers=headers, timeout=20
        )


def serve_in_thread(app: FastAPI) -> tuple[UvicornServer, threading.Thread, str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", ws="none")
    server = UvicornServer(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{port}"


def settings_for(db_url: str, **extra: Any) -> Settings:
    return Settings(
        db_url=db_url,
        run_scheduler=False,
        sse_heartbeat=HEARTBEAT,
        sse_coalesce=timedelta(milliseconds=50),
        **extra,
    )


@pytest.fixture
def prepared(db_url: str) -> Iterator[tuple[str, str, sessionmaker[Session]]]:
    upgrade(db_url)
    seed_stores_and_users(db_url)
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    with transaction(sessions) as session:
        lead_id = add_lead(
            session, "lakeside", utcnow() - timedelta(minutes=2), agent="user-ana"
        ).id
    yield db_url, lead_id, sessions
    engine.dispose()


@pytest.fixture
def live_factory(
    prepared: tuple[str, str, sessionmaker[Session]],
) -> Iterator[Callable[..., Live]]:
    db_url, lead_id, sessions = prepared
    started: list[Live] = []

    def start(**extra: Any) -> Live:
        app = create_app(settings_for(db_url, **extra))
        server, thread, base_url = serve_in_thread(app)
        live = Live(base_url, app, server, thread, lead_id, sessions)
        started.append(live)
        return live

    yield start
    for live in started:
        stop(live)


def stop(live: Live) -> float:
    """Stop the server; returns how long it took. Open streams must not hold it up."""
    began = time.monotonic()
    live.server.stop()
    live.thread.join(10)
    assert not live.thread.is_alive(), "uvicorn did not stop"
    for client in live.clients:
        assert client.ended.wait(5)
        client.close()
    live.clients.clear()
    return time.monotonic() - began


@pytest.fixture
def live(live_factory: Callable[..., Live]) -> Live:
    return live_factory()


# --- One process ----------------------------------------------------------------------------------


def test_first_event_is_the_newest_seq_with_a_retry_hint(live: Live) -> None:
    stream = live.stream("ana")
    assert stream.status == 200
    assert stream.content_type.startswith("text/event-stream")
    first = stream.next(2)
    assert first["event"] == "poke"
    assert first["retry"] == "3000"
    assert seq_of(first) == live.newest() > 0
    assert first["id"] == str(seq_of(first))


def test_an_activity_written_through_the_api_pokes_within_a_second(live: Live) -> None:
    stream = live.stream("ana")
    before = seq_of(stream.next(2, is_poke))
    began = time.monotonic()
    assert live.post_note().status_code == 201
    poke = stream.next(1.0, is_poke)
    assert time.monotonic() - began < 1.0
    assert seq_of(poke) == live.newest() > before
    # The poke says "pull": the pull from the old cursor brings the note.
    page = httpx.get(
        f"{live.base_url}/v1/changes?since={before}", headers=live.headers("ana"), timeout=10
    ).json()
    assert "activity" in {c["entity"] for c in page["changes"]}
    assert page["next_cursor"] == seq_of(poke)


def test_a_write_on_another_connection_pokes_within_a_second(live: Live) -> None:
    """Not through this app's sessions: found by LISTEN (PostgreSQL) or polling (SQLite)."""
    stream = live.stream("mia")
    stream.next(2, is_poke)
    with transaction(live.sessions) as session:
        seq = record(session, store_id="lakeside", entity="lead", entity_id="X", data={}).seq
    began = time.monotonic()
    poke = stream.next(1.0, lambda e: is_poke(e) and seq_of(e) >= seq)
    assert time.monotonic() - began < 1.0
    assert seq_of(poke) == seq


def test_heartbeats_keep_a_quiet_stream_alive(live: Live) -> None:
    stream = live.stream("ana")
    stream.next(2, is_poke)
    pings = [e for e in stream.drain(1.5) if e.get("comment") == "ping"]
    assert 2 <= len(pings) <= 5  # every 0.4 s


def test_a_reconnect_is_poked_at_once_with_the_newest_seq(live: Live) -> None:
    stream = live.stream("ana")
    last_seen = seq_of(stream.next(2, is_poke))
    stream.close()
    live.post_note()
    live.post_note()
    began = time.monotonic()
    again = live.stream("ana", **{"Last-Event-ID": str(last_seen)})
    poke = again.next(1.0, is_poke)
    assert time.monotonic() - began < 1.0
    assert seq_of(poke) == live.newest() > last_seen


def test_a_burst_of_changes_is_one_or_a_few_pokes(live: Live) -> None:
    stream = live.stream("mia")
    stream.next(2, is_poke)
    for n in range(30):
        with transaction(live.app.state.sessions) as session:
            record(session, store_id="lakeside", entity="lead", entity_id=f"B{n}", data={})
    newest = live.newest()
    pokes = [e for e in stream.drain(1.5) if is_poke(e)]
    assert 1 <= len(pokes) <= 6
    assert seq_of(pokes[-1]) == newest
    assert [seq_of(p) for p in pokes] == sorted({seq_of(p) for p in pokes})


def test_another_stores_changes_do_not_poke(live: Live) -> None:
    stream = live.stream("ana")
    stream.next(2, is_poke)
    with transaction(live.app.state.sessions) as session:
        record(session, store_id="riverside", entity="lead", entity_id="R", data={})
    assert not [e for e in stream.drain(1.0) if is_poke(e)]
    rita = live.stream("rita")
    assert seq_of(rita.next(2, is_poke)) == live.newest()


def test_who_may_listen(live: Live) -> None:
    url = f"{live.base_url}/v1/events"
    assert httpx.get(url, timeout=10).status_code == 401
    key = httpx.get(url, headers={"Authorization": "Bearer bdck_nope"}, timeout=10)
    assert key.status_code == 401
    for username in ("mia", "root", "rita"):
        assert live.stream(username).status == 200


def test_integration_keys_may_not_listen(
    live: Live, prepared: tuple[str, str, sessionmaker[Session]]
) -> None:
    from server.auth import create_api_key

    with transaction(live.sessions) as session:
        key = create_api_key(session, "Cars.com", "lakeside")
    response = httpx.get(
        f"{live.base_url}/v1/events", headers={"Authorization": f"Bearer {key}"}, timeout=10
    )
    assert response.status_code == 403


def test_a_revoked_sign_in_ends_the_stream(live_factory: Callable[..., Live]) -> None:
    live = live_factory(sse_recheck=timedelta(milliseconds=300))
    stream = live.stream("ana")
    stream.next(2, is_poke)
    revoked = httpx.post(f"{live.base_url}/v1/auth/revoke", headers=live.headers("ana"), timeout=10)
    assert revoked.status_code == 204
    assert stream.next(3, lambda e: e.get("event") == "signed_out")
    assert stream.ended.wait(3)


def test_stopping_the_server_ends_open_streams_promptly(live: Live) -> None:
    streams = [live.stream("ana"), live.stream("mia")]
    for stream in streams:
        stream.next(2, is_poke)
    assert stop(live) < 3.0


# --- Two processes on one database ------------------------------------------------------------

_SERVE = """
import sys
from datetime import timedelta
from server.app import create_app
from server.hub import serve
from server.settings import Settings
settings = Settings(db_url=sys.argv[1], run_scheduler=False, sse_heartbeat=timedelta(seconds=1))
serve(create_app(settings), "127.0.0.1", int(sys.argv[2]), log_level="warning")
"""


@contextlib.contextmanager
def api_processes(db_url: str, logs: list[Path]) -> Iterator[list[str]]:
    """Several `bdc-server`-like API processes on one database, started side by side."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    running: list[tuple[subprocess.Popen[bytes], str, Path]] = []
    try:
        for log in logs:
            port = free_port()
            with log.open("wb") as output:
                process = subprocess.Popen(
                    [sys.executable, "-c", _SERVE, db_url, str(port)],
                    cwd=REPO,
                    env=env,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                )
            running.append((process, f"http://127.0.0.1:{port}", log))
        deadline = time.monotonic() + 40
        for process, base_url, log in running:
            while True:
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "an API process did not start"
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200:
                        break
                time.sleep(0.1)
        yield [base_url for _, base_url, _ in running]
    finally:
        for process, _, _ in running:
            process.terminate()  # SIGTERM: UvicornServer ends the streams, then exits
        for process, _, log in running:
            try:
                # uvicorn re-raises the signal after its graceful shutdown: -SIGTERM is clean.
                assert process.wait(10) in (0, -signal.SIGTERM), log.read_text()
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()


def test_a_write_through_process_b_pokes_a_stream_on_process_a(
    prepared: tuple[str, str, sessionmaker[Session]], tmp_path: Path
) -> None:
    db_url, lead_id, sessions = prepared
    with api_processes(db_url, [tmp_path / "a.log", tmp_path / "b.log"]) as (a_url, b_url):
        stream = SseClient(f"{a_url}/v1/events", sign_in(a_url, "ana"))
        try:
            first = seq_of(stream.next(3, is_poke))
            headers = {**sign_in(b_url, "ana"), "Idempotency-Key": str(uuid.uuid4())}
            body = {
                "id": str(uuid.uuid4()),
                "lead_id": lead_id,
                "kind": "note",
                "at": datetime.now(UTC).isoformat(),
            }
            began = time.monotonic()
            response = httpx.post(f"{b_url}/v1/activities", json=body, headers=headers, timeout=20)
            assert response.status_code == 201, response.text
            written = time.monotonic()
            poke = stream.next(1.0, is_poke)
            assert time.monotonic() - written < 1.0, time.monotonic() - began
            with sessions() as session:
                newest = session.scalar(select(func.max(ChangeRow.seq)))
            assert seq_of(poke) == newest > first
        finally:
            stream.close()
