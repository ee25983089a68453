"""Errors of the PACS layer (user-facing: the CLI prints them and exits 2)."""

from __future__ import annotations

from meddx.errors import MeddxError


class PacsError(MeddxError):
    """A PACS is unreachable, refused an association, or answered a request with an error.

    Attributes:
        retryable: True when trying again later may succeed (connection refused, timeouts,
            server errors); False for answers that will not change (bad request, refused
            SOP class, unknown destination).
    """

    def __init__(self, message: str, retryable: bool = True):
        super().__init__(message)
        self.retryable = retryable
