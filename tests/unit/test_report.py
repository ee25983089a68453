"""Tests for meddx.learn.evaluation.report and baselines."""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import pytest
from PIL import Image

from meddx.errors import DataError
from meddx.learn.evaluation.baselines import PUBLISHED_BASELINES, baselines_for
from meddx.learn.evaluation.metrics import classification_metrics
from meddx.learn.evaluation.report import (
    plot_confusion_matrix,
    plot_reliability,
    plot_roc,
    write_classification_report,
)

REPORT_FILES = (
    "roc.png",
    "confusion_matrix.png",
    "reliability.png",
    "metrics.json",
    "report.md",
    "report.html",
)


def _binary_case(n: int = 120, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(int)
    p1 = np.clip(0.4 * y + 0.6 * rng.random(n), 0, 1)
    return y, np.column_stack([1 - p1, p1])


def _multiclass_case(n: int = 150, k: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += 1.5
    p = np.exp(logits)
    return y, p / p.sum(axis=1, keepdims=True)


def _assert_png(path):
    assert path.stat().st_size > 0
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width > 300 and image.height > 300


def test_binary_report_writes_everything(tmp_path):
    y, p = _binary_case()
    names = ["normal", "pneumonia"]
    metrics = classification_metrics(y, p, names, threshold=0.45, n_bootstrap=200)
    html_path = write_classification_report(
        tmp_path / "report",
        metrics,
        y,
        p,
        names,
        title="PneumoniaMNIST <test>",
        baselines=baselines_for("pneumoniamnist"),
        context={"dataset": "pneumoniamnist", "split": "test", "model": "resnet18"},
    )
    out = tmp_path / "report"
    assert html_path == out / "report.html"
    for name in REPORT_FILES:
        assert (out / name).stat().st_size > 0, name
    for name in ("roc.png", "confusion_matrix.png", "reliability.png"):
        _assert_png(out / name)

    assert json.loads((out / "metrics.json").read_text()) == metrics

    page = html_path.read_text()
    # Title is escaped, never raw markup.
    assert "PneumoniaMNIST &lt;test&gt;" in page and "<test>" not in page
    auc_lo, auc_hi = metrics["ci"]["auc"]
    assert f"{metrics['auc']:.3f} ({auc_lo:.3f}-{auc_hi:.3f})" in page
    assert f"{metrics['sensitivity']:.3f}" in page
    assert "0.450" in page  # the decision threshold
    # Baselines: our row first, then every published row.
    assert "Published baselines" in page
    ours = page.index("resnet18 (ours)")
    for row in baselines_for("pneumoniamnist"):
        assert row["method"] in page
        assert page.index(row["method"], ours) > ours
    assert "Google AutoML Vision" in page and "0.991" in page
    # Images by relative name, no external resources.
    for name in ("roc.png", "confusion_matrix.png", "reliability.png"):
        assert f'src="{name}"' in page
    assert "http://" not in page and "https://" not in page and "<script" not in page

    md = (out / "report.md").read_text()
    assert "## Published baselines" in md and "![ROC curve](roc.png)" in md
    assert "resnet18 (ours)" in md


def test_multiclass_report_escapes_and_handles_missing_values(tmp_path):
    y, p = _multiclass_case()
    y[y == 4] = 0  # class "Q" absent: its AUC is undefined
    names = ["N", "S", "V", "F<b>", "Q"]
    metrics = classification_metrics(y, p, names, n_bootstrap=50)
    html_path = write_classification_report(
        tmp_path, metrics, y, p, names, title="ECG beats", context={"note": "a & b"}
    )
    page = html_path.read_text()
    assert "F&lt;b&gt;" in page and "F<b>" not in page
    assert "a &amp; b" in page
    assert "Published baselines" not in page
    assert "Top-3 accuracy" in page
    assert f"{metrics['macro_f1']:.3f}" in page
    for name in ("roc.png", "confusion_matrix.png", "reliability.png"):
        _assert_png(tmp_path / name)


def test_plot_functions_return_paths(tmp_path):
    y, p = _multiclass_case(k=3)
    names = ["a", "b", "c"]
    assert plot_roc(y, p, names, tmp_path / "r.png") == tmp_path / "r.png"
    cm = np.bincount(y * 3 + p.argmax(1), minlength=9).reshape(3, 3)
    plot_confusion_matrix(cm, names, tmp_path / "cm.png", normalize=False)
    plot_reliability(y, p, tmp_path / "rel.png")
    for name in ("r.png", "cm.png", "rel.png"):
        _assert_png(tmp_path / name)


def test_plots_do_not_touch_global_matplotlib_state(tmp_path):
    backend = matplotlib.get_backend()
    y, p = _binary_case(40)
    plot_roc(y, p, ["a", "b"], tmp_path / "roc.png")
    assert matplotlib.get_backend() == backend


def test_baselines_lookup():
    pneumonia = baselines_for("PneumoniaMNIST")
    assert len(pneumonia) == 9  # 7 MedMNIST v2 rows + 2 MedMNIST+ rows
    assert baselines_for("pneumoniamnist_224") == pneumonia
    assert len(baselines_for("breastmnist")) == 9
    assert len(baselines_for("adrenalmnist3d")) == 8
    assert baselines_for("nosuchdataset") == []
    for rows in PUBLISHED_BASELINES.values():
        for row in rows:
            assert {"method", "auc", "accuracy", "source", "note"} <= set(row)
            assert 0.5 < row["auc"] <= 1.0 and 0.5 < row["accuracy"] <= 1.0
    first = pneumonia[0]
    assert (first["method"], first["auc"], first["accuracy"]) == ("ResNet-18 (28)", 0.944, 0.854)
    assert "Yang et al." in first["source"]
    best_breast = [r for r in baselines_for("breastmnist") if "Doerrich" in r["source"]]
    assert [(r["auc"], r["accuracy"]) for r in best_breast] == [(0.8908, 0.8654), (0.9397, 0.906)]


def test_baselines_are_copies():
    rows = baselines_for("breastmnist")
    rows[0]["auc"] = 0.0
    assert baselines_for("breastmnist")[0]["auc"] == pytest.approx(0.901)


def test_report_rejects_mismatched_class_names(tmp_path):
    y, p = _binary_case(40)
    metrics = classification_metrics(y, p, ["a", "b"], n_bootstrap=0)
    with pytest.raises(DataError):
        write_classification_report(tmp_path, metrics, y, p, ["x", "y"], title="t")


def test_report_says_which_calls_ppv_leaves_out(tmp_path):
    y, p = _multiclass_case()
    names = ["N", "S", "V", "F", "Q"]
    metrics = classification_metrics(y, p, names, n_bootstrap=0,
                                     excused_calls={"V": ["F", "Q"], "S": ["Q"]})
    write_classification_report(tmp_path, metrics, y, p, names, title="ECG beats")
    text = (tmp_path / "report.md").read_text()
    assert "as ANSI/AAMI EC57 scores beats: V calls on F, Q cases; S calls on Q cases" in text
    assert f"V {metrics['per_class']['V']['ppv_all_calls']:.3f}" in text
    assert "EC57" in (tmp_path / "report.html").read_text()
    plain = classification_metrics(y, p, names, n_bootstrap=0)
    write_classification_report(tmp_path / "plain", plain, y, p, names, title="ECG beats")
    assert "EC57" not in (tmp_path / "plain" / "report.md").read_text()
