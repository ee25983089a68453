"""Classification metrics with percentile-bootstrap confidence intervals.

One evaluation path serves every classification task in meddx: binary and multi-class images,
ECG beats (AAMI N/S/V/F/Q), tabular risk scores and symptom text. Everything starts from
``y_true`` (N integer labels) and ``probs`` (an ``(N, K)`` array of class probabilities).

Conventions:

* **Binary** (K = 2): class index 1 is the positive class and the decision is
  ``probs[:, 1] >= threshold`` (0.5 unless a threshold chosen on validation data is given, see
  :func:`choose_threshold`). ``sensitivity``, ``specificity``, ``ppv``, ``npv`` and ``f1`` are
  those of the positive class; ``auc`` is the ROC AUC of ``probs[:, 1]``.
* **Multi-class** (K > 2): the decision is the arg-max. ``auc`` is the macro one-vs-rest AUC and
  ``sensitivity``, ``specificity``, ``ppv``, ``npv`` and ``f1`` are macro averages of the
  one-vs-rest per-class values; ``balanced_accuracy`` is the mean per-class recall.
* **Undefined values.** A ratio whose denominator is zero (the sensitivity of a class absent from
  ``y_true``, the PPV of a class that is never predicted, the AUC of a class absent from
  ``y_true`` or the only class present) is ``None`` in the output. Macro averages are taken over
  the classes where the value is defined, so a class missing from a small test set does not drag
  the average to zero; this matches scikit-learn's ``balanced_accuracy_score`` and
  ``f1_score(average="macro")`` (which consider only the labels seen in ``y_true`` or
  ``y_pred``).
* **Calibration.** ``ece`` and the reliability curve describe the probabilities, not the decision
  rule: they use the arg-max class and its probability (the "confidence") even when a binary
  threshold other than 0.5 is in use. ``brier`` is ``mean((p1 - y)**2)`` for binary tasks (as
  ``sklearn.metrics.brier_score_loss``) and the multi-class form ``mean(sum_k (p_k - y_k)**2)``
  (Brier, 1950) otherwise.
* **Excused calls.** ``excused_calls={"V": ["F", "Q"], "S": ["Q"]}`` says a call of class V on
  a case whose true class is F or Q counts neither for nor against V's ``ppv`` and
  ``specificity`` (it is neither a false positive nor a true negative of V). This is ANSI/AAMI
  EC57's rule for the VEB and SVEB gross statistics of beat classifiers (PhysioNet's ``bxb``:
  VEB FP = Nv + Sv, SVEB FP = Ns + Vs + Fs). Sensitivity, ``f1`` and ``macro_f1`` are unchanged
  (scikit-learn's, counting every call); each excused class also reports ``ppv_all_calls`` and
  ``specificity_all_calls``, its figures when every call counts.
* **Confidence intervals** come from a non-parametric percentile bootstrap over cases. All
  resamples are summarised as weighted sums (``weights @ per-case features``), so 1,000 resamples
  of 5,000 cases cost a fraction of a second. Resamples in which a metric is undefined are
  skipped for that metric; a CI is ``None`` when no resample defines it.

The output of :func:`classification_metrics` is JSON-safe (plain ``int``/``float``/``str``/
``list``/``dict``, NaN replaced by ``None``) so it can go straight into ``metrics.json`` or a
bundle's metadata.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy import sparse
from sklearn.metrics import roc_auc_score

from meddx.errors import ConfigError, DataError

__all__ = [
    "ECE_BINS",
    "PER_CLASS_METRICS",
    "SCALAR_METRICS",
    "ReliabilityCurve",
    "choose_threshold",
    "classification_metrics",
    "expected_calibration_error",
    "json_safe",
    "reliability_curve",
]

#: Top-level scalar metrics, in the order reports show them. Each has a CI in ``ci``.
SCALAR_METRICS: tuple[str, ...] = (
    "auc",
    "accuracy",
    "balanced_accuracy",
    "sensitivity",
    "specificity",
    "ppv",
    "npv",
    "f1",
    "macro_f1",
    "ece",
    "brier",
)
#: One-vs-rest metrics reported for every class in ``per_class`` (each with its own CI).
PER_CLASS_METRICS: tuple[str, ...] = ("sensitivity", "specificity", "ppv", "npv", "f1", "auc")
#: Number of equal-width confidence bins for the expected calibration error.
ECE_BINS = 15

# Bootstrap weights are processed in chunks of about this many (resample x case) cells, which
# bounds memory at a few tens of MB whatever N is.
_CHUNK_CELLS = 2_000_000

ThresholdMethod = Literal["youden", "f1"]


# --------------------------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------------------------


def _as_labels(y_true: ArrayLike, n_classes: int | None = None) -> np.ndarray:
    """Return ``y_true`` as a 1-D int64 array, checking it is non-empty and in range."""
    y = np.asarray(y_true)
    # MedMNIST stores labels as (N, 1); accept any single-column 2-D array.
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"y_true must be a 1-D array of class indices; got shape {y.shape}")
    if y.size == 0:
        raise DataError("y_true is empty: there is nothing to evaluate")
    if y.dtype == bool:
        y = y.astype(np.int64)
    elif not np.issubdtype(y.dtype, np.integer):
        if not np.issubdtype(y.dtype, np.floating) or not np.all(np.isfinite(y)):
            raise DataError(f"y_true must hold integer class indices; got dtype {y.dtype}")
        if not np.all(y == np.round(y)):
            raise DataError("y_true must hold integer class indices; got non-integer values")
    y = y.astype(np.int64)
    if n_classes is not None and (y.min() < 0 or y.max() >= n_classes):
        bad = sorted({int(v) for v in y[(y < 0) | (y >= n_classes)]})[:5]
        raise DataError(
            f"y_true has labels {bad} outside the {n_classes} classes (expected 0..{n_classes - 1})"
        )
    return y


def _as_probs(probs: ArrayLike, n: int, n_classes: int | None) -> np.ndarray:
    """Return ``probs`` as an ``(n, K)`` float64 array of probabilities.

    A 1-D array is accepted for binary tasks as the positive-class probability.
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim == 1 and n_classes in (None, 2):
        p = np.column_stack([1.0 - p, p])
    if p.ndim != 2:
        raise DataError(f"probs must be an (N, K) array of class probabilities; got {p.shape}")
    if p.shape[0] != n:
        raise DataError(f"probs has {p.shape[0]} rows but y_true has {n} labels")
    if n_classes is not None and p.shape[1] != n_classes:
        raise DataError(f"probs has {p.shape[1]} columns but there are {n_classes} class names")
    if p.shape[1] < 2:
        raise DataError(f"probs must have at least 2 columns (classes); got {p.shape[1]}")
    if not np.all(np.isfinite(p)):
        raise DataError("probs contains NaN or infinite values")
    # Tolerate float32 round-off (softmax outputs of 1.0000001) but catch logits.
    if p.min() < -1e-6 or p.max() > 1.0 + 1e-6:
        raise DataError(
            "probs must be probabilities in [0, 1] (apply softmax/sigmoid to logits first); got "
            f"values in [{p.min():.3g}, {p.max():.3g}]"
        )
    return np.clip(p, 0.0, 1.0)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with NaN (undefined) wherever ``den`` is zero, without warnings."""
    num, den = np.broadcast_arrays(np.asarray(num, dtype=np.float64), np.asarray(den, float))
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _nanmean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Mean over the defined (non-NaN) values; NaN where none is defined, without warnings."""
    defined = ~np.isnan(x)
    return _safe_div(np.where(defined, x, 0.0).sum(axis=axis), defined.sum(axis=axis))


