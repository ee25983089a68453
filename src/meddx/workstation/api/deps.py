"""Dependencies of the routes, as ``Annotated`` aliases.

``SessionDep`` is one database transaction per request, committed before the response is sent
(``scope="function"``), rolled back on any error. The role aliases (``Reader``, ``Clinician``,
``Admin``) authenticate the bearer token and check the role: every route takes one of them, so
authorisation never lives inside a handler.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from sqlalchemy.orm import Session, sessionmaker

from meddx.safeguards.encryption import FieldCipher
from meddx.safeguards.ratelimit import LoginRateLimiter
from meddx.workstation.core.config import Settings
from meddx.workstation.core.security import ADMIN, CLINICAL, READ, oauth2_scheme
from meddx.workstation.db.models import User
from meddx.workstation.services import users
from meddx.workstation.services.registry import PredictorCache


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_db(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session, session.begin():
        yield session


def get_session_factory(request: Request) -> sessionmaker[Session]:
    return request.app.state.sessions


def get_cipher(request: Request) -> FieldCipher:
    return request.app.state.cipher


def get_predictors(request: Request) -> PredictorCache:
    return request.app.state.predictors


def get_rate_limiter(request: Request) -> LoginRateLimiter:
    return request.app.state.login_limiter


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_db, scope="function")]
# For records that must outlive a request's rollback (failed sign-ins).
SessionFactoryDep = Annotated[sessionmaker[Session], Depends(get_session_factory)]
CipherDep = Annotated[FieldCipher, Depends(get_cipher)]
PredictorsDep = Annotated[PredictorCache, Depends(get_predictors)]
RateLimiterDep = Annotated[LoginRateLimiter, Depends(get_rate_limiter)]
ClientDep = Annotated[str, Depends(client_address)]
TokenDep = Annotated[str | None, Depends(oauth2_scheme)]


def get_current_user(session: SessionDep, token: TokenDep) -> User:
    """The user of a valid bearer token, else 401."""
    user = users.user_for_token(session, token) if token else None
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "not signed in, or the session expired",
                            headers={"WWW-Authenticate": "Bearer"})
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


def require_role(*roles: str):
    """A dependency admitting only users with one of ``roles`` (403 otherwise)."""

    def dependency(user: CurrentUser) -> User:
        if user.role not in roles:
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                f"role {user.role!r} may not do this (needs {' or '.join(roles)})")
        return user

    dependency.roles = roles  # read by the role x endpoint tests
    return dependency


Reader = Annotated[User, Depends(require_role(*READ))]
Clinician = Annotated[User, Depends(require_role(*CLINICAL))]
Admin = Annotated[User, Depends(require_role(*ADMIN))]
