"""Task recipe: risk prediction from clinical records (tables of measurements).

Stages, each with a readable artifact: the schema (how the table was read, ``schema.json``), the
preprocessing fitted on the training split (imputation, scaling, missing-value indicators,
one-hot codes; plain JSON in the bundle, never pickle), then two models trained on the same
features and both reported:

* a neural network (an MLP) trained by the one :class:`~meddx.learn.trainer.Trainer`;
* a gradient-boosting baseline (LightGBM, early-stopped on validation), stored in LightGBM's own
  text model format.

Each model's probabilities are calibrated on the validation split (Platt scaling for two
classes, temperature scaling for more). The bundle holds both models and uses the one with the
best validation AUC among the MLP, LightGBM and their average (``plan.model = "auto"``); the
binary decision threshold is chosen on validation too.

Data handling: values that are missing (``?``, empty, an impossible zero) are imputed with the
training median and flagged by an indicator feature; an unseen category counts as missing (with a
warning); numeric values outside the training range are clipped to it (with a warning).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.optimize import minimize_scalar
from torch import nn
from torch.nn import functional

from meddx.data.tabular import TabularDataset, TabularSchema, canonical_category
from meddx.errors import ConfigError, DataError
from meddx.learn.boosting import booster_scores, train_booster
from meddx.learn.evaluation.metrics import choose_threshold, classification_metrics, quick_auc
from meddx.learn.tasks import FitOutput, check_splits, resolve_plan
from meddx.learn.trainer import TrainConfig, Trainer

log = logging.getLogger(__name__)

TASK_NAME = "tabular-classification"
LGBM_FILE = "lightgbm.txt"
SCHEMA_FILE = "schema.json"
MODELS = ("mlp", "lightgbm", "ensemble")


# --------------------------------------------------------------------------------------------
# Plan
# --------------------------------------------------------------------------------------------


@dataclass
class TabularPlan:
    """Model options (``meddx train --plan``); saved as ``plan.json`` and in the bundle.

    Attributes:
        model: ``auto`` (best validation AUC), ``mlp``, ``lightgbm`` or ``ensemble``.
        hidden: MLP hidden layer widths.
        dropout: MLP dropout.
        batch_size: MLP batch size.
        lightgbm: LightGBM parameters (merged over small-data defaults).
        max_rounds: maximum boosting rounds (early stopping on validation decides).
        threshold_method: ``youden`` or ``f1`` (binary decision threshold on validation).
        background_size: k-means centroids of the training records used as the SHAP
            background (individual records are never stored in the bundle).
    """

    model: str = "auto"
    hidden: list[int] = field(default_factory=lambda: [64, 64])
    dropout: float = 0.2
    batch_size: int = 32
    lightgbm: dict[str, Any] = field(default_factory=dict)
    max_rounds: int = 1000
    threshold_method: str = "youden"
    background_size: int = 40

    def __post_init__(self) -> None:
        if self.model not in ("auto", *MODELS):
            raise ConfigError(f"plan model must be auto, mlp, lightgbm or ensemble, not "
                              f"{self.model!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TabularPlan:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown plan option(s) {unknown} for tabular data (known: "
                              f"{sorted(known)})")
        return cls(**data)


LGBM_DEFAULTS: dict[str, Any] = {
    "learning_rate": 0.03, "num_leaves": 7, "min_data_in_leaf": 10, "feature_fraction": 0.8,
    "bagging_fraction": 0.8, "bagging_freq": 1, "lambda_l2": 1.0, "verbose": -1,
    "num_threads": 1, "deterministic": True, "force_col_wise": True,
}


# --------------------------------------------------------------------------------------------
# Preprocessing (JSON-able)
# --------------------------------------------------------------------------------------------


@dataclass
class TabularPreprocessing:
    """Schema-aware encoding of records into model features, fitted on training rows only.

    Two steps: :meth:`encode` turns a frame into one number per measurement (the value, or the
    category's index; NaN = missing), the space in which explanations are computed; :meth:`expand`
    turns that into model features (clip to the training range, impute the median, standardise,
    missing indicators, one-hot categories).
    """

    columns: list[dict[str, Any]]

    @classmethod
    def fit(cls, schema: TabularSchema, frame: pd.DataFrame) -> TabularPreprocessing:
        columns = []
        for col in schema.columns:
            values = frame[col.name]
            if col.kind == "numeric":
                x = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
                present = x[~np.isnan(x)]
                median = float(np.median(present)) if present.size else 0.0
                filled = np.where(np.isnan(x), median, x)
                std = float(filled.std())
                columns.append({
                    "name": col.name, "kind": "numeric",
                    "zero_means_missing": col.zero_means_missing, "median": median,
                    "mean": float(filled.mean()), "std": std if std > 1e-8 else 1.0,
                    "min": float(present.min()) if present.size else None,
                    "max": float(present.max()) if present.size else None,
                    "indicator": bool(0 < np.isnan(x).sum() < len(x))})
            else:
                seen = sorted({canonical_category(v) for v in values if _present(v)})
                columns.append({"name": col.name, "kind": "categorical", "categories": seen,
                                "indicator": bool(any(not _present(v) for v in values))})
        return cls(columns)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TabularPreprocessing:
        return cls(list(data["columns"]))

    @property
    def names(self) -> list[str]:
        return [c["name"] for c in self.columns]

    @property
    def feature_names(self) -> list[str]:
        """Names of the expanded model features."""
        names = []
        for col in self.columns:
            if col["kind"] == "numeric":
                names.append(col["name"])
            else:
                names += [f"{col['name']}={c}" for c in col["categories"]]
            if col["indicator"]:
                names.append(f"{col['name']} missing")
        return names

    def encode(self, frame: pd.DataFrame, sources: Sequence[str] | None = None,
               ) -> tuple[np.ndarray, list[list[str]]]:
        """Measurements (N, C) float64, NaN = missing, and per-row warnings.

        Raises:
            DataError: a needed column is absent, a numeric value is not a number or infinite.
        """
        absent = [n for n in self.names if n not in frame.columns]
        if absent:
            raise DataError(f"column(s) {absent} are missing (the model needs {self.names})")
        n = len(frame)
        sources = sources or [f"row {i + 1}" for i in range(n)]
        out = np.full((n, len(self.columns)), np.nan)
        warnings: list[list[str]] = [[] for _ in range(n)]
        for j, col in enumerate(self.columns):
            values = frame[col["name"]].tolist()
            if col["kind"] == "numeric":
                for i, value in enumerate(values):
                    out[i, j] = _as_number(value, col["name"], sources[i])
                if col["zero_means_missing"]:
                    out[out[:, j] == 0, j] = np.nan
                low, high = col["min"], col["max"]
                for i in np.flatnonzero(~np.isnan(out[:, j])):
                    v = out[i, j]
                    if (low is not None and v < low) or (high is not None and v > high):
                        warnings[i].append(
                            f"{col['name']}={v:g} is outside the training range "
                            f"{low:g}-{high:g}; the model uses the nearest limit")
            else:
                index = {c: k for k, c in enumerate(col["categories"])}
                for i, value in enumerate(values):
                    if not _present(value):
                        continue
                    key = canonical_category(value)
                    if key in index:
                        out[i, j] = index[key]
                    else:
                        warnings[i].append(
                            f"{col['name']}={key!r} is a category the model never saw (known: "
                            f"{col['categories']}); treated as missing")
        return out, warnings

    def expand(self, encoded: np.ndarray) -> np.ndarray:
        """Model features (N, F) float32 from :meth:`encode`'s measurements."""
        blocks = []
        for j, col in enumerate(self.columns):
            x = encoded[:, j]
            missing = np.isnan(x)
            if col["kind"] == "numeric":
                low = -np.inf if col["min"] is None else col["min"]
                high = np.inf if col["max"] is None else col["max"]
                filled = np.clip(np.where(missing, col["median"], x), low, high)
                blocks.append(((filled - col["mean"]) / col["std"])[:, None])
            else:
                k = len(col["categories"])
                onehot = np.zeros((len(x), k))
                rows = np.flatnonzero(~missing)
                codes = x[rows].astype(np.int64)
                valid = (codes >= 0) & (codes < k)
                onehot[rows[valid], codes[valid]] = 1.0
                blocks.append(onehot)
            if col["indicator"]:
                blocks.append(missing.astype(np.float64)[:, None])
        return np.concatenate(blocks, axis=1).astype(np.float32)

    def describe(self, encoded_row: np.ndarray) -> list[str]:
        """Human-readable value of each measurement of one encoded row."""
        text = []
        for value, col in zip(encoded_row, self.columns, strict=True):
            if np.isnan(value):
                text.append("missing")
            elif col["kind"] == "numeric":
                text.append(f"{value:g}")
            else:
                text.append(col["categories"][int(value)])
        return text

    def background(self, encoded: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
        """k-means centroids of imputed training measurements (no individual records).

        Categorical codes are snapped to the nearest valid code after averaging.
        """
        from sklearn.cluster import KMeans

        filled = encoded.copy()
        for j, col in enumerate(self.columns):
            if col["kind"] == "numeric":
                filled[np.isnan(filled[:, j]), j] = col["median"]
            else:
                codes = filled[~np.isnan(filled[:, j]), j]
                mode = float(np.bincount(codes.astype(int)).argmax()) if codes.size else 0.0
                filled[np.isnan(filled[:, j]), j] = mode
        k = min(size, len(np.unique(filled, axis=0)))
        scale = filled.std(axis=0)
        scale[scale < 1e-8] = 1.0
        km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(filled / scale)
        centres = km.cluster_centers_ * scale
        for j, col in enumerate(self.columns):
            if col["kind"] == "categorical":
                top = max(len(col["categories"]) - 1, 0)
                centres[:, j] = np.clip(np.round(centres[:, j]), 0, top)
        return centres


def _present(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, float) and math.isnan(value):
        return False
    return not (isinstance(value, str) and value.strip() == "")


def _as_number(value: Any, column: str, source: str) -> float:
    if not _present(value):
        return np.nan
    if isinstance(value, bool):
        return float(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{source}: column {column!r}: {value!r} is not a number") from None
    if math.isinf(number):
        raise DataError(f"{source}: column {column!r}: infinite value")
    return number


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


class TabularMLP(nn.Module):
    """Multilayer perceptron for standardised record features: [Linear-SiLU-Dropout] x L."""

    def __init__(self, in_features: int, num_classes: int, hidden: Sequence[int] = (64, 64),
                 dropout: float = 0.2):
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for size in hidden:
            layers += [nn.Linear(width, size), nn.SiLU(), nn.Dropout(dropout)]
            width = size
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def build_mlp(network: dict[str, Any]) -> TabularMLP:
    return TabularMLP(network["in_features"], network["num_classes"], network["hidden"],
                      network["dropout"])


def mlp_scores(model: nn.Module | NumpyMLP, features: np.ndarray) -> np.ndarray:
    """Logits (N, K) of the MLP (torch module during training, numpy copy at inference)."""
    if isinstance(model, NumpyMLP):
        return model(features)
    device = next(model.parameters()).device
    model.eval()
    with torch.no_grad():
        return model(torch.from_numpy(np.ascontiguousarray(features, np.float32))
                     .to(device)).float().cpu().numpy().astype(np.float64)


class NumpyMLP:
    """The trained MLP's forward pass in numpy (inference only: no dropout).

    Explanations evaluate the model on tens of thousands of small batches; numpy avoids torch's
    per-call overhead there.
    """

    def __init__(self, state_dict: dict[str, torch.Tensor]):
        weights = sorted(k for k in state_dict if k.endswith(".weight"))
        weights.sort(key=lambda k: int(k.split(".")[1]))
        self.layers = [(state_dict[k].detach().cpu().double().numpy().T,
                        state_dict[k[:-len("weight")] + "bias"].detach().cpu().double().numpy())
                       for k in weights]

    def __call__(self, features: np.ndarray) -> np.ndarray:
        x = np.asarray(features, dtype=np.float64)
        for i, (weight, bias) in enumerate(self.layers):
            x = x @ weight + bias
            if i < len(self.layers) - 1:
                x = x / (1.0 + np.exp(-x))  # SiLU
        return x


def softmax(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def fit_calibration(scores: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Platt scaling (binary) or temperature scaling (multi-class) fitted on validation scores."""
    labels = np.asarray(labels)
    if scores.shape[1] == 2:
        z = scores[:, 1] - scores[:, 0]
        if len(np.unique(labels)) < 2:
            return {"method": "platt", "a": 1.0, "b": 0.0}
        from sklearn.linear_model import LogisticRegression

        lr = LogisticRegression(C=100.0).fit(z[:, None], labels)
        a = float(lr.coef_[0, 0])
        if a <= 0:  # a validation set this small cannot justify flipping the ranking
            return {"method": "platt", "a": 1.0, "b": 0.0}
        return {"method": "platt", "a": a, "b": float(lr.intercept_[0])}

    def nll(log_t: float) -> float:
        probs = softmax(scores / math.exp(log_t))
        return float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, 1)).mean())

    best = minimize_scalar(nll, bounds=(-3, 3), method="bounded")
    return {"method": "temperature", "t": float(math.exp(best.x))}


def calibrated_log_odds(scores: np.ndarray, calibration: dict[str, Any]) -> np.ndarray:
    """Calibrated scores: log-odds (N,) for two classes, logits (N, K) otherwise."""
    if calibration["method"] == "platt":
        return calibration["a"] * (scores[:, 1] - scores[:, 0]) + calibration["b"]
    return scores / calibration["t"]


def calibrated_probs(scores: np.ndarray, calibration: dict[str, Any]) -> np.ndarray:
    z = calibrated_log_odds(scores, calibration)
    if z.ndim == 1:
        p1 = 1.0 / (1.0 + np.exp(-z))
        return np.stack([1 - p1, p1], axis=1)
    return softmax(z)


class TabularTask:
    """The trainer's view of the MLP on record features (see ``TrainableTask``)."""

    selection_metric = "auc"

    def __init__(self, network: dict[str, Any], plan: TabularPlan, train_x: np.ndarray,
                 train_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray):
        self.network = network
        self.plan = plan
        self.train_x = torch.from_numpy(train_x)
        self.train_y = torch.as_tensor(train_y, dtype=torch.long)
        self.val_x = val_x
        self.val_y = np.asarray(val_y)

    def build_model(self) -> nn.Module:
        return build_mlp(self.network)

    def num_train_batches(self) -> int:
        return -(-len(self.train_x) // self.plan.batch_size)

    def train_batches(self, epoch: int, generator: torch.Generator) -> Iterator[tuple]:
        order = torch.randperm(len(self.train_x), generator=generator)
        for start in range(0, len(order), self.plan.batch_size):
            index = order[start:start + self.plan.batch_size]
            yield self.train_x[index], self.train_y[index]

    def training_loss(self, model: nn.Module, batch: tuple) -> torch.Tensor:
        inputs, targets = batch
        device = next(model.parameters()).device
        return functional.cross_entropy(model(inputs.to(device)).float(), targets.to(device))

    def validate(self, model: nn.Module) -> dict[str, float]:
        probs = softmax(mlp_scores(model, self.val_x))
        loss = float(-np.log(np.clip(probs[np.arange(len(self.val_y)), self.val_y], 1e-7, 1))
                     .mean())
        return {"auc": quick_auc(self.val_y, probs),
                "accuracy": float((probs.argmax(1) == self.val_y).mean()), "loss": loss}


# --------------------------------------------------------------------------------------------
# fit
# --------------------------------------------------------------------------------------------


def fit(dataset: TabularDataset, work_dir: Path, config: TrainConfig,
        plan: dict[str, Any] | None = None, resume: bool = False, progress: bool = True,
        split_seed: int = 0) -> FitOutput:
    """Preprocess, train the MLP (one Trainer) and LightGBM, calibrate, choose on validation."""
    from meddx.decision.tabular_predict import TabularPredictor

    plan_obj = resolve_plan(work_dir, resume, lambda: TabularPlan.from_dict(dict(plan or {})),
                            TabularPlan.from_dict)
    class_names = list(dataset.class_names)
    k = len(class_names)
    train = dataset.split("train", seed=split_seed)
    val = dataset.split("val", seed=split_seed)
    check_splits(train, val, class_names, dataset.name)
    dataset.schema.save(Path(work_dir) / SCHEMA_FILE)

    prep = TabularPreprocessing.fit(dataset.schema, train.features)
    train_m, _ = prep.encode(train.features, train.sources)
    val_m, _ = prep.encode(val.features, val.sources)
    train_x, val_x = prep.expand(train_m), prep.expand(val_m)
    network = {"arch": "mlp", "in_features": train_x.shape[1], "num_classes": k,
               "hidden": list(plan_obj.hidden), "dropout": plan_obj.dropout}

    task = TabularTask(network, plan_obj, train_x, train.labels, val_x, val.labels)
    result = Trainer(config, work_dir, progress=progress).fit(task, resume=resume)
    mlp_val = mlp_scores(result.model, val_x)
    booster = train_booster(train_x, train.labels, val_x, val.labels, num_classes=k,
                            feature_names=prep.feature_names,
                            params={**LGBM_DEFAULTS, **plan_obj.lightgbm, "seed": config.seed},
                            max_rounds=plan_obj.max_rounds, early_stopping=100)
    lgbm_val = booster_scores(booster, val_x, k)
    calibration = {"mlp": fit_calibration(mlp_val, val.labels),
                   "lightgbm": fit_calibration(lgbm_val, val.labels)}
    probs = {"mlp": calibrated_probs(mlp_val, calibration["mlp"]),
             "lightgbm": calibrated_probs(lgbm_val, calibration["lightgbm"])}
    probs["ensemble"] = (probs["mlp"] + probs["lightgbm"]) / 2
    val_auc = {name: quick_auc(val.labels, p) for name, p in probs.items()}
    if plan_obj.model == "auto":
        # Ties go to the simpler single model, in MODELS order.
        chosen = max(MODELS, key=lambda m: (np.nan_to_num(val_auc[m], nan=-1.0),
                                            -MODELS.index(m)))
    else:
        chosen = plan_obj.model
    threshold = None
    if k == 2:
        threshold = choose_threshold(val.labels, probs[chosen][:, 1],
                                     method=plan_obj.threshold_method)
    models: dict[str, Any] = {}
    for name in MODELS:
        t = choose_threshold(val.labels, probs[name][:, 1], method=plan_obj.threshold_method) \
            if k == 2 else None
        models[name] = {"val": classification_metrics(val.labels, probs[name], class_names,
                                                      threshold=t, n_bootstrap=200),
                        "threshold": t}
    models["lightgbm"]["best_iteration"] = int(booster.best_iteration or booster.num_trees())
    log.info("validation AUC: %s; chosen: %s", val_auc, chosen)

    metadata: dict[str, Any] = {
        "task": TASK_NAME,
        "intended_use": (
            "Research and decision support only: a risk estimate from routine measurements, with "
            "the measurements that raised or lowered it (SHAP), for a clinician to weigh. Not a "
            "certified medical device; validate on local records before use (case mix, units "
            "and missing-value conventions differ between hospitals)."),
        "limitations": [
            "Probabilities are calibrated on one validation split; recalibrate for a population "
            "with a different disease prevalence.",
            "SHAP values explain the model's output, not causes in the patient.",
            "Values outside the training range, and categories never seen in training, are "
            "treated as missing (with a warning).",
        ],
        "class_names": class_names,
        "threshold": threshold,
        "threshold_method": plan_obj.threshold_method if threshold is not None else None,
        "plan": plan_obj.to_dict(),
        "plan_overrides": dict(plan or {}),
        "chosen_model": chosen,
        "network": network,
        "schema": dataset.schema.to_dict(),
        "preprocessing": prep.to_dict(),
        "calibration": calibration,
        "explain": {"method": "SHAP (permutation, shap package) of the calibrated log-odds",
                    "background": prep.background(train_m, plan_obj.background_size,
                                                  config.seed).tolist()},
        "models": models,
        "training": {"config": asdict(config), "best_epoch": result.best_epoch,
                     "best_val_auc": result.best_score, "epochs_run": len(result.history),
                     "stop_reason": result.stop_reason, "elapsed_s": round(result.elapsed_s, 1),
                     "history": result.history},
        "metrics": {"val": models[chosen]["val"]},
    }
    state = {k_: v.detach().cpu() for k_, v in result.model.state_dict().items()}
    lgbm_text = booster.model_to_string()
    predictor = TabularPredictor(metadata, state, lgbm_text, source=str(work_dir))
    return FitOutput(metadata, state, predictor,
                     extra_files={LGBM_FILE: lgbm_text,
                                  SCHEMA_FILE: json.dumps(dataset.schema.to_dict(), indent=2)})