# --------------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------------


def json_safe(obj: Any) -> Any:
    """Convert numpy scalars/arrays and NaN/inf into plain JSON-serialisable Python values.

    Args:
        obj: Any nesting of dicts, lists, tuples, numpy arrays and scalars.

    Returns:
        The same structure with ``float``/``int``/``bool``/``str``/``None`` leaves, lists for
        arrays and tuples, string dict keys, and ``None`` for NaN or infinite floats, so
        ``json.dumps(result, allow_nan=False)`` succeeds.
    """
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return [json_safe(v) for v in obj.tolist()]
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        value = float(obj)
        return value if math.isfinite(value) else None
    return obj


# --------------------------------------------------------------------------------------------
# Threshold choice
# --------------------------------------------------------------------------------------------


def choose_threshold(
    y_true: ArrayLike, p_pos: ArrayLike, method: ThresholdMethod = "youden"
) -> float:
    """Choose a binary decision threshold on validation data.

    The decision rule is ``p_pos >= threshold``. All thresholds in an interval
    ``(s_{i-1}, s_i]`` between consecutive distinct scores make the same decisions, so the
    search is over those intervals. Each interval is represented by 0.5 when it contains 0.5,
    otherwise by its midpoint (the lowest interval, which predicts every case positive, by its
    upper end). Among the intervals with the best criterion, the representative closest to 0.5
    wins: a well-separated validation set therefore gives 0.5 rather than a threshold hugging
    the last validation case, which generalises better.

    Args:
        y_true: Binary labels (0 = negative, 1 = positive), shape ``(N,)``.
        p_pos: Probability of the positive class, shape ``(N,)`` (an ``(N, 2)`` array is
            accepted and its second column used).
        method: ``"youden"`` maximises sensitivity + specificity - 1 (Youden's J);
            ``"f1"`` maximises the F1 score of the positive class.

    Returns:
        The threshold, a float. 0.5 when ``y_true`` holds a single class (no trade-off can be
        learnt from it).

    Raises:
        ConfigError: Unknown ``method``.
        DataError: Labels other than 0/1, shape mismatch or non-finite scores.
    """
    if method not in ("youden", "f1"):
        raise ConfigError(f"unknown threshold method {method!r}; choose 'youden' or 'f1'")
    y = _as_labels(y_true)
    p = np.asarray(p_pos, dtype=np.float64)
    if p.ndim == 2 and p.shape[1] == 2:
        p = p[:, 1]
    if p.ndim != 1 or p.shape[0] != y.shape[0]:
        raise DataError(f"p_pos must have shape ({y.shape[0]},); got {p.shape}")
    if not np.all(np.isfinite(p)):
        raise DataError("p_pos contains NaN or infinite values")
    if y.min() < 0 or y.max() > 1:
        raise DataError("choose_threshold needs binary labels (0 = negative, 1 = positive)")
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return 0.5

    scores = np.unique(p)  # sorted ascending
    # Predicted positive at threshold s_i: cases with p >= s_i.
    tp = n_pos - np.searchsorted(np.sort(p[y == 1]), scores, side="left")
    fp = n_neg - np.searchsorted(np.sort(p[y == 0]), scores, side="left")
    fn = n_pos - tp
    tn = n_neg - fp
    if method == "youden":
        criterion = tp / n_pos + tn / n_neg - 1.0
    else:
        criterion = 2.0 * tp / (2.0 * tp + fp + fn)

    lower = np.concatenate([[-np.inf], scores[:-1]])
    upper = scores
    representative = np.where(
        (lower < 0.5) & (upper >= 0.5),
        0.5,
        np.where(np.isinf(lower), upper, (lower + upper) / 2.0),
    )
    # Equal counts give bit-identical criteria; the tolerance only merges round-off.
    best = np.flatnonzero(np.isclose(criterion, criterion.max(), rtol=0.0, atol=1e-12))
    winner = best[np.argmin(np.abs(representative[best] - 0.5))]
    return float(representative[winner])


