"""Checks on free-text fields (comments, descriptions, patient names).

Text is always stored through bound SQL parameters and shown with ``textContent`` in the UI, so
neither SQL nor markup in it can run; markup is still refused with a clear 422, because in a
clinical note it is never intended and would travel into exports and other systems.
"""

from __future__ import annotations

import re

from meddx.workstation.services.storage import UploadError

_MARKUP = re.compile(r"<\s*/?\s*[A-Za-z!?]|javascript\s*:|on[a-z]+\s*=", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class TextFieldError(UploadError):
    status_code = 422


def clean_text(value: str | None, field: str, max_length: int, multiline: bool = False) -> str:
    """The stripped text, or :class:`TextFieldError` naming the field and the problem."""
    text = (value or "").strip()
    if len(text) > max_length:
        raise TextFieldError(f"{field}: longer than {max_length} characters")
    if _CONTROL.search(text) or (not multiline and ("\n" in text or "\r" in text)):
        raise TextFieldError(f"{field}: contains control characters")
    if _MARKUP.search(text):
        raise TextFieldError(f"{field}: HTML or script markup is not allowed")
    return text
