"""Evaluation reports: ROC, confusion-matrix and reliability plots, Markdown and HTML.

:func:`write_classification_report` turns the output of
:func:`~meddx.learn.evaluation.metrics.classification_metrics` into a folder a clinician or a
reviewer can open without any software: ``report.html`` (self-contained: inline CSS, images
referenced by relative file name, no scripts or CDN), ``report.md``, ``metrics.json`` and three
PNG plots.

Plots are drawn by :mod:`meddx.figures` (no ``pyplot``, written atomically).
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import roc_auc_score, roc_curve

import meddx
from meddx.errors import DataError
from meddx.figures import new_figure, save_figure
from meddx.fileio import write_json, write_text
from meddx.learn.evaluation.metrics import (
    ECE_BINS,
    _as_labels,
    _as_probs,
    expected_calibration_error,
    json_safe,
    reliability_curve,
)

__all__ = [
    "plot_confusion_matrix",
    "plot_reliability",
    "plot_roc",
    "write_classification_report",
]

# Above this many classes, per-class legends and cell annotations become unreadable.
_MAX_LEGEND_CLASSES = 10
_MAX_ANNOTATED_CLASSES = 20

# (label, definition for binary tasks, definition for multi-class tasks)
_METRIC_TEXT: dict[str, tuple[str, str, str]] = {
    "auc": (
        "AUC",
        "area under the ROC curve of the positive-class probability",
        "macro average of one-vs-rest ROC AUCs",
    ),
    "accuracy": ("Accuracy", "fraction of cases classified correctly", "fraction correct"),
    "balanced_accuracy": (
        "Balanced accuracy",
        "mean of sensitivity and specificity",
        "mean per-class sensitivity (recall)",
    ),
    "sensitivity": (
        "Sensitivity",
        "positive cases detected (recall, TPR)",
        "macro average of per-class sensitivity",
    ),
    "specificity": (
        "Specificity",
        "negative cases correctly ruled out (TNR)",
        "macro average of one-vs-rest specificity",
    ),
    "ppv": (
        "PPV",
        "positive predictive value (precision)",
        "macro average of per-class PPV (+P)",
    ),
    "npv": ("NPV", "negative predictive value", "macro average of one-vs-rest NPV"),
    "f1": ("F1", "F1 score of the positive class", "macro average of per-class F1"),
    "macro_f1": ("Macro F1", "mean F1 of both classes", "mean per-class F1"),
    "ece": (
        "ECE",
        "expected calibration error, 15 bins (lower is better)",
        "expected calibration error, 15 bins (lower is better)",
    ),
    "brier": (
        "Brier score",
        "mean squared error of the probability (lower is better)",
        "multi-class Brier score (lower is better)",
    ),
}

_CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       color: #1f2933; background: #f7f9fb; margin: 0; line-height: 1.45; }
main { max-width: 1040px; margin: 0 auto; padding: 24px 32px 48px; background: #fff; }
h1 { font-size: 1.6em; margin: 0.2em 0 0.4em; }
h2 { font-size: 1.2em; margin-top: 1.8em; border-bottom: 1px solid #d9e2ec; padding-bottom: 4px; }
p.summary { color: #52606d; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { border: 1px solid #d9e2ec; padding: 5px 10px; text-align: left; vertical-align: top; }
th { background: #f0f4f8; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.muted, span.muted { color: #7b8794; }
tr.ours td { background: #e6f6ff; font-weight: 600; }
table.context th { width: 12em; }
figure { display: inline-block; margin: 8px 16px 8px 0; vertical-align: top; }
figure img { max-width: 480px; width: 100%; border: 1px solid #d9e2ec; }
figcaption { font-size: 0.85em; color: #52606d; }
footer { margin-top: 2.5em; font-size: 0.82em; color: #7b8794; }
"""


# --------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------


