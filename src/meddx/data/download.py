"""Downloads and archive extraction with checksums and clear failure messages.

:func:`download_file` streams a URL to ``<dest>.part`` while hashing it, checks the checksum and
only then renames the file into place, so an interrupted or corrupt download never looks like a
finished file. Every failure a user can meet (no network, HTTP error, checksum mismatch,
read-only folder) raises :class:`~meddx.errors.DownloadError` whose message says what happened and
where the file can be put by hand. Only the standard library's :mod:`urllib` is used (no extra
dependency).
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import http.client
import logging
import os
import shutil
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import IO, BinaryIO

from meddx import __version__
from meddx.errors import DownloadError, InputFileError

__all__ = [
    "CHUNK_SIZE",
    "download_file",
    "extract_archive",
    "file_digests",
    "sha256_file",
]

log = logging.getLogger(__name__)

CHUNK_SIZE = 1 << 20
"""Bytes read at a time when hashing or downloading (1 MiB)."""

_USER_AGENT = f"meddx/{__version__} (+python-urllib)"


def file_digests(
    path: str | os.PathLike[str], algorithms: Iterable[str] = ("sha256",)
) -> dict[str, str]:
    """Hash a file with several algorithms in one pass.

    Args:
        path: File to hash.
        algorithms: :mod:`hashlib` algorithm names, e.g. ``("sha256", "md5")``.

    Returns:
        ``{algorithm: hex digest}``.

    Raises:
        InputFileError: The file does not exist or cannot be read.
    """
    path = Path(path)
    hashers = {name: hashlib.new(name) for name in algorithms}
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(CHUNK_SIZE):
                for hasher in hashers.values():
                    hasher.update(chunk)
    except FileNotFoundError:
        raise InputFileError(path, "file not found") from None
    except OSError as exc:
        raise InputFileError(path, f"cannot read file ({exc.strerror or exc})") from exc
    return {name: hasher.hexdigest() for name, hasher in hashers.items()}


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Return the SHA-256 hex digest of a file (see :func:`file_digests`)."""
    return file_digests(path, ("sha256",))["sha256"]


def _manual_hint(url: str, dest: Path) -> str:
    return (
        f"To install it by hand, download {url} on a machine with access and put it at {dest}"
        " (meddx then verifies its checksum)."
    )


def _unreachable(url: str, dest: Path, reason: object) -> DownloadError:
    host = urllib.parse.urlsplit(url).netloc or url
    return DownloadError(
        f"could not download {url}: could not reach {host} ({reason}). The machine may be offline,"
        f" or the server may be down or blocked by a firewall or proxy. {_manual_hint(url, dest)}"
    )


def _cannot_write(dest: Path, exc: OSError) -> DownloadError:
    return DownloadError(
        f"cannot write {dest} ({exc.strerror or exc}); choose a writable data directory"
        " with --data-dir or the MEDDX_DATA_DIR environment variable"
    )


@contextlib.contextmanager
def _progress_bar(enabled: bool, description: str, total: int | None) -> Iterator:
    """Yield ``advance(n_bytes)``; draws a transient rich bar when ``enabled``."""
    if not enabled:
        yield lambda n: None
        return
    # Imported lazily: rich is only needed when a bar is actually drawn.
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


