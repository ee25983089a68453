"""Encryption of identifying fields at rest, and pseudonyms.

Identifying fields (name, date of birth, medical record number) are stored as Fernet tokens
(AES-128-CBC + HMAC-SHA256, ``cryptography``) under a key from configuration, so a copy of the
database alone reveals no identities. Looking a patient up by record number without decrypting
every row uses a keyed *blind index*: HMAC-SHA256 of the normalised number under a key derived
from the same secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from cryptography.fernet import Fernet, InvalidToken

from meddx.errors import ConfigError


def generate_key() -> str:
    """A new random key, as Fernet wants it (URL-safe base64 of 32 bytes)."""
    return Fernet.generate_key().decode("ascii")


class FieldCipher:
    """Encrypts and decrypts identifying text fields with one configured key.

    Args:
        key: URL-safe base64 of 32 random bytes (see :func:`generate_key`).
        source: where the key came from, for error messages.
    """

    def __init__(self, key: str, source: str = "MEDDX_SECRET_KEY"):
        try:
            self._fernet = Fernet(key.encode("ascii") if isinstance(key, str) else key)
            raw = base64.urlsafe_b64decode(key)
        except (ValueError, TypeError) as error:
            raise ConfigError(f"{source}: not a valid key (URL-safe base64 of 32 bytes; make "
                              "one with `meddx serve --generate-key`)") from error
        self._index_key = hmac.new(raw, b"meddx blind index v1", hashlib.sha256).digest()
        self.source = source

    def encrypt(self, value: str | None) -> str | None:
        """Ciphertext (ASCII) of ``value``; None stays None."""
        if value is None:
            return None
        return self._fernet.encrypt(value.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str | None) -> str | None:
        """Plain text of a stored field; a wrong key raises :class:`ConfigError`."""
        if token is None:
            return None
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except InvalidToken as error:
            raise ConfigError(f"{self.source}: cannot decrypt a stored field: the key is not the "
                              "one the data was written with") from error

    def blind_index(self, value: str) -> str:
        """Keyed digest of a normalised identifier, for equality look-ups."""
        normalised = " ".join(value.split()).upper()
        return hmac.new(self._index_key, normalised.encode("utf-8"), hashlib.sha256).hexdigest()


def new_pseudonym() -> str:
    """A random pseudonymous patient id, e.g. ``P-7K3QX9M2``: derived from nothing identifying."""
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "P-" + "".join(secrets.choice(alphabet) for _ in range(8))
