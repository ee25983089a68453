"""Atomic writes: a folder or file appears whole or not at all."""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def staged_folder(out: Path) -> Iterator[Path]:
    """Yield a hidden sibling folder to fill; on success it replaces ``out`` in one rename.

    On any error the staging folder is removed and ``out`` is left as it was, so a crash never
    leaves a half-written bundle or dataset where a good one (or nothing) was.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
        previous = out.parent / f".{out.name}.previous-{os.getpid()}"
        if out.exists():
            os.replace(out, previous)
        os.replace(staging, out)
        shutil.rmtree(previous, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_atomically(path: Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` on a hidden sibling of ``path``, then rename it into place.

    Readers never see half a file, and a failed write leaves what was there before. The
    temporary ends with ``path``'s own name, so writers that take the format from the suffix
    (``.nii.gz``, ``.png``) still do, and carries the process and thread, so concurrent writers
    never collide. It is created like any new file (the umask's permissions, not 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{os.getpid()}-{threading.get_ident()}-{path.name}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text(text: str, path: Path) -> Path:
    """Write UTF-8 text atomically (:func:`write_atomically`)."""
    return write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_bytes(data: bytes, path: Path) -> Path:
    """Write bytes atomically (:func:`write_atomically`)."""
    return write_atomically(path, lambda tmp: tmp.write_bytes(data))


def write_json(data: Any, path: Path, default: Callable[[Any], Any] | None = None) -> Path:
    """Write JSON atomically; NaN is refused unless ``default`` is given."""
    return write_text(json.dumps(data, indent=2, allow_nan=default is not None, default=default),
                      path)
