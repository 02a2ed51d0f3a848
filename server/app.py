"""The lead API application factory: one place that wires settings, database and routes."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

import app as core
from server import hub, idempotency, scheduler
from server.auth import PUBLIC, rule
from server.db import Base, make_engine, make_sessionmaker, ping, read_only_engine
from server.routes import ROUTERS
from server.rules import clock_of
from server.settings import Settings

_SECRET_PARAM = re.compile(
    r"((?:access_token|token|api_key|apikey|key|password|secret)=)[^&\s\"]*", re.IGNORECASE
)


class RedactSecretsInQuery(logging.Filter):
    """uvicorn's access log prints the query string; a client that puts a token or key there
    (none of ours does) must not get it into the server's logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _SECRET_PARAM.sub(r"\1[redacted]", a) if isinstance(a, str) else a
                for a in record.args
            )
        return True


_ACCESS_LOG = logging.getLogger("uvicorn.access")
if not any(isinstance(f, RedactSecretsInQuery) for f in _ACCESS_LOG.filters):
    _ACCESS_LOG.addFilter(RedactSecretsInQuery())


def create_app(settings: Settings | None = None, *, create_tables: bool = False) -> FastAPI:
    settings = settings or Settings()
    engine = make_engine(settings.db_url)
    if create_tables:
        Base.metadata.create_all(engine)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for start in app.state.on_start:
            await start(app)
        try:
            yield
        finally:
            for stop in app.state.on_stop:
                await stop(app)
            engine.dispose()

    api = FastAPI(
        title="BDC lead API",
        version=core.__version__,
        description="Leads in (ADF and JSON), work out (change feed and SSE), activities back.",
        lifespan=lifespan,
    )
    api.state.settings = settings
    api.state.engine = engine
    api.state.sessions = make_sessionmaker(engine)
    # Sessions that only read (sign-in checks, the change feed): no writer queue on SQLite.
    api.state.read_sessions = make_sessionmaker(read_only_engine(engine))
    api.state.on_start = []
    api.state.on_stop = []

    @api.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # Name every bad field in plain words; never echo the whole input back.
        problems = [f"{_location(err)}: {err.get('msg')}" for err in exc.errors()]
        return JSONResponse({"detail": "invalid request", "problems": problems}, status_code=422)

    @api.get("/healthz", **rule(PUBLIC))
    def healthz() -> dict[str, str]:
        ping(engine)
        return {"status": "ok", "version": core.__version__, "database": engine.dialect.name}

    for router in ROUTERS:
        api.include_router(router)
    # Background services and middleware, each started and stopped with the app's lifespan.
    idempotency.install(api)
    api.add_middleware(ServerTimeMiddleware, app=api)
    hub.install(api)
    scheduler.install(api)
    return api


class ServerTimeMiddleware:
    """`X-Server-Time` on every response: the server's clock (clock_of) to the millisecond, so a
    workstation can estimate its offset far better than from Date's whole seconds (an opt-out
    stamped by the server then counts on the PC at once, not up to a second later)."""

    def __init__(self, inner: Any, app: FastAPI) -> None:
        self._inner = inner
        self._app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self._inner(scope, receive, send)
            return

        async def stamped(message: Any) -> None:
            if message.get("type") == "http.response.start":
                when = clock_of(self._app).isoformat(timespec="milliseconds")
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-server-time", when.encode())]
            await send(message)

        await self._inner(scope, receive, stamped)


def _location(error: dict) -> str:  # type: ignore[type-arg]
    return ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
