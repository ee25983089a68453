"""Dependencies of the routes, as ``Annotated`` aliases.

``SessionDep`` is one database transaction per request, committed before the response is sent
(``scope="function"``), rolled back on any error. Handlers that write commit it themselves at
their end, in the thread that did the writing: on SQLite the write lock is then held for the
writes only, not also while the request waits for another thread-pool hop to commit.

Dependencies that only read ``app.state`` are ``async``: FastAPI runs sync dependencies in the
thread pool, one hop each, and under load every hop queues behind the other requests.

The role aliases (``Reader``, ``Clinician``, ``Admin``) authenticate the bearer token and check
the role: every route takes one of them, so authorisation never lives inside a handler.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session, sessionmaker

from meddx.safeguards.encryption import FieldCipher
from meddx.workstation.core.config import Settings
from meddx.workstation.core.security import ADMIN, CLINICAL, READ, oauth2_scheme
from meddx.workstation.db.models import User
from meddx.workstation.services import users
from meddx.workstation.services.login_limit import DatabaseLoginRateLimiter
from meddx.workstation.services.registry import PredictorCache


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def _commit(session: Session) -> None:
    try:
        session.commit()
    finally:
        session.close()


def _discard(session: Session) -> None:
    try:
        session.rollback()
    finally:
        session.close()


async def get_db(request: Request) -> AsyncIterator[Session]:
    # Opening a session does no I/O (it connects on first use), so it needs no thread; ending
    # one does, in the thread pool, and only if a handler left a transaction open.
    session = request.app.state.sessions()
    try:
        yield session
    except BaseException:
        await run_in_threadpool(_discard, session)
        raise
    if session.in_transaction():
        await run_in_threadpool(_commit, session)
    else:
        session.close()


async def get_session_factory(request: Request) -> sessionmaker[Session]:
    return request.app.state.sessions


async def get_cipher(request: Request) -> FieldCipher:
    return request.app.state.cipher


async def get_predictors(request: Request) -> PredictorCache:
    return request.app.state.predictors


async def get_rate_limiter(request: Request) -> DatabaseLoginRateLimiter:
    return request.app.state.login_limiter


async def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_db, scope="function")]
# For records that must outlive a request's rollback (failed sign-ins).
SessionFactoryDep = Annotated[sessionmaker[Session], Depends(get_session_factory)]
CipherDep = Annotated[FieldCipher, Depends(get_cipher)]
PredictorsDep = Annotated[PredictorCache, Depends(get_predictors)]
RateLimiterDep = Annotated[DatabaseLoginRateLimiter, Depends(get_rate_limiter)]
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

    async def dependency(user: CurrentUser) -> User:
        if user.role not in roles:
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                f"role {user.role!r} may not do this (needs {' or '.join(roles)})")
        return user

    dependency.roles = roles  # read by the role x endpoint tests
    return dependency


Reader = Annotated[User, Depends(require_role(*READ))]
Clinician = Annotated[User, Depends(require_role(*CLINICAL))]
Admin = Annotated[User, Depends(require_role(*ADMIN))]
