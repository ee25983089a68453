"""Gradient-boosted trees (LightGBM) for every recipe that has a tree model kind.

One place for what the tabular recipe and the ECG beat recipe share: the objective for the
number of classes, feature names LightGBM accepts, per-class sample weights, early stopping on
the validation split, reading a model back from a bundle and its scores. Each recipe keeps its
own hyper-parameter defaults (chosen on its own validation data).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from meddx.errors import BundleError


def safe_feature_name(name: str) -> str:
    """A feature name LightGBM accepts (it rejects JSON special characters)."""
    return "".join(ch if ch.isalnum() or ch in "_-." else "_" for ch in name)


def train_booster(train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray | None,
                  val_y: np.ndarray | None, *, num_classes: int, feature_names: list[str],
                  params: dict[str, Any], max_rounds: int, early_stopping: int,
                  class_weights: np.ndarray | None = None, min_leaf_share: float = 0.1,
                  stop_score: Callable[[np.ndarray, np.ndarray], float] | None = None,
                  row_weights: np.ndarray | None = None):
    """LightGBM on the named features, early-stopped on the validation split.

    Args:
        val_x, val_y: The validation split; None: exactly ``max_rounds`` rounds (a refit with
            the number of rounds chosen earlier).
        params: LightGBM parameters (the recipe's defaults merged with the plan's).
        max_rounds: Boosting rounds at most.
        early_stopping: Rounds without a better validation loss (or ``stop_score``) before
            stopping.
        class_weights: Per-class sample weights (``None``: unweighted); the validation loss is
            weighted the same way, so that early stopping looks at the loss being optimised.
        min_leaf_share: ``min_data_in_leaf`` is at most this share of the training rows (small
            datasets would otherwise grow no tree at all).
        stop_score: ``score(labels, probabilities)``, higher is better, that early stopping
            watches instead of the (weighted) log-loss.
        row_weights: Per-row multipliers of the training rows' weights (None: all 1).

    Returns:
        The booster (binary objective for 2 classes, multi-class otherwise).
    """
    import lightgbm

    config = dict(params)
    if num_classes == 2:
        config.update(objective="binary", metric="binary_logloss")
    else:
        config.update(objective="multiclass", metric="multi_logloss", num_class=num_classes)
    config["min_data_in_leaf"] = min(config.get("min_data_in_leaf", 20),
                                     max(2, int(len(train_y) * min_leaf_share)))
    names = [safe_feature_name(name) for name in feature_names]
    weight = (lambda y: None) if class_weights is None else (lambda y: class_weights[y])
    train_weight = weight(train_y)
    if row_weights is not None:
        train_weight = np.asarray(row_weights, np.float64) * (
            1.0 if train_weight is None else train_weight)
    train = lightgbm.Dataset(train_x, label=train_y, weight=train_weight, feature_name=names,
                             free_raw_data=False)
    if val_x is None:
        return lightgbm.train(config, train, num_boost_round=max_rounds)
    valid = lightgbm.Dataset(val_x, label=val_y, weight=weight(val_y), reference=train,
                             feature_name=names)
    feval = None
    if stop_score is not None:
        config["metric"] = "None"

        def feval(preds, dataset):
            probs = np.asarray(preds, np.float64)
            if probs.ndim == 1:
                probs = np.stack([1.0 - probs, probs], axis=1)
            return "stop_score", float(stop_score(dataset.get_label().astype(int), probs)), True

    return lightgbm.train(config, train, num_boost_round=max_rounds, valid_sets=[valid],
                          feval=feval,
                          callbacks=[lightgbm.early_stopping(early_stopping, verbose=False)])


def load_booster(text: str, source: str = "bundle"):
    """A LightGBM model from its text format (as stored in a bundle).

    Raises:
        BundleError: The text is not a LightGBM model.
    """
    import lightgbm

    try:
        return lightgbm.Booster(model_str=text)
    except lightgbm.basic.LightGBMError as error:
        raise BundleError(f"{source}: cannot read the LightGBM model ({error})") from error


def booster_scores(booster, features: np.ndarray, num_classes: int) -> np.ndarray:
    """Raw scores ``(N, K)``; a binary model's log-odds become ``[0, log-odds]``, so that a
    softmax gives its probabilities."""
    raw = np.asarray(booster.predict(np.asarray(features, np.float64), raw_score=True),
                     dtype=np.float64)
    if num_classes == 2:
        return np.stack([np.zeros_like(raw), raw], axis=1)
    return raw.reshape(len(features), num_classes)


def booster_probs(booster, features: np.ndarray, num_classes: int) -> np.ndarray:
    """Class probabilities ``(N, K)``."""
    probs = np.asarray(booster.predict(np.asarray(features, np.float64)), np.float64)
    if num_classes == 2:
        return np.stack([1.0 - probs, probs], axis=1)
    return probs.reshape(len(features), num_classes)
