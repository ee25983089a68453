"""Password hashing (Argon2id) and the password policy.

Argon2id (RFC 9106) is memory-hard, so a stolen user table is expensive to brute-force; the hash
string carries its own salt and cost parameters, so costs can rise later (``needs_rehash``).
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from meddx.errors import ConfigError

MIN_LENGTH = 10
MAX_LENGTH = 256

_hasher = PasswordHasher()
# Verifying against this hash when a user does not exist makes the answer take the same time,
# so response times do not reveal which user names exist.
_DUMMY_HASH = _hasher.hash("meddx-timing-equaliser")


def check_policy(password: str, username: str = "") -> None:
    """Raise :class:`ConfigError` naming the problem when a new password is too weak."""
    if len(password) < MIN_LENGTH:
        raise ConfigError(f"password: must have at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise ConfigError(f"password: must have at most {MAX_LENGTH} characters")
    if username and username.lower() in password.lower():
        raise ConfigError("password: must not contain the user name")
    if len(set(password)) < 4:
        raise ConfigError("password: uses too few distinct characters")


def hash_password(password: str) -> str:
    """Argon2id hash string (salt and parameters included)."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; a missing hash still costs one verification."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with weaker parameters than today's."""
    return _hasher.check_needs_rehash(password_hash)
