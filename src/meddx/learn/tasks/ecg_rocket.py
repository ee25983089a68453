"""The MiniRocket model of the ECG series recipe: random convolution features + a linear model.

A model choice of the series recipe (``plan.model: "minirocket"``), beside the 1D networks.
MiniRocket (Dempster, Schmidt & Webb, KDD 2021; sktime's
:class:`~sktime.transformations.rocket.MiniRocket`) convolves each z-normalised series with 84
fixed length-9 kernels at several dilations and keeps, per kernel, dilation and bias, the
proportion of positive values (PPV) of the output: ~10,000 features. Its only fitted parameters
are the dilations and the biases (quantiles of the training series' convolution outputs).
A :class:`~sklearn.preprocessing.StandardScaler` and an L2-regularised
:class:`~sklearn.linear_model.LogisticRegression` on top give class probabilities, which the
clinical statistics, calibration and the workstation need (the ridge classifier of the paper has
none). Training takes about a second; there are no epochs.

Storage needs no pickle: the MiniRocket parameters (dilations, features per dilation, biases),
the scaler's mean and scale and the classifier's coefficients and intercept are tensors of the
bundle's state dict (``weights.pt``, read with ``weights_only=True``), and :class:`RocketModel`
rebuilds the transform from them without refitting.

Explanations: gradients mean nothing through the PPV features (a step function of the input), so
the saliency is Captum's :class:`~captum.attr.Occlusion` (Zeiler & Fergus, ECCV 2014): windows of
:data:`OCCLUSION_WINDOW` samples set to 0 (the z-normalised mean), sliding by
:data:`OCCLUSION_STRIDE`; a sample's attribution is the mean drop of the predicted class's
probability over the windows covering it.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

import numpy as np
import torch
from torch import nn

from meddx.data.datasets import SplitData
from meddx.errors import BundleError, ConfigError, DataError
from meddx.learn.evaluation.metrics import classification_metrics
from meddx.learn.tasks import FitOutput
from meddx.learn.trainer import TrainConfig

MINIROCKET = "minirocket"
ROCKET_DEFAULTS: dict[str, Any] = {
    # The paper's 10,000 features and 32 dilations per kernel.
    "num_kernels": 10_000,
    "max_dilations_per_kernel": 32,
    # Inverse L2 strength of the logistic regression, fixed a priori from the stratified 5-fold
    # CV on the 100 ECG200 TRAIN series (MiniRocket seeds 0-2, 80 series per fit): accuracy
    # cannot tell C = 1e-3 ... 1 apart (0.88-0.91, one SE is 0.03), the log-loss can:
    # 0.295-0.309 at C = 1e-3, 0.33-0.35 at 1e-2, 0.42-0.45 at 0.1, 0.51-0.56 at 1, 0.37-0.39
    # at 1e-4. Probabilities are what the workstation shows, so the proper score picks.
    "C": 1e-3,
}
STATE_KEYS = ("minirocket.dilations", "minirocket.num_features_per_dilation",
              "minirocket.biases", "scaler.mean", "scaler.scale", "classifier.coef",
              "classifier.intercept")
OCCLUSION_WINDOW = 8
"""Samples set to the baseline at once: 1/12 of an ECG200 beat (96 samples), about the width of
its QRS complex, so blanking one wave at a time; a single sample would barely move the PPV
features (each pools over the whole series)."""
OCCLUSION_STRIDE = 4
"""Half a window: every sample is covered by two windows (a smoother map for twice the cost)."""
EXPLANATION_METHOD = (f"occlusion (Captum; {OCCLUSION_WINDOW}-sample windows, stride "
                      f"{OCCLUSION_STRIDE}, baseline 0 = the series mean; |drop of the predicted "
                      "class's probability|, 0-1 per series)")
LIMITATION = ("MiniRocket features are proportions of positive convolution outputs; the "
              "occlusion saliency shows which stretches of the series moved the probability when "
              "blanked, not which shape the model looks for.")


def rocket_options(plan) -> dict[str, Any]:
    """The plan's MiniRocket options over :data:`ROCKET_DEFAULTS`, checked."""
    options = {**ROCKET_DEFAULTS, **(plan.minirocket or {})}
    unknown = sorted(set(options) - set(ROCKET_DEFAULTS))
    if unknown:
        raise ConfigError(f"plan.minirocket: unknown option(s) {unknown}; known: "
                          f"{sorted(ROCKET_DEFAULTS)}")
    if int(options["num_kernels"]) < 84:
        raise ConfigError(f"plan.minirocket.num_kernels must be >= 84 (one per MiniRocket "
                          f"kernel), got {options['num_kernels']}")
    if float(options["C"]) <= 0:
        raise ConfigError(f"plan.minirocket.C must be > 0, got {options['C']}")
    return options


