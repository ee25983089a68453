"""Tabular recipe: training both models, the bundle (no pickle), SHAP, bad records."""

import json

import numpy as np
import pytest
import torch

from meddx.data.tabular import load_tabular_dataset
from meddx.decision.bundle import WEIGHTS_FILE, load_bundle
from meddx.decision.predictors import load_model
from meddx.decision.tabular_predict import TabularPredictor
from meddx.errors import DataError
from meddx.learn.evaluate import evaluate_split
from meddx.learn.pipeline import train_model
from meddx.learn.tasks.tabular import (
    NumpyMLP,
    TabularMLP,
    TabularPreprocessing,
    calibrated_probs,
    fit_calibration,
)
from meddx.learn.trainer import TrainConfig

FAST = TrainConfig(epochs=4, patience=0, amp="off", ema_decay=0.0, lr=5e-3)
PLAN = {"max_rounds": 60, "background_size": 12}


def synthetic_records(path, n=240, seed=0):
    """Risk rises with glucose and age; smokers more; some values missing or impossible."""
    rng = np.random.default_rng(seed)
    lines = ["age,glucose,smoker,cp,outcome"]
    for _ in range(n):
        age = rng.integers(20, 80)
        glucose = rng.normal(120, 25)
        smoker = rng.choice(["yes", "no"])
        cp = rng.choice(["1", "2", "4"])
        logit = 0.06 * (glucose - 120) + 0.05 * (age - 50) + (0.8 if smoker == "yes" else 0)
        outcome = int(rng.random() < 1 / (1 + np.exp(-logit)))
        glucose_cell = "0" if rng.random() < 0.05 else ("?" if rng.random() < 0.05
                                                         else f"{glucose:.0f}")
        lines.append(f"{age},{glucose_cell},{smoker},{cp},{outcome}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tabular")
    data = load_tabular_dataset(synthetic_records(folder / "records.csv"))
    return train_model(data, folder / "bundle", config=FAST, plan=PLAN, progress=False)


def test_bundle_holds_both_models_without_pickle(bundle):
    meta = bundle.metadata
    assert meta["task"] == "tabular-classification"
    assert set(meta["models"]) == {"mlp", "lightgbm", "ensemble"}
    assert meta["chosen_model"] in meta["models"]
    for name in ("mlp", "lightgbm"):
        assert meta["models"][name]["val"]["auc"] is not None
    assert (bundle.path / "lightgbm.txt").read_text().startswith("tree")
    assert json.loads((bundle.path / "schema.json").read_text())["target"] == "outcome"
    # The weights load with weights_only=True: nothing is unpickled.
    torch.load(bundle.path / WEIGHTS_FILE, weights_only=True)
    assert not list(bundle.path.rglob("*.pkl"))
    assert (bundle.path / "report" / "feature_importance.png").stat().st_size > 1000
    assert meta["metrics"]["test"]["auc"] > 0.6


def test_loaded_bundle_predicts_like_the_trained_one(bundle, tmp_path):
    predictor = load_model(bundle.path)
    data = load_tabular_dataset(synthetic_records(tmp_path / "more.csv", n=60, seed=3))
    metrics, labels, probs = evaluate_split(predictor, data.split("all"), n_bootstrap=0)
    for key in ("auc", "accuracy", "f1", "sensitivity", "specificity", "ece", "brier"):
        assert key in metrics
    assert np.allclose(probs.sum(1), 1)
    by_model = predictor.predict_split_by_model(data.split("all"))
    assert set(by_model) == {"mlp", "lightgbm", "ensemble"}


@pytest.mark.parametrize("model", ["mlp", "lightgbm", "ensemble"])
def test_shap_values_add_up_to_the_model_output(bundle, model):
    predictor = TabularPredictor.from_bundle(load_bundle(bundle.path), model=model)
    data = load_tabular_dataset(bundle.path.parent / "records.csv")
    split = data.split("test")
    encoded, _ = predictor.preprocessing.encode(split.features.iloc[:5])
    values, base, output = predictor.explain(encoded)
    assert values.shape == (5, 4)
    np.testing.assert_allclose(base + values.sum(1), output, atol=1e-6)
    probs = predictor.probs_from_encoded(encoded)[:, 1]
    np.testing.assert_allclose(1 / (1 + np.exp(-output)), probs, atol=1e-6)


