"""Shared by the reliability tests: scale (BDC_SOAK), a real `bdc-server serve` process that can
be SIGKILLed and restarted on the same port and database, and a figures printer."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from server.migrate import upgrade
from tests.app.sync.live import free_port
from tests.server.conftest import seed_stores_and_users

REPO = Path(__file__).resolve().parents[2]
SOAK = os.environ.get("BDC_SOAK", "").strip() not in ("", "0")


def scaled(normal: int, soak: int) -> int:
    """`normal` in `make test`, `soak` under `make soak` (BDC_SOAK=1)."""
    return soak if SOAK else normal


def figures(title: str, **numbers: object) -> None:
    """Print one line of figures (shown by pytest -s, and in the log of `make soak`)."""
    line = ", ".join(f"{key}={value}" for key, value in numbers.items())
    sys.stdout.write(f"\n[{title}] {line}\n")
    sys.stdout.flush()


class ServerProcess:
    """`python -m server.cli serve` on a SQLite file seeded with the test stores and users."""

    def __init__(self, db_path: Path, log_path: Path, env: dict[str, str] | None = None) -> None:
        self.db_url = f"sqlite:///{db_path}"
        upgrade(self.db_url)
        self.api_key, self.other_api_key = seed_stores_and_users(self.db_url)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "BDC_SSE_HEARTBEAT": "1",
            "BDC_CHANGE_POLL_INTERVAL": "0.1",
            **(env or {}),
        }
        self.popen: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, timeout: float = 40) -> None:
        assert self.popen is None or self.popen.poll() is not None
        command = [
            sys.executable,
            "-m",
            "server.cli",
            "serve",
            "--db",
            self.db_url,
            "--port",
            str(self.port),
            "--no-scheduler",
            "--no-migrate",
            "--log-level",
            "warning",
        ]
        with self.log_path.open("ab") as output:
            self.popen = subprocess.Popen(
                command, cwd=REPO, env=self.env, stdout=output, stderr=subprocess.STDOUT
            )
        self.starts += 1
        deadline = time.monotonic() + timeout
        while True:
            assert self.popen.poll() is None, self.log_path.read_text()
            assert time.monotonic() < deadline, f"not up: {self.log_path.read_text()}"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.base_url}/healthz", timeout=2).status_code == 200:
                    return
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a power cut of the server."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(10)

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
