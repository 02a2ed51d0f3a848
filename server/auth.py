"""Who is calling, and what they may do.

Users sign in for a bearer token (argon2 password hashes; tokens stored as SHA-256, expiring and
revocable); lead providers use API keys. Every route declares its rule with `authorize(...)`, which
also tags the route so the authorization-matrix test can find a route that has none.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from server.db import ApiKeyRow, LoginFailureRow, TokenRow, UserRow, utcnow
from server.settings import Settings

_hasher = PasswordHasher()
_bearer = HTTPBearer(auto_error=False)
API_KEY_PREFIX = "bdck_"


class Role(StrEnum):
    AGENT = "agent"
    MANAGER = "manager"
    ADMIN = "admin"
    INTEGRATION = "integration"  # a lead provider's API key


@dataclass(frozen=True, slots=True)
class Principal:
    id: str  # user id or API key id
    role: Role
    store_id: str
    name: str  # username or key name, for audit (never the secret)

    @property
    def key(self) -> str:
        """Namespace for idempotency keys and audit."""
        return f"{self.role.value}:{self.id}"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class LoginThrottled(Exception):
    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many failed sign-ins; try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


def login(
    session: Session, settings: Settings, username: str, password: str
) -> tuple[str, UserRow]:
    """A new bearer token for valid credentials. Raises LoginThrottled or PermissionError."""
    now = utcnow()
    window_start = now - settings.login_failure_window
    failures = session.scalars(
        select(LoginFailureRow.at)
        .where(LoginFailureRow.username == username, LoginFailureRow.at > window_start)
        .order_by(LoginFailureRow.at)
    ).all()
    if len(failures) >= settings.login_max_failures:
        retry = failures[0] + settings.login_failure_window - now
        raise LoginThrottled(max(1, int(retry.total_seconds())))
    user = session.scalar(select(UserRow).where(UserRow.username == username))
    if user is None or not user.active or not verify_password(user.password_hash, password):
        session.add(LoginFailureRow(username=username, at=now))
        raise PermissionError("wrong username or password")
    session.execute(delete(LoginFailureRow).where(LoginFailureRow.username == username))
    token = secrets.token_urlsafe(32)
    session.add(
        TokenRow(
            token_hash=_sha256(token),
            user_id=user.id,
            issued_at=now,
            expires_at=now + settings.token_ttl,
        )
    )
    return token, user


def revoke_token(session: Session, token: str) -> None:
    row = session.get(TokenRow, _sha256(token))
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()


def create_api_key(session: Session, name: str, store_id: str) -> str:
    """A new provider API key; only its hash is stored, so the key is shown once."""
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiKeyRow(id=str(uuid.uuid4()), name=name, key_hash=_sha256(key), store_id=store_id)
    )
    return key


def principal_for(session: Session, secret: str, now: datetime) -> Principal | None:
    if secret.startswith(API_KEY_PREFIX):
        key = session.scalar(select(ApiKeyRow).where(ApiKeyRow.key_hash == _sha256(secret)))
        if key is None or key.revoked_at is not None:
            return None
        return Principal(key.id, Role.INTEGRATION, key.store_id, key.name)
    token = session.get(TokenRow, _sha256(secret))
    if token is None or token.revoked_at is not None or token.expires_at <= now:
        return None
    user = session.get(UserRow, token.user_id)
    if user is None or not user.active:
        return None
    return Principal(user.id, Role(user.role), user.store_id, user.username)


def count_active_tokens(session: Session, user_id: str) -> int:
    now = utcnow()
    return (
        session.scalar(
            select(func.count())
            .select_from(TokenRow)
            .where(
                TokenRow.user_id == user_id,
                TokenRow.revoked_at.is_(None),
                TokenRow.expires_at > now,
            )
        )
        or 0
    )


def current_principal(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
) -> Principal:
    unauthorized = HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        "sign-in required: send 'Authorization: Bearer <token>'",
        headers={"WWW-Authenticate": "Bearer"},
    )
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise unauthorized
    with request.app.state.read_sessions() as session:
        principal = principal_for(session, credentials.credentials, utcnow())
    if principal is None:
        unauthorized.detail = "token expired, revoked or unknown: sign in again"
        raise unauthorized
    return principal


def authorize(*roles: Role) -> Callable[..., Principal]:
    """A dependency allowing only `roles`. Routes use it through `rule(...)` below."""
    allowed = frozenset(roles)

    def dependency(principal: Principal = Depends(current_principal)) -> Principal:
        if principal.role not in allowed:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"role '{principal.role.value}' may not do this "
                f"(allowed: {', '.join(sorted(r.value for r in allowed))})",
            )
        return principal

    dependency.allowed_roles = allowed  # type: ignore[attr-defined]
    return dependency


PUBLIC = "public"


def rule(*roles: Role | str) -> dict[str, Any]:
    """Route keyword arguments recording the authorization rule in OpenAPI (`x-roles`).

    Usage: `@router.get("/v1/x", **rule(Role.MANAGER, Role.ADMIN))` together with
    `principal: Principal = Depends(authorize(Role.MANAGER, Role.ADMIN))`; public routes use
    `**rule(PUBLIC)`. The authorization-matrix test fails for any route without it.
    """
    return {"openapi_extra": {"x-roles": sorted(str(getattr(r, "value", r)) for r in roles)}}


STAFF = (Role.AGENT, Role.MANAGER, Role.ADMIN)
MANAGERS = (Role.MANAGER, Role.ADMIN)
