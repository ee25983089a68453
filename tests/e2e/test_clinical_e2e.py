"""Clinical records and symptom text on the real shared data, through the API and the CLI."""

import json
import os

import numpy as np
import pytest

import meddx
from meddx.data.loading import load_dataset
from meddx.decision.predictors import load_model
from meddx.errors import DataError
from tests.cli_helpers import assert_clear_error, meddx_cli

pytestmark = pytest.mark.e2e

def test_schema_inference_on_the_real_files(shared_data):
    pima = load_dataset("pima-diabetes", shared_data)
    zero_missing = {c.name for c in pima.schema.columns if c.zero_means_missing}
    assert zero_missing == {"Glucose", "BloodPressure", "SkinThickness", "Insulin", "BMI"}
    frame = pima.split("all").features
    # The README's counts of impossible zeros.
    assert frame.isna().sum().to_dict() == {
        "Pregnancies": 0, "Glucose": 5, "BloodPressure": 35, "SkinThickness": 227,
        "Insulin": 374, "BMI": 11, "DiabetesPedigreeFunction": 0, "Age": 0}
    assert np.bincount(pima.split("all").labels).tolist() == [500, 268]

    va = load_dataset("heart-disease-va-switzerland:va", shared_data)
    swiss = load_dataset("heart-disease-va-switzerland:switzerland", shared_data)
    both = load_dataset("heart-disease-va-switzerland", shared_data)
    assert not va.schema.header and va.schema.binarise == "num > 0"
    assert np.bincount(va.split("all").labels).tolist() == [51, 149]
    assert np.bincount(swiss.split("all").labels).tolist() == [8, 115]
    assert len(both.split("all")) == 323
    kinds = {c.name: c.kind for c in both.schema.columns}
    assert kinds["cp"] == kinds["thal"] == "categorical" and kinds["age"] == "numeric"
    assert swiss.split("all").features["chol"].isna().all()  # chol = 0 means not measured
    assert va.split("all").features["ca"].isna().sum() == 198


@pytest.fixture(scope="module")
def va_bundle(tmp_path_factory):
    # Module scope (one training for several tests); the shared_data fixture is per test.
    if not os.environ.get("MEDDX_DATA_DIR"):
        pytest.skip("MEDDX_DATA_DIR is not set: no real datasets to test on")
    out = tmp_path_factory.mktemp("heart") / "va"
    return meddx.train("heart-disease-va-switzerland:va", out,
                       progress=False, epochs=10, amp="off",
                       plan={"max_rounds": 200, "background_size": 20})


def test_bundle_trained_on_one_centre_applies_to_the_other(va_bundle, shared_data, tmp_path):
    metrics = meddx.evaluate(va_bundle.path, "heart-disease-va-switzerland:switzerland",
                             split="all", data_dir=shared_data, json_path=tmp_path / "m.json",
                             report_dir=tmp_path / "report", n_bootstrap=200)
    assert metrics["n"] == 123
    for key in ("auc", "accuracy", "f1", "sensitivity", "specificity", "ci", "per_class"):
        assert key in metrics
    assert (tmp_path / "report" / "feature_importance.png").exists()
    # The other centre's raw export, headerless, through the CLI.
    swiss_file = shared_data / "uci-heart-disease-va-switzerland" / "processed.switzerland.data"
    meddx_cli("predict", va_bundle.path, "--csv", swiss_file, "--json", tmp_path / "p.json",
              check=True)
    predictions = json.loads((tmp_path / "p.json").read_text())["predictions"]
    assert len(predictions) == 123
    assert predictions[0]["record"] == "processed.switzerland.data:1"


def test_record_prediction_shap_adds_up_on_real_bundle(va_bundle, tmp_path):
    record = {"age": 63, "sex": 1, "cp": 4, "trestbps": 140, "chol": 260, "fbs": 0,
              "restecg": 1, "thalach": 112, "exang": 1, "oldpeak": 3, "slope": 2, "ca": None,
              "thal": None}
    result = meddx_cli("predict", va_bundle.path, "--record", json.dumps(record), "--explain",
                       "--out", tmp_path, check=True)
    [prediction] = json.loads(result.stdout)
    explanation = prediction["explanation"]
    total = explanation["base_value"] + sum(c["shap"] for c in explanation["contributions"])
    assert total == pytest.approx(explanation["output_value"], abs=1e-6)
    assert os.path.getsize(explanation["plot"]) > 1000
    assert_clear_error(meddx_cli("predict", va_bundle.path, "--record",
                                 json.dumps({**record, "age": "old"})), "'age'")
    assert_clear_error(meddx_cli("predict", va_bundle.path), "--record")


def test_crossval_command(shared_data, tmp_path):
    config = tmp_path / "cv.json"
    config.write_text(json.dumps({"dataset": "heart-disease-va-switzerland:va",
                                  "plan": {"max_rounds": 50, "background_size": 10},
                                  "train": {"epochs": 2, "amp": "off"}}))
    meddx_cli("crossval", config, "--folds", "2", "--json", tmp_path / "cv-out.json",
              "--data-dir", shared_data, "--no-progress", check=True)
    data = json.loads((tmp_path / "cv-out.json").read_text())
    assert data["n"] == 200 and len(data["fits"]) == 2
    assert {"mlp", "lightgbm"} <= set(data["models"])


def test_symptom_text_round_trip(shared_data, tmp_path):
    plan = {"vocab_size": 1000, "hidden_size": 32, "layers": 1, "heads": 2,
            "intermediate_size": 64, "max_length": 64, "tfidf": {"ngram_range": [2, 4],
                                                                 "max_features": 10000}}
    bundle = meddx.train("symptom2disease", tmp_path / "s2d", data_dir=shared_data,
                         progress=False, plan=plan, epochs=2, amp="off")
    test = bundle.metadata["metrics"]["test"]
    assert test["n"] == 240 and test["macro_f1"] > 0.5
    assert test["top_k_accuracy"]["top_3"] >= test["accuracy"]
    result = meddx_cli("predict", bundle.path, "--text",
                       "I have itchy red patches all over my skin",
                       "--text", "Tengo fiebre alta y dolor de cabeza", "--text", "?!",
                       check=True)
    predictions = json.loads(result.stdout)
    assert len(predictions) == 3 and all(p["top_3"] for p in predictions)
    predictor = load_model(bundle.path)
    with pytest.raises(DataError, match="empty"):
        predictor.predict_texts(["   "])
    assert predictor.class_names[0] == "Acne"