def test_record_prediction_explains_and_plots(bundle, tmp_path):
    predictor = load_model(bundle.path)
    [result] = predictor.predict_records([{"age": 70, "glucose": 190, "smoker": "yes",
                                          "cp": 4}], explain_dir=tmp_path)
    assert set(result["probabilities"]) == {"0", "1"}
    assert result["decision"] in ("0", "1")
    contributions = result["explanation"]["contributions"]
    assert {c["feature"] for c in contributions} == {"age", "glucose", "smoker", "cp"}
    total = result["explanation"]["base_value"] + sum(c["shap"] for c in contributions)
    assert total == pytest.approx(result["explanation"]["output_value"], abs=1e-6)
    assert (tmp_path / "record_000_shap.png").stat().st_size > 1000


def test_bad_records_are_errors_or_documented_warnings(bundle):
    predictor = load_model(bundle.path)
    good = {"age": 50, "glucose": 120, "smoker": "no", "cp": 1}
    with pytest.raises(DataError, match=r"\['glucose'\] are missing"):
        predictor.predict_records([{"age": 50, "smoker": "no", "cp": 1}])
    with pytest.raises(DataError, match="'glucose'.*not a number"):
        predictor.predict_records([{**good, "glucose": "high"}])
    with pytest.raises(DataError, match="infinite"):
        predictor.predict_records([{**good, "glucose": float("inf")}])
    [nan] = predictor.predict_records([{**good, "glucose": float("nan"), "age": None}])
    assert {c["feature"]: c["value"] for c in nan["explanation"]["contributions"]}[
        "glucose"] == "missing"
    [odd] = predictor.predict_records([{**good, "smoker": "sometimes", "age": 130,
                                        "note": "x"}])
    text = " ".join(odd["warnings"])
    assert "never saw" in text and "outside the training range" in text and "ignored" in text
    with pytest.raises(DataError, match="no record"):
        predictor.predict_records([])


def test_table_prediction_with_and_without_header(bundle, tmp_path):
    predictor = load_model(bundle.path)
    with_header = tmp_path / "new.csv"
    with_header.write_text("cp,smoker,glucose,age\n4,yes,150,60\n1,no,90,30\n")
    results = predictor.predict_table(with_header)
    assert [r["record"] for r in results] == ["new.csv:2", "new.csv:3"]
    without = tmp_path / "bare.csv"
    without.write_text("60,150,yes,4\n30,90,no,1\n")
    again = predictor.predict_table(without)
    assert [r["probabilities"] for r in again] == [r["probabilities"] for r in results]


def test_preprocessing_is_json_and_handles_missing(tmp_path):
    data = load_tabular_dataset(synthetic_records(tmp_path / "r.csv", n=80))
    frame = data.split("all").features
    prep = TabularPreprocessing.fit(data.schema, frame)
    again = TabularPreprocessing.from_dict(json.loads(json.dumps(prep.to_dict())))
    encoded, _ = again.encode(frame)
    features = again.expand(encoded)
    assert np.isfinite(features).all()
    assert "glucose missing" in again.feature_names and "smoker=yes" in again.feature_names


def test_numpy_mlp_matches_torch_and_calibration_is_monotone():
    torch.manual_seed(0)
    model = TabularMLP(5, 2, (8, 4), 0.1).eval()
    x = np.random.default_rng(0).normal(size=(7, 5)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(NumpyMLP(model.state_dict())(x), expected, atol=1e-5)
    scores = np.stack([np.zeros(50), np.linspace(-3, 3, 50)], 1)
    labels = (np.linspace(0, 1, 50) > 0.5).astype(int)
    calibration = fit_calibration(scores, labels)
    probs = calibrated_probs(scores, calibration)[:, 1]
    assert np.all(np.diff(probs) >= 0)
