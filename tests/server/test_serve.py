"""`bdc-server serve` as an IT person runs it: several real processes on one database (SQLite file
or PostgreSQL), started at once on an empty database, configured by environment variables.

A lead posted by a provider through process B pokes, within a second, an agent's SSE stream on
process A (PostgreSQL: LISTEN/NOTIFY; SQLite: the polling watcher), and A's change feed has it.
SIGTERM ends a process promptly even with a stream open."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from server.cli import settings_from_env
from server.db import ChangeRow, make_engine, make_sessionmaker, transaction
from tests.server.conftest import seed_stores_and_users
from tests.server.test_sse import REPO, SseClient, free_port, is_poke, seq_of, sign_in


@dataclass
class Process:
    popen: subprocess.Popen[bytes]
    base_url: str
    log: Path


def _start(
    db_url: str, log: Path, extra_env: dict[str, str], args: tuple[str, ...] = ()
) -> Process:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "BDC_SSE_HEARTBEAT": "1", **extra_env}
    command = [
        *(sys.executable, "-m", "server.cli", "serve", "--db", db_url, "--port", str(port)),
        *args,
    ]
    with log.open("wb") as output:
        popen = subprocess.Popen(
            [*command, "--log-level", "warning"],
            cwd=REPO,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    return Process(popen, f"http://127.0.0.1:{port}", log)


def _wait_healthy(processes: list[Process], timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    for process in processes:
        while True:
            assert process.popen.poll() is None, process.log.read_text()
            assert time.monotonic() < deadline, f"not up: {process.log.read_text()}"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{process.base_url}/healthz", timeout=2).status_code == 200:
                    break
            time.sleep(0.1)


def _stop(process: Process, timeout: float = 10) -> float:
    """SIGTERM; seconds until the process exited (it must exit cleanly)."""
    began = time.monotonic()
    process.popen.send_signal(signal.SIGTERM)
    try:
        code = process.popen.wait(timeout)
    finally:
        if process.popen.poll() is None:
            process.popen.kill()
            process.popen.wait()
    # uvicorn re-raises the signal after a graceful shutdown: -SIGTERM is clean.
    assert code in (0, -signal.SIGTERM), process.log.read_text()
    return time.monotonic() - began


@contextlib.contextmanager
def serving(
    db_url: str, tmp_path: Path, count: int = 2, env: dict[str, str] | None = None
) -> Iterator[list[Process]]:
    """`count` `bdc-server serve` processes started together on one (empty) database."""
    processes = [_start(db_url, tmp_path / f"p{n}.log", env or {}) for n in range(count)]
    try:
        _wait_healthy(processes)
        yield processes
    finally:
        for process in processes:
            if process.popen.poll() is None:
                _stop(process)


def test_a_lead_posted_to_process_b_pokes_an_agent_on_process_a_within_a_second(
    db_url: str, tmp_path: Path
) -> None:
    with serving(db_url, tmp_path) as (a, b):
        # Both processes migrated the empty database at once; now add the store and users.
        api_key, _ = seed_stores_and_users(db_url)
        stream = SseClient(f"{a.base_url}/v1/events", sign_in(a.base_url, "ana"))
        try:
            first = seq_of(stream.next(3, is_poke))
            lead = {
                "person": {"first_name": "Rosa", "last_name": "Delgado"},
                "phones": [{"number": "(312) 555-0142", "kind": "cellphone"}],
                "vehicles": [{"year": 2026, "make": "Toyota", "model": "RAV4"}],
            }
            headers = {"Authorization": f"Bearer {api_key}", "Idempotency-Key": str(uuid.uuid4())}
            response = httpx.post(f"{b.base_url}/v1/leads", json=lead, headers=headers, timeout=20)
            assert response.status_code == 201, response.text
            written = time.monotonic()
            lead_id = response.json()["leads"][0]["lead_id"]
            poke = seq_of(stream.next(1.0, lambda e: is_poke(e) and seq_of(e) > first))
            assert time.monotonic() - written < 1.0
        finally:
            stream.close()
        engine = make_engine(db_url)
        try:
            with transaction(make_sessionmaker(engine)) as session:
                lead_seqs = session.scalars(
                    select(ChangeRow.seq).where(
                        ChangeRow.entity == "lead", ChangeRow.entity_id == lead_id
                    )
                ).all()
        finally:
            engine.dispose()
        assert lead_seqs and min(lead_seqs) <= poke
        # Process A serves the change the poke announced (a new lead lands in the pool or with
        # an agent; ana sees the pool and her own).
        changes = httpx.get(
            f"{a.base_url}/v1/changes",
            params={"since": first},
            headers=sign_in(a.base_url, "mia"),
            timeout=20,
        ).json()["changes"]
        assert lead_id in {c["entity_id"] for c in changes if c["entity"] == "lead"}


def test_sigterm_ends_a_serving_process_promptly_with_a_stream_open(
    db_url: str, tmp_path: Path
) -> None:
    with serving(db_url, tmp_path, count=1) as (process,):
        seed_stores_and_users(db_url)
        stream = SseClient(f"{process.base_url}/v1/events", sign_in(process.base_url, "mia"))
        try:
            stream.next(3, is_poke)
            assert _stop(process) < 5.0
            assert stream.ended.wait(5)
        finally:
            stream.close()


def test_environment_configures_the_server(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'leads.db'}"
    env = {"BDC_MAX_BODY_BYTES": "2000", "BDC_RUN_SCHEDULER": "false"}
    with serving(db_url, tmp_path, count=1, env=env) as (process,):
        api_key, _ = seed_stores_and_users(db_url)
        big = {"person": {"first_name": "A"}, "comments": "x" * 3000}
        response = httpx.post(
            f"{process.base_url}/v1/leads",
            json=big,
            headers={"Authorization": f"Bearer {api_key}", "Idempotency-Key": str(uuid.uuid4())},
            timeout=20,
        )
        assert response.status_code == 413, response.text


def test_settings_from_env_parses_and_names_bad_values() -> None:
    settings = settings_from_env(
        "sqlite://",
        {
            "BDC_EMAIL_GATEWAY": "smtp",
            "BDC_SMTP_PORT": "2525",
            "BDC_SMTP_STARTTLS": "yes",
            "BDC_REASSIGN_AFTER": "off",
            "BDC_HEARTBEAT_TIMEOUT": "45",
            "BDC_DB_URL": "ignored: --db wins",
            "OTHER": "x",
        },
    )
    assert (settings.email_gateway, settings.smtp_port, settings.smtp_starttls) == (
        "smtp",
        2525,
        True,
    )
    assert settings.reassign_after is None
    assert settings.heartbeat_timeout == timedelta(seconds=45)
    assert settings.db_url == "sqlite://"
    with pytest.raises(ValueError, match="BDC_SMTP_PORT"):
        settings_from_env("sqlite://", {"BDC_SMTP_PORT": "twenty"})
    with pytest.raises(ValueError, match="BDC_RUN_SCHEDULER"):
        settings_from_env("sqlite://", {"BDC_RUN_SCHEDULER": "maybe"})


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(stat[1]) == pid and b"spawn_main" in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
    return found


def test_workers_share_the_port_and_wake_each_others_streams(db_url: str, tmp_path: Path) -> None:
    """`serve --workers 2` (PostgreSQL): two worker processes behind one port; a lead posted
    to whichever worker answers pokes every agent's stream, wherever it is served; SIGTERM to
    the parent ends them all promptly."""
    if not db_url.startswith("postgresql"):
        pytest.skip("--workers is for PostgreSQL (refused on SQLite: see the next test)")
    from server.migrate import upgrade

    upgrade(db_url)
    api_key, _ = seed_stores_and_users(db_url)
    process = _start(db_url, tmp_path / "workers.log", {}, ("--workers", "2"))
    try:
        _wait_healthy([process])
        deadline = time.monotonic() + 30
        while len(workers := _children(process.popen.pid)) < 2:
            assert time.monotonic() < deadline, process.log.read_text()
            time.sleep(0.2)
        token = sign_in(process.base_url, "ana")
        streams = [SseClient(f"{process.base_url}/v1/events", token) for _ in range(6)]
        try:
            firsts = [seq_of(stream.next(10, is_poke)) for stream in streams]
            lead = {
                "person": {"first_name": "Rosa", "last_name": "Delgado"},
                "phones": [{"number": "(312) 555-0142", "kind": "cellphone"}],
            }
            headers = {"Authorization": f"Bearer {api_key}"}
            response = httpx.post(f"{process.base_url}/v1/leads", json=lead, headers=headers)
            assert response.status_code == 201, response.text
            for stream, first in zip(streams, firsts, strict=True):
                stream.next(2.0, lambda e, first=first: is_poke(e) and seq_of(e) > first)
        finally:
            for stream in streams:
                stream.close()
        assert _stop(process) < 15.0
        for pid in workers:
            assert not Path(f"/proc/{pid}").exists() or _zombie(pid)
    finally:
        if process.popen.poll() is None:
            process.popen.kill()
            process.popen.wait()


def _zombie(pid: int) -> bool:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    return True


def test_workers_are_refused_on_sqlite(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'leads.db'}"
    result = subprocess.run(
        [sys.executable, "-m", "server.cli", "serve", "--db", db_url, "--workers", "2"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--workers needs PostgreSQL" in result.stderr
