"""`bdc-server serve --workers N`: N API processes sharing one listening socket.

One Python process runs one request's Python code at a time (the GIL): intake (XML parsing,
scoring, the ORM) is CPU work, so one process uses one core. With PostgreSQL the API scales out
over processes: every guarantee already holds between processes (the floor's row locks for the
round robin, the change feed's advisory lock for its order, LISTEN/NOTIFY to wake every process's
SSE streams, idempotency keys and jobs claimed in the database). SQLite is refused: its one writer
at a time would only make the processes queue for the write lock (see db.make_engine).

The parent binds the socket, starts the workers (spawned, each its own interpreter, app, engine
and change hub) and supervises them: a worker that dies is started again; SIGTERM or SIGINT stops
them all (each ends its SSE streams first, see hub.UvicornServer) and then the parent.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("bdc.server.workers")

_RESTART_PAUSE_S = 1.0
_STOP_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class WorkerSpec:
    """What each worker needs to build its app (picklable: sent to spawned processes)."""

    db_url: str
    run_scheduler: bool
    options: Mapping[str, Any]  # uvicorn.Config keyword arguments


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run_worker(spec: WorkerSpec, sock: socket.socket) -> None:
    """A worker process: its own app on the shared socket until SIGTERM/SIGINT."""
    import dataclasses

    import uvicorn

    from server.app import create_app
    from server.cli import settings_from_env
    from server.hub import UvicornServer

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # The BDC_* settings come from the environment, which a spawned process inherits.
    settings = settings_from_env(spec.db_url, os.environ)
    if not spec.run_scheduler:
        settings = dataclasses.replace(settings, run_scheduler=False)
    api = create_app(settings)
    config = uvicorn.Config(api, **{"timeout_graceful_shutdown": 10, **spec.options})
    UvicornServer(config).run(sockets=[sock])


def serve_workers(spec: WorkerSpec, host: str, port: int, workers: int) -> int:
    """Run `workers` worker processes on host:port until SIGTERM/SIGINT; returns an exit status."""
    if workers < 1:
        raise ValueError("workers must be at least 1")
    multiprocessing.allow_connection_pickling()  # the socket goes to each spawned worker
    context = multiprocessing.get_context("spawn")
    sock = bind(host, port)
    stopping = threading.Event()
    processes: list[Any] = []

    def start() -> Any:
        process = context.Process(target=run_worker, args=(spec, sock), name="bdc-server-worker")
        process.start()
        log.info("worker %s started", process.pid)
        return process

    def stop(_signum: int, _frame: Any) -> None:
        stopping.set()

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        processes.extend(start() for _ in range(workers))
        while not stopping.wait(0.5):
            for index, process in enumerate(processes):
                if not process.is_alive() and not stopping.is_set():
                    log.warning(
                        "worker %s ended (exit code %s); starting another",
                        process.pid,
                        process.exitcode,
                    )
                    stopping.wait(_RESTART_PAUSE_S)
                    if not stopping.is_set():
                        processes[index] = start()
    finally:
        for process in processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        for process in processes:
            process.join(_STOP_TIMEOUT_S)
            if process.is_alive():
                process.kill()
                process.join(5)
        sock.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0
