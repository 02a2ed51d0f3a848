"""Secrets never reach a log (a live server and workstation flows captured at DEBUG, uvicorn's
access log included), the client refuses a certificate it cannot verify unless its private CA is
configured, and a route added without an authorization rule fails the route-table check."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastapi
import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.sync.api import CertificateError, LeadApi
from server.app import create_app
from server.hub import UvicornServer
from server.migrate import upgrade
from server.settings import Settings
from tests.app.sync.live import PASSWORD, Floor, LiveServer, free_port, wait_for
from tests.reliability.support import figures
from tests.server.test_authorization_matrix import endpoints_of


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = f"{record.name} {record.getMessage()} {record.args!r}"
        if record.exc_info and record.exc_info[1] is not None:
            text += repr(record.exc_info[1])
        self.texts.append(text)


def _serve(
    app: Any, port: int, **ssl: str
) -> tuple[UvicornServer, threading.Thread, socket.socket]:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    config = uvicorn.Config(
        app, log_level="debug", access_log=True, log_config=None, lifespan="on", ws="none", **ssl
    )
    server = UvicornServer(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.01)
    return server, thread, sock


def _stop(server: UvicornServer, thread: threading.Thread, sock: socket.socket) -> None:
    server.stop()
    thread.join(15)
    sock.close()


@pytest.fixture
def capture() -> Iterator[_Capture]:
    handler = _Capture()
    root = logging.getLogger()
    level = root.level
    # uvicorn's own loggers may not propagate (an earlier uvicorn in this process configured them).
    own = [logging.getLogger(n) for n in ("uvicorn", "uvicorn.access", "uvicorn.error")]
    for logger in [root, *own]:
        logger.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        for logger in [root, *own]:
            logger.removeHandler(handler)
        root.setLevel(level)


def test_no_secret_in_any_log_record(tmp_path: Path, capture: _Capture) -> None:
    live = LiveServer(tmp_path / "server.db")
    app = create_app(live._settings)
    server, thread, sock = _serve(app, live.port)
    floor = Floor(live, tmp_path)
    secrets: dict[str, str] = {"password": PASSWORD, "api key": live.api_key}

    async def main() -> None:
        workstation, _ = await floor.open("ana")
        try:
            lead_id = await asyncio.to_thread(live.post_lead, "Logged")
            await wait_for(lambda: workstation.store.repository.get_lead(lead_id) is not None, 10)
            await workstation.actions.add_note(lead_id, "a note")
            await wait_for(lambda: workstation.status.pending == 0, 10)
            secrets["token"] = workstation.account.token
            secrets["database key"] = next(
                v for (_, n), v in floor.keyrings["ana"].entries.items() if "db-key" in n
            )
            # A token in a query string (a careless client) must not be logged either.
            # (urllib: a client that logs nothing itself; the server's logs are under test.)
            careless = f"{live.base_url}/v1/me?access_token={workstation.account.token}"
            with contextlib.suppress(urllib.error.HTTPError):
                await asyncio.to_thread(urllib.request.urlopen, careless, timeout=10)
            async with httpx.AsyncClient(base_url=live.base_url) as client:
                await client.post(
                    "/v1/auth/token", json={"username": "ana", "password": "wrong " + PASSWORD}
                )
            await workstation.sign_out()
        finally:
            await floor.close_all()

    try:
        asyncio.run(main())
    finally:
        _stop(server, thread, sock)
        live.close()
    assert any("uvicorn.access" in t for t in capture.texts), "the access log was not captured"
    leaks = {
        name: [t[:200] for t in capture.texts if value in t]
        for name, value in secrets.items()
        if value
    }
    leaks = {name: found for name, found in leaks.items() if found}
    figures("secrets in logs", records=len(capture.texts), secrets=len(secrets), leaks=len(leaks))
    assert not leaks, leaks


def _self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "BDC test private CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_the_client_refuses_an_untrusted_certificate_and_trusts_the_configured_ca(
    tmp_path: Path,
) -> None:
    cert, key = _self_signed(tmp_path)
    port = free_port()
    db_url = f"sqlite:///{tmp_path / 'tls.db'}"
    upgrade(db_url)
    app = create_app(Settings(db_url=db_url, run_scheduler=False))
    server, thread, sock = _serve(app, port, ssl_certfile=str(cert), ssl_keyfile=str(key))

    async def main() -> tuple[str, int]:
        url = f"https://localhost:{port}"
        untrusted = LeadApi(url, timeout=5)
        try:
            with pytest.raises(CertificateError, match="not trusted") as refused:
                await untrusted.get_json("/healthz")
        finally:
            await untrusted.aclose()
        trusted = LeadApi(url, ca_bundle=str(cert), timeout=5)
        try:
            answer = await trusted.get_json("/healthz")
        finally:
            await trusted.aclose()
        return str(refused.value), len(answer)

    try:
        message, _ = asyncio.run(main())
    finally:
        _stop(server, thread, sock)
    figures("TLS", untrusted="refused", private_ca="trusted")
    assert "CA certificate" in message


def test_a_route_added_without_a_rule_is_caught_by_the_route_table_check() -> None:
    app = create_app(Settings(db_url="sqlite://", run_scheduler=False))
    before = {str(e) for e in endpoints_of(app)}
    router = fastapi.APIRouter()

    @router.get("/v1/forgotten")
    def forgotten() -> dict[str, str]:
        return {}

    app.include_router(router)
    added = [e for e in endpoints_of(app) if str(e) not in before]
    assert [str(e) for e in added] == ["GET /v1/forgotten"]
    # What test_every_route_declares_its_rule_and_enforces_it asserts on every route:
    assert not added[0].roles and added[0].enforced is None
