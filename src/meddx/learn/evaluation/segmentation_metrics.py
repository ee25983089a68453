"""Segmentation metrics: per-label Dice, HD95, normalised surface Dice and volume error.

Distances use MONAI's implementations (:func:`monai.metrics.compute_hausdorff_distance`,
:func:`monai.metrics.compute_surface_dice`) with the voxel spacing, so HD95 and the surface-Dice
tolerance are in millimetres. Conventions for empty structures, which MONAI leaves as NaN/inf:

- both prediction and truth empty: Dice 1, HD95 0, NSD 1 (nothing to find, nothing found);
- exactly one empty: Dice 0, NSD 0, HD95 undefined (``None``; counted in ``hd95_undefined``
  and left out of the HD95 mean rather than replaced by an arbitrary penalty).

Summaries are means over cases with 95% percentile-bootstrap intervals over cases, keyed by label
name (the label value where no name is known) plus ``"mean"`` (mean of the label means).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from monai.metrics import compute_dice, compute_hausdorff_distance, compute_surface_dice

from meddx.learn.evaluation.metrics import json_safe

__all__ = ["NSD_TOLERANCE_MM", "case_metrics", "summarize_cases"]

NSD_TOLERANCE_MM = 1.0
"""Default tolerance of the normalised surface Dice (mm): one voxel of 1 mm MRI."""

PER_LABEL_KEYS = ("dice", "hd95", "nsd", "volume_true_ml", "volume_pred_ml", "volume_error_ml",
                  "volume_error_pct")
SUMMARY_KEYS = ("dice", "hd95", "nsd", "volume_error_ml", "abs_volume_error_pct")


def _one_hot(mask: np.ndarray, label: int) -> torch.Tensor:
    """(1, 2, *spatial) background/label one-hot, the layout MONAI's metrics take."""
    fg = torch.from_numpy(np.asarray(mask) == label)
    return torch.stack([~fg, fg])[None].float()


def case_metrics(pred: np.ndarray, truth: np.ndarray, spacing: Sequence[float],
                 class_names: Sequence[str],
                 nsd_tolerance_mm: float = NSD_TOLERANCE_MM) -> dict[str, dict[str, Any]]:
    """Metrics of one case for every foreground label.

    Args:
        pred: predicted label map ``(*spatial)``.
        truth: reference label map, same shape.
        spacing: voxel size (mm) per spatial axis.
        class_names: label names by value; value 0 (background) is not scored.
        nsd_tolerance_mm: tolerance of the normalised surface Dice.

    Returns:
        ``{metric: {label name: value}}`` for the keys in :data:`PER_LABEL_KEYS`.
    """
    pred, truth = np.asarray(pred), np.asarray(truth)
    if pred.shape != truth.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from truth shape {truth.shape}")
    spacing = [float(s) for s in spacing]
    voxel_ml = float(np.prod(spacing)) / 1000.0
    out: dict[str, dict[str, Any]] = {key: {} for key in PER_LABEL_KEYS}
    for value, name in enumerate(class_names):
        if value == 0:
            continue
        n_pred, n_true = int((pred == value).sum()), int((truth == value).sum())
        if n_pred == 0 and n_true == 0:
            dice, hd95, nsd = 1.0, 0.0, 1.0
        elif n_pred == 0 or n_true == 0:
            dice, hd95, nsd = 0.0, None, 0.0
        else:
            p, t = _one_hot(pred, value), _one_hot(truth, value)
            dice = float(compute_dice(p, t, include_background=False)[0, 0])
            with warnings.catch_warnings():
                # MONAI 1.5+ warns about its own internal use of a deprecated argument.
                warnings.simplefilter("ignore", FutureWarning)
                hd95 = float(compute_hausdorff_distance(p, t, percentile=95,
                                                        spacing=spacing)[0, 0])
                nsd = float(compute_surface_dice(p, t, [nsd_tolerance_mm],
                                                 spacing=spacing)[0, 0])
        out["dice"][name] = dice
        out["hd95"][name] = hd95
        out["nsd"][name] = nsd
        out["volume_true_ml"][name] = n_true * voxel_ml
        out["volume_pred_ml"][name] = n_pred * voxel_ml
        out["volume_error_ml"][name] = (n_pred - n_true) * voxel_ml
        out["volume_error_pct"][name] = (100.0 * (n_pred - n_true) / n_true) if n_true else None
    return out