# --------------------------------------------------------------------------------------------
# Calibration
# --------------------------------------------------------------------------------------------


class ReliabilityCurve(NamedTuple):
    """Per-bin calibration summary of the arg-max confidence.

    Attributes:
        bin_edges: ``(n_bins + 1,)`` equal-width edges on [0, 1]; bins are ``(lo, hi]`` except
            the first, which also holds 0.
        confidence: ``(n_bins,)`` mean confidence of the cases in each bin (NaN when empty).
        accuracy: ``(n_bins,)`` fraction of those cases whose arg-max class is right (NaN when
            empty).
        counts: ``(n_bins,)`` number of cases per bin.
    """

    bin_edges: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    counts: np.ndarray


def _confidence_and_correct(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Arg-max confidence and whether the arg-max class is the true class, per case."""
    pred = p.argmax(axis=1)
    return p[np.arange(p.shape[0]), pred], (pred == y).astype(np.float64)


def _bin_index(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    """Index of the ``(lo, hi]`` equal-width bin of each confidence (0 goes to the first bin)."""
    inner_edges = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
    # side="left" counts the inner edges strictly below c, i.e. bins closed on the right.
    return np.searchsorted(inner_edges, confidence, side="left")


def reliability_curve(
    y_true: ArrayLike, probs: ArrayLike, n_bins: int = ECE_BINS
) -> ReliabilityCurve:
    """Bin cases by arg-max confidence and compare mean confidence with accuracy per bin.

    Args:
        y_true: Integer labels, shape ``(N,)``.
        probs: Class probabilities, shape ``(N, K)`` (or ``(N,)`` positive-class
            probabilities for a binary task).
        n_bins: Number of equal-width bins on [0, 1].

    Returns:
        A :class:`ReliabilityCurve`.
    """
    if n_bins < 1:
        raise ConfigError(f"n_bins must be >= 1; got {n_bins}")
    y = _as_labels(y_true)
    p = _as_probs(probs, y.shape[0], None)
    y = _as_labels(y, p.shape[1])
    confidence, correct = _confidence_and_correct(y, p)
    bins = _bin_index(confidence, n_bins)
    counts = np.bincount(bins, minlength=n_bins)
    return ReliabilityCurve(
        bin_edges=np.linspace(0.0, 1.0, n_bins + 1),
        confidence=_safe_div(np.bincount(bins, confidence, minlength=n_bins), counts),
        accuracy=_safe_div(np.bincount(bins, correct, minlength=n_bins), counts),
        counts=counts,
    )


def expected_calibration_error(
    y_true: ArrayLike, probs: ArrayLike, n_bins: int = ECE_BINS
) -> float:
    """Expected calibration error of the arg-max confidence (Guo et al., ICML 2017).

    ``ECE = sum_b (n_b / N) * |accuracy_b - confidence_b|`` over equal-width bins.

    Args:
        y_true: Integer labels, shape ``(N,)``.
        probs: Class probabilities, shape ``(N, K)`` (or ``(N,)`` for binary).
        n_bins: Number of equal-width bins on [0, 1].

    Returns:
        The ECE in [0, 1]; 0 for perfectly calibrated predictions.
    """
    curve = reliability_curve(y_true, probs, n_bins)
    filled = curve.counts > 0
    gaps = np.abs(curve.accuracy[filled] - curve.confidence[filled])
    return float(np.sum(curve.counts[filled] * gaps) / curve.counts.sum())


# --------------------------------------------------------------------------------------------
# Weighted statistics: one code path for the point estimate and every bootstrap resample
# --------------------------------------------------------------------------------------------


def _count_metrics(
    cm: np.ndarray, binary: bool, excused: np.ndarray | None = None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Metrics derived from a stack of confusion matrices.

    Args:
        cm: ``(B, K, K)`` (weighted) confusion matrices, rows = true class, cols = predicted.
        binary: Report positive-class (index 1) values at the top level instead of macro
            averages.
        excused: Optional ``(K, K)`` boolean mask of (true, predicted) cells that count neither
            as false positives nor as true negatives of the predicted class in ``ppv`` and
            ``specificity`` (see "Excused calls" in the module docstring).

    Returns:
        ``(scalars, per_class)``: scalars map a metric name to a ``(B,)`` array, per_class map a
        metric name to a ``(B, K)`` one-vs-rest array. NaN marks undefined values.
    """
    n = cm.sum(axis=(1, 2))
    tp = np.diagonal(cm, axis1=1, axis2=2)
    support = cm.sum(axis=2)
    predicted = cm.sum(axis=1)
    fn = support - tp
    fp = predicted - tp
    tn = n[:, None] - tp - fn - fp
    counted_fp = fp if excused is None else fp - (cm * excused).sum(axis=1)
    per_class = {
        "sensitivity": _safe_div(tp, support),
        "specificity": _safe_div(tn, tn + counted_fp),
        "ppv": _safe_div(tp, tp + counted_fp),
        "npv": _safe_div(tn, tn + fn),
        # 2TP / (2TP + FP + FN) is defined whenever the class is present or predicted, as in
        # scikit-learn (where a never-predicted class gets F1 = 0, not undefined).
        "f1": _safe_div(2.0 * tp, 2.0 * tp + fp + fn),
    }
    scalars = {
        "accuracy": _safe_div(tp.sum(axis=1), n),
        "balanced_accuracy": _nanmean(per_class["sensitivity"]),
        "macro_f1": _nanmean(per_class["f1"]),
    }
    for name in ("sensitivity", "specificity", "ppv", "npv", "f1"):
        scalars[name] = per_class[name][:, 1] if binary else _nanmean(per_class[name])
    return scalars, per_class


class _AucPlan(NamedTuple):
    """Per-class precomputation for the weighted rank AUC (sorting happens once)."""

    positives: np.ndarray  # indices of the positive cases
    negatives: np.ndarray  # indices of the negative cases, sorted by score
    below: np.ndarray  # per positive: number of negatives with a strictly lower score
    tied_end: np.ndarray  # per positive: number of negatives with a lower or equal score


def _auc_plan(scores: np.ndarray, positive: np.ndarray) -> _AucPlan:
    positives = np.flatnonzero(positive)
    negatives = np.flatnonzero(~positive)
    negatives = negatives[np.argsort(scores[negatives], kind="mergesort")]
    neg_scores = scores[negatives]
    pos_scores = scores[positives]
    return _AucPlan(
        positives,
        negatives,
        np.searchsorted(neg_scores, pos_scores, side="left"),
        np.searchsorted(neg_scores, pos_scores, side="right"),
    )


def _weighted_auc(plan: _AucPlan, weights: np.ndarray) -> np.ndarray:
    """ROC AUC of each row of case weights (Mann-Whitney U with half credit for ties).

    ``AUC = sum_{i pos, j neg} w_i w_j ([s_i > s_j] + 0.5 [s_i = s_j]) / (W_pos W_neg)``. With
    integer weights (bootstrap multiplicities) this equals ``roc_auc_score`` on the resampled
    data; with all-ones weights it equals ``roc_auc_score`` on the data.

    Args:
        plan: Case split and tie positions from :func:`_auc_plan`.
        weights: ``(B, N)`` case weights in the original case order.

    Returns:
        ``(B,)`` AUCs, NaN where a row has no positive or no negative weight.
    """
    pos_w = weights[:, plan.positives]
    # Cumulative negative weight in score order, with a leading 0 so index i = weight of the
    # first i negatives.
    cum_neg = np.zeros((weights.shape[0], plan.negatives.size + 1))
    np.cumsum(weights[:, plan.negatives], axis=1, out=cum_neg[:, 1:])
    lower = cum_neg[:, plan.below]
    lower_or_tied = cum_neg[:, plan.tied_end]
    concordant = np.einsum("bi,bi->b", pos_w, lower + lower_or_tied) * 0.5
    return _safe_div(concordant, pos_w.sum(axis=1) * cum_neg[:, -1])


class _WeightedEvaluator:
    """Evaluate all metrics for many case-weight vectors at once.

    Every metric except AUC is a function of weighted sums of per-case features (confusion-cell
    indicators, top-k hits, Brier terms, per-bin calibration residuals), so ``weights @ features``
    gives them for a whole block of bootstrap resamples in one matrix product. The K*K
    confusion-cell indicators are kept sparse (one non-zero per case) so that tasks with many
    classes (symptom text) stay cheap.
    """

    def __init__(
        self,
        y: np.ndarray,
        p: np.ndarray,
        pred: np.ndarray,
        top_k: Sequence[int],
        n_bins: int = ECE_BINS,
        excused: np.ndarray | None = None,
    ) -> None:
        n, k = p.shape
        self.n_classes = k
        self.excused = excused
        self.binary = k == 2
        self.top_k = tuple(top_k)
        onehot = np.eye(k)[y]

        # (K*K, N) indicator of each case's confusion cell, transposed for weights @ cells.T.
        self._cells_t = sparse.csr_array(
            (np.ones(n), (y * k + pred, np.arange(n))), shape=(k * k, n)
        )
        # Stable sort of -p ranks ties by lower class index, like argmax, so top_1 == accuracy
        # for the arg-max decision.
        ranked = np.argsort(-p, axis=1, kind="stable")
        hits = np.zeros((n, len(self.top_k)))
        for j, kk in enumerate(self.top_k):
            hits[:, j] = (ranked[:, :kk] == y[:, None]).any(axis=1)
        # Binary: the usual mean((p1 - y)^2); multi-class: Brier's sum over classes.
        brier = (p[:, 1] - y) ** 2 if self.binary else np.sum((p - onehot) ** 2, axis=1)
        confidence, correct = _confidence_and_correct(y, p)
        calibration = np.zeros((n, n_bins))
        calibration[np.arange(n), _bin_index(confidence, n_bins)] = confidence - correct

        self._features = np.column_stack([hits, brier, calibration])
        self._slices = {
            "hits": slice(0, len(self.top_k)),
            "brier": len(self.top_k),
            "calibration": slice(len(self.top_k) + 1, None),
        }
        self._auc_plans = [_auc_plan(p[:, c], y == c) for c in range(k)]

    def __call__(self, weights: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Metrics for each row of ``weights`` (``(B, N)``).

        Returns:
            ``(scalars, per_class)``: scalars map metric names (plus ``top_<k>_accuracy``) to
            ``(B,)`` arrays; per_class is a ``(B, K, len(PER_CLASS_METRICS))`` array.
        """
        sums = weights @ self._features
        total = weights.sum(axis=1)
        k = self.n_classes
        cm = np.asarray(self._cells_t @ weights.T).T.reshape(-1, k, k)
        scalars, per_class = _count_metrics(cm, self.binary, self.excused)
        per_class["auc"] = np.column_stack([_weighted_auc(pl, weights) for pl in self._auc_plans])
        scalars["auc"] = per_class["auc"][:, 1] if self.binary else _nanmean(per_class["auc"])
        scalars["brier"] = sums[:, self._slices["brier"]] / total
        scalars["ece"] = np.abs(sums[:, self._slices["calibration"]]).sum(axis=1) / total
        for j, kk in enumerate(self.top_k):
            scalars[f"top_{kk}_accuracy"] = sums[:, self._slices["hits"]][:, j] / total
        stacked = np.stack([per_class[m] for m in PER_CLASS_METRICS], axis=-1)
        return scalars, stacked


def _bootstrap_intervals(
    evaluator: _WeightedEvaluator,
    n: int,
    n_bootstrap: int,
    seed: int | None,
    ci_level: float,
) -> tuple[dict[str, list[float | None]], np.ndarray]:
    """Percentile-bootstrap intervals for every scalar and per-class metric.

    Returns:
        ``(scalar_ci, per_class_ci)``: ``{metric: [lo, hi]}`` and a ``(2, K, M)`` array (NaN
        where no resample defines the value).
    """
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_bootstrap, _CHUNK_CELLS // n))
    scalar_draws: dict[str, list[np.ndarray]] = {}
    per_class_draws: list[np.ndarray] = []
    done = 0
    while done < n_bootstrap:
        b = min(chunk, n_bootstrap - done)
        idx = rng.integers(0, n, size=(b, n))
        # Multiplicity of each case in each resample: resampling == integer case weights.
        offsets = (np.arange(b) * n)[:, None]
        weights = np.bincount((idx + offsets).ravel(), minlength=b * n).reshape(b, n)
        scalars, per_class = evaluator(weights.astype(np.float64))
        for name, values in scalars.items():
            scalar_draws.setdefault(name, []).append(values)
        per_class_draws.append(per_class)
        done += b

    quantiles = [50.0 * (1.0 - ci_level), 50.0 * (1.0 + ci_level)]

    def interval(draws: np.ndarray) -> np.ndarray:
        # Undefined resamples (NaN) are skipped; all-NaN columns give NaN (-> None).
        out = np.full((2, *draws.shape[1:]), np.nan)
        defined = ~np.isnan(draws).all(axis=0)
        if np.any(defined):
            out[:, defined] = np.nanpercentile(draws[:, defined], quantiles, axis=0)
        return out

    scalar_ci = {
        name: interval(np.concatenate(parts)[:, None])[:, 0].tolist()
        for name, parts in scalar_draws.items()
    }
    return scalar_ci, interval(np.concatenate(per_class_draws))


# --------------------------------------------------------------------------------------------
# The one entry point
# --------------------------------------------------------------------------------------------


def classification_metrics(
    y_true: ArrayLike,
    probs: ArrayLike,
    class_names: Sequence[str],
    threshold: float | None = None,
    n_bootstrap: int = 1000,
    seed: int | None = 0,
    ci_level: float = 0.95,
    top_k: Sequence[int] = (1, 3),
    decisions: ArrayLike | None = None,
    excused_calls: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """Evaluate class probabilities against labels, with bootstrap confidence intervals.

    See the module docstring for the binary/multi-class conventions and how undefined values
    are handled.

    Args:
        y_true: Integer labels in ``0..K-1``, shape ``(N,)`` (or ``(N, 1)``).
        probs: Class probabilities, shape ``(N, K)``. For binary tasks an ``(N,)`` array of
            positive-class probabilities is accepted too.
        class_names: The K class names (K >= 2), in column order of ``probs``.
        threshold: Binary only: decide positive when ``probs[:, 1] >= threshold`` (default
            0.5). Choose it on validation data with :func:`choose_threshold`, never on the test
            set.
        n_bootstrap: Number of bootstrap resamples (0 disables CIs: every CI is ``None``).
        seed: Seed of the resampling; the same seed gives the same CIs.
        ci_level: Coverage of the percentile intervals, in (0, 1).
        top_k: Which top-k accuracies to report; only k < K are kept.
        decisions: Multi-class only: the class decided for each case, when the model's
            decision rule is not the arg-max (``(N,)`` integers in ``0..K-1``). The
            threshold-free figures (AUC, log-loss, top-k) still come from ``probs``.
        excused_calls: ``{predicted class: [true classes]}``: calls that count neither for nor
            against the predicted class's ``ppv`` and ``specificity`` (ANSI/AAMI EC57's rule
            for beats; see the module docstring). Names not among ``class_names`` are ignored.

    Returns:
        A JSON-safe dict with keys ``task`` ("binary" or "multiclass"), ``n``,
        ``class_names``, ``positive_class`` and ``threshold`` (``None`` for multi-class),
        the scalars in :data:`SCALAR_METRICS`, ``top_k_accuracy`` (``{"top_1": ..}``),
        ``ci`` (``{metric: [lo, hi]}`` for every scalar, plus ``top_<k>_accuracy``),
        ``confusion_matrix`` (rows = true class, columns = predicted), ``per_class``
        (``{name: {sensitivity, specificity, ppv, npv, f1, auc, support, ci}}``, plus
        ``ppv_all_calls`` and ``specificity_all_calls`` for a class with excused calls),
        ``excused_calls`` (those applied, or ``None``) and ``bootstrap`` (resamples, level,
        seed, method). Undefined values are ``None``.

    Raises:
        DataError: Malformed labels or probabilities.
        ConfigError: Invalid options (class names, threshold, bootstrap settings, top_k).
    """
    names = [str(c) for c in class_names]
    k = len(names)
    if k < 2:
        raise ConfigError(f"need at least 2 class names; got {names}")
    if len(set(names)) != k:
        raise ConfigError(f"class names must be unique; got {names}")
    if not isinstance(n_bootstrap, int | np.integer) or n_bootstrap < 0:
        raise ConfigError(f"n_bootstrap must be a non-negative integer; got {n_bootstrap!r}")
    if not 0.0 < ci_level < 1.0:
        raise ConfigError(f"ci_level must be in (0, 1); got {ci_level}")
    ks = sorted({int(kk) for kk in top_k})
    if any(kk < 1 for kk in ks):
        raise ConfigError(f"top_k values must be >= 1; got {list(top_k)}")
    ks = [kk for kk in ks if kk < k]

    y = _as_labels(y_true, k)
    p = _as_probs(probs, y.shape[0], k)
    n = y.shape[0]
    binary = k == 2

    if binary and decisions is not None:
        raise ConfigError("decisions apply to multi-class tasks; binary ones use the threshold")
    if binary:
        threshold = 0.5 if threshold is None else float(threshold)
        if not math.isfinite(threshold):
            raise ConfigError(f"threshold must be a finite number; got {threshold}")
        pred = (p[:, 1] >= threshold).astype(np.int64)
    else:
        if threshold is not None:
            raise ConfigError(
                "threshold applies to binary tasks only; multi-class decisions are the arg-max "
                "or the given decisions"
            )
        pred = p.argmax(axis=1) if decisions is None else _as_labels(decisions, k)
        if pred.shape[0] != n:
            raise DataError(f"decisions: {pred.shape[0]} values for {n} cases")

    excused, applied = _excused_mask(excused_calls, names)
    evaluator = _WeightedEvaluator(y, p, pred, ks, excused=excused)
    point, point_per_class = evaluator(np.ones((1, n)))
    values = {name: float(v[0]) for name, v in point.items()}
    per_class_values = point_per_class[0]  # (K, M)

    # The point AUCs come from scikit-learn; the rank AUC above is only the bootstrap's fast path
    # (tests check the two agree).
    auc_col = PER_CLASS_METRICS.index("auc")
    for c in range(k):
        positive = y == c
        defined = 0 < positive.sum() < n
        per_class_values[c, auc_col] = roc_auc_score(positive, p[:, c]) if defined else np.nan
    aucs = per_class_values[:, auc_col]
    values["auc"] = float(aucs[1]) if binary else float(_nanmean(aucs))

    if n_bootstrap > 0:
        scalar_ci, per_class_ci = _bootstrap_intervals(evaluator, n, n_bootstrap, seed, ci_level)
    else:
        scalar_ci = {name: [math.nan, math.nan] for name in values}
        per_class_ci = np.full((2, k, len(PER_CLASS_METRICS)), np.nan)

    def as_ci(lo: float, hi: float) -> list[float] | None:
        return None if math.isnan(lo) or math.isnan(hi) else [lo, hi]

    support = np.bincount(y, minlength=k)
    cm = np.bincount(y * k + pred, minlength=k * k).reshape(k, k)
    all_calls = _count_metrics(cm[None].astype(np.float64), binary)[1] if applied else {}
    top_k_names = [f"top_{kk}_accuracy" for kk in ks]
    result: dict[str, Any] = {
        "task": "binary" if binary else "multiclass",
        "n": n,
        "class_names": names,
        "positive_class": names[1] if binary else None,
        "threshold": threshold if binary else None,
        **{name: values[name] for name in SCALAR_METRICS},
        "top_k_accuracy": {f"top_{kk}": values[f"top_{kk}_accuracy"] for kk in ks},
        "ci": {name: as_ci(*scalar_ci[name]) for name in (*SCALAR_METRICS, *top_k_names)},
        "confusion_matrix": cm.tolist(),
        "per_class": {
            name: {
                **{m: per_class_values[c, j] for j, m in enumerate(PER_CLASS_METRICS)},
                "support": int(support[c]),
                **({f"{m}_all_calls": float(all_calls[m][0, c]) for m in ("ppv", "specificity")}
                   if name in applied else {}),
                "ci": {
                    m: as_ci(per_class_ci[0, c, j], per_class_ci[1, c, j])
                    for j, m in enumerate(PER_CLASS_METRICS)
                },
            }
            for c, name in enumerate(names)
        },
        "excused_calls": applied or None,
        "bootstrap": {
            "n_resamples": int(n_bootstrap),
            "ci_level": float(ci_level),
            "seed": seed,
            "method": "percentile",
        },
    }
    return json_safe(result)


def _excused_mask(excused_calls: Mapping[str, Sequence[str]] | None,
                 names: list[str]) -> tuple[np.ndarray | None, dict[str, list[str]]]:
    """The ``(K, K)`` (true, predicted) mask of excused calls, and the calls it applies."""
    mask = np.zeros((len(names), len(names)), bool)
    applied: dict[str, list[str]] = {}
    for called, trues in (excused_calls or {}).items():
        for true in trues:
            if called in names and true in names and true != called:
                mask[names.index(true), names.index(called)] = True
                applied.setdefault(called, []).append(true)
    return (mask if applied else None), applied


def quick_auc(labels: np.ndarray, probs: np.ndarray) -> float:
    """AUC for model selection: binary AUC, or macro one-vs-rest for multi-class."""
    present = np.unique(labels)
    if len(present) < 2:
        return float("nan")
    if probs.shape[1] == 2:
        return float(roc_auc_score(labels, probs[:, 1]))
    return float(roc_auc_score(labels, probs, multi_class="ovr",
                               labels=list(range(probs.shape[1]))))
