"""`bdc-workstation --demo`: the real lead API, in this process, on a free loopback port.

`start_demo_server` migrates a fresh SQLite file (in a folder the caller owns, e.g. a temp
dir), seeds the demo dealer group through the server's own services (server.demo_seed), and runs
the API under uvicorn in a daemon thread. The workstation then signs in to it over HTTP like any
other: real sync, real local store. `DemoKeyring` keeps the demo's token in memory, so the demo
never writes to the PC's real password store.
"""

from __future__ import annotations

import logging
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from app.sync.credentials import MemoryKeyring

DEMO_USERNAME = "ana"


# The demo's sign-in and store key vanish at exit: never the PC's real password store.
DemoKeyring = MemoryKeyring


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class DemoServer:
    base_url: str
    api_key: str
    webhook_token: str
    username: str
    password: str
    db_path: Path
    lead_count: int
    _server: Any
    _thread: threading.Thread
    _socket: socket.socket
    _engine: Any

    def stop(self) -> None:
        self._server.stop()
        self._thread.join(15)
        self._socket.close()
        self._engine.dispose()


def start_demo_server(folder: Path, *, leads: int = 160, port: int = 0) -> DemoServer:
    """Seed a fresh demo database in `folder` and serve it on 127.0.0.1 (a free port)."""
    import uvicorn

    from server.app import create_app
    from server.db import make_engine, make_sessionmaker
    from server.demo_seed import DEMO_PASSWORD, seed_demo
    from server.hub import UvicornServer
    from server.migrate import upgrade
    from server.settings import Settings

    folder.mkdir(parents=True, exist_ok=True)
    db_path = folder / "demo-leads.db"
    db_url = f"sqlite:///{db_path}"
    upgrade(db_url)
    # The seed replays hundreds of demo messages through the log gateway: keep the output short.
    logging.getLogger("bdc.messaging").setLevel(logging.WARNING)
    engine = make_engine(db_url)
    summary = seed_demo(make_sessionmaker(engine), count=leads)
    if summary.api_key is None:
        raise RuntimeError(f"the demo database in {folder} was seeded before: use a new folder")
    token = secrets.token_urlsafe(16)
    settings = Settings(
        db_url=db_url,
        webhook_token=token,
        change_poll_interval=timedelta(milliseconds=200),
    )
    app = create_app(settings)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port or _free_port()))
    bound = int(sock.getsockname()[1])
    config = uvicorn.Config(app, log_level="warning", lifespan="on", ws="none")
    server = UvicornServer(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="demo-lead-api"
    )
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            sock.close()
            raise RuntimeError("the demo lead API did not start")
        time.sleep(0.01)
    return DemoServer(
        base_url=f"http://127.0.0.1:{bound}",
        api_key=summary.api_key,
        webhook_token=token,
        username=DEMO_USERNAME,
        password=DEMO_PASSWORD,
        db_path=db_path,
        lead_count=leads,
        _server=server,
        _thread=thread,
        _socket=sock,
        _engine=engine,
    )
