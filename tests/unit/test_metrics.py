"""Tests for meddx.learn.evaluation.metrics: hand-computed cases and agreement with sklearn."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics import (
    balanced_accuracy_score,
    brier_score_loss,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
    top_k_accuracy_score,
)

from meddx.errors import ConfigError, DataError
from meddx.learn.evaluation.metrics import (
    PER_CLASS_METRICS,
    SCALAR_METRICS,
    _auc_plan,
    _weighted_auc,
    choose_threshold,
    classification_metrics,
    expected_calibration_error,
    reliability_curve,
)


def _softmax_data(n: int, k: int, seed: int = 0, signal: float = 1.5):
    """Labels and softmax probabilities with some signal (all classes present for n >> k)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += signal
    p = np.exp(logits)
    return y, p / p.sum(axis=1, keepdims=True)


def _binary_probs(p_pos):
    p_pos = np.asarray(p_pos, dtype=float)
    return np.column_stack([1 - p_pos, p_pos])


# ------------------------------------------------------------------------------------------
# Hand-computed binary case
# ------------------------------------------------------------------------------------------


def test_binary_hand_computed_confusion():
    # 4 positives, 6 negatives; at threshold 0.5: TP=3, FN=1, TN=4, FP=2.
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.7, 0.3, 0.6, 0.55, 0.4, 0.2, 0.1, 0.05])
    m = classification_metrics(y, _binary_probs(p), ["neg", "pos"], n_bootstrap=0)

    assert m["task"] == "binary"
    assert m["positive_class"] == "pos"
    assert m["threshold"] == 0.5
    assert m["confusion_matrix"] == [[4, 2], [1, 3]]
    assert m["sensitivity"] == pytest.approx(3 / 4)
    assert m["specificity"] == pytest.approx(4 / 6)
    assert m["ppv"] == pytest.approx(3 / 5)
    assert m["npv"] == pytest.approx(4 / 5)
    assert m["f1"] == pytest.approx(2 * 3 / (2 * 3 + 2 + 1))
    assert m["accuracy"] == pytest.approx(7 / 10)
    assert m["balanced_accuracy"] == pytest.approx((3 / 4 + 4 / 6) / 2)
    f1_neg = 2 * 4 / (2 * 4 + 1 + 2)
    assert m["macro_f1"] == pytest.approx((f1_neg + 2 * 3 / 9) / 2)
    # AUC: of the 24 positive/negative pairs, 21 are ranked correctly.
    assert m["auc"] == pytest.approx(21 / 24)
    assert m["auc"] == pytest.approx(roc_auc_score(y, p))
    assert m["brier"] == pytest.approx(brier_score_loss(y, p))
    assert m["top_k_accuracy"] == {"top_1": pytest.approx(7 / 10)}
    assert m["per_class"]["pos"]["support"] == 4
    assert m["per_class"]["neg"]["support"] == 6
    # The negative class's one-vs-rest view mirrors the positive one.
    assert m["per_class"]["neg"]["sensitivity"] == pytest.approx(m["specificity"])
    assert m["per_class"]["neg"]["ppv"] == pytest.approx(m["npv"])
    assert all(v is None for v in m["ci"].values())


def test_binary_threshold_changes_decisions():
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.7, 0.3, 0.6, 0.55, 0.4, 0.2, 0.1, 0.05])
    m = classification_metrics(y, p, ["neg", "pos"], threshold=0.25, n_bootstrap=0)
    assert m["threshold"] == 0.25
    assert m["confusion_matrix"] == [[3, 3], [0, 4]]
    assert m["sensitivity"] == 1.0
    # The decision is p1 >= threshold, inclusive.
    m = classification_metrics(y, p, ["neg", "pos"], threshold=0.3, n_bootstrap=0)
    assert m["confusion_matrix"][1] == [0, 4]


def test_one_dimensional_probs_accepted_for_binary():
    y, p = np.array([0, 1, 1, 0]), np.array([0.2, 0.7, 0.4, 0.1])
    a = classification_metrics(y, p, ["a", "b"], n_bootstrap=50)
    b = classification_metrics(y, _binary_probs(p), ["a", "b"], n_bootstrap=50)
    assert a == b


