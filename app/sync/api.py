"""The lead API client: HTTPS with verified certificates, bearer tokens, idempotent writes, SSE.

Errors are split by what the caller should do: `NetworkError` (retry later), `ServerBusy` (5xx or
409-in-flight: retry later), `SignInExpired` (ask for the password, keep the outbox), `Rejected`
(4xx: stop that item and show the server's reason), `ResyncNeeded` (410 on the change feed).
"""

from __future__ import annotations

import json
import ssl
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

# httpx's package imports its command-line client (httpx._main: click, rich, pygments) whenever
# those happen to be installed — ~10 % of the program's imports at start-up, for a tool this
# program never runs. Marked absent, httpx keeps its stub `httpx.main` instead.
if "httpx" not in sys.modules:
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

import httpx


class ApiError(Exception):
    """Base for lead API failures; `str()` is a message for the agent."""


class NetworkError(ApiError):
    """The server could not be reached (offline, DNS, refused, timeout, TLS failure)."""


class CertificateError(NetworkError):
    """The server's TLS certificate is not trusted. Never bypassed: trust a private CA instead."""


class ServerBusy(ApiError):
    """A 5xx, or a 409 for a request still in flight: try the same request again later."""

    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class SignInExpired(ApiError):
    """401: the token expired or was revoked."""


