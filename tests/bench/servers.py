"""The lead API as it runs in production for the benchmarks: `bdc-server serve` in its own
process (its own interpreter and GIL, as on a server box), production settings, scheduler off."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from server.migrate import upgrade
from tests.app.sync.live import free_port
from tests.server.conftest import PASSWORD, seed_stores_and_users

__all__ = ["PASSWORD", "ServerProcess", "postgres_database", "prepared_database"]


def prepared_database(db_url: str) -> str:
    """Migrate and seed the two stores and their users; returns the lead provider's API key."""
    upgrade(db_url)
    key, _other = seed_stores_and_users(db_url)
    return key


class ServerProcess:
    def __init__(self, db_url: str, api_key: str, log_path: Path, *, workers: int = 1) -> None:
        self.db_url = db_url
        self.workers = workers
        self.api_key = api_key
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        executable = Path(sys.executable).with_name("bdc-server")
        self._log = self._log_path.open("wb")
        self._process = subprocess.Popen(
            [
                str(executable),
                "serve",
                "--db",
                self.db_url,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--no-scheduler",
                "--no-migrate",
                "--log-level",
                "warning",
                "--workers",
                str(self.workers),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"bdc-server did not start: {self._log_path.read_text()}")
            time.sleep(0.1)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        log = getattr(self, "_log", None)
        if log is not None:
            log.close()

    def token(self, username: str) -> str:
        response = httpx.post(
            f"{self.base_url}/v1/auth/token",
            json={"username": username, "password": PASSWORD},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])


@contextmanager
def postgres_database(tmp_path: Path) -> Iterator[str]:
    """A fresh migrated PostgreSQL database (skips when BDC_TEST_POSTGRES_URL is not set)."""
    from tests.server.conftest import _database_url

    databases = _database_url(tmp_path, "postgresql")
    url = next(databases)
    try:
        yield url
    finally:
        databases.close()