# ------------------------------------------------------------------------------------------
# Agreement with scikit-learn
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_binary_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = (rng.random(200) < 0.3).astype(int)
    p = np.clip(0.35 * y + 0.65 * rng.random(200), 0, 1)
    m = classification_metrics(y, p, ["neg", "pos"], threshold=0.4, n_bootstrap=0)
    pred = (p >= 0.4).astype(int)
    assert m["auc"] == pytest.approx(roc_auc_score(y, p))
    assert m["sensitivity"] == pytest.approx(recall_score(y, pred))
    assert m["specificity"] == pytest.approx(recall_score(y, pred, pos_label=0))
    assert m["ppv"] == pytest.approx(precision_score(y, pred))
    assert m["npv"] == pytest.approx(precision_score(y, pred, pos_label=0))
    assert m["f1"] == pytest.approx(f1_score(y, pred))
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))


def test_multiclass_macro_values_match_sklearn():
    y, p = _softmax_data(600, 5, seed=3)
    pred = p.argmax(axis=1)
    names = ["N", "S", "V", "F", "Q"]
    m = classification_metrics(y, p, names, n_bootstrap=0)
    assert m["task"] == "multiclass"
    assert m["threshold"] is None and m["positive_class"] is None
    assert m["auc"] == pytest.approx(roc_auc_score(y, p, multi_class="ovr", average="macro"))
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert m["f1"] == pytest.approx(m["macro_f1"])
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert m["sensitivity"] == pytest.approx(recall_score(y, pred, average="macro"))
    assert m["ppv"] == pytest.approx(precision_score(y, pred, average="macro"))
    assert m["accuracy"] == pytest.approx(np.mean(pred == y))
    assert m["top_k_accuracy"]["top_1"] == pytest.approx(m["accuracy"])
    assert m["top_k_accuracy"]["top_3"] == pytest.approx(
        top_k_accuracy_score(y, p, k=3, labels=range(5))
    )
    onehot = np.eye(5)[y]
    assert m["brier"] == pytest.approx(np.mean(np.sum((p - onehot) ** 2, axis=1)))
    for c, name in enumerate(names):
        pc = m["per_class"][name]
        assert pc["auc"] == pytest.approx(roc_auc_score(y == c, p[:, c]))
        assert pc["ppv"] == pytest.approx(precision_score(y == c, pred == c))
        assert pc["sensitivity"] == pytest.approx(recall_score(y == c, pred == c))
        assert pc["specificity"] == pytest.approx(recall_score(y != c, pred != c))
        assert pc["support"] == int(np.sum(y == c))
    assert np.sum(m["confusion_matrix"]) == 600


def test_top_k_only_below_number_of_classes():
    y, p = _softmax_data(60, 3)
    m = classification_metrics(y, p, ["a", "b", "c"], n_bootstrap=0, top_k=(1, 2, 3, 5))
    assert set(m["top_k_accuracy"]) == {"top_1", "top_2"}
    assert {"top_1_accuracy", "top_2_accuracy"} <= set(m["ci"])


@pytest.mark.parametrize("ties", [False, True])
def test_rank_auc_equals_sklearn(ties):
    rng = np.random.default_rng(7)
    n = 300
    positive = rng.random(n) < 0.4
    scores = rng.random(n) + 0.3 * positive
    if ties:  # coarse scores: many tied pairs, half credit each
        scores = np.round(scores, 1)
    plan = _auc_plan(scores, positive)

    ones = np.ones((1, n))
    assert _weighted_auc(plan, ones)[0] == pytest.approx(roc_auc_score(positive, scores))

    # Integer weights == explicit resampling, as in the bootstrap.
    idx = rng.integers(0, n, size=(4, n))
    weights = np.stack([np.bincount(row, minlength=n) for row in idx]).astype(float)
    expected = [roc_auc_score(positive[row], scores[row]) for row in idx]
    np.testing.assert_allclose(_weighted_auc(plan, weights), expected, rtol=1e-12)


# ------------------------------------------------------------------------------------------
# Undefined values
# ------------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_class_absent_from_y_true():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 90)  # class 3 never occurs
    p = rng.dirichlet(np.ones(4), size=90)
    m = classification_metrics(y, p, ["a", "b", "c", "d"], n_bootstrap=50)
    absent = m["per_class"]["d"]
    assert absent["support"] == 0
    assert absent["auc"] is None and absent["sensitivity"] is None
    assert absent["ci"]["auc"] is None
    # Macro averages skip the undefined class.
    present = [roc_auc_score(y == c, p[:, c]) for c in range(3)]
    assert m["auc"] == pytest.approx(np.mean(present))
    pred = p.argmax(axis=1)
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    json.dumps(m, allow_nan=False)