def _transformer(options: dict[str, Any], seed: int | None = None):
    from sktime.transformations.rocket import MiniRocket

    # One numba thread: the machines this runs on share their cores (and the transform of a
    # few hundred series takes well under a second).
    return MiniRocket(num_kernels=int(options["num_kernels"]),
                      max_dilations_per_kernel=int(options["max_dilations_per_kernel"]),
                      n_jobs=1, random_state=seed)


class RocketModel:
    """A fitted MiniRocket transform, scaler and logistic regression, as plain arrays.

    Args:
        parameters: MiniRocket's ``(dilations, num_features_per_dilation, biases)``.
        mean, scale: the scaler's per-feature mean and scale.
        coef, intercept: the logistic regression's ``(1 or K, F)`` coefficients and intercepts.
    """

    def __init__(self, parameters: tuple[np.ndarray, np.ndarray, np.ndarray], mean: np.ndarray,
                 scale: np.ndarray, coef: np.ndarray, intercept: np.ndarray):
        self.parameters = (np.ascontiguousarray(parameters[0], np.int32),
                           np.ascontiguousarray(parameters[1], np.int32),
                           np.ascontiguousarray(parameters[2], np.float32))
        self.mean = np.asarray(mean, np.float64)
        self.scale = np.asarray(scale, np.float64)
        self.coef = np.asarray(coef, np.float64)
        self.intercept = np.asarray(intercept, np.float64)
        self.transformer = _transformer(ROCKET_DEFAULTS)
        # The transform needs only its parameters: set them and mark it fitted (sktime's fit
        # would recompute the biases from training data the bundle does not carry).
        self.transformer.parameters = self.parameters
        self.transformer.num_kernels_ = len(self.parameters[2])
        self.transformer._is_fitted = True

    @property
    def num_features(self) -> int:
        return len(self.parameters[2])

    @property
    def num_parameters(self) -> int:
        """Fitted numbers: dilations, biases, scaler and classifier."""
        return int(sum(np.size(a) for a in (*self.parameters, self.mean, self.scale, self.coef,
                                             self.intercept)))

    def features(self, x: np.ndarray | torch.Tensor) -> np.ndarray:
        """Standardised MiniRocket features (N, F) of z-normalised series (N, 1, L)."""
        x = np.asarray(x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x,
                       np.float32)
        if x.ndim != 3 or x.shape[1] != 1:
            raise DataError(f"MiniRocket takes series shaped (N, 1, L), got {x.shape}")
        raw = self.transformer.transform(x).to_numpy(np.float64)
        return (raw - self.mean) / self.scale

    def predict_proba(self, x: np.ndarray | torch.Tensor) -> np.ndarray:
        """Class probabilities (N, K): the logistic regression's, computed from its arrays."""
        scores = self.features(x) @ self.coef.T + self.intercept
        if self.coef.shape[0] == 1:  # binary: sklearn keeps one row, for the second class
            scores = np.concatenate([np.zeros_like(scores), scores], axis=1)
        scores -= scores.max(axis=1, keepdims=True)
        probs = np.exp(scores)
        return probs / probs.sum(axis=1, keepdims=True)

    def state_dict(self) -> dict[str, torch.Tensor]:
        arrays = (*self.parameters, self.mean, self.scale, self.coef, self.intercept)
        return {key: torch.from_numpy(np.array(value)) for key, value in
                zip(STATE_KEYS, arrays, strict=True)}

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor] | None,
                        source: str = "bundle") -> RocketModel:
        """Rebuild the model from :meth:`state_dict`'s tensors (no refit, no pickle)."""
        missing = [key for key in STATE_KEYS if key not in (state or {})]
        if missing:
            raise BundleError(f"{source}: a minirocket ECG model needs the weights {missing}")
        arrays = [state[key].cpu().numpy() for key in STATE_KEYS]
        model = cls(tuple(arrays[:3]), *arrays[3:])
        if not (len(model.mean) == len(model.scale) == model.coef.shape[1]
                == model.num_features):
            raise BundleError(f"{source}: the minirocket weights disagree in their number of "
                              f"features ({model.num_features} biases, {len(model.mean)} "
                              f"scaler means, {model.coef.shape[1]} coefficients)")
        return model


class RocketProbabilities(nn.Module):
    """A torch view of a :class:`RocketModel`: series (N, 1, L) -> class probabilities (N, K).

    Not differentiable (the features are computed outside torch); for perturbation methods.
    """

    def __init__(self, model: RocketModel):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.model.predict_proba(x)).to(x.device, torch.float32)


