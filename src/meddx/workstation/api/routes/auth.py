"""Sign-in (OAuth2 password flow -> bearer token), sign-out, who am I."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.security import OAuth2PasswordRequestForm

from meddx.safeguards import audit
from meddx.workstation.api.deps import (
    ClientDep,
    CurrentUser,
    RateLimiterDep,
    SessionDep,
    SessionFactoryDep,
    SettingsDep,
    TokenDep,
)
from meddx.workstation.api.schemas import TokenPublic, UserPublic
from meddx.workstation.db.session import transaction
from meddx.workstation.services import users

router = APIRouter(prefix="/api/auth", tags=["auth"])


@router.post("/token", response_model=TokenPublic)
def login(form: Annotated[OAuth2PasswordRequestForm, Depends()], session: SessionDep,
          sessions: SessionFactoryDep, settings: SettingsDep, limiter: RateLimiterDep,
          client: ClientDep) -> TokenPublic:
    """Exchange user name and password for a bearer token (rate-limited per user and address)."""
    username = form.username[:64]
    wait = limiter.retry_after(session, username, client)
    if wait > 0:
        # Its own transaction: the request's rolls back with the 429.
        with transaction(sessions) as own:
            audit.record(own, "login_throttled", username=username, client=client)
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS,
                            f"too many failed sign-ins; try again in {int(wait) + 1} s",
                            headers={"Retry-After": str(int(wait) + 1)})
    user = users.authenticate(session, username, form.password)
    if user is None:
        # The committed audit event is the failure the limiter counts (in every worker).
        with transaction(sessions) as own:
            audit.record(own, "login_failed", username=username, client=client)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong user name or password",
                            headers={"WWW-Authenticate": "Bearer"})
    token, expires = users.issue_token(session, user, settings.token_ttl_min)
    audit.record(session, "login", user, client=client)
    return TokenPublic(access_token=token, expires_at=expires, username=user.username,
                       role=user.role)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(user: CurrentUser, token: TokenDep, session: SessionDep, client: ClientDep) -> None:
    """Revoke the current token."""
    users.revoke_token(session, token)
    audit.record(session, "logout", user, client=client)


@router.get("/me", response_model=UserPublic)
def me(user: CurrentUser) -> UserPublic:
    return UserPublic.model_validate(user)