def test_one_class_y_true_is_handled():
    y = np.ones(20, dtype=int)
    p = np.linspace(0.05, 0.95, 20)
    m = classification_metrics(y, p, ["neg", "pos"], n_bootstrap=100)
    assert m["auc"] is None and m["ci"]["auc"] is None
    assert m["specificity"] is None  # no negatives
    assert m["npv"] == 0.0  # cases called negative were all positive
    assert m["sensitivity"] == pytest.approx(np.mean(p >= 0.5))
    assert m["accuracy"] == pytest.approx(np.mean(p >= 0.5))
    assert m["ci"]["accuracy"] is not None
    json.dumps(m, allow_nan=False)


def test_output_is_strict_json():
    y, p = _softmax_data(150, 4, seed=5)
    m = classification_metrics(y, p, ["w", "x", "y", "z"], n_bootstrap=100)
    text = json.dumps(m, allow_nan=False)
    assert json.loads(text) == m
    assert set(SCALAR_METRICS) <= set(m["ci"])
    assert set(PER_CLASS_METRICS) <= set(m["per_class"]["w"])


# ------------------------------------------------------------------------------------------
# Bootstrap confidence intervals
# ------------------------------------------------------------------------------------------


def _ci_width(m, name):
    lo, hi = m["ci"][name]
    return hi - lo


def test_ci_contains_point_estimate_and_narrows_with_n():
    small = classification_metrics(*_softmax_data(200, 3, seed=1), ["a", "b", "c"], seed=0)
    large = classification_metrics(*_softmax_data(3000, 3, seed=1), ["a", "b", "c"], seed=0)
    for m in (small, large):
        for name in ("auc", "accuracy", "balanced_accuracy", "sensitivity", "macro_f1", "brier"):
            lo, hi = m["ci"][name]
            assert lo <= m[name] <= hi, name
    for name in ("auc", "accuracy", "macro_f1"):
        assert _ci_width(large, name) < 0.6 * _ci_width(small, name)
    pc = large["per_class"]["b"]
    lo, hi = pc["ci"]["ppv"]
    assert lo <= pc["ppv"] <= hi


def test_bootstrap_is_seeded():
    y, p = _softmax_data(300, 3, seed=2)
    a = classification_metrics(y, p, ["a", "b", "c"], n_bootstrap=200, seed=11)
    b = classification_metrics(y, p, ["a", "b", "c"], n_bootstrap=200, seed=11)
    c = classification_metrics(y, p, ["a", "b", "c"], n_bootstrap=200, seed=12)
    assert a == b
    assert a["ci"] != c["ci"]
    assert a["bootstrap"] == {
        "n_resamples": 200,
        "ci_level": 0.95,
        "seed": 11,
        "method": "percentile",
    }


def test_ci_level_controls_width():
    y, p = _softmax_data(400, 3, seed=4)
    wide = classification_metrics(y, p, ["a", "b", "c"], n_bootstrap=300, ci_level=0.95)
    narrow = classification_metrics(y, p, ["a", "b", "c"], n_bootstrap=300, ci_level=0.5)
    assert _ci_width(narrow, "accuracy") < _ci_width(wide, "accuracy")


def test_bootstrap_is_fast_enough():
    # 1,000 resamples of 5,000 cases x 5 classes: the ECG-sized case.
    import time

    y, p = _softmax_data(5000, 5, seed=9)
    start = time.perf_counter()
    m = classification_metrics(y, p, ["N", "S", "V", "F", "Q"], n_bootstrap=1000)
    assert time.perf_counter() - start < 10.0  # about 0.5 s on one core; generous for CI
    assert m["ci"]["auc"][0] < m["auc"] < m["ci"]["auc"][1]


# ------------------------------------------------------------------------------------------
# Calibration
# ------------------------------------------------------------------------------------------


def test_ece_zero_for_perfect_calibration():
    # 10 cases at p1 = 0.7 of which 7 are positive, 10 at p1 = 0.1 of which 1 is positive:
    # arg-max confidences 0.7 and 0.9 with accuracies 0.7 and 0.9.
    y = np.array([1] * 7 + [0] * 3 + [1] * 1 + [0] * 9)
    p = np.array([0.7] * 10 + [0.1] * 10)
    assert expected_calibration_error(y, _binary_probs(p)) == pytest.approx(0.0, abs=1e-12)
    m = classification_metrics(y, p, ["neg", "pos"], n_bootstrap=0)
    assert m["ece"] == pytest.approx(0.0, abs=1e-12)