def occlusion_saliency(model: RocketModel, x: torch.Tensor, targets: np.ndarray) -> np.ndarray:
    """|Occlusion attribution| of each sample to the given class (N, L); see the module doc."""
    from captum.attr import Occlusion

    occlusion = Occlusion(RocketProbabilities(model))
    attributions = occlusion.attribute(
        x.float().cpu(), sliding_window_shapes=(1, OCCLUSION_WINDOW),
        strides=(1, OCCLUSION_STRIDE), baselines=0.0,
        target=torch.as_tensor(np.asarray(targets), dtype=torch.long),
        perturbations_per_eval=64)
    return attributions.abs().sum(dim=1).numpy()


def imbalance_weights(counts: np.ndarray, plan) -> np.ndarray:
    """Per-class sample weights for the plan's imbalance handling, mean 1 over the examples.

    ``weighted_loss``: ``(n / n_class) ** power`` as the networks' loss weights; ``sampler``: the
    weights whose expected loss equals that of the networks' tempered sampling (share / count);
    ``none``: 1.
    """
    from meddx.learn.tasks.ecg import class_shares
    from meddx.learn.tasks.ecg_features import class_weights

    counts = np.asarray(counts, np.float64)
    if plan.imbalance == "weighted_loss":
        return class_weights(counts, plan.imbalance_power)
    if plan.imbalance == "sampler":
        weights = class_shares(counts, plan) / np.maximum(counts, 1)
    else:
        weights = np.ones_like(counts)
    return weights / (weights * counts).sum() * counts.sum()


def fit_minirocket(plan, dataset, train: SplitData, val: SplitData | None, config: TrainConfig,
                   limitations: list[str]) -> FitOutput:
    """Fit MiniRocket + scaler + logistic regression on the training split; package it."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from meddx.decision.ecg_predict import predictor_for
    from meddx.learn.tasks.ecg import check_not_empty, fit_on_report, series_inputs

    source = str(dataset.provenance.get("source", dataset.name))
    options = rocket_options(plan)
    if config.ensemble > 1:
        # Seeds change only MiniRocket's bias quantile draws: K copies would barely differ.
        raise ConfigError("--ensemble is for networks (model cnn); a minirocket model is "
                          "one fit")
    num_classes = len(plan.class_names)
    check_not_empty(source, train, val)
    train_y = np.asarray(train.labels)
    counts = np.bincount(train_y, minlength=num_classes)
    missing = [plan.class_names[i] for i in np.flatnonzero(counts == 0)]
    if missing:
        raise DataError(f"{source}: the training split has no example of class(es) {missing}")
    start = time.perf_counter()
    x = series_inputs(train, plan.series_length).numpy()
    transformer = _transformer(options, seed=config.seed).fit(x)
    raw = transformer.transform(x).to_numpy(np.float64)
    scaler = StandardScaler().fit(raw)
    weights = imbalance_weights(counts, plan)
    classifier = LogisticRegression(C=float(options["C"]), max_iter=5000,
                                    class_weight=dict(enumerate(weights)))
    classifier.fit(scaler.transform(raw), train_y)
    elapsed = time.perf_counter() - start
    model = RocketModel(transformer.parameters, scaler.mean_, scaler.scale_, classifier.coef_,
                        classifier.intercept_)
    state = model.state_dict()
    names = plan.class_names
    metadata: dict[str, Any] = {
        "task": plan.task,
        "class_names": names,
        "threshold": None,
        "plan": plan.to_dict(),
        "network": {"arch": MINIROCKET, "num_kernels": int(transformer.num_kernels_),
                    "features": model.num_features, "parameters": model.num_parameters,
                    "classifier": f"StandardScaler + LogisticRegression(C={options['C']:g}, "
                                  "L2)"},
        "preprocessing": {"series_length": plan.series_length, "z_normalise": True},
        "imbalance": {"method": plan.imbalance, "power": plan.imbalance_power,
                      "train_counts": dict(zip(names, counts.tolist(), strict=True)),
                      "sample_weights": dict(zip(names, weights.round(4).tolist(),
                                                 strict=True))},
        "intended_use": "Research use: classification of single ECG heartbeats in UCR format.",
        "limitations": [*limitations, LIMITATION],
        "training": {"config": asdict(config), "model": MINIROCKET, "options": options,
                     # A closed-form fit: one pass over the training series, nothing to select.
                     "epochs_run": 1, "best_epoch": 1, "stop_reason": "single fit",
                     "classifier_iterations": int(np.max(classifier.n_iter_)),
                     "elapsed_s": round(elapsed, 2), **fit_on_report(plan, len(train_y))},
        "metrics": {},
    }
    predictor = predictor_for(metadata, state, source="training")
    if val is not None:  # None: fit_on train+val, nothing held out
        metadata["metrics"]["val"] = classification_metrics(
            np.asarray(val.labels), predictor.predict_split(val), names, n_bootstrap=200)
    return FitOutput(metadata, state, predictor)
