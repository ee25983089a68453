"""Segmentation evaluation: masks of a labelled split, metrics, and a report folder.

:func:`evaluate_segmentation` is the segmentation branch of the one evaluation path
(:mod:`meddx.learn.evaluate`): the predictor segments every case in its own voxel grid, and
:mod:`~meddx.learn.evaluation.segmentation_metrics` scores it. :func:`write_segmentation_report`
writes ``report.html`` / ``report.md`` / ``metrics.json``, a per-case table, a Dice box plot and
overlays of the best, median and worst cases (by mean Dice) with reference and prediction side by
side, using the same page style as the classification report.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import meddx
from meddx.figures import new_figure, save_figure
from meddx.fileio import write_json, write_text
from meddx.learn.evaluation.report import _CSS, _fmt, _html_table, _md_table
from meddx.learn.evaluation.segmentation_metrics import (
    NSD_TOLERANCE_MM,
    case_metrics,
    mean_foreground_dice,
    summarize_cases,
)

__all__ = ["evaluate_segmentation", "plot_mask_overlay", "summary_table",
           "write_segmentation_evaluation", "write_segmentation_report"]


# --------------------------------------------------------------------------------------------
# Overlays
# --------------------------------------------------------------------------------------------


def _label_colours(n: int) -> np.ndarray:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return np.array([cmap((i - 1) % 10) for i in range(n)])


def _rgba(mask: np.ndarray, n_classes: int, alpha: float = 0.45) -> np.ndarray:
    colours = _label_colours(max(n_classes, int(mask.max()) + 1))
    out = colours[mask.astype(int)].copy()
    out[..., 3] = np.where(mask > 0, alpha, 0.0)
    return out


def _centre(masks: Sequence[np.ndarray]) -> tuple[int, ...]:
    """The centroid of the union of the masks (the middle of the volume when all are empty)."""
    union = np.zeros(masks[0].shape, bool)
    for mask in masks:
        union |= mask > 0
    if not union.any():
        return tuple(s // 2 for s in union.shape)
    return tuple(int(round(c)) for c in np.argwhere(union).mean(axis=0))


def plot_mask_overlay(image: np.ndarray, masks: Sequence[tuple[str, np.ndarray]],
                      class_names: Sequence[str], path: str | Path, title: str) -> Path:
    """PNG of an image with label maps drawn over it (one row per mask).

    Args:
        image: ``(C, *spatial)`` (channels averaged for display).
        masks: ``(caption, label map)`` pairs, each with the image's spatial shape.
        class_names: label names, for the legend.
        path: PNG to write.
        title: figure title.

    For volumes each row shows the three orthogonal slices through the masks' centroid.
    """
    gray = np.asarray(image, dtype=float).mean(axis=0)
    centre = _centre([m for _, m in masks])
    views = [(None, gray)] if gray.ndim == 2 else [
        (axis, np.take(gray, centre[axis], axis)) for axis in range(3)]
    figure = new_figure(3.0 * len(views), 3.0 * len(masks) + 0.5)
    axes = figure.subplots(len(masks), len(views), squeeze=False)
    for row, (caption, mask) in enumerate(masks):
        for col, (axis, picture) in enumerate(views):
            plane = mask if axis is None else np.take(mask, centre[axis], axis)
            ax = axes[row][col]
            ax.imshow(picture.T, cmap="gray", origin="lower", interpolation="nearest")
            ax.imshow(np.transpose(_rgba(plane, len(class_names)), (1, 0, 2)), origin="lower",
                      interpolation="nearest")
            where = "" if axis is None else f", axis {axis} slice {centre[axis]}"
            ax.set_title(f"{caption}{where}", fontsize=8)
            ax.axis("off")
    colours = _label_colours(len(class_names))
    from matplotlib.patches import Patch

    handles = [Patch(color=colours[i], label=name) for i, name in enumerate(class_names) if i]
    figure.legend(handles=handles, loc="outside lower center", ncols=max(1, len(handles)),
                  fontsize=8)
    figure.suptitle(title, fontsize=10)
    return save_figure(figure, path)


def _plot_dice_box(metrics: Mapping[str, Any], path: Path) -> Path:
    labels = metrics["labels"]
    data = [[c["dice"].get(name) for c in metrics["cases"] if c["dice"].get(name) is not None]
            for name in labels]
    figure = new_figure(1.6 + 1.2 * len(labels), 3.4)
    ax = figure.subplots()
    ax.boxplot(data, tick_labels=labels, showmeans=True)
    ax.set_ylabel("Dice per case")
    ax.set_ylim(0, 1.02)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(f"Dice per label (n = {metrics['n']})", fontsize=10)
    return save_figure(figure, path)


# --------------------------------------------------------------------------------------------
# Evaluation and report
# --------------------------------------------------------------------------------------------


def evaluate_segmentation(predictor, split, n_bootstrap: int = 1000, seed: int = 0,
                          nsd_tolerance_mm: float = NSD_TOLERANCE_MM
                          ) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Segment every case of a labelled split and score it; returns (metrics, masks)."""
    from meddx.errors import DataError

    masks = predictor.predict_split(split)
    rows = []
    for mask, case in zip(masks, split.cases, strict=True):
        if case.label is None:
            raise DataError(f"{case.source}: no label map to evaluate against")
        rows.append({"case": case.case_id, "source": case.source,
                     **case_metrics(mask, case.label, case.spacing, predictor.class_names,
                                    nsd_tolerance_mm)})
    metrics = summarize_cases(rows, predictor.class_names, nsd_tolerance_mm, n_bootstrap, seed)
    return metrics, masks