def test_ece_hand_computed():
    # Confidences 0.9, 0.9, 0.75, 0.65 (bins 13, 13, 11, 9 of 15), correct 1, 0, 1, 1:
    # ECE = (|1.8 - 1| + |0.75 - 1| + |0.65 - 1|) / 4 = 0.35.
    y = np.array([1, 0, 0, 1])
    p = np.array([0.9, 0.9, 0.25, 0.65])
    assert expected_calibration_error(y, p) == pytest.approx(0.35)
    m = classification_metrics(y, p, ["neg", "pos"], n_bootstrap=0)
    assert m["ece"] == pytest.approx(0.35)
    curve = reliability_curve(y, p)
    assert curve.counts.sum() == 4
    assert curve.counts[13] == 2 and curve.counts[11] == 1 and curve.counts[9] == 1
    assert curve.accuracy[13] == pytest.approx(0.5)
    assert curve.confidence[13] == pytest.approx(0.9)
    assert np.isnan(curve.accuracy[0])


def test_ece_bins_closed_on_the_right():
    # A confidence exactly on an edge (0.6 = 9/15) belongs to the bin below it.
    curve = reliability_curve(np.array([1]), np.array([0.6]))
    assert curve.counts[8] == 1


# ------------------------------------------------------------------------------------------
# Threshold choice
# ------------------------------------------------------------------------------------------


def test_threshold_separable_case_prefers_half():
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    # Every threshold in (0.3, 0.7] separates perfectly; 0.5 is in that interval.
    assert choose_threshold(y, p, "youden") == 0.5
    assert choose_threshold(y, p, "f1") == 0.5


def test_threshold_separable_case_off_centre():
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.01, 0.02, 0.03, 0.1, 0.2, 0.3])
    t = choose_threshold(y, p)
    assert 0.03 < t <= 0.1
    assert t == pytest.approx(0.065)  # midpoint of the best interval
    m = classification_metrics(y, p, ["neg", "pos"], threshold=t, n_bootstrap=0)
    assert m["sensitivity"] == 1.0 and m["specificity"] == 1.0


def test_threshold_youden_and_f1_optimum():
    # Youden: best J = 1 - 1/4 at t in (0.35, 0.6]; F1 prefers predicting all positive here.
    y = np.array([0, 0, 0, 0, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.65, 0.35, 0.7, 0.8])
    t = choose_threshold(y, p, "youden")
    pred = p >= t
    sens, spec = pred[y == 1].mean(), (~pred[y == 0]).mean()
    assert sens + spec - 1 == pytest.approx(
        max((p[y == 1] >= c).mean() + (p[y == 0] < c).mean() - 1 for c in np.unique(p))
    )
    t_f1 = choose_threshold(y, p, "f1")
    best_f1 = max(f1_score(y, p >= c) for c in np.unique(p))
    assert f1_score(y, p >= t_f1) == pytest.approx(best_f1)


def test_threshold_degenerate_one_class():
    assert choose_threshold(np.zeros(5, dtype=int), np.linspace(0, 1, 5)) == 0.5
    assert choose_threshold(np.ones(5, dtype=int), np.linspace(0, 1, 5), "f1") == 0.5


def test_threshold_errors():
    with pytest.raises(ConfigError):
        choose_threshold([0, 1], [0.2, 0.8], method="accuracy")
    with pytest.raises(DataError):
        choose_threshold([0, 2], [0.2, 0.8])
    with pytest.raises(DataError):
        choose_threshold([0, 1, 1], [0.2, 0.8])


# ------------------------------------------------------------------------------------------
# Input validation
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("y", "p", "names", "error"),
    [
        ([0, 1], [[0.5, 0.5]], ["a", "b"], DataError),  # length mismatch
        ([0, 2], [[0.5, 0.5], [0.5, 0.5]], ["a", "b"], DataError),  # label out of range
        ([0, 1], [[0.5, 0.5], [np.nan, 0.5]], ["a", "b"], DataError),  # NaN
        ([0, 1], [[-2.0, 3.0], [1.0, 0.0]], ["a", "b"], DataError),  # logits
        ([0, 1], [[0.5, 0.5], [0.5, 0.5]], ["a"], ConfigError),  # one class name
        ([0, 1], [[0.5, 0.5], [0.5, 0.5]], ["a", "a"], ConfigError),  # duplicate names
        ([], np.zeros((0, 2)), ["a", "b"], DataError),  # empty
        ([0.5, 1], [[0.5, 0.5], [0.5, 0.5]], ["a", "b"], DataError),  # non-integer labels
    ],
)
def test_invalid_inputs(y, p, names, error):
    with pytest.raises(error):
        classification_metrics(y, p, names, n_bootstrap=0)


