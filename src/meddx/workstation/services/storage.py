"""Stored study files: safe names, size limit, content checks, checksums.

Uploads are written under ``<storage>/studies/<random id>/`` with the client's file name only
after it passed :func:`check_filename` (no folders, no ``..``, no control characters), counted
while streaming so an oversized upload stops at the limit, and checked by content (magic bytes)
against the type its suffix claims.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from meddx.data.images import detect_format
from meddx.errors import MeddxError
from meddx.workstation.services.registry import suffix_of

CHUNK = 1 << 16
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_IMAGE_FORMATS = {".png": "pillow", ".jpg": "pillow", ".jpeg": "pillow", ".dcm": "dicom",
                  ".dicom": "dicom", ".nii": "nifti", ".nii.gz": "nifti"}
_TEXT_SUFFIXES = {".csv", ".tsv", ".txt", ".hea"}
MEDIA_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
               ".dcm": "application/dicom", ".dicom": "application/dicom",
               ".nii": "application/octet-stream", ".nii.gz": "application/gzip",
               ".csv": "text/csv", ".tsv": "text/tab-separated-values", ".txt": "text/plain",
               ".hea": "text/plain"}


class UploadError(MeddxError):
    """An upload the server refuses; ``status_code`` is the HTTP answer."""

    status_code = 400


class UploadTooLargeError(UploadError):
    status_code = 413


class UnsupportedFileTypeError(UploadError):
    status_code = 415


class CorruptFileError(UploadError):
    status_code = 422


@dataclass
class StoredFile:
    original_name: str
    path: Path
    size_bytes: int
    sha256: str
    media_type: str


def check_filename(name: str | None) -> str:
    """The name if it is a plain file name, else :class:`UploadError` saying why."""
    if not name or not name.strip():
        raise UploadError("file name: empty")
    if len(name) > 200:
        raise UploadError(f"file name {name[:40]!r}...: longer than 200 characters")
    if "/" in name or "\\" in name or name.strip() in (".", "..") or ".." in name:
        raise UploadError(f"file name {name!r}: must be a plain file name (no folders, no '..')")
    if _CONTROL.search(name):
        raise UploadError(f"file name {name!r}: contains control characters")
    if name.startswith("."):
        raise UploadError(f"file name {name!r}: must not start with '.'")
    return name


def new_study_dir(storage: Path) -> Path:
    folder = storage / "studies" / uuid.uuid4().hex
    folder.mkdir(parents=True)
    return folder


def save_upload(source: BinaryIO, name: str, folder: Path, limit_bytes: int) -> StoredFile:
    """Stream an upload into ``folder`` and check its content against its suffix.

    Raises:
        UploadTooLargeError: more than ``limit_bytes``.
        CorruptFileError: empty, or the content is not what the suffix says.
    """
    suffix = suffix_of(name)
    path = folder / check_filename(name)
    digest = hashlib.sha256()
    size = 0
    with path.open("xb") as out:
        for block in iter(lambda: source.read(CHUNK), b""):
            size += len(block)
            if size > limit_bytes:
                raise UploadTooLargeError(
                    f"{name}: larger than the upload limit of {limit_bytes / 2**20:.1f} MB "
                    "(MEDDX_MAX_UPLOAD_MB)")
            digest.update(block)
            out.write(block)
    if size == 0:
        raise CorruptFileError(f"{name}: the file is empty")
    _check_content(path, name, suffix)
    return StoredFile(name, path, size, digest.hexdigest(),
                      MEDIA_TYPES.get(suffix, "application/octet-stream"))


def _check_content(path: Path, name: str, suffix: str) -> None:
    expected = _IMAGE_FORMATS.get(suffix)
    if expected is not None:
        try:
            found = detect_format(path)
        except MeddxError as error:
            raise CorruptFileError(f"{name}: cannot read the file ({error})") from error
        if found != expected:
            raise CorruptFileError(f"{name}: the content is not a {suffix} file "
                                   f"({'unrecognised' if found is None else found} data)")
    elif suffix in _TEXT_SUFFIXES:
        data = path.read_bytes()
        if b"\x00" in data:
            raise CorruptFileError(f"{name}: binary data in a {suffix} text file")
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise CorruptFileError(f"{name}: not UTF-8 text ({error.reason} at byte "
                                   f"{error.start})") from error


def remove_dir(folder: Path | None) -> None:
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