def download_file(
    url: str,
    dest: str | os.PathLike[str],
    sha256: str | None = None,
    md5: str | None = None,
    progress: bool = True,
    timeout: float = 30.0,
) -> Path:
    """Download ``url`` to ``dest`` atomically, verifying its checksum.

    The body is streamed to ``dest.part`` and hashed on the fly; after the checksum(s) match the
    part file is renamed to ``dest`` with :func:`os.replace`, so ``dest`` either does not exist or
    is complete and verified. An existing ``dest`` is replaced only on success.

    Args:
        url: ``http(s)://`` (or ``file://``) URL.
        dest: Destination file; parent folders are created.
        sha256: Expected SHA-256 hex digest, or None to skip that check.
        md5: Expected MD5 hex digest, or None to skip that check.
        progress: Show a transient progress bar on stderr.
        timeout: Seconds to wait for the connection and for each read.

    Returns:
        ``dest`` as a :class:`~pathlib.Path`.

    Raises:
        DownloadError: The host could not be reached, the server answered with an HTTP error, the
            transfer was cut short, the checksum did not match (the partial file is removed), or
            ``dest`` could not be written.
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        out = part.open("wb")
    except OSError as exc:
        raise _cannot_write(dest, exc) from exc

    hashers = {}
    if sha256:
        hashers["sha256"] = hashlib.sha256()
    if md5:
        hashers["md5"] = hashlib.md5()
    try:
        with out:
            received, expected_size = _stream(url, dest, out, hashers, progress, timeout)
        if expected_size is not None and received != expected_size:
            raise DownloadError(
                f"download of {url} was interrupted: received {received} of {expected_size} bytes."
                f" Try again. {_manual_hint(url, dest)}"
            )
        for name, expected in (("sha256", sha256), ("md5", md5)):
            if expected:
                actual = hashers[name].hexdigest()
                if actual.lower() != expected.lower():
                    raise DownloadError(
                        f"checksum mismatch for {url}: expected {name} {expected.lower()}, got"
                        f" {actual}. The downloaded file was removed; the server may have sent an"
                        f" error page or a changed file. {_manual_hint(url, dest)}"
                    )
        try:
            os.replace(part, dest)
        except OSError as exc:
            raise _cannot_write(dest, exc) from exc
    except BaseException:
        # Never leave a partial file behind, whatever went wrong (including Ctrl-C).
        part.unlink(missing_ok=True)
        raise
    log.info("downloaded %s -> %s (%d bytes)", url, dest, received)
    return dest


def _stream(
    url: str,
    dest: Path,
    out: BinaryIO,
    hashers: dict,
    progress: bool,
    timeout: float,
) -> tuple[int, int | None]:
    """Copy the body of ``url`` into ``out``; return (bytes received, Content-Length or None)."""
    try:
        request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (scheme is ours)
    except urllib.error.HTTPError as exc:
        raise DownloadError(
            f"could not download {url}: the server answered HTTP {exc.code} {exc.reason}."
            f" {_manual_hint(url, dest)}"
        ) from exc
    except urllib.error.URLError as exc:
        raise _unreachable(url, dest, exc.reason) from exc
    except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:
        raise _unreachable(url, dest, str(exc) or type(exc).__name__) from exc
    except ValueError as exc:  # malformed URL, unknown scheme
        raise DownloadError(f"invalid download URL {url!r}: {exc}") from exc

    with response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        received = 0
        with _progress_bar(progress, dest.name, total) as advance:
            while True:
                try:
                    chunk = response.read(CHUNK_SIZE)
                except (OSError, http.client.HTTPException) as exc:
                    raise _unreachable(
                        url, dest, f"connection lost: {str(exc) or type(exc).__name__}"
                    ) from exc
                if not chunk:
                    break
                try:
                    out.write(chunk)
                except OSError as exc:
                    raise _cannot_write(dest, exc) from exc
                for hasher in hashers.values():
                    hasher.update(chunk)
                received += len(chunk)
                advance(len(chunk))
    return received, total


def _member_target(
    archive: Path, name: str, root: str | None, exclude: Sequence[str]
) -> PurePosixPath | None:
    """Map an archive member name to a safe relative path, or None to skip it.

    Raises:
        InputFileError: The member is absolute or climbs out with ``..`` (path traversal).
    """
    # Zip files written on Windows may use backslashes.
    normalised = name.replace("\\", "/")
    posix = PurePosixPath(normalised)
    if posix.is_absolute() or ".." in posix.parts or (posix.parts and ":" in posix.parts[0]):
        raise InputFileError(
            archive, f"unsafe archive member {name!r}: it would be written outside the destination"
        )
    parts = [p for p in posix.parts if p not in ("", ".")]
    if root is not None:
        root_parts = [p for p in PurePosixPath(root).parts if p not in ("", ".")]
        if parts[: len(root_parts)] != root_parts:
            return None
        parts = parts[len(root_parts) :]
    if not parts:
        return None
    if any(fnmatch.fnmatch(part, pattern) for part in parts for pattern in exclude):
        return None
    return PurePosixPath(*parts)


def extract_archive(
    path: str | os.PathLike[str],
    dest_folder: str | os.PathLike[str],
    *,
    root: str | None = None,
    exclude: Sequence[str] = (),
) -> list[Path]:
    """Extract a tar (optionally compressed) or zip archive safely.

    Only regular files and folders are written; links and device files are skipped, and members
    with absolute paths or ``..`` components are refused, so an archive can never write outside
    ``dest_folder``.

    Args:
        path: The archive (``.tar``, ``.tar.gz``, ``.tgz``, ``.tar.bz2``, ``.tar.xz`` or ``.zip``;
            the type is detected from the content).
        dest_folder: Folder to extract into (created if needed).
        root: If given, only members under this top-level folder of the archive are extracted,
            with that prefix removed (e.g. ``"Task04_Hippocampus"``).
        exclude: :mod:`fnmatch` patterns; members with any path component matching one are
            skipped (e.g. ``"._*"`` for macOS resource forks).

    Returns:
        The extracted files, in archive order.

    Raises:
        InputFileError: The file is missing, not a tar/zip archive, corrupt, or unsafe.
    """
    path = Path(path)
    dest = Path(dest_folder)
    if not path.is_file():
        raise InputFileError(path, "file not found")
    try:
        if zipfile.is_zipfile(path):
            return _extract_zip(path, dest, root, exclude)
        if tarfile.is_tarfile(path):
            return _extract_tar(path, dest, root, exclude)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
        raise InputFileError(path, f"corrupt archive ({exc})") from exc
    raise InputFileError(path, "not a tar or zip archive")


def _write_member(source: IO[bytes], target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as out:
        shutil.copyfileobj(source, out, CHUNK_SIZE)


def _extract_tar(path: Path, dest: Path, root: str | None, exclude: Sequence[str]) -> list[Path]:
    written: list[Path] = []
    # Streaming mode ("r|*") reads members sequentially: fine for large compressed archives.
    with tarfile.open(path, "r|*") as tar:
        for member in tar:
            rel = _member_target(path, member.name, root, exclude)
            if rel is None:
                continue
            target = dest.joinpath(*rel.parts)
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
            elif member.isfile():
                source = tar.extractfile(member)
                if source is None:  # pragma: no cover - isfile() members always have data
                    continue
                with source:
                    _write_member(source, target)
                written.append(target)
            else:
                log.warning(
                    "%s: skipping %s (links and special files are not extracted)", path, member.name
                )
    return written


def _extract_zip(path: Path, dest: Path, root: str | None, exclude: Sequence[str]) -> list[Path]:
    written: list[Path] = []
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            rel = _member_target(path, info.filename, root, exclude)
            if rel is None:
                continue
            target = dest.joinpath(*rel.parts)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            with archive.open(info) as source:
                _write_member(source, target)
            written.append(target)
    return written