class Rejected(ApiError):
    """A 4xx other than 401/409-in-flight/410: the server refused this request for a reason."""

    def __init__(self, status: int, message: str, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class ResyncNeeded(ApiError):
    """410 Gone on the change feed: the cursor is older than the server keeps; resync fully.

    `newest` is the server's newest sequence when it said so: the cursor to resume from after
    the full copy (changes after it are pulled again; applying them twice is harmless).
    """

    def __init__(self, message: str, newest: int | None = None) -> None:
        super().__init__(message)
        self.newest = newest


@dataclass(frozen=True, slots=True)
class SignIn:
    token: str
    user_id: str
    username: str
    display_name: str
    role: str
    store_id: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Change:
    seq: int
    entity: str
    entity_id: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ChangesPage:
    changes: tuple[Change, ...]
    next_cursor: int
    has_more: bool
    newest: int | None = None


@dataclass(frozen=True, slots=True)
class SnapshotPage:
    """One page of GET /v1/snapshot: leads ("lead" change payloads, each with its whole history
    in "activities"), in id order."""

    newest: int  # the store's newest change when the page was read: follow the feed from here
    total: int | None  # how many leads the snapshot holds (for progress)
    leads: list[dict[str, Any]]
    next_cursor: str | None  # None: this was the last page


class SnapshotError(ApiError):
    """A snapshot page that is not what the API promises (a server bug): nothing is stored."""


def parse_snapshot_page(body: bytes) -> SnapshotPage:
    """The page's JSON, checked for its shape (each lead is checked when it is stored).
    Parsed off the GUI thread: a page of 500 leads with histories is megabytes."""
    try:
        page = json.loads(body)
    except ValueError as error:
        raise SnapshotError(f"the server's snapshot page is not JSON: {error}") from None
    if not isinstance(page, dict):
        raise SnapshotError("the server's snapshot page is not an object")
    newest, total, leads = page.get("newest"), page.get("total"), page.get("leads")
    next_cursor = page.get("next_cursor")
    if isinstance(newest, bool) or not isinstance(newest, int) or newest < 0:
        raise SnapshotError(f"the server's snapshot page has no valid 'newest': {newest!r}")
    if not isinstance(leads, list):
        raise SnapshotError("the server's snapshot page has no 'leads' list")
    if next_cursor is not None and (not isinstance(next_cursor, str) or not next_cursor):
        raise SnapshotError(f"the server's snapshot page has a bad 'next_cursor': {next_cursor!r}")
    return SnapshotPage(
        newest,
        total if isinstance(total, int) and not isinstance(total, bool) else None,
        leads,
        next_cursor,
    )


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: Any
    replayed: bool


def tls_context(ca_bundle: str | None) -> ssl.SSLContext:
    """Verification always on; a dealership's private CA can be added, checks never turned off."""
    context = ssl.create_default_context()
    if ca_bundle:
        context.load_verify_locations(cafile=ca_bundle)
    return context


class LeadApi:
    """One server, one signed-in user. Also estimates the server's clock offset from replies."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        ca_bundle: str | None = None,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            verify=tls_context(ca_bundle),
            transport=transport,
            headers={"User-Agent": "bdc-workstation"},
        )
        # Server clock minus ours, from replies' Date header (the fastest round trip wins).
        self.clock_offset = timedelta(0)
        self._best_round_trip = float("inf")

    async def aclose(self) -> None:
        await self._client.aclose()

    def _headers(self, idempotency_key: str | None = None) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        return headers

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> httpx.Response:
        started = time.monotonic()
        sent_at = datetime.now(UTC)
        try:
            response = await self._client.request(
                method,
                path,
                json=json_body,
                params=params,
                headers=self._headers(idempotency_key),
            )
        except httpx.ConnectError as exc:
            if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                raise CertificateError(
                    f"the server's certificate is not trusted ({self.base_url}); ask IT to install "
                    "the dealership's CA certificate and set it in Settings"
                ) from exc
            raise NetworkError(f"cannot reach {self.base_url}: {exc}") from exc
        except httpx.TimeoutException as exc:
            raise NetworkError(f"{self.base_url} did not answer in time") from exc
        except httpx.TransportError as exc:
            raise NetworkError(f"connection to {self.base_url} failed: {exc}") from exc
        self._sample_clock(response, sent_at, time.monotonic() - started)
        return response

    def _sample_clock(self, response: httpx.Response, sent_at: datetime, round_trip: float) -> None:
        if round_trip > self._best_round_trip:
            return
        midpoint = sent_at + timedelta(seconds=round_trip / 2)
        precise = response.headers.get("x-server-time")
        if precise:
            # The lead API's own clock to the millisecond: aim at the middle of the round trip.
            try:
                server_time = datetime.fromisoformat(precise)
            except ValueError:
                server_time = None
            if server_time is not None and server_time.tzinfo is not None:
                self.clock_offset = server_time - midpoint
                self._best_round_trip = round_trip
                return
        header = response.headers.get("date")
        if not header:
            return
        try:
            server_time = parsedate_to_datetime(header)
        except (TypeError, ValueError):
            return
        # Date has whole seconds; aim at the middle of its second and of the round trip.
        self.clock_offset = server_time + timedelta(milliseconds=500) - midpoint
        self._best_round_trip = round_trip

    @staticmethod
    def _detail(response: httpx.Response) -> tuple[str, Any]:
        try:
            body = response.json()
        except ValueError:
            return response.text[:300] or response.reason_phrase, None
        detail = body.get("detail") if isinstance(body, dict) else None
        problems = body.get("problems") if isinstance(body, dict) else None
        message = detail if isinstance(detail, str) else json.dumps(detail or body)[:300]
        if problems:
            message = f"{message}: {'; '.join(map(str, problems))}"
        return message, body

    def _raise_for(self, response: httpx.Response) -> None:
        status = response.status_code
        if status < 400:
            return
        message, body = self._detail(response)
        if status == 401:
            raise SignInExpired(message or "sign-in expired")
        if status == 410:
            newest = body.get("newest") if isinstance(body, dict) else None
            raise ResyncNeeded(message, newest if isinstance(newest, int) else None)
        if status >= 500 or status == 429 or (status == 409 and _retryable_conflict(response)):
            retry_after = response.headers.get("retry-after")
            raise ServerBusy(
                status,
                message,
                float(retry_after) if retry_after and retry_after.isdigit() else None,
            )
        raise Rejected(status, message, body)

    # The API

    async def sign_in(self, username: str, password: str) -> SignIn:
        response = await self._request(
            "POST", "/v1/auth/token", json_body={"username": username, "password": password}
        )
        if response.status_code == 401:
            raise Rejected(401, "wrong username or password")
        self._raise_for(response)
        body = response.json()
        self.token = body["access_token"]
        return SignIn(
            token=body["access_token"],
            user_id=body["user_id"],
            username=body["username"],
            display_name=body.get("display_name") or body["username"],
            role=body["role"],
            store_id=body["store_id"],
            expires_at=datetime.now(UTC) + timedelta(seconds=int(body["expires_in"])),
        )

    async def sign_out(self) -> None:
        if self.token:
            response = await self._request("POST", "/v1/auth/revoke")
            if response.status_code not in (204, 401):
                self._raise_for(response)
        self.token = None

    async def changes(self, since: int, limit: int = 500) -> ChangesPage:
        response = await self._request(
            "GET", "/v1/changes", params={"since": since, "limit": limit}
        )
        self._raise_for(response)
        body = response.json()
        changes = tuple(
            Change(int(c["seq"]), str(c["entity"]), str(c["entity_id"]), dict(c.get("data") or {}))
            for c in body["changes"]
        )
        newest = body.get("newest")
        return ChangesPage(
            changes,
            int(body["next_cursor"]),
            bool(body.get("has_more")),
            newest if isinstance(newest, int) else None,
        )

    async def send(
        self, method: str, path: str, body: Any, *, idempotency_key: str | None
    ) -> Reply:
        """One write. Raises by status class (see module docstring); returns the reply on 2xx."""
        response = await self._request(
            method, path, json_body=body, idempotency_key=idempotency_key
        )
        self._raise_for(response)
        try:
            parsed = response.json() if response.content else None
        except ValueError:
            parsed = None
        replayed = response.headers.get("idempotent-replayed", "").lower() == "true"
        return Reply(response.status_code, parsed, replayed)

    async def me(self) -> dict[str, Any]:
        """Who the token belongs to (and whether it still works: SignInExpired if not)."""
        body = await self.get_json("/v1/me")
        return dict(body)

    async def claim(self, lead_id: str) -> dict[str, Any]:
        """Take a lead from the pool; Rejected(409) when somebody else has it already."""
        reply = await self.send("POST", f"/v1/leads/{lead_id}/claim", None, idempotency_key=None)
        return dict(reply.body or {})

    # The manager view (managers and admins only; agents get Rejected(403))

    async def floor(self) -> dict[str, Any]:
        """Every agent of the store: presence, today's counts, deadline compliance."""
        return dict(await self.get_json("/v1/floor"))

    async def queue_health(self) -> dict[str, Any]:
        """Every unworked lead of the store with its deadline."""
        return dict(await self.get_json("/v1/queue-health"))

    async def metrics(self, period: str = "today", group_by: str | None = None) -> dict[str, Any]:
        params = {"period": period, **({"group_by": group_by} if group_by else {})}
        return dict(await self.get_json("/v1/metrics", params))

    async def review_calls(self, period: str = "today", agent_id: str | None = None) -> Any:
        params = {"period": period, **({"agent_id": agent_id} if agent_id else {})}
        return await self.get_json("/v1/review/calls", params)

    async def save_scorecard(self, body: dict[str, Any]) -> dict[str, Any]:
        reply = await self.send(
            "POST", "/v1/review/scorecards", body, idempotency_key=str(body.get("id") or "")
        )
        return dict(reply.body or {})

    async def assign(self, lead_id: str, agent_id: str | None) -> dict[str, Any]:
        """Give the lead to an agent of the store (None: the pool)."""
        reply = await self.send(
            "POST", f"/v1/leads/{lead_id}/assign", {"agent_id": agent_id}, idempotency_key=None
        )
        return dict(reply.body or {})

    async def start_call(
        self, call_id: str, lead_id: str, phone: str | None = None
    ) -> dict[str, Any]:
        """Server-side call control: ring my phone, then the lead (POST /v1/calls, with the
        call id as its Idempotency-Key so a retry never dials twice). The call as it stands."""
        body: dict[str, Any] = {"id": call_id, "lead_id": lead_id}
        if phone is not None:
            body["phone"] = phone
        reply = await self.send("POST", "/v1/calls", body, idempotency_key=call_id)
        return dict(reply.body or {})

    async def hang_up_call(self, call_id: str) -> dict[str, Any]:
        """End a server-bridged call (both legs); an ended call stays ended."""
        reply = await self.send("POST", f"/v1/calls/{call_id}/hangup", None, idempotency_key=None)
        return dict(reply.body or {})

    async def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        response = await self._request("GET", path, params=params)
        self._raise_for(response)
        return response.json()

    async def snapshot_body(self, cursor: str | None, limit: int) -> bytes:
        """One page of GET /v1/snapshot, unparsed (see parse_snapshot_page)."""
        params: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        response = await self._request("GET", "/v1/snapshot", params=params)
        self._raise_for(response)
        return response.content

    async def events(self, last_seq: int | None = None) -> AsyncIterator[int]:
        """The SSE poke stream: yields the newest sequence number announced by each poke.

        Heartbeat comments keep the read timeout from firing; the stream ends when the server or
        the network does (NetworkError), and the caller reconnects.
        """
        headers = self._headers()
        headers["Accept"] = "text/event-stream"
        if last_seq is not None:
            headers["Last-Event-ID"] = str(last_seq)
        try:
            async with self._client.stream(
                "GET", "/v1/events", headers=headers, timeout=httpx.Timeout(10.0, read=60.0)
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    self._raise_for(response)
                data: list[str] = []
                async for line in response.aiter_lines():
                    if line.startswith("data:"):
                        data.append(line[5:].strip())
                    elif line == "" and data:
                        seq = _poke_seq("\n".join(data))
                        data = []
                        if seq is not None:
                            yield seq
        except httpx.TransportError as exc:
            raise NetworkError(f"live updates from {self.base_url} stopped: {exc}") from exc


def _retryable_conflict(response: httpx.Response) -> bool:
    """A 409 that says "try again" (the same Idempotency-Key still in flight, or a concurrent
    insert of the same id) rather than "this conflicts with what the server has"."""
    if response.headers.get("retry-after"):
        return True
    text = response.text.lower()
    return any(hint in text for hint in ("in flight", "still being processed", "concurrently"))


def _poke_seq(payload: str) -> int | None:
    try:
        value = json.loads(payload)
    except ValueError:
        return None
    if isinstance(value, dict) and isinstance(value.get("seq"), int):
        return int(value["seq"])
    return None