def _summary(metrics: Mapping[str, Any]) -> str:
    parts = [f"{name} {_fmt(metrics['dice'][name], metrics['ci']['dice'][name])}"
             for name in metrics["labels"]]
    return (f"Mean Dice {_fmt(metrics['dice']['mean'], metrics['ci']['dice']['mean'])} over "
            f"{metrics['n']} cases ({'; '.join(parts)}); HD95 "
            f"{_fmt(metrics['hd95']['mean'], digits=2)} mm; NSD at "
            f"{metrics['nsd_tolerance_mm']:g} mm {_fmt(metrics['nsd']['mean'])}.")


def summary_table(metrics: Mapping[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of the per-label summary (one row per label, then the mean)."""
    labels = list(metrics["labels"])
    summary_header = ["Label", "Dice (95% CI)", "HD95 mm (95% CI)",
                      f"NSD @{metrics['nsd_tolerance_mm']:g} mm", "Volume error mL",
                      "|Volume error| %", "HD95 undefined"]
    summary_rows = [[name, _fmt(metrics["dice"][name], metrics["ci"]["dice"][name]),
                     _fmt(metrics["hd95"][name], metrics["ci"]["hd95"][name], 2),
                     _fmt(metrics["nsd"][name], metrics["ci"]["nsd"][name]),
                     _fmt(metrics["volume_error_ml"][name], digits=3),
                     _fmt(metrics["abs_volume_error_pct"][name], digits=1),
                     metrics["hd95_undefined"][name]] for name in labels]
    summary_rows.append(["mean", _fmt(metrics["dice"]["mean"], metrics["ci"]["dice"]["mean"]),
                         _fmt(metrics["hd95"]["mean"], metrics["ci"]["hd95"]["mean"], 2),
                         _fmt(metrics["nsd"]["mean"], metrics["ci"]["nsd"]["mean"]),
                         _fmt(metrics["volume_error_ml"]["mean"], digits=3),
                         _fmt(metrics["abs_volume_error_pct"]["mean"], digits=1), ""])
    return summary_header, summary_rows


def write_segmentation_report(out_dir: str | Path, metrics: Mapping[str, Any], split,
                              masks: Sequence[np.ndarray], title: str,
                              context: Mapping[str, Any] | None = None) -> Path:
    """Write the report folder (HTML, Markdown, metrics.json, plots, overlays); returns HTML."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    labels = list(metrics["labels"])
    names = list(metrics["class_names"])
    write_json(metrics, out / "metrics.json")
    _plot_dice_box(metrics, out / "dice_boxplot.png")

    ranked = sorted(range(len(masks)), key=lambda i: mean_foreground_dice(metrics["cases"][i]))
    picks = {"worst": ranked[0], "median": ranked[len(ranked) // 2], "best": ranked[-1]}
    overlays = []
    for kind, index in picks.items():
        case = split.cases[index]
        dice = mean_foreground_dice(metrics["cases"][index])
        file = f"overlay_{kind}.png"
        plot_mask_overlay(case.image, [("reference", case.label), ("prediction", masks[index])],
                          names, out / file, f"{kind}: {case.case_id} (mean Dice {dice:.3f})")
        overlays.append((file, f"{kind} case {case.case_id}, mean Dice {dice:.3f}"))

    summary_header, summary_rows = summary_table(metrics)
    case_header = ["Case", *[f"Dice {n}" for n in labels], *[f"HD95 {n}" for n in labels],
                   *[f"Vol. true/pred mL {n}" for n in labels]]
    case_rows = []
    for row in sorted(metrics["cases"], key=lambda c: c["case"]):
        case_rows.append([row["case"], *[_fmt(row["dice"][n]) for n in labels],
                          *[_fmt(row["hd95"][n], digits=2) for n in labels],
                          *[f"{row['volume_true_ml'][n]:.3f} / {row['volume_pred_ml'][n]:.3f}"
                            for n in labels]])
    context_rows = [[str(k), str(v)] for k, v in (context or {}).items()]
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    footer = f"Generated by meddx {meddx.__version__} on {generated}."
    note = ("Dice and NSD: 1 = perfect overlap. HD95: 95th percentile of surface distances (mm), "
            "undefined when one of prediction and reference is empty. Means over cases with 95% "
            "percentile-bootstrap intervals over cases. Metrics are computed in each case's own "
            "voxel grid.")

    md = [f"# {title}", "", _summary(metrics), ""]
    if context_rows:
        md += [*_md_table(["", ""], context_rows), ""]
    md += ["## Metrics per label", "", *_md_table(summary_header, summary_rows), "", note, ""]
    md += ["## Best, median and worst cases", ""]
    md += [item for file, caption in overlays for item in (f"![{caption}]({file})", "")]
    md += ["![Dice per label](dice_boxplot.png)", "", "## Per case", "",
           *_md_table(case_header, case_rows), "", footer, ""]
    write_text("\n".join(md), out / "report.md")

    esc = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{esc(title)}</title><style>{_CSS}</style></head><body><main>",
             f"<h1>{esc(title)}</h1>", f'<p class="summary">{esc(_summary(metrics))}</p>']
    if context_rows:
        parts.append(_html_table(["Item", "Value"], context_rows, css_class="context"))
    parts += ["<h2>Metrics per label</h2>",
              _html_table(summary_header, summary_rows, numeric=[False] + [True] * 6),
              f'<p><span class="muted">{esc(note)}</span></p>',
              "<h2>Best, median and worst cases</h2>"]
    for file, caption in overlays:
        parts.append(f'<figure><img src="{esc(file)}" alt="{esc(caption)}">'
                     f"<figcaption>{esc(caption)}</figcaption></figure>")
    parts += ['<figure><img src="dice_boxplot.png" alt="Dice per label">'
              "<figcaption>Dice per case and label</figcaption></figure>",
              "<h2>Per case</h2>",
              _html_table(case_header, case_rows, numeric=[False] + [True] * (3 * len(labels))),
              f"<footer>{esc(footer)}</footer>", "</main></body></html>", ""]
    return write_text("\n".join(parts), out / "report.html")


def write_segmentation_evaluation(predictor, split, report_dir: Path, dataset_name: str,
                                  split_name: str, n_bootstrap: int = 1000
                                  ) -> tuple[dict[str, Any], Path]:
    """The evaluation path's segmentation branch: metrics plus report; (metrics, report.html)."""
    metrics, masks = evaluate_segmentation(predictor, split, n_bootstrap)
    metrics = {**metrics, "dataset": dataset_name, "split": split_name}
    context = {"dataset": dataset_name, "split": split_name, "model": predictor.name,
               "cases": len(split), "NSD tolerance": f"{metrics['nsd_tolerance_mm']:g} mm",
               "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")}
    html_path = write_segmentation_report(report_dir, metrics, split, masks,
                                          f"{predictor.name} on {dataset_name} ({split_name})",
                                          context)
    return metrics, html_path