def test_threshold_rejected_for_multiclass():
    y, p = _softmax_data(30, 3)
    with pytest.raises(ConfigError):
        classification_metrics(y, p, ["a", "b", "c"], threshold=0.3)


def test_column_labels_accepted():
    # MedMNIST stores labels as (N, 1).
    y = np.array([[0], [1], [1], [0]])
    m = classification_metrics(y, [0.1, 0.8, 0.6, 0.3], ["a", "b"], n_bootstrap=0)
    assert m["accuracy"] == 1.0
    assert not math.isnan(m["auc"])


def test_multiclass_decisions_replace_the_arg_max():
    y = np.array([0, 1, 2, 1])
    p = np.array([[0.6, 0.3, 0.1], [0.5, 0.4, 0.1], [0.1, 0.2, 0.7], [0.2, 0.7, 0.1]])
    decided = classification_metrics(y, p, ["a", "b", "c"], n_bootstrap=20,
                                     decisions=np.array([0, 1, 2, 1]))
    assert decided["accuracy"] == 1.0 and decided["confusion_matrix"][1] == [0, 2, 0]
    plain = classification_metrics(y, p, ["a", "b", "c"], n_bootstrap=0)
    assert plain["accuracy"] == 0.75 and plain["auc"] == decided["auc"]
    with pytest.raises(DataError, match="decisions"):
        classification_metrics(y, p, ["a", "b", "c"], decisions=np.array([0, 1]))
    with pytest.raises(ConfigError, match="decisions"):
        classification_metrics(np.array([0, 1]), np.array([[0.6, 0.4], [0.3, 0.7]]),
                               ["a", "b"], decisions=np.array([0, 1]))


def test_excused_calls_follow_ec57():
    """V calls on F and Q beats and S calls on Q beats count neither way in +P (PhysioNet's
    bxb: VEB FP = Nv + Sv, SVEB FP = Ns + Vs + Fs); sensitivity and F1 are unchanged."""
    names = ["N", "S", "V", "F", "Q"]
    cm = np.array([[90, 4, 6, 0, 0],   # true N: 4 called S, 6 called V
                   [3, 10, 2, 0, 0],   # true S: 2 called V
                   [1, 1, 20, 0, 0],
                   [2, 1, 8, 4, 0],    # true F: 8 called V (excused), 1 called S (counted)
                   [0, 2, 3, 0, 1]])   # true Q: 3 called V, 2 called S (all excused)
    y = np.repeat(np.repeat(np.arange(5), 5), cm.ravel())
    pred = np.tile(np.arange(5), 5).repeat(cm.ravel())
    probs = np.full((len(y), 5), 0.2)
    m = classification_metrics(y, probs, names, n_bootstrap=50, decisions=pred,
                               excused_calls={"V": ["F", "Q"], "S": ["Q"], "X": ["N"]})
    v, s = m["per_class"]["V"], m["per_class"]["S"]
    assert m["excused_calls"] == {"V": ["F", "Q"], "S": ["Q"]}  # unknown names dropped
    assert v["ppv"] == pytest.approx(20 / (20 + 6 + 2))
    assert v["ppv_all_calls"] == pytest.approx(20 / 39)
    assert s["ppv"] == pytest.approx(10 / (10 + 4 + 1 + 1))
    assert s["ppv_all_calls"] == pytest.approx(10 / 18)
    # Specificity leaves the excused calls out of both false positives and true negatives.
    v_negatives = 158 - 22 - 11  # all non-V beats less those excused
    assert v["specificity"] == pytest.approx((v_negatives - 8) / v_negatives)
    assert v["specificity_all_calls"] == pytest.approx((136 - 19) / 136)
    plain = classification_metrics(y, probs, names, n_bootstrap=0, decisions=pred)
    assert plain["excused_calls"] is None and "ppv_all_calls" not in plain["per_class"]["V"]
    assert plain["per_class"]["V"]["ppv"] == pytest.approx(v["ppv_all_calls"])
    for name in names:
        assert m["per_class"][name]["sensitivity"] == plain["per_class"][name]["sensitivity"]
        assert m["per_class"][name]["f1"] == plain["per_class"][name]["f1"]
    assert m["macro_f1"] == plain["macro_f1"]
    assert m["per_class"]["N"]["ppv"] == plain["per_class"]["N"]["ppv"]
    low, high = v["ci"]["ppv"]
    assert low <= v["ppv"] <= high and high > v["ppv_all_calls"]
    json.dumps(m, allow_nan=False)
