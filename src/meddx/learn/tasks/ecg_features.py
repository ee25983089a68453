"""The feature model of the ECG beat recipe: gradient-boosted trees on per-beat features.

A model choice of the same recipe (``plan.model: "lightgbm"``), beside the 1D networks. Each
beat is described by the ``full`` feature set of :class:`~meddx.data.ecg.BeatConfig`: RR
intervals relative to the patient's own rhythm (pre/post RR, the averages over the neighbouring
10 beats and over +-150 s, their ratios), morphology relative to the record's median beat (the
P-wave, QRS and T regions' correlation and distance to it, QRS extremes and width), the same
morphology features standardised within the record, and a down-sampled beat shape. This is the
recipe of the inter-patient literature (de Chazal 2004, Mondejar-Guerra 2019): everything is
relative to the patient, so that a supraventricular beat is "premature and a little different
*for this patient*" whatever their heart rate and QRS shape.

LightGBM is trained on the training records with class weights ``(n / n_class) ** power`` and
early-stopped on the patient-wise validation records' class-weighted log-loss over their N, S and
V beats (:data:`STOP_CLASSES`). F and Q beats are left out of the stopping rule: F beats come
almost all from one DS1 patient (208) and are never learned from the others, so with them the
weighted log-loss rose from the first round and stopped the trees after one round, an all-N
model, on validation records 114 118 208 215. On the pooled DS1 cross-validation (with 20
smoothing neighbours) this rule gave macro-F1 0.510 (S Se/+P 0.751/0.532), against 0.501
(0.649/0.536) stopping on the validation macro-F1 and 0.499 on the unweighted log-loss (see
``benchmarks/ecg.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from meddx.data.ecg import (
    EXTENDED_RR_FEATURES,
    IRREGULARITY_FEATURES,
    SECOND_LEAD_PREFIX,
    SHAPE_POINTS,
    TREE_FEATURE_SETS,
    BeatConfig,
    BeatDataset,
    BeatSplit,
    feature_names,
    standardise_within_record,
)
from meddx.errors import BundleError, ConfigError, DataError
from meddx.learn.boosting import train_booster
from meddx.learn.evaluation.metrics import classification_metrics
from meddx.learn.tasks import FitOutput
from meddx.learn.trainer import TrainConfig

LGBM_FILE = "lightgbm.txt"
LGBM_DEFAULTS: dict[str, Any] = {
    # Shallow, strongly regularised trees: 22 patients, and the validation records stop the
    # boosting early (the model must not learn the training patients' quirks). Leaves and leaf
    # size chosen on the DS1 cross-validation's validation records (macro-F1 over N/S/V 0.835,
    # against 0.829 with 15 leaves of >= 100 beats and 0.826 with 31 of >= 50).
    "learning_rate": 0.05, "num_leaves": 7, "min_data_in_leaf": 300, "feature_fraction": 0.6,
    "bagging_fraction": 0.7, "bagging_freq": 1, "lambda_l2": 10.0, "verbose": -1,
}
MAX_ROUNDS = 600
EARLY_STOP = 50
STOP_CLASSES = ("N", "S", "V")
"""The classes whose validation beats early stopping watches (the AAMI comparison's classes)."""


def class_weights(counts: np.ndarray, power: float) -> np.ndarray:
    """Per-class sample weights ``(n / n_class) ** power``, mean 1 over the training beats."""
    counts = np.asarray(counts, np.float64)
    weights = np.where(counts > 0, (counts.sum() / np.maximum(counts, 1)) ** power, 0.0)
    return weights / (weights * counts).sum() * counts.sum()


def record_balance(labels: np.ndarray, records: np.ndarray, power: float) -> np.ndarray:
    """Per-beat weight multipliers, mean 1 within each class: within its class a beat weighs
    (its record's beats of that class) ** -``power``, so that a class's few beat-rich records
    (DS1: record 209 holds 383 of the 944 S beats) weigh less in what the class looks like and
    class totals stay as the class weights set them; 0 = every multiplier 1."""
    labels = np.asarray(labels)
    multipliers = np.ones(len(labels))
    if power == 0 or len(labels) == 0:
        return multipliers
    pairs = np.stack([np.asarray(records).astype(str), labels.astype(str)], axis=1)
    _, inverse, counts = np.unique(pairs, axis=0, return_inverse=True, return_counts=True)
    raw = counts[inverse.reshape(-1)].astype(np.float64) ** -power
    for label in np.unique(labels):
        mask = labels == label
        multipliers[mask] = raw[mask] / raw[mask].mean()
    return multipliers


def beat_features(split: BeatSplit, beat_config: dict[str, Any]) -> np.ndarray:
    """The feature matrix of a split, cut with the plan's beat options."""
    config = BeatConfig.from_dict(beat_config)
    if config.feature_set not in TREE_FEATURE_SETS:
        raise ConfigError(f"the lightgbm beat model needs beat option feature_set in "
                          f"{TREE_FEATURE_SETS}, got {config.feature_set!r}")
    return np.asarray(split.with_config(config).rr, np.float64)


def stopping_loss(weights: np.ndarray, classes: Sequence[int] | None = None
                  ) -> Callable[[np.ndarray, np.ndarray], float]:
    """The early-stopping score of the beat trees: minus the class-weighted log-loss of the
    validation beats of ``classes`` (all of them when none of those is present)."""
    def score(labels: np.ndarray, probs: np.ndarray) -> float:
        keep = np.isin(labels, classes) if classes is not None else np.ones(len(labels), bool)
        if not keep.any():
            keep[:] = True
        y = labels[keep]
        loss = -np.log(np.clip(probs[np.flatnonzero(keep), y], 1e-7, 1.0))
        return -float((weights[y] * loss).sum() / weights[y].sum())
    return score


def train_beat_booster(train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray | None,
                       val_y: np.ndarray | None, num_classes: int, power: float, seed: int,
                       names: list[str], params: dict[str, Any] | None = None,
                       num_threads: int = 1, rounds: int | None = None,
                       stop_classes: Sequence[int] | None = None,
                       row_weights: np.ndarray | None = None):
    """Class-weighted LightGBM on the named beat features, early-stopped on the validation
    beats' weighted log-loss over ``stop_classes`` (None: all), or (no validation beats)
    exactly ``rounds`` rounds; ``row_weights`` multiply the training beats' class weights."""
    weights = class_weights(np.bincount(train_y, minlength=num_classes), power)
    return train_booster(train_x, train_y, val_x, val_y, num_classes=num_classes,
                         feature_names=names,
                         params={**LGBM_DEFAULTS, **(params or {}), "seed": seed,
                                 "num_threads": num_threads},
                         max_rounds=MAX_ROUNDS if val_x is not None else rounds,
                         early_stopping=EARLY_STOP, class_weights=weights, min_leaf_share=0.05,
                         stop_score=stopping_loss(weights, stop_classes),
                         row_weights=row_weights)


def fit_lightgbm(plan, dataset: BeatDataset, train: BeatSplit, val: BeatSplit | None,
                 config: TrainConfig, split_seed: int, limitations: list[str],
                 rounds: int | None = None) -> FitOutput:
    """Train the feature model of a beat plan and package it like the networks are.

    ``val`` None (a refit on train + val): exactly ``rounds`` boosting rounds, the number the
    selection fit's early stopping chose.
    """
    from meddx.decision.ecg_predict import predictor_for
    from meddx.learn.tasks.ecg import fit_on_report

    num_classes = len(plan.class_names)
    start = time.perf_counter()
    train_x = beat_features(train, plan.beat_config)
    train_y = np.asarray(train.labels)
    counts = np.bincount(train_y, minlength=num_classes)
    if (counts > 0).sum() < 2:
        raise DataError(f"{dataset.name}: the training records hold a single beat class")
    names = feature_names(plan.beat_config["feature_set"])
    booster = train_beat_booster(
        train_x, train_y, None if val is None else beat_features(val, plan.beat_config),
        None if val is None else np.asarray(val.labels), num_classes, plan.imbalance_power,
        config.seed, names, plan.lightgbm, max(1, config.num_threads or 1), rounds,
        [plan.class_names.index(c) for c in STOP_CLASSES if c in plan.class_names],
        record_balance(train_y, train.records, plan.record_balance_power))
    # Without early stopping LightGBM reports best_iteration 0: every round is kept.
    kept_rounds = int(booster.best_iteration or booster.current_iteration())
    elapsed = time.perf_counter() - start
    text = booster.model_to_string()
    gain = booster.feature_importance("gain")
    top = np.argsort(gain)[::-1][:15]
    weights = class_weights(counts, plan.imbalance_power)
    metadata: dict[str, Any] = {
        "task": plan.task,
        "class_names": plan.class_names,
        "threshold": None,
        "plan": plan.to_dict(),
        "network": {"arch": "lightgbm", "features": names},
        "preprocessing": plan.beat_config,
        "imbalance": {"method": "weighted_loss", "power": plan.imbalance_power,
                      "train_counts": dict(zip(plan.class_names, counts.tolist(), strict=True)),
                      "loss_weights": dict(zip(plan.class_names, weights.round(4).tolist(),
                                               strict=True))},
        "intended_use": (
            "Research and decision support only: flags ectopic beats (AAMI classes) for review "
            "by a qualified reader, never a replacement. Not a certified medical device."),
        "limitations": limitations,
        "training": {"config": asdict(config), "model": "lightgbm",
                     "best_epoch": kept_rounds,  # boosting rounds
                     # LightGBM trims an early-stopped model to its best round; it ran
                     # EARLY_STOP rounds past it (or up to MAX_ROUNDS).
                     "epochs_run": kept_rounds if val is None else min(
                         kept_rounds + EARLY_STOP, MAX_ROUNDS),
                     "best_iteration": kept_rounds,
                     "elapsed_s": round(elapsed, 1), "stop_reason": (
                         "early stopping on the validation records' weighted log-loss "
                         f"over their {'/'.join(STOP_CLASSES)} beats"
                         if val is not None else f"{rounds} rounds, chosen by the selection "
                         "fit's early stopping"), **fit_on_report(plan, len(train_y)),
                     "feature_importance_gain": {names[i]: round(float(gain[i]), 1)
                                                 for i in top}},
        "record_split": dataset.record_split(split_seed),
        **smoothing_metadata(plan),
    }
    predictor = predictor_for(metadata, None, source="training", lgbm_text=text)
    metadata["metrics"] = {} if val is None else {"val": classification_metrics(
        np.asarray(val.labels), predictor.predict_split(val), plan.class_names,
        n_bootstrap=200, excused_calls=predictor.excused_calls)}
    return FitOutput(metadata, None, predictor, extra_files={LGBM_FILE: text})


def context_columns(names: list[str]) -> list[int]:
    """Columns describing a beat relative to its own record: RR relative to the patient's
    rhythm, the rhythm's irregularity, and each lead's morphology standardised within the record
    and minus the record's median beat (raw amplitudes and shapes vary with the patient)."""
    rhythm = set(EXTENDED_RR_FEATURES) | set(IRREGULARITY_FEATURES)
    return [i for i, name in enumerate(names)
            if name in rhythm or name.endswith("_z")
            or name.removeprefix(SECOND_LEAD_PREFIX).startswith("shape_minus_median_")]


def smoothing_metadata(plan) -> dict[str, str]:
    """The bundle's description of the plan's smoothing (empty when off)."""
    if not plan.smoothing_neighbours:
        return {}
    return {"post_processing": (
        f"each beat's probabilities averaged with those of its {plan.smoothing_neighbours} most "
        "similar beats of the same record, or one per 10 beats in a shorter record (rhythm and "
        "morphology relative to the record; Gaussian weights, the beat itself weight 1; no "
        "labels used)")}


def smooth_over_similar_beats(probs: np.ndarray, features: np.ndarray, names: list[str],
                              neighbours: int) -> np.ndarray:
    """One record's beat probabilities, each averaged with those of its most similar beats.

    Within one patient, beats of one kind look alike and come with the same rhythm, while the
    model, trained on other patients, errs beat by beat (an atrial-fibrillation patient's N beats
    called S here and there). Each beat's probabilities are averaged with those of its
    ``neighbours`` nearest beats of the record in the :func:`context_columns` (standardised
    within the record), weighted ``exp(-(d / h) ** 2)`` with ``h`` the record's median distance
    to the farthest of them, the beat itself with weight 1: a beat unlike the others (an
    isolated ectopic beat) keeps its own call. Records of fewer than ``10 * neighbours`` beats
    get one neighbour per 10 beats. Uses no labels; the record's beats only.

    Args:
        probs: ``(N, K)`` class probabilities of one record's beats.
        features: ``(N, F)`` the beats' tree features (columns named by ``names``).
        names: Feature names of a tree feature set (:func:`~meddx.data.ecg.feature_names`).
        neighbours: Similar beats each beat is averaged with.
    """
    from sklearn.neighbors import NearestNeighbors

    # A short strip gets one neighbour per 10 beats: with a 20-neighbour reach, the 4 V beats of
    # a 25-beat strip would be averaged into its N beats.
    k = min(int(neighbours), len(probs) // 10)
    if k < 1:
        return probs
    context = np.asarray(features, np.float64)[:, context_columns(names)]
    # Second-lead columns are missing (NaN) for single-lead records.
    context = standardise_within_record(context[:, np.isfinite(context).all(axis=0)])
    # A sparse (N, N) matrix of the distances to each beat's k neighbours (the beat itself left
    # out): the weighted sum is one product, without an (N, k, classes) array for a long record.
    graph = NearestNeighbors(n_neighbors=k).fit(context).kneighbors_graph(mode="distance")
    width = max(float(np.median(graph.max(axis=1).toarray())), 1e-6)
    graph.data = np.exp(-(graph.data / width) ** 2)
    probs = np.asarray(probs, np.float64)
    return (probs + graph @ probs) / (1.0 + np.asarray(graph.sum(axis=1)))


def smooth_within_records(probs: np.ndarray, features: np.ndarray, records: np.ndarray,
                          names: list[str], neighbours: int) -> np.ndarray:
    """Beats of several records, each record smoothed on its own beats
    (:func:`smooth_over_similar_beats`); ``records`` names each row's record."""
    smoothed = np.array(probs, np.float64)  # a copy: the caller keeps its unsmoothed values
    for record in np.unique(records):
        rows = np.flatnonzero(records == record)
        smoothed[rows] = smooth_over_similar_beats(smoothed[rows], features[rows], names,
                                                   neighbours)
    return smoothed


def read_booster_text(bundle_path: Path) -> str:
    """The LightGBM model text of a bundle folder."""
    path = Path(bundle_path) / LGBM_FILE
    if not path.is_file():
        raise BundleError(f"{bundle_path}: the bundle has no {LGBM_FILE} (a lightgbm ECG model)")
    return path.read_text(encoding="utf-8")


# Where in the beat window each morphology feature looks (seconds around the R peak); the
# standardised copies (suffix ``_z``) look at the same place.
_FEATURE_SPANS = {
    "corr_all": (-0.25, 0.45), "corr_p": (-0.25, -0.08), "rms_p": (-0.25, -0.08),
    "p_energy": (-0.25, -0.08), "corr_qrs": (-0.08, 0.08), "rms_qrs": (-0.08, 0.08),
    "qrs_max": (-0.08, 0.08), "qrs_min": (-0.08, 0.08), "qrs_width": (-0.08, 0.08),
    "pre_qrs_slope": (-0.08, 0.0), "corr_t": (0.1, 0.45), "rms_t": (0.1, 0.45),
}


def tree_saliency(booster, features: np.ndarray, targets: np.ndarray, length: int, pre: int,
                  fs: float) -> np.ndarray:
    """TreeSHAP |contribution| to each beat's class, spread over the window samples (N, L).

    Shape features cover their segment of the window, morphology features the P, QRS or T
    region they measure (contribution divided by the region's length), on either lead (the
    second lead's features mark the same time span); RR features have no place in the window and
    are left out of the trace.
    """
    names = booster.feature_name()
    n = len(features)
    contributions = np.asarray(booster.predict(np.asarray(features, np.float64),
                                               pred_contrib=True))
    k = contributions.shape[1] // (len(names) + 1)
    per_class = contributions.reshape(n, k, len(names) + 1)[:, :, :-1]
    chosen = np.abs(per_class[np.arange(n), np.asarray(targets)])  # (N, F)
    trace = np.zeros((n, length))
    edges = np.linspace(0, length, SHAPE_POINTS + 1).round().astype(int)
    for column, name in enumerate(names):
        base = name.removeprefix(SECOND_LEAD_PREFIX).removesuffix("_z")
        if base.startswith("shape_"):
            segment = int(base.rsplit("_", 1)[1])
            start, end = edges[segment], edges[segment + 1]
        elif base in _FEATURE_SPANS:
            lo, hi = _FEATURE_SPANS[base]
            start = int(np.clip(pre + round(lo * fs), 0, length - 1))
            end = int(np.clip(pre + round(hi * fs), start + 1, length))
        else:
            continue
        trace[:, start:end] += chosen[:, column:column + 1] / (end - start)
    return trace
