"""`Idempotency-Key` for every write: the first response is stored and replayed to retries.

How it works (an ASGI middleware, installed on every app by `install`, so every POST, PATCH, PUT
and DELETE route gets it without doing anything):
- A write request carrying `Idempotency-Key` from a signed-in principal is keyed by
  (Principal.key, key). The key is claimed by inserting an `in_flight` IdempotencyRow in its OWN
  committed transaction; the primary key makes a concurrent duplicate fail and see that row.
- The route then runs as usual. Its response (status and body, byte for byte) is stored and the
  row marked `done` before the response is sent, so a retry that arrives later replays it with
  `Idempotent-Replayed: true`. 4xx answers are stored too: the same request gets the same answer.
- Same key, different request (method, path, query or body differ) → 422 naming the conflict.
  Same key while the first request still runs → 409 with Retry-After (the client retries).
- A 5xx answer, an exception or a non-JSON body deletes the row, so a retry can run again.
- A row left `in_flight` by a crashed process is taken over after
  Settings.idempotency_in_flight_timeout; `prune` drops rows older than idempotency_retention.
- Requests without a principal (no or bad token) pass straight through: the route answers 401.
  Exempt: /v1/auth/* and webhooks (EXEMPT_PREFIXES; `exempt(prefix)` adds one).

For other routes:
- Optional key (the default for every write route): nothing to do. To show the header in
  OpenAPI, add `dependencies=[Depends(idempotency_key())]` to the route.
- Required key (POST /v1/activities, POST /v1/messages): add the parameter
  `_key: str = Depends(idempotency_key(required=True))` — a missing key gets 400 naming the
  header (after authorization, so an anonymous caller still gets 401).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, Header, HTTPException, status
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.auth import Principal, principal_for
from server.db import IdempotencyRow, transaction, utcnow
from server.settings import Settings

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 200
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Sign-in has no principal to key by; webhooks are keyed by their provider's own message ids.
EXEMPT_PREFIXES: list[str] = ["/v1/auth/", "/v1/webhooks/"]

# Where the claimed (principal key, Idempotency-Key) is left for the route (request.state).
CLAIM_STATE = "idempotency_claim"

IN_FLIGHT = "in_flight"
DONE = "done"


def exempt(prefix: str) -> None:
    """Exclude paths starting with `prefix` (e.g. another inbound webhook) from the middleware."""
    if prefix not in EXEMPT_PREFIXES:
        EXEMPT_PREFIXES.append(prefix)


def idempotency_key(*, required: bool = False) -> Callable[..., str | None]:
    """A route dependency documenting the header; with required=True a missing key is a 400."""

    def dependency(
        idempotency_key: str | None = Header(
            None,
            alias=HEADER,
            max_length=MAX_KEY_LENGTH,
            description=(
                "A unique key per logical request (e.g. a UUID). Retries with the same key "
                "replay the first response; the same key with another body is refused (422)."
            ),
        ),
    ) -> str | None:
        if required and not idempotency_key:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST,
                f"the {HEADER} header is required here: send a new unique key (e.g. a UUID) "
                "per request and the same key when retrying it",
            )
        return idempotency_key

    return dependency


def request_hash(method: str, path: str, query: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), query.encode()):
        digest.update(part)
        digest.update(b"\0")
    digest.update(body)
    return digest.hexdigest()


# --------------------------------------------------------------------------- the stored state


@dataclass(frozen=True, slots=True)
class Claimed:
    """The key is ours: run the request."""


@dataclass(frozen=True, slots=True)
class Replay:
    status_code: int
    body: bytes


@dataclass(frozen=True, slots=True)
class InFlight:
    """Another request with this key is still running."""


@dataclass(frozen=True, slots=True)
class Mismatch:
    """The key was used for a different request."""


Claim = Claimed | Replay | InFlight | Mismatch


def claim(
    sessions: sessionmaker[Session],
    principal_key: str,
    key: str,
    fingerprint: str,
    now: datetime,
    in_flight_timeout: timedelta,
) -> Claim:
    """Claim `key` for `principal_key` (committed at once), or say why not."""
    try:
        with transaction(sessions) as session:
            session.add(
                IdempotencyRow(
                    principal=principal_key,
                    key=key,
                    request_hash=fingerprint,
                    state=IN_FLIGHT,
                    created_at=now,
                )
            )
        return Claimed()
    except IntegrityError:
        pass  # the key exists: look at it (the insert waited for its writer to commit)
    with transaction(sessions) as session:
        row = session.scalar(
            select(IdempotencyRow)
            .where(IdempotencyRow.principal == principal_key, IdempotencyRow.key == key)
            .with_for_update()
        )
        if row is None:
            # Deleted in between (a 5xx freed it): claim it now.
            session.add(
                IdempotencyRow(
                    principal=principal_key,
                    key=key,
                    request_hash=fingerprint,
                    state=IN_FLIGHT,
                    created_at=now,
                )
            )
            return Claimed()
        if row.request_hash != fingerprint:
            return Mismatch()
        if row.state == DONE and row.status_code is not None:
            return Replay(row.status_code, row.response_body or b"")
        if row.created_at + in_flight_timeout < now:
            row.created_at = now  # its process died mid-request: take the key over
            return Claimed()
        return InFlight()


def finish(
    sessions: sessionmaker[Session], principal_key: str, key: str, status_code: int, body: bytes
) -> None:
    with transaction(sessions) as session:
        row = session.get(IdempotencyRow, (principal_key, key))
        if row is None:  # pruned meanwhile (a request slower than the retention): nothing to keep
            return
        row.state = DONE
        row.status_code = status_code
        row.response_body = body


def settle_in(session: Session, scope: Scope, status_code: int, body: bytes) -> None:
    """Store the answer under this request's Idempotency-Key inside the route's own transaction.

    The middleware stores it only after the route committed; a process killed in between left
    the key in flight, and the retry ran the request a second time. A route whose effects must
    not run twice calls this before its commit (the middleware's later `finish` is then a no-op
    rewrite of the same answer)."""
    claimed = (scope.get("state") or {}).get(CLAIM_STATE)
    if claimed is None:
        return
    row = session.get(IdempotencyRow, claimed)
    if row is None:
        return
    row.state = DONE
    row.status_code = status_code
    row.response_body = body


def release(sessions: sessionmaker[Session], principal_key: str, key: str) -> None:
    """Forget a claim whose request failed, so a retry runs it again."""
    with transaction(sessions) as session:
        session.execute(
            delete(IdempotencyRow).where(
                IdempotencyRow.principal == principal_key,
                IdempotencyRow.key == key,
                IdempotencyRow.state == IN_FLIGHT,
            )
        )


def prune(session: Session, retention: timedelta, now: datetime) -> int:
    """Delete stored responses older than `retention`; returns how many."""
    result = session.execute(
        delete(IdempotencyRow).where(IdempotencyRow.created_at < now - retention)
    )
    return int(getattr(result, "rowcount", 0) or 0)


# --------------------------------------------------------------------------- the middleware


class IdempotencyMiddleware:
    """See the module docstring. Reads app state (sessions, settings) from scope["app"]."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in WRITE_METHODS:
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        headers = Headers(scope=scope)
        key = headers.get(HEADER)
        if key is None or any(path.startswith(prefix) for prefix in EXEMPT_PREFIXES):
            await self.app(scope, receive, send)
            return
        problem = _key_problem(key)
        if problem:
            await _send_json(send, 400, {"detail": problem})
            return
        state = scope["app"].state
        settings: Settings = state.settings
        sessions: sessionmaker[Session] = state.sessions
        readers: sessionmaker[Session] = getattr(state, "read_sessions", sessions)
        principal = await anyio.to_thread.run_sync(_principal, readers, headers)
        if principal is None:
            await self.app(scope, receive, send)  # the route refuses it (401)
            return
        try:
            body = await _read_body(receive, settings.max_body_bytes)
        except ClientGone:
            # The caller hung up before its body was complete (killed, network cut): there is
            # nobody to answer and nothing to run. Claiming the key with the truncated body would
            # answer its complete retry "different request" forever.
            return
        if body is None:
            limit = settings.max_body_bytes
            await _send_json(send, 413, {"detail": f"request body larger than {limit} bytes"})
            return
        fingerprint = request_hash(
            scope["method"], path, scope.get("query_string", b"").decode("latin-1"), body
        )
        outcome = await anyio.to_thread.run_sync(
            claim,
            sessions,
            principal.key,
            key,
            fingerprint,
            utcnow(),
            settings.idempotency_in_flight_timeout,
        )
        if isinstance(outcome, Replay):
            await _send_stored(send, outcome)
            return
        if isinstance(outcome, Mismatch):
            await _send_json(
                send,
                422,
                {
                    "detail": f"{HEADER} {key!r} was already used for a different request "
                    f"(method, path or body differ from the first {scope['method']} to it); "
                    "send a new key for a new request"
                },
            )
            return
        if isinstance(outcome, InFlight):
            await _send_json(
                send,
                409,
                {"detail": f"a request with {HEADER} {key!r} is still being processed; retry"},
                extra_headers=[(b"retry-after", b"1")],
            )
            return
        await self._run_claimed(scope, body, send, sessions, principal.key, key)

    async def _run_claimed(
        self,
        scope: Scope,
        body: bytes,
        send: Send,
        sessions: sessionmaker[Session],
        principal_key: str,
        key: str,
    ) -> None:
        start: Message | None = None
        chunks: list[bytes] = []
        body_sent = False

        async def replay_receive() -> Message:
            nonlocal body_sent
            if not body_sent:
                body_sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return {"type": "http.disconnect"}

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        stored = False
        scope.setdefault("state", {})[CLAIM_STATE] = (principal_key, key)
        try:
            await self.app(scope, replay_receive, capture)
            if start is None:
                raise RuntimeError("the route sent no response")
            status_code = int(start["status"])
            content = b"".join(chunks)
            content_type = Headers(raw=start.get("headers", [])).get("content-type", "")
            storable = status_code < 500 and (not content or "json" in content_type)
            if storable:
                await anyio.to_thread.run_sync(
                    finish, sessions, principal_key, key, status_code, content
                )
                stored = True
        finally:
            if not stored:
                with anyio.CancelScope(shield=True):  # free the key even when cancelled
                    await anyio.to_thread.run_sync(release, sessions, principal_key, key)
        await send(start)
        await send({"type": "http.response.body", "body": content, "more_body": False})