def _bootstrap_mean_ci(values: np.ndarray, n_bootstrap: int, seed: int) -> list[float | None]:
    """95% percentile-bootstrap interval of the mean over cases."""
    values = values[np.isfinite(values)]
    if len(values) < 2 or n_bootstrap <= 0:
        return [None, None]
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (n_bootstrap, len(values)))].mean(axis=1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def summarize_cases(cases: Sequence[dict[str, Any]], class_names: Sequence[str],
                    nsd_tolerance_mm: float = NSD_TOLERANCE_MM, n_bootstrap: int = 1000,
                    seed: int = 0) -> dict[str, Any]:
    """Aggregate per-case results (each a :func:`case_metrics` dict plus ``case``/``source``).

    Returns:
        JSON-safe dict: ``dice``, ``hd95``, ``nsd``, ``volume_error_ml`` and
        ``abs_volume_error_pct`` as ``{label name: mean, "mean": mean of label means}``;
        ``ci`` with the same shape holding ``[lo, hi]``; ``hd95_undefined`` counts; flat
        ``dice_mean``/``hd95_mean``/``nsd_mean`` (for tables); ``n``; ``cases``.
    """
    labels = [name for value, name in enumerate(class_names) if value > 0]
    summary: dict[str, Any] = {"task": "segmentation", "class_names": list(class_names),
                               "labels": labels, "n": len(cases),
                               "nsd_tolerance_mm": nsd_tolerance_mm, "ci": {},
                               "ci_level": 0.95}
    for key in SUMMARY_KEYS:
        per_label: dict[str, float | None] = {}
        intervals: dict[str, list[float | None]] = {}
        label_values = []
        for index, name in enumerate(labels):
            if key == "abs_volume_error_pct":
                raw = [c["volume_error_pct"].get(name) for c in cases]
                raw = [abs(v) if v is not None else None for v in raw]
            else:
                raw = [c[key].get(name) for c in cases]
            values = np.array([np.nan if v is None else v for v in raw], dtype=float)
            label_values.append(values)
            per_label[name] = float(np.nanmean(values)) if np.isfinite(values).any() else None
            intervals[name] = _bootstrap_mean_ci(values, n_bootstrap, seed + index)
        stacked = np.vstack(label_values) if label_values else np.zeros((0, len(cases)))
        with np.errstate(invalid="ignore"):
            case_means = np.nanmean(stacked, axis=0) if len(stacked) else np.zeros(0)
        defined = [v for v in per_label.values() if v is not None]
        per_label["mean"] = float(np.mean(defined)) if defined else None
        intervals["mean"] = _bootstrap_mean_ci(case_means, n_bootstrap, seed + 101)
        summary[key] = per_label
        summary["ci"][key] = intervals
    summary["hd95_undefined"] = {name: sum(c["hd95"].get(name) is None for c in cases)
                                 for name in labels}
    for key in ("dice", "hd95", "nsd"):
        summary[f"{key}_mean"] = summary[key]["mean"]
        summary["ci"][f"{key}_mean"] = summary["ci"][key]["mean"]
    summary["cases"] = [dict(c) for c in cases]
    return json_safe(summary)


def mean_foreground_dice(case: dict[str, dict[str, Any]]) -> float:
    """Mean Dice over the labels of one case (ranks cases for the report)."""
    values = [v for v in case["dice"].values() if v is not None]
    return float(np.mean(values)) if values else math.nan
