"""Cross-validation: generic over recipes, corrected CIs, bundle or config as the source."""

import json

import numpy as np
import pytest

from meddx.data.tabular import load_tabular_dataset
from meddx.errors import ConfigError, DataError
from meddx.learn.crossval import corrected_interval, cross_validate, crossval_from
from meddx.learn.trainer import TrainConfig
from tests.conftest import synthetic_dataset
from tests.unit.test_tabular_task import synthetic_records

FAST = TrainConfig(epochs=2, patience=0, amp="off", ema_decay=0.0, lr=5e-3)


def test_corrected_interval_is_wider_than_the_naive_one():
    values = np.array([0.80, 0.82, 0.85, 0.79, 0.84])
    low, high = corrected_interval(values, test_fraction=0.2)
    naive = 2.776 * values.std(ddof=1) / np.sqrt(5)
    assert low < values.mean() < high
    assert (high - low) / 2 > naive
    assert corrected_interval(np.array([0.8]), 0.2) is None


def test_tabular_cross_validation_reports_every_model(tmp_path):
    data = load_tabular_dataset(synthetic_records(tmp_path / "r.csv", n=150))
    result = cross_validate(data, config=FAST, plan={"max_rounds": 30, "background_size": 8},
                            folds=3, repeats=2, progress=False)
    assert result["folds"] == 3 and result["repeats"] == 2 and len(result["fits"]) == 6
    assert sum(f["n_test"] for f in result["fits"]) == 2 * 150
    auc = result["summary"]["auc"]
    assert 0.5 < auc["mean"] <= 1 and auc["ci"][0] < auc["mean"] < auc["ci"][1]
    assert set(result["models"]) == {"mlp", "lightgbm", "ensemble"}
    json.dumps(result, allow_nan=False)


def test_image_recipe_cross_validates_too():
    data = synthetic_dataset(sizes=(40, 10, 10))
    result = cross_validate(data, config=TrainConfig(epochs=1, amp="off"),
                            plan={"arch": "compact_cnn"}, folds=2, progress=False)
    assert len(result["fits"]) == 2 and result["summary"]["accuracy"]["mean"] is not None
    assert result["models"] == {}


def test_config_file_and_errors(tmp_path):
    records = synthetic_records(tmp_path / "r.csv", n=90)
    config = tmp_path / "cv.json"
    config.write_text(json.dumps({"dataset": str(records), "plan": {"max_rounds": 20},
                                  "train": {"epochs": 1, "amp": "off"}}))
    result = crossval_from(config, folds=2, progress=False)
    assert result["n"] == 90
    config.write_text(json.dumps({"dataset": str(records), "bogus": 1}))
    with pytest.raises(ConfigError, match="bogus"):
        crossval_from(config)
    with pytest.raises(ConfigError, match="neither a bundle"):
        crossval_from(tmp_path / "missing")
    data = load_tabular_dataset(records)
    with pytest.raises(DataError, match="at least 50"):
        cross_validate(data, folds=50, progress=False)