def _key_problem(key: str) -> str | None:
    if not key.strip():
        return f"the {HEADER} header is empty"
    if len(key) > MAX_KEY_LENGTH:
        return f"the {HEADER} header is longer than {MAX_KEY_LENGTH} characters"
    if not all(33 <= ord(c) <= 126 for c in key):
        return f"the {HEADER} header must be printable ASCII without spaces (e.g. a UUID)"
    return None


def _principal(sessions: sessionmaker[Session], headers: Headers) -> Principal | None:
    scheme, _, secret = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return None
    with sessions() as session:
        return principal_for(session, secret.strip(), utcnow())


class ClientGone(Exception):
    """The client disconnected before the request body was complete."""


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(parts)


async def _send_stored(send: Send, replay: Replay) -> None:
    headers = [
        (b"content-length", str(len(replay.body)).encode()),
        (REPLAYED_HEADER.lower().encode(), b"true"),
    ]
    if replay.body:
        headers.append((b"content-type", b"application/json"))
    await send({"type": "http.response.start", "status": replay.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": replay.body, "more_body": False})


async def _send_json(
    send: Send,
    status_code: int,
    content: dict[str, Any],
    *,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = json.dumps(content).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *(extra_headers or []),
    ]
    await send({"type": "http.response.start", "status": status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def install(api: FastAPI) -> None:
    api.add_middleware(IdempotencyMiddleware)
