"""The one evaluation path: a predictor, a labelled split, metrics with CIs, a report.

Training uses it for the test split it writes into the bundle; ``meddx evaluate`` uses it for any
dataset given later. Both therefore report the same numbers for the same data.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from meddx.data.datasets import SplitData
from meddx.learn.evaluation.baselines import baselines_for
from meddx.learn.evaluation.metrics import classification_metrics
from meddx.learn.evaluation.report import write_classification_report


def evaluate_split(predictor, split: SplitData, n_bootstrap: int = 1000,
                   seed: int = 0) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """Metrics of a predictor on a labelled split; returns (metrics, labels, probabilities)."""
    if getattr(predictor, "task", None) == "segmentation":
        from meddx.learn.evaluation.segmentation_report import evaluate_segmentation

        metrics, masks = evaluate_segmentation(predictor, split, n_bootstrap, seed)
        return metrics, list(split.labels), masks
    probs = predictor.predict_split(split)
    labels = np.asarray(split.labels)
    # A model with its own multi-class decision rule (e.g. ECG beats' S over N odds) is scored
    # on its decisions; the others on the arg-max (or their binary threshold).
    decisions = predictor.decide(probs, split) if hasattr(predictor, "decide") else None
    metrics = classification_metrics(labels, probs, predictor.class_names,
                                      threshold=predictor.threshold, n_bootstrap=n_bootstrap,
                                      seed=seed, decisions=decisions,
                                      excused_calls=getattr(predictor, "excused_calls", None))
    return metrics, labels, probs


def write_evaluation(predictor, split: SplitData, report_dir: Path, dataset_name: str,
                     split_name: str, n_bootstrap: int = 1000) -> tuple[dict[str, Any], Path]:
    """Evaluate and write the report folder; returns (metrics, path of report.html)."""
    if getattr(predictor, "task", None) == "segmentation":
        from meddx.learn.evaluation.segmentation_report import write_segmentation_evaluation

        return write_segmentation_evaluation(predictor, split, report_dir, dataset_name,
                                             split_name, n_bootstrap)
    metrics, labels, probs = evaluate_split(predictor, split, n_bootstrap)
    context = {"dataset": dataset_name, "split": split_name, "model": predictor.name,
               "cases": len(labels), "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}
    metrics = {**metrics, "dataset": dataset_name, "split": split_name}
    html = write_classification_report(
        report_dir, metrics, labels, probs, predictor.class_names,
        title=f"{predictor.name} on {dataset_name} ({split_name})",
        baselines=baselines_for(dataset_name), context=context)
    # Task-specific additions to the report folder (e.g. global SHAP importance for records).
    if hasattr(predictor, "report_extras"):
        predictor.report_extras(Path(report_dir), split)
    return metrics, html


