"""Repeated k-fold cross-validation, for any dataset whose recipe has ``fit``.

Small data sets (768 Pima patients, 200 VA patients) make a single test split too noisy to
compare models; cross-validation uses every case for testing once per repeat. For each fold the
recipe trains exactly as ``meddx train`` would (validation carved out of the training folds,
stratified; thresholds and calibration chosen on it), and the held-out fold is scored with
:func:`~meddx.learn.evaluate.evaluate_split`, the one evaluation path, so the keys are those of
``meddx evaluate``. Folds are stratified by class where labels are class indices, and plain
k-fold where they are not (segmentation label maps).

Summary per metric: mean and standard deviation over the ``folds x repeats`` fits, and a 95%
confidence interval from the corrected resampled t-test (Nadeau & Bengio, Machine Learning 52,
2003), which widens the naive interval because the training sets of different folds overlap.
Recipes whose predictor offers ``predict_split_by_model`` (tabular, text) also get every
candidate model summarised, so the neural model and the baseline are compared on the same folds.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from scipy import stats

from meddx.data.loading import load_dataset
from meddx.errors import ConfigError, DataError
from meddx.learn.evaluate import evaluate_split
from meddx.learn.evaluation.metrics import classification_metrics
from meddx.learn.trainer import TrainConfig

log = logging.getLogger(__name__)

SUMMARY_METRICS = ("auc", "accuracy", "balanced_accuracy", "sensitivity", "specificity", "f1",
                   "macro_f1", "brier", "ece")


def corrected_interval(values: np.ndarray, test_fraction: float, level: float = 0.95
                       ) -> list[float] | None:
    """Nadeau-Bengio corrected t interval of the mean of cross-validation fold scores."""
    values = np.asarray([v for v in values if v is not None and not math.isnan(v)])
    if len(values) < 2:
        return None
    ratio = test_fraction / (1.0 - test_fraction)
    variance = (1.0 / len(values) + ratio) * values.var(ddof=1)
    half = stats.t.ppf(0.5 + level / 2, len(values) - 1) * math.sqrt(variance)
    return [float(values.mean() - half), float(values.mean() + half)]


# Segmentation metrics come per label (plus "mean"); they are summarised as dice_<label>...
PER_LABEL_METRICS = ("dice", "hd95", "nsd", "volume_error_ml")


def _flatten(metrics: dict[str, Any]) -> dict[str, float | None]:
    flat = {key: metrics[key] for key in SUMMARY_METRICS if key in metrics}
    for key, value in (metrics.get("top_k_accuracy") or {}).items():
        flat[f"{key}_accuracy"] = value
    for key in PER_LABEL_METRICS:
        for label, value in (metrics.get(key) or {}).items():
            if value is None or isinstance(value, int | float):
                flat[f"{key}_{label}"] = value
    return flat


def _class_labels(labels: list[Any], num_classes: int) -> np.ndarray | None:
    """Labels as class indices when they are (classification), else None (label maps)."""
    if not labels or any(isinstance(label, np.ndarray) and label.ndim > 0 for label in labels):
        return None
    array = np.asarray(labels)
    if array.ndim != 1 or array.dtype.kind not in "iu":
        return None
    return array if num_classes else None


def _summarise(per_fold: list[dict[str, float | None]], test_fraction: float
               ) -> dict[str, Any]:
    summary = {}
    for key in per_fold[0]:
        values = np.array([f[key] for f in per_fold if f.get(key) is not None], dtype=float)
        if values.size == 0:
            summary[key] = {"mean": None, "std": None, "ci": None}
            continue
        summary[key] = {"mean": float(values.mean()),
                        "std": float(values.std(ddof=1)) if values.size > 1 else 0.0,
                        "ci": corrected_interval(values, test_fraction)}
    return summary


def cross_validate(dataset: Any, *, config: TrainConfig | None = None,
                   plan: dict[str, Any] | None = None, folds: int = 5, repeats: int = 1,
                   seed: int = 0, val_fraction: float = 0.2, work_dir: Path | None = None,
                   progress: bool = True) -> dict[str, Any]:
    """Cross-validate the recipe of ``dataset``.

    Args:
        dataset: a loaded dataset (its recipe is looked up in ``pipeline.RECIPES``).
        config: training-loop options of every fit.
        plan: plan overrides of every fit.
        folds: k of k-fold (>= 2).
        repeats: how many times the k-fold partition is redrawn.
        seed: seed of the partitions and of the validation carving.
        val_fraction: share of each training part kept for validation.
        work_dir: scratch folder for checkpoints (default: a temporary folder).
        progress: show a progress bar over fits.

    Returns:
        JSON-able dict: settings, ``summary`` ``{metric: {mean, std, ci}}``, ``models``
        (per candidate model, when available), ``folds`` (per-fold metrics).
    """
    from sklearn.model_selection import RepeatedKFold, RepeatedStratifiedKFold

    from meddx.data.datasets import stratified_parts
    from meddx.learn.pipeline import recipe_for

    if folds < 2:
        raise ConfigError(f"folds must be >= 2, got {folds}")
    if repeats < 1:
        raise ConfigError(f"repeats must be >= 1, got {repeats}")
    config = config or TrainConfig()
    recipe = recipe_for(dataset)
    everything = dataset.split("all")
    labels = _class_labels(list(everything.labels), len(dataset.class_names))
    if labels is not None:
        counts = np.bincount(labels, minlength=len(dataset.class_names))
        if (counts[counts > 0] < folds).any() or (counts > 0).sum() < 2:
            by_class = dict(zip(dataset.class_names, counts.tolist(), strict=True))
            raise DataError(f"{dataset.name}: {folds}-fold stratified cross-validation needs "
                            f"at least {folds} cases of each of two or more classes; class "
                            f"counts {by_class}")
        splitter = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
    else:
        if len(everything) < 2 * folds:
            raise DataError(f"{dataset.name}: {folds}-fold cross-validation needs at least "
                            f"{2 * folds} cases, found {len(everything)}")
        splitter = RepeatedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
        labels = np.zeros(len(everything), dtype=np.int64)  # nothing to stratify on
    scratch = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="meddx-crossval-"))
    per_fold, per_model, records = [], {}, []
    bar = Progress(TextColumn("[bold]crossval"), BarColumn(), TextColumn("{task.completed}/"
                   "{task.total} fits"), TimeElapsedColumn(), disable=not progress)
    try:
        with bar:
            job = bar.add_task("crossval", total=folds * repeats)
            for index, (outer, test_idx) in enumerate(splitter.split(np.zeros(len(labels)),
                                                                     labels)):
                keep, carved = stratified_parts(labels[outer], val_fraction, seed + index)
                splits = {"train": everything.subset(outer[keep]),
                          "val": everything.subset(outer[carved]),
                          "test": everything.subset(test_idx)}
                fold_data = dataclasses.replace(dataset, splits=splits)
                fold_dir = scratch / f"fold{index:03d}"
                fold_dir.mkdir(parents=True, exist_ok=True)
                fitted = recipe.fit(fold_data, fold_dir, config, plan=plan, progress=False,
                                    split_seed=0)
                shutil.rmtree(fold_dir, ignore_errors=True)
                test = splits["test"]
                predictor = fitted.predictor
                metrics, _, _ = evaluate_split(predictor, test, n_bootstrap=0)
                per_fold.append(_flatten(metrics))
                record = {"repeat": index // folds, "fold": index % folds, "n_test": len(test),
                          "metrics": per_fold[-1]}
                if hasattr(predictor, "predict_split_by_model"):
                    record["models"] = {}
                    for name, (model_probs, threshold) in \
                            predictor.predict_split_by_model(test).items():
                        m = _flatten(classification_metrics(
                            test.labels, model_probs, dataset.class_names, threshold=threshold,
                            n_bootstrap=0,
                            excused_calls=getattr(predictor, "excused_calls", None)))
                        per_model.setdefault(name, []).append(m)
                        record["models"][name] = m
                    record["chosen_model"] = getattr(predictor, "model_name", None)
                records.append(record)
                bar.update(job, advance=1)
    finally:
        if work_dir is None:
            shutil.rmtree(scratch, ignore_errors=True)
    test_fraction = 1.0 / folds
    return {
        "dataset": dataset.name,
        "class_names": list(dataset.class_names),
        "n": int(len(labels)),
        "folds": folds,
        "repeats": repeats,
        "seed": seed,
        "val_fraction": val_fraction,
        "ci_method": "corrected resampled t (Nadeau & Bengio 2003), 95%",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "summary": _summarise(per_fold, test_fraction),
        "models": {name: _summarise(values, test_fraction) for name, values in
                   per_model.items()},
        "fits": records,
    }


def crossval_from(bundle_or_config: str | Path, dataset: str | Path | None = None, *,
                  folds: int = 5, repeats: int = 1, data_dir: str | Path | None = None,
                  seed: int = 0, progress: bool = True, on_error: str = "skip"
                  ) -> dict[str, Any]:
    """Cross-validate the settings of a bundle, or of a JSON config file.

    A bundle contributes its plan overrides, its training configuration and (unless
    ``dataset`` is given) its dataset. A config file is ``{"dataset": ..., "plan": {...},
    "train": {TrainConfig fields}}``.
    """
    from meddx.decision.bundle import METADATA_FILE, load_bundle

    source = Path(bundle_or_config)
    if source.is_dir() or (source / METADATA_FILE).exists():
        metadata = load_bundle(source).metadata
        plan = metadata.get("plan_overrides") or {}
        train = dict(metadata.get("training", {}).get("config", {}))
        dataset = dataset or metadata.get("provenance", {}).get("dataset")
    elif source.is_file():
        try:
            settings = json.loads(source.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ConfigError(f"{source}: cannot read the configuration ({error})") from error
        if not isinstance(settings, dict):
            raise ConfigError(f"{source}: a configuration is a JSON object")
        unknown = sorted(set(settings) - {"dataset", "plan", "train"})
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {unknown} (expected dataset, plan, "
                              "train)")
        plan, train = settings.get("plan") or {}, settings.get("train") or {}
        dataset = dataset or settings.get("dataset")
    else:
        raise ConfigError(f"{source}: neither a bundle folder nor a JSON configuration file")
    if not dataset:
        raise ConfigError(f"{source}: no dataset named; pass --dataset")
    try:
        config = TrainConfig(**train)
    except TypeError as error:
        raise ConfigError(f"{source}: invalid training options ({error})") from error
    data = load_dataset(dataset, data_dir, on_error=on_error)
    return cross_validate(data, config=config, plan=plan, folds=folds, repeats=repeats,
                          seed=seed, progress=progress)
