"""Images for the browser: slices of a study's image, and heat maps, as 8-bit PNGs.

The viewer does window/level itself: each slice is sent linearly scaled between the image's
minimum and maximum, and :func:`describe` tells the browser those values in native units (HU for
CT), so a window in native units maps back exactly.
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage

from meddx.data.images import read_image


# A few recent images only: a CT volume as float32 can be hundreds of MB.
@lru_cache(maxsize=4)
def _volume(path: str, mtime: float) -> tuple[np.ndarray, tuple[float, ...] | None]:
    image = read_image(path)
    array = image.array.mean(axis=0) if image.array.shape[0] > 1 else image.array[0]
    # Volumes: slices along the last axis (axial in NIfTI's storage order); 2D: one slice.
    array = np.moveaxis(array, -1, 0) if array.ndim == 3 else array[None]
    return np.ascontiguousarray(array.astype(np.float32)), image.spacing


def volume(path: Path) -> tuple[np.ndarray, tuple[float, ...] | None]:
    """``(slices, H, W)`` float array of a study image (one slice for 2D) and its spacing."""
    return _volume(str(path), path.stat().st_mtime)


def describe(path: Path) -> dict[str, Any]:
    array, spacing = volume(path)
    return {"slices": int(array.shape[0]), "height": int(array.shape[1]),
            "width": int(array.shape[2]), "min": float(array.min()), "max": float(array.max()),
            "spacing": list(spacing) if spacing else None}


def to_png(plane: np.ndarray, low: float, high: float) -> bytes:
    scaled = (plane - low) / (high - low) if high > low else np.zeros_like(plane)
    buffer = io.BytesIO()
    PILImage.fromarray((np.clip(scaled, 0, 1) * 255).round().astype(np.uint8)).save(
        buffer, format="PNG")
    return buffer.getvalue()


def slice_png(path: Path, index: int) -> bytes | None:
    """Slice ``index`` as PNG, or None when out of range."""
    array, _ = volume(path)
    if not 0 <= index < array.shape[0]:
        return None
    return to_png(array[index], float(array.min()), float(array.max()))


def heat_map_png(path: Path, index: int = 0) -> bytes | None:
    """A stored relevance map (values in [0, 1]) as an 8-bit PNG (slice ``index`` for 3D)."""
    relevance = np.load(path, allow_pickle=False).astype(np.float32)
    if relevance.ndim == 3:
        relevance = np.moveaxis(relevance, -1, 0)
        if not 0 <= index < relevance.shape[0]:
            return None
        relevance = relevance[index]
    elif index != 0:
        return None
    return to_png(relevance, 0.0, 1.0)


def label_slice_png(path: Path, index: int) -> bytes | None:
    """Slice ``index`` of a label map (segmentation mask) with its integer labels as grey values.

    Sliced like :func:`volume`, so that mask and image slices line up.
    """
    if path.suffix == ".npy":
        labels = np.load(path, allow_pickle=False)
    else:
        labels = read_image(path).array[0]
    labels = np.moveaxis(labels, -1, 0) if labels.ndim == 3 else labels[None]
    if not 0 <= index < labels.shape[0]:
        return None
    buffer = io.BytesIO()
    PILImage.fromarray(np.clip(labels[index], 0, 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()
