"""ECG signals for the browser: a window of one lead of a study's record, filtered for display,
or the whole of a fixed-length series.

The strip viewer asks for a few seconds at a time (a MIT-BIH record is 30 minutes at 360 Hz, too
much to send at once) and draws the beat marks of the prediction over it. The lead is shown the
way the beat classifier saw it: band-pass filtered (baseline wander and mains hum removed), in the
record's own units and sampling rate, so the beat times of the prediction line up exactly.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from meddx.data.ecg import choose_lead, filter_ecg, read_series, read_signal

MAX_WINDOW_S = 60.0


@lru_cache(maxsize=4)
def _lead(path: str, mtime: float, lead: str) -> tuple[np.ndarray, float, str, list[str], str]:
    record = read_signal(path)
    index = choose_lead(record, lead)  # no or unknown lead: the first
    filtered = filter_ecg(record.signal[:, index], record.fs).astype(np.float32)
    return filtered, float(record.fs), record.leads[index], list(record.leads), record.name


def signal_window(path: Path, start_s: float, seconds: float, lead: str = "") -> dict[str, Any]:
    """``seconds`` of ``lead`` (default: the first) from ``start_s``, clipped to the record.

    Raises:
        InputFileError: the record cannot be read.
    """
    values, fs, name, leads, record = _lead(str(path), path.stat().st_mtime, lead)
    duration = len(values) / fs
    seconds = float(min(max(seconds, 0.5), MAX_WINDOW_S, duration))
    start = float(min(max(start_s, 0.0), max(duration - seconds, 0.0)))
    first = int(round(start * fs))
    window = values[first:first + int(round(seconds * fs))]
    return {"record": record, "lead": name, "leads": leads, "sampling_rate_hz": fs,
            "start_s": first / fs, "seconds": len(window) / fs, "duration_s": duration,
            "units": "mV", "samples": np.round(window, 4).tolist()}


def series_values(path: Path, length: int) -> dict[str, Any]:
    """The series of a series study, read as its model read it (``length`` values, unfiltered:
    the saliency of the prediction lines up with it sample by sample).

    Raises:
        InputFileError: the file is not one series of ``length`` values.
    """
    series = read_series(path, length, max_series=1)
    return {"kind": "series", "file": path.name, "length": length, "layout": series.layout,
            "samples": np.round(series.values[0].astype(np.float64), 6).tolist()}
