"""Signing in: server URL, username and password → a bearer token kept in the OS keyring.

The keyring service is named after the program and the server ("BDC Workstation (host:port)");
the token is stored per user ("token:ann") and the last user who signed in is remembered
("last-user"), so the next start can offer their name (and skip the password while the token
still works). Sign-out revokes the token on the server (when reachable) and deletes it here.
Without a secure keyring, everything is kept for this session only and the user is told so.

TLS: certificates are always verified; a dealership's private CA can be trusted with
`ca_bundle`. Plain http:// is accepted for this PC only (localhost, 127.0.0.1, ::1).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from keyring.backend import KeyringBackend

from app.sync.api import (
    ApiError,
    CertificateError,
    LeadApi,
    NetworkError,
    Rejected,
    ServerBusy,
    SignInExpired,
)
from app.sync.credentials import (
    SecretStore,
    SecretStoreError,
    open_secret_store,
    service_name,
    token_name,
)

if TYPE_CHECKING:
    import httpx

LAST_USER = "last-user"


class SignInError(Exception):
    """Signing in did not work; the message says why, for the user."""


@dataclass(frozen=True, slots=True)
class Account:
    """The signed-in user on one server."""

    server_url: str
    user_id: str
    username: str
    display_name: str
    role: str
    store_id: str
    token: str = field(repr=False)


def check_server_url(server_url: str) -> str:
    """The normalized URL, or SignInError: https:// anywhere, http:// only to this PC."""
    url = server_url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise SignInError(f"the server address must look like https://leads.example.com: {url!r}")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise SignInError(
            "the server address must start with https:// (the connection is always encrypted "
            "and its certificate checked; plain http is only for a server on this PC)"
        )
    return url


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SignInService:
    """Sign-in for one server. Build with `SignInService.open(url)` (the OS keyring) or give
    the secret store yourself (tests, or the composition root)."""

    def __init__(
        self,
        server_url: str,
        secrets: SecretStore,
        *,
        secure: bool,
        storage_message: str = "",
        ca_bundle: str | None = None,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.server_url = check_server_url(server_url)
        self.secrets = secrets
        self.secure = secure  # False: session-only mode (no secure keyring on this PC)
        self.storage_message = storage_message
        self.ca_bundle = ca_bundle
        self.timeout = timeout
        self._transport = transport

    @classmethod
    def open(
        cls,
        server_url: str,
        *,
        keyring_backend: KeyringBackend | None = None,
        ca_bundle: str | None = None,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> SignInService:
        url = check_server_url(server_url)
        secrets, secure, message = open_secret_store(service_name(url), backend=keyring_backend)
        return cls(
            url,
            secrets,
            secure=secure,
            storage_message=message,
            ca_bundle=ca_bundle,
            timeout=timeout,
            transport=transport,
        )

    def new_api(self, token: str | None = None) -> LeadApi:
        """A client for this server (the caller closes it with `await api.aclose()`)."""
        return LeadApi(
            self.server_url,
            token=token,
            ca_bundle=self.ca_bundle,
            timeout=self.timeout,
            transport=self._transport,
        )

    def last_user(self) -> str | None:
        try:
            return self.secrets.get(LAST_USER)
        except SecretStoreError:
            return None

    def saved_token(self, username: str) -> str | None:
        try:
            return self.secrets.get(token_name(username))
        except SecretStoreError:
            return None

    async def sign_in(self, username: str, password: str) -> Account:
        """Ask the server for a token; keep it (and the user's name) in the secret store."""
        username = username.strip()
        if not username or not password:
            raise SignInError("enter your username and password")
        api = self.new_api()
        try:
            signed = await api.sign_in(username, password)
        except Rejected as exc:
            raise SignInError(
                "wrong username or password" if exc.status == 401 else str(exc)
            ) from exc
        except ServerBusy as exc:
            if exc.status == 429:
                raise SignInError(f"too many failed attempts: {exc}") from exc
            raise SignInError(f"the server is having trouble; try again shortly ({exc})") from exc
        except CertificateError as exc:
            raise SignInError(str(exc)) from exc
        except NetworkError as exc:
            raise SignInError(f"cannot reach the server: {exc}") from exc
        finally:
            await api.aclose()
        account = Account(
            server_url=self.server_url,
            user_id=signed.user_id,
            username=signed.username,
            display_name=signed.display_name,
            role=signed.role,
            store_id=signed.store_id,
            token=signed.token,
        )
        try:
            self.secrets.set(token_name(signed.username), signed.token)
            self.secrets.set(_profile_name(signed.username), _profile(account))
            self.secrets.set(LAST_USER, signed.username)
        except SecretStoreError as exc:
            raise SignInError(f"signed in, but the token cannot be kept: {exc}") from exc
        return account

    async def resume(self, username: str | None = None) -> Account | None:
        """The saved sign-in of `username` (default: the last user) if its token still works.

        None when there is no token or the server says it expired (the token is then forgotten).
        Offline, the saved token is trusted so the agent can work from the local store.
        """
        username = username or self.last_user()
        if not username:
            return None
        token = self.saved_token(username)
        if not token:
            return None
        api = self.new_api(token)
        try:
            me = await api.me()
        except SignInExpired:
            self._forget(username)
            return None
        except (NetworkError, ServerBusy):
            # Offline: work from the local store with the saved sign-in; the engine asks for
            # the password if the server later refuses the token.
            return self._saved_account(username, token)
        except ApiError:
            return None
        finally:
            await api.aclose()
        return Account(
            server_url=self.server_url,
            user_id=str(me["id"]),
            username=str(me["username"]),
            display_name=str(me.get("display_name") or me["username"]),
            role=str(me["role"]),
            store_id=str(me["store_id"]),
            token=token,
        )

    async def sign_out(self, account: Account) -> None:
        """Revoke the token (best effort when offline) and delete it here. The last user's
        name stays remembered; the local store and its outbox stay for the next sign-in."""
        api = self.new_api(account.token)
        try:
            await api.sign_out()
        except ApiError:
            pass  # offline or already expired: the local copy of the token goes anyway
        finally:
            await api.aclose()
        self._forget(account.username)

    def _saved_account(self, username: str, token: str) -> Account | None:
        try:
            raw = self.secrets.get(_profile_name(username))
            data = json.loads(raw) if raw else None
        except (SecretStoreError, ValueError):
            return None
        if not isinstance(data, dict):
            return None
        try:
            return Account(
                server_url=self.server_url,
                user_id=str(data["user_id"]),
                username=username,
                display_name=str(data["display_name"]),
                role=str(data["role"]),
                store_id=str(data["store_id"]),
                token=token,
            )
        except KeyError:
            return None

    def forget_token(self, username: str) -> None:
        """Delete `username`'s saved token here (no "remember me"): the next start asks for the
        password. The local store, its key and the outbox stay."""
        self._forget(username)

    def _forget(self, username: str) -> None:
        with contextlib.suppress(SecretStoreError):
            self.secrets.delete(token_name(username))


def _profile_name(username: str) -> str:
    return f"profile:{username}"


def _profile(account: Account) -> str:
    return json.dumps(
        {
            "user_id": account.user_id,
            "display_name": account.display_name,
            "role": account.role,
            "store_id": account.store_id,
        }
    )