def _class_colours(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20" if n <= 20 else "viridis"]
    if n > 20:
        return [cmap(i / max(n - 1, 1)) for i in range(n)]
    return [cmap(i) for i in range(n)]


def plot_roc(
    y_true: ArrayLike, probs: ArrayLike, class_names: Sequence[str], path: str | Path
) -> Path:
    """Plot ROC curves with their AUCs.

    Binary tasks get the positive-class (index 1) curve; multi-class tasks one one-vs-rest curve
    per class (classes absent from ``y_true`` are listed as such) and the macro AUC in the title.

    Args:
        y_true: Integer labels, shape ``(N,)``.
        probs: Class probabilities, shape ``(N, K)``.
        class_names: The K class names.
        path: Where to write the PNG.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    names = [str(c) for c in class_names]
    y = _as_labels(y_true, len(names))
    p = _as_probs(probs, y.shape[0], len(names))
    binary = len(names) == 2
    figure = new_figure(5.6, 5.2)
    ax = figure.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="#9aa5b1", linewidth=1, label="chance")

    classes = [1] if binary else list(range(len(names)))
    colours = ["#1f77b4"] if binary else _class_colours(len(names))
    aucs = []
    for colour, c in zip(colours, classes, strict=True):
        positive = y == c
        if positive.all() or not positive.any():
            # An ROC curve needs both classes; say so instead of drawing nothing silently.
            ax.plot([], [], color=colour, label=f"{names[c]}: not computable (one class)")
            continue
        fpr, tpr, _ = roc_curve(positive, p[:, c])
        auc = float(roc_auc_score(positive, p[:, c]))
        aucs.append(auc)
        show_label = binary or len(names) <= _MAX_LEGEND_CLASSES
        label = f"{names[c]} (AUC = {auc:.3f})" if show_label else None
        ax.plot(fpr, tpr, color=colour, linewidth=2 if binary else 1.5, label=label)

    if binary:
        title = f"ROC curve: {names[1]} vs {names[0]}"
    else:
        macro = f"{np.mean(aucs):.3f}" if aucs else "n/a"
        title = f"ROC curves, one-vs-rest (macro AUC = {macro})"
    ax.set_title(title, fontsize=11)
    ax.set_xlabel("False positive rate (1 - specificity)")
    ax.set_ylabel("True positive rate (sensitivity)")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8, framealpha=0.9)
    return save_figure(figure, path)


def plot_confusion_matrix(
    cm: ArrayLike, class_names: Sequence[str], path: str | Path, normalize: bool = True
) -> Path:
    """Plot a confusion matrix (rows = true class, columns = predicted class).

    Args:
        cm: ``(K, K)`` counts.
        class_names: The K class names.
        path: Where to write the PNG.
        normalize: Colour by row percentage (each true class sums to 100%) and show
            "count (row %)" in the cells; otherwise colour and annotate by raw counts. Row
            normalisation keeps rare classes visible, which raw counts hide.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    counts = np.asarray(cm, dtype=np.int64)
    names = [str(c) for c in class_names]
    k = len(names)
    if counts.shape != (k, k):
        raise DataError(f"confusion matrix must have shape ({k}, {k}); got {counts.shape}")
    row_totals = counts.sum(axis=1, keepdims=True)
    fractions = np.divide(
        counts, row_totals, out=np.zeros(counts.shape, dtype=float), where=row_totals > 0
    )
    shown = fractions if normalize else counts.astype(float)
    vmax = 1.0 if normalize else max(float(shown.max()), 1.0)

    size = min(max(4.8, 0.65 * k + 2.6), 16.0)
    figure = new_figure(size + 0.9, size)
    ax = figure.add_subplot()
    image = ax.imshow(shown, cmap="Blues", vmin=0.0, vmax=vmax)
    colourbar = figure.colorbar(image, ax=ax, shrink=0.8)
    colourbar.set_label("fraction of true class" if normalize else "cases")

    if k <= _MAX_ANNOTATED_CLASSES:
        fontsize = 10 if k <= 5 else 8 if k <= 10 else 6
        for i in range(k):
            for j in range(k):
                text = f"{counts[i, j]}"
                if normalize:
                    text += f"\n({100 * fractions[i, j]:.1f}%)" if row_totals[i, 0] else "\n(-)"
                colour = "white" if shown[i, j] > 0.55 * vmax else "#1f2933"
                ax.text(j, i, text, ha="center", va="center", color=colour, fontsize=fontsize)

    # Rotate only when labels would collide (long names or many classes).
    rotate = k > 8 or max(len(n) for n in names) * k > 40
    ax.set_xticks(range(k), names, rotation=45 if rotate else 0, ha="right" if rotate else "center")
    ax.set_yticks(range(k), names)
    ax.set_xlabel("Predicted class")
    ax.set_ylabel("True class")
    suffix = " (counts and row %)" if normalize else " (counts)"
    ax.set_title(f"Confusion matrix{suffix}", fontsize=11)
    return save_figure(figure, path)


def plot_reliability(
    y_true: ArrayLike, probs: ArrayLike, path: str | Path, n_bins: int = ECE_BINS
) -> Path:
    """Plot a reliability diagram of the arg-max confidence, with a histogram of confidences.

    Args:
        y_true: Integer labels, shape ``(N,)``.
        probs: Class probabilities, shape ``(N, K)``.
        path: Where to write the PNG.
        n_bins: Number of equal-width confidence bins.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    curve = reliability_curve(y_true, probs, n_bins)
    filled = curve.counts > 0
    ece = expected_calibration_error(y_true, probs, n_bins)
    left = curve.bin_edges[:-1]
    width = np.diff(curve.bin_edges)

    figure = new_figure(5.6, 6.2)
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    top.plot([0, 1], [0, 1], linestyle="--", color="#9aa5b1", linewidth=1, label="perfect")
    top.bar(
        left[filled],
        curve.accuracy[filled],
        width=width[filled],
        align="edge",
        color="#1f77b4",
        edgecolor="white",
        label="accuracy",
    )
    # Gap between accuracy and mean confidence (what the ECE averages), hatched so it stays
    # visible over the accuracy bar when the model is under-confident.
    top.bar(
        left[filled],
        np.abs(curve.confidence[filled] - curve.accuracy[filled]),
        bottom=np.minimum(curve.confidence[filled], curve.accuracy[filled]),
        width=width[filled],
        align="edge",
        facecolor=(0.84, 0.27, 0.27, 0.15),
        edgecolor="#d64545",
        hatch="//",
        label="gap to mean confidence",
    )
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("Accuracy of predicted class")
    top.set_title(f"Reliability diagram (ECE = {ece:.3f}, {n_bins} bins)", fontsize=11)
    top.grid(True, alpha=0.3)
    top.legend(loc="upper left", fontsize=8)

    bottom.bar(left, curve.counts, width=width, align="edge", color="#7b8794", edgecolor="white")
    bottom.set_xlabel("Confidence (probability of the predicted class)")
    bottom.set_ylabel("Cases")
    bottom.grid(True, alpha=0.3)
    return save_figure(figure, path)


# --------------------------------------------------------------------------------------------
# Formatting helpers
# --------------------------------------------------------------------------------------------


def _fmt(value: Any, ci: Sequence[float] | None = None, digits: int = 3) -> str:
    """``0.962 (0.948-0.975)``; ``-`` for a missing value."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "-"
    text = f"{float(value):.{digits}f}"
    if ci is not None and len(ci) == 2 and None not in ci:
        text += f" ({float(ci[0]):.{digits}f}-{float(ci[1]):.{digits}f})"
    return text


def _md_cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |"]
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return lines


def _html_table(
    header: Sequence[str],
    rows: Sequence[Sequence[Any]],
    numeric: Sequence[bool] | None = None,
    row_classes: Sequence[str] | None = None,
    css_class: str = "",
) -> str:
    numeric = numeric or [False] * len(header)
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = []
    for r, row in enumerate(rows):
        cells = "".join(
            f'<td class="num">{html.escape(str(c))}</td>'
            if is_num
            else f"<td>{html.escape(str(c))}</td>"
            for c, is_num in zip(row, numeric, strict=True)
        )
        cls = f' class="{row_classes[r]}"' if row_classes and row_classes[r] else ""
        body.append(f"<tr{cls}>{cells}</tr>")
    cls = f' class="{css_class}"' if css_class else ""
    return f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _ci_label(metrics: Mapping[str, Any]) -> str:
    level = (metrics.get("bootstrap") or {}).get("ci_level", 0.95)
    return f"{100 * float(level):g}% CI"


def _metric_rows(metrics: Mapping[str, Any]) -> list[list[str]]:
    binary = metrics.get("task", "binary" if len(metrics["class_names"]) == 2 else "") == "binary"
    ci = metrics.get("ci") or {}
    rows = []
    for name, (label, binary_text, multi_text) in _METRIC_TEXT.items():
        if name not in metrics:
            continue
        rows.append(
            [label, _fmt(metrics[name], ci.get(name)), binary_text if binary else multi_text]
        )
    for key, value in (metrics.get("top_k_accuracy") or {}).items():
        k = key.removeprefix("top_")
        text = (
            "most probable class is the true class (ignores the threshold)"
            if k == "1"
            else f"true class among the {k} most probable"
        )
        rows.append([f"Top-{k} accuracy", _fmt(value, ci.get(f"{key}_accuracy")), text])
    return rows


def _per_class_rows(metrics: Mapping[str, Any]) -> list[list[str]]:
    rows = []
    for name, values in (metrics.get("per_class") or {}).items():
        ci = values.get("ci") or {}
        rows.append(
            [
                name,
                str(values.get("support", "-")),
                *(
                    _fmt(values.get(m), ci.get(m))
                    for m in ("sensitivity", "specificity", "ppv", "f1", "auc")
                ),
            ]
        )
    return rows


def _excused_note(metrics: Mapping[str, Any]) -> str:
    """Say which calls PPV and specificity leave out (EC57's rule for beats), if any."""
    excused = metrics.get("excused_calls") or {}
    if not excused:
        return ""
    per_class = metrics.get("per_class") or {}
    rules = "; ".join(f"{called} calls on {', '.join(trues)} cases" for called, trues in
                      excused.items())
    plain = ", ".join(f"{called} {_fmt(per_class.get(called, {}).get('ppv_all_calls'), None)}"
                      for called in excused)
    return (f"PPV (+P) and specificity leave out, as ANSI/AAMI EC57 scores beats: {rules}. "
            f"Counting every call, PPV is {plain}.")


_PER_CLASS_HEADER = ["Class", "Support", "Sensitivity", "Specificity", "PPV (+P)", "F1", "AUC"]
_BASELINE_HEADER = ["Method", "AUC", "ACC", "Source"]


def _baseline_rows(
    metrics: Mapping[str, Any],
    baselines: Sequence[Mapping[str, Any]],
    context: Mapping[str, Any],
) -> list[list[str]]:
    ci = metrics.get("ci") or {}
    ours = [
        f"{context.get('model', 'This model')} (ours)",
        _fmt(metrics.get("auc"), ci.get("auc")),
        _fmt(metrics.get("accuracy"), ci.get("accuracy")),
        "this evaluation" + (f", {context['split']} split" if context.get("split") else ""),
    ]
    rows = [ours]
    for row in baselines:
        source = str(row.get("source", ""))
        if row.get("note"):
            source += f"; {row['note']}"
        rows.append(
            [str(row.get("method", "")), _fmt(row.get("auc")), _fmt(row.get("accuracy")), source]
        )
    return rows


def _summary(metrics: Mapping[str, Any]) -> str:
    names = list(metrics["class_names"])
    text = f"{metrics.get('n', '?')} cases, {len(names)} classes ({', '.join(names)})."
    if metrics.get("threshold") is not None:
        text += (
            f" Positive class: {metrics.get('positive_class', names[-1])}; decision "
            f"p({metrics.get('positive_class', names[-1])}) >= {metrics['threshold']:.3f}."
        )
    elif len(names) > 2:
        text += " Decision: most probable class; summary metrics are macro averages."
    boot = metrics.get("bootstrap") or {}
    if boot.get("n_resamples"):
        text += (
            f" Intervals: {_ci_label(metrics)}, percentile bootstrap over cases "
            f"({boot['n_resamples']} resamples, seed {boot.get('seed')})."
        )
    return text


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------

_PLOTS = (
    ("roc.png", "ROC curve", "ROC curve(s) with AUC; dashed line = chance."),
    (
        "confusion_matrix.png",
        "Confusion matrix",
        "Rows = true class, columns = predicted; counts and row percentages.",
    ),
    (
        "reliability.png",
        "Reliability diagram",
        "Accuracy vs confidence of the predicted class; dashed line = perfect calibration.",
    ),
)


def write_classification_report(
    out_dir: str | Path,
    metrics: Mapping[str, Any],
    y_true: ArrayLike,
    probs: ArrayLike,
    class_names: Sequence[str],
    title: str,
    baselines: Sequence[Mapping[str, Any]] | None = None,
    context: Mapping[str, Any] | None = None,
) -> Path:
    """Write an evaluation report folder and return the path of its HTML page.

    Files written to ``out_dir`` (created if needed): ``roc.png``, ``confusion_matrix.png``,
    ``reliability.png``, ``metrics.json``, ``report.md`` and ``report.html``. The HTML page is
    self-contained apart from the three PNGs next to it, which it references by file name, so
    the folder can be moved or zipped as a whole.

    Args:
        out_dir: Report folder.
        metrics: Output of :func:`~meddx.learn.evaluation.metrics.classification_metrics` for
            ``y_true`` and ``probs``.
        y_true: Integer labels, shape ``(N,)`` (for the ROC and reliability plots).
        probs: Class probabilities, shape ``(N, K)``.
        class_names: The K class names.
        title: Report title.
        baselines: Published results to compare with (rows with ``method``, ``auc``,
            ``accuracy``, ``source`` and optional ``note``, as returned by
            :func:`~meddx.learn.evaluation.baselines.baselines_for`). Our row comes first.
        context: Key/values describing the evaluation (dataset, split, model, date...); shown
            at the top. ``model`` and ``split`` also label our row in the baselines table.

    Returns:
        Path of ``report.html``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = [str(c) for c in class_names]
    context = dict(context or {})
    metrics = json_safe(metrics)
    if list(metrics.get("class_names", names)) != names:
        raise DataError(
            f"metrics are for classes {metrics['class_names']} but class_names is {names}"
        )

    plot_roc(y_true, probs, names, out / "roc.png")
    plot_confusion_matrix(metrics["confusion_matrix"], names, out / "confusion_matrix.png")
    plot_reliability(y_true, probs, out / "reliability.png")
    write_json(metrics, out / "metrics.json")

    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    footer = f"Generated by meddx {meddx.__version__} on {generated}."
    metric_header = ["Metric", f"Value ({_ci_label(metrics)})", "Definition"]
    metric_rows = _metric_rows(metrics)
    per_class_rows = _per_class_rows(metrics)
    excused_note = _excused_note(metrics)
    cm_header = ["true \\ predicted", *names]
    cm_rows = [[name, *row] for name, row in zip(names, metrics["confusion_matrix"], strict=True)]
    context_rows = [[str(k), str(v)] for k, v in context.items()]
    baseline_rows = _baseline_rows(metrics, baselines, context) if baselines else []

    # Markdown.
    md = [f"# {title}", "", _summary(metrics), ""]
    if context_rows:
        md += [*_md_table(["", ""], context_rows), ""]
    md += ["## Metrics", "", *_md_table(metric_header, metric_rows), ""]
    md += ["## Per class (one-vs-rest)", "", *_md_table(_PER_CLASS_HEADER, per_class_rows), ""]
    if excused_note:
        md += [excused_note, ""]
    md += ["## Confusion matrix", "", *_md_table(cm_header, cm_rows), ""]
    if baseline_rows:
        md += ["## Published baselines", "", *_md_table(_BASELINE_HEADER, baseline_rows), ""]
        md += ["Published figures use their own training setups; compare with care.", ""]
    md += ["## Plots", ""]
    for file, alt, caption in _PLOTS:
        md += [f"![{alt}]({file})", "", f"*{caption}*", ""]
    md += [footer, ""]
    write_text("\n".join(md), out / "report.md")

    # HTML: every piece of text passes through html.escape (in _html_table or here).
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body><main>",
        f"<h1>{esc(title)}</h1>",
        f'<p class="summary">{esc(_summary(metrics))}</p>',
    ]
    if context_rows:
        parts.append(_html_table(["Item", "Value"], context_rows, css_class="context"))
    parts += [
        "<h2>Metrics</h2>",
        _html_table(metric_header, metric_rows, numeric=[False, True, False]),
        "<h2>Per class (one-vs-rest)</h2>",
        _html_table(_PER_CLASS_HEADER, per_class_rows, numeric=[False] + [True] * 6),
        f"<p>{esc(excused_note)}</p>" if excused_note else "",
        "<h2>Confusion matrix</h2>",
        _html_table(cm_header, cm_rows, numeric=[False] + [True] * len(names)),
    ]
    if baseline_rows:
        parts += [
            "<h2>Published baselines</h2>",
            _html_table(
                _BASELINE_HEADER,
                baseline_rows,
                numeric=[False, True, True, False],
                row_classes=["ours"] + [""] * (len(baseline_rows) - 1),
            ),
            '<p><span class="muted">Published figures use their own training setups; '
            "compare with care.</span></p>",
        ]
    parts.append("<h2>Plots</h2>")
    for file, alt, caption in _PLOTS:
        parts.append(
            f'<figure><img src="{esc(file)}" alt="{esc(alt)}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>"
        )
    parts += [f"<footer>{esc(footer)}</footer>", "</main></body></html>", ""]
    return write_text("\n".join(parts), out / "report.html")
