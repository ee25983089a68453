"""CT window presets and the DICOM linear VOI window.

A window maps Hounsfield units to display grey levels: values below ``center - width/2`` are
black, above ``center + width/2`` white, linear in between (PS3.3 C.11.2.1.2.1). The presets are
the usual radiology reading windows (level / width in HU).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from meddx.errors import ConfigError

__all__ = ["WINDOW_PRESETS", "Window", "apply_window", "get_window", "window_from_dataset"]


@dataclass(frozen=True)
class Window:
    """A VOI window: ``center`` (level) and ``width``, in the image's units (HU for CT)."""

    center: float
    width: float

    def __post_init__(self):
        if not self.width >= 1:
            raise ConfigError(f"window width must be >= 1, got {self.width}")

    @property
    def low(self) -> float:
        return self.center - self.width / 2

    @property
    def high(self) -> float:
        return self.center + self.width / 2


WINDOW_PRESETS: dict[str, Window] = {
    "brain": Window(40, 80),
    "subdural": Window(75, 215),
    "stroke": Window(32, 8),
    "temporal_bone": Window(600, 2800),
    "lung": Window(-600, 1500),
    "mediastinum": Window(50, 350),
    "soft_tissue": Window(50, 400),
    "abdomen": Window(40, 400),
    "liver": Window(60, 160),
    "bone": Window(400, 1800),
    "angio": Window(300, 600),
}


def get_window(name_or_window: str | Window | tuple[float, float]) -> Window:
    """A preset by name (``"lung"``), a :class:`Window`, or ``(center, width)``.

    Raises:
        ConfigError: unknown preset name (the message lists the known ones).
    """
    if isinstance(name_or_window, Window):
        return name_or_window
    if isinstance(name_or_window, tuple):
        return Window(float(name_or_window[0]), float(name_or_window[1]))
    key = str(name_or_window).strip().lower().replace(" ", "_").replace("-", "_")
    if key not in WINDOW_PRESETS:
        raise ConfigError(f"window {name_or_window!r}: unknown preset; known: "
                          f"{', '.join(sorted(WINDOW_PRESETS))}")
    return WINDOW_PRESETS[key]


def apply_window(values: np.ndarray, window: str | Window | tuple[float, float]) -> np.ndarray:
    """Map ``values`` through the DICOM linear window to ``float32`` in ``[0, 1]``."""
    win = get_window(window)
    # PS3.3 C.11.2.1.2.1: the linear function with the half-unit offsets of the standard.
    center, width = win.center - 0.5, win.width - 1.0
    out = (np.asarray(values, dtype=np.float32) - center) / max(width, 1e-6) + 0.5
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def window_from_dataset(ds: Any) -> Window | None:
    """The first WindowCenter / WindowWidth pair a DICOM dataset recommends, or None."""
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if center is None or width is None:
        return None
    def first(value):  # multi-valued: the first pair is the default
        return value[0] if hasattr(value, "__len__") and not isinstance(value, str) else value

    try:
        return Window(float(first(center)), float(first(width)))
    except (TypeError, ValueError, ConfigError):
        return None
