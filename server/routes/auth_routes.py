"""Sign-in and sign-out."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from server.auth import (
    PUBLIC,
    STAFF,
    LoginThrottled,
    Principal,
    authorize,
    login,
    revoke_token,
    rule,
)
from server.db import StoreRow, TokenRow, UserRow, transaction
from server.rules import clock_of
from server.services import presence

router = APIRouter(tags=["auth"])


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=80)
    password: str = Field(min_length=1, max_length=200)


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    user_id: str
    username: str
    display_name: str
    role: str
    store_id: str


class Me(BaseModel):
    id: str
    username: str
    display_name: str
    role: str
    store_id: str
    store_name: str
    store_time_zone: str


@router.post("/v1/auth/token", **rule(PUBLIC))
def issue_token(body: TokenRequest, request: Request) -> TokenResponse:
    settings = request.app.state.settings
    refused: PermissionError | None = None
    with transaction(request.app.state.sessions) as session:
        try:
            token, user = login(session, settings, body.username, body.password)
        except LoginThrottled as exc:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                str(exc),
                headers={"Retry-After": str(exc.retry_after_s)},
            ) from None
        except PermissionError as exc:
            refused = exc  # answered after the commit, so the failure is counted
    if refused is not None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(refused))
    return TokenResponse(
        access_token=token,
        expires_in=int(settings.token_ttl.total_seconds()),
        user_id=user.id,
        username=user.username,
        display_name=user.display_name or user.username,
        role=user.role,
        store_id=user.store_id,
    )


@router.post("/v1/auth/revoke", status_code=204, **rule(*STAFF))
def revoke(
    request: Request,
    principal: Principal = Depends(authorize(*STAFF)),
    credentials: HTTPAuthorizationCredentials | None = Depends(HTTPBearer(auto_error=False)),  # noqa: B008
) -> None:
    """Sign out: the token presented stops working at once. Signed in nowhere else, the user
    also leaves the floor (offline: no more leads by round robin)."""
    assert credentials is not None  # authorize() already required it
    now = clock_of(request.app)
    with transaction(request.app.state.sessions) as session:
        revoke_token(session, credentials.credentials)
        session.flush()
        elsewhere = session.scalar(
            select(TokenRow.token_hash)
            .where(
                TokenRow.user_id == principal.id,
                TokenRow.revoked_at.is_(None),
                TokenRow.expires_at > now,
            )
            .limit(1)
        )
        if elsewhere is None:
            presence.sign_out(session, principal.id, now=now)


@router.get("/v1/me", **rule(*STAFF))
def me(request: Request, principal: Principal = Depends(authorize(*STAFF))) -> Me:
    with request.app.state.sessions() as session:
        user = session.get(UserRow, principal.id)
        store = session.get(StoreRow, principal.store_id)
        assert user is not None and store is not None
        return Me(
            id=user.id,
            username=user.username,
            display_name=user.display_name or user.username,
            role=user.role,
            store_id=store.id,
            store_name=store.name,
            store_time_zone=store.time_zone,
        )
