"""Figures for files: matplotlib's object-oriented API on an Agg canvas, saved atomically.

No ``pyplot``: importing meddx never switches a notebook's backend, a long-running server keeps
no figure registry to leak memory or to share between threads, and machines without a display
draw the same.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from meddx.fileio import write_atomically

DPI = 130


def new_figure(width: float, height: float) -> Figure:
    """A figure of ``width`` x ``height`` inches with constrained layout, on its own canvas."""
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)  # attaches itself to the figure
    return figure


def save_figure(figure: Figure, path: str | Path) -> Path:
    """Write ``figure`` as PNG, white behind, atomically: a crash never leaves half a plot."""
    return write_atomically(path, lambda tmp: figure.savefig(
        tmp, dpi=DPI, format="png", facecolor="white"))
