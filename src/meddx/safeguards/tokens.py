"""Opaque bearer tokens: random secrets handed to the client, stored only as SHA-256 digests.

A token in the database is useless to whoever reads the database (only its digest is there); it
can be revoked (log-out) and expires; and because the state lives in the database, tokens survive
a server restart.
"""

from __future__ import annotations

import hashlib
import secrets

TOKEN_BYTES = 32


def new_token() -> tuple[str, str]:
    """A fresh token and the digest to store: ``(token, digest)``."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    return token, token_digest(token)


def token_digest(token: str) -> str:
    """SHA-256 hex digest of a token (what the database keeps)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def generate_password(length: int = 16) -> str:
    """A random password for demo accounts (letters and digits, no look-alikes)."""
    alphabet = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "".join(secrets.choice(alphabet) for _ in range(length))
