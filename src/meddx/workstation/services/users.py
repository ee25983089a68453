"""Users, passwords and bearer tokens."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from meddx.errors import ConfigError
from meddx.safeguards.passwords import check_policy, hash_password, needs_rehash, verify_password
from meddx.safeguards.tokens import new_token as _new_token
from meddx.safeguards.tokens import token_digest
from meddx.workstation.db.models import ROLES, AuthToken, User

USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$")


class UserExistsError(ConfigError):
    """A user with that name already exists."""


def check_username(username: str) -> None:
    if not USERNAME.match(username):
        raise ConfigError(f"username {username!r}: use 3-64 letters, digits, '.', '_' or '-', "
                          "starting with a letter or digit")


def create_user(session: Session, username: str, password: str, role: str,
                full_name: str = "") -> User:
    """Add a user (password checked against the policy and hashed with Argon2id).

    Raises:
        ConfigError: bad user name, role or password; :class:`UserExistsError` for a taken name.
    """
    check_username(username)
    if role not in ROLES:
        raise ConfigError(f"role {role!r}: must be one of {', '.join(ROLES)}")
    check_policy(password, username)
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise UserExistsError(f"username {username!r}: already exists")
    user = User(username=username, full_name=full_name, role=role,
                password_hash=hash_password(password), active=True)
    session.add(user)
    session.flush()
    return user


def authenticate(session: Session, username: str, password: str) -> User | None:
    """The active user with these credentials, or None (same work either way)."""
    user = session.scalar(select(User).where(User.username == username))
    if not verify_password(user.password_hash if user else None, password):
        return None
    if not user.active:
        return None
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = datetime.now(UTC)
    return user


def issue_token(session: Session, user: User, ttl_min: int) -> tuple[str, datetime]:
    """A new bearer token for ``user``; only its digest is stored."""
    token, digest = _new_token()
    expires = datetime.now(UTC) + timedelta(minutes=ttl_min)
    session.add(AuthToken(user_id=user.id, token_hash=digest, expires_at=expires))
    return token, expires


def as_utc(moment: datetime) -> datetime:
    # SQLite returns naive datetimes even for timezone-aware columns; they were stored as UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# One query for token and user, built once: every authenticated request runs it, and building
# the statement cost about as much CPU as running it.
_TOKEN_USER = (select(User, AuthToken.expires_at, AuthToken.revoked_at)
               .join(AuthToken, AuthToken.user_id == User.id)
               .where(AuthToken.token_hash == bindparam("digest")))


def user_for_token(session: Session, token: str) -> User | None:
    """The active user a valid (unexpired, unrevoked) token belongs to, else None."""
    row = session.execute(_TOKEN_USER, {"digest": token_digest(token)}).first()
    if row is None:
        return None
    user, expires_at, revoked_at = row
    if revoked_at is not None or as_utc(expires_at) <= datetime.now(UTC) or not user.active:
        return None
    return user


def revoke_token(session: Session, token: str) -> None:
    row = session.scalar(select(AuthToken).where(AuthToken.token_hash == token_digest(token)))
    if row is not None and row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.username)))


def get_user(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == username))
