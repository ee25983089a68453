"""The MiniRocket series model: plan checks, fit/predict, pickle-free bundle round trip, occlusion.

Synthetic UCR series (``tests/ecg_helpers.write_ucr``: class 1 = a bump early, class 2 = a bump
late) train in about a second; the first MiniRocket call compiles sktime's numba kernels (cached
on disk after that).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

import meddx
from meddx.data.ecg import load_series_dataset, load_wfdb_dataset
from meddx.errors import BundleError, ConfigError
from meddx.learn.tasks import ecg as recipe
from meddx.learn.tasks.ecg_rocket import (
    EXPLANATION_METHOD,
    STATE_KEYS,
    RocketModel,
    imbalance_weights,
    occlusion_saliency,
)
from meddx.learn.trainer import TrainConfig
from tests.ecg_helpers import write_folder, write_ucr_folder

LENGTH = 64
QUICK = TrainConfig(epochs=1, patience=0, amp="off", num_threads=1)


@pytest.fixture(scope="module")
def bumps(tmp_path_factory):
    return write_ucr_folder(tmp_path_factory.mktemp("rocket"), length=LENGTH)[0]


@pytest.fixture(scope="module")
def dataset(bumps):
    return load_series_dataset(bumps)


@pytest.fixture(scope="module")
def fitted(dataset, tmp_path_factory):
    return recipe.fit(dataset, tmp_path_factory.mktemp("rocket-fit"), QUICK,
                      plan={"model": "minirocket"}, progress=False)


def test_plan_model_kinds_per_family(dataset, tmp_path):
    plan = recipe.make_plan(dataset, {"model": "minirocket", "minirocket": {"C": 0.01}})
    assert plan.model == "minirocket" and plan.network == {"arch": "minirocket"}
    assert plan.minirocket == {"C": 0.01} and plan.arch_candidates == []
    assert recipe.make_plan(dataset, {"arch": "resnet"}).model == "cnn"
    with pytest.raises(ConfigError, match="'lightgbm' is not one for series; choose cnn or "
                                          "minirocket"):
        recipe.make_plan(dataset, {"model": "lightgbm"})
    with pytest.raises(ConfigError, match="arch / network_options are for model cnn"):
        recipe.make_plan(dataset, {"model": "minirocket", "arch": "resnet"})
    with pytest.raises(ConfigError, match=r"plan.minirocket: unknown option\(s\) \['kernels'\]"):
        recipe.make_plan(dataset, {"model": "minirocket", "minirocket": {"kernels": 84}})
    with pytest.raises(ConfigError, match="num_kernels must be >= 84"):
        recipe.make_plan(dataset, {"model": "minirocket", "minirocket": {"num_kernels": 10}})
    with pytest.raises(ConfigError, match="C must be > 0"):
        recipe.make_plan(dataset, {"model": "minirocket", "minirocket": {"C": 0}})
    beats = load_wfdb_dataset(write_folder(tmp_path / "records", n_records=2, duration_s=20),
                              progress=False)
    with pytest.raises(ConfigError, match="'minirocket' is not one for beats"):
        recipe.make_plan(beats, {"model": "minirocket"})


def test_fit_on_defaults(dataset, tmp_path):
    # Series models that select nothing on validation fit on it by default ...
    assert recipe.make_plan(dataset, {"model": "minirocket"}).fit_on == "train+val"
    assert recipe.make_plan(dataset).fit_on == "train+val"  # keep-last InceptionTime
    # ... series models that select on it keep it held out ...
    assert recipe.make_plan(dataset, {"arch": "auto"}).fit_on == "train"
    assert recipe.make_plan(dataset, {"selection": "accuracy"}).fit_on == "train"
    # ... and beat models select on it, then refit on train + val.
    beats = load_wfdb_dataset(write_folder(tmp_path / "records", n_records=2, duration_s=20),
                              progress=False)
    assert recipe.make_plan(beats).fit_on == "train+val"
    assert recipe.make_plan(beats, {"fit_on": "train"}).fit_on == "train"
    with pytest.raises(ConfigError, match="fit_on must be one of"):
        recipe.make_plan(dataset, {"fit_on": "all"})
    # Bundles written before the option read as held-out validation.
    old = recipe.make_plan(dataset).to_dict()
    del old["fit_on"]
    assert recipe.EcgPlan.from_dict(old).fit_on == "train"


def test_fit_gives_probabilities_and_metadata(fitted, dataset):
    metadata = fitted.metadata
    assert metadata["network"]["arch"] == "minirocket"
    assert metadata["network"]["features"] == 84 * (metadata["network"]["features"] // 84) > 9000
    assert metadata["training"]["model"] == "minirocket"
    assert metadata["class_names"] == ["1", "2"] and metadata["plan"]["label_values"] == [1, 2]
    # One fit selects nothing: the validation part joins the training series.
    sizes = dataset.split_sizes()
    assert metadata["training"]["fit_on"] == "train+val"
    assert metadata["training"]["train_examples"] == sizes["train"] + sizes["val"]
    assert "val" not in metadata["metrics"]
    assert any("occlusion" in line for line in metadata["limitations"])
    # Balanced toy classes: the plan's weighted loss gives both classes weight 1.
    assert metadata["imbalance"]["sample_weights"] == {"1": 1.0, "2": 1.0}
    test = dataset.split("test")
    probs = fitted.predictor.predict_split(test)
    assert probs.shape == (len(test), 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-9)
    assert (probs.argmax(axis=1) == test.labels).mean() >= 0.9


def test_fit_on_train_holds_out_validation(dataset, tmp_path):
    held_out = recipe.fit(dataset, tmp_path, QUICK, plan={"model": "minirocket", "fit_on": "train"},
                          progress=False).metadata
    assert held_out["training"]["train_examples"] == dataset.split_sizes()["train"]
    assert held_out["metrics"]["val"]["accuracy"] >= 0.9
    assert held_out["metrics"]["val"]["n"] == dataset.split_sizes()["val"]


def test_ensembles_are_for_networks(dataset, tmp_path):
    with pytest.raises(ConfigError, match="--ensemble is for networks"):
        recipe.fit(dataset, tmp_path, TrainConfig(epochs=1, ensemble=3),
                   plan={"model": "minirocket"}, progress=False)


@pytest.mark.parametrize("classes", [2, 3])
def test_probabilities_match_sklearn(classes):
    """The model computes the logistic regression's probabilities from its stored arrays."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 1, 32)).astype(np.float32)
    # Real MiniRocket parameters for this length, then a classifier on their features.
    from sktime.transformations.rocket import MiniRocket

    transform = MiniRocket(num_kernels=168, n_jobs=1, random_state=0).fit(x)
    raw = transform.transform(x).to_numpy(np.float64)
    labels = np.arange(30) % classes
    mean, scale = raw.mean(axis=0), raw.std(axis=0) + 1e-3
    classifier = LogisticRegression(C=1.0, max_iter=2000).fit((raw - mean) / scale, labels)
    model = RocketModel(transform.parameters, mean, scale, classifier.coef_,
                        classifier.intercept_)
    np.testing.assert_allclose(model.predict_proba(x),
                               classifier.predict_proba((raw - mean) / scale), atol=1e-10)


def test_imbalance_weights_follow_the_plan(dataset):
    plan = recipe.make_plan(dataset, {"model": "minirocket"})
    counts = np.array([90, 10])
    weighted = imbalance_weights(counts, plan)  # weighted_loss, power 0.5
    assert weighted[1] / weighted[0] == pytest.approx(3.0)
    assert (weighted * counts).sum() == pytest.approx(counts.sum())
    plan.imbalance = "none"
    assert imbalance_weights(counts, plan).tolist() == [1.0, 1.0]


def test_bundle_round_trip_without_pickle(fitted, dataset, bumps, tmp_path):
    """Probabilities of the loaded bundle equal those at training time, bit for bit."""
    bundle = meddx.train(str(bumps), tmp_path / "bundle", plan={"model": "minirocket"},
                         progress=False, epochs=1, num_threads=1, amp="off")
    state = torch.load(tmp_path / "bundle" / "weights.pt", weights_only=True)
    assert sorted(state) == sorted(STATE_KEYS)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    assert sorted(p.name for p in (tmp_path / "bundle").iterdir()) == [
        "meddx-bundle.json", "model_card.md", "report", "weights.pt"]
    saved = json.loads((tmp_path / "bundle" / "meddx-bundle.json").read_text())
    assert saved["plan"]["model"] == "minirocket"
    test = dataset.split("test")
    at_training = recipe.fit(dataset, tmp_path / "again", QUICK, plan={"model": "minirocket"},
                             progress=False).predictor.predict_split(test)
    loaded = meddx.load_model(tmp_path / "bundle")
    assert np.array_equal(loaded.predict_split(test), at_training)
    assert bundle.metadata["metrics"]["test"]["accuracy"] >= 0.9
    assert "- Model: minirocket, trained from scratch (one fit, " in bundle.model_card

    state.pop("classifier.coef")
    with pytest.raises(BundleError, match=r"needs the weights \['classifier.coef'\]"):
        RocketModel.from_state_dict(state, "broken")


def test_occlusion_saliency_marks_the_bump(fitted, dataset):
    test = dataset.split("test")
    x = recipe.series_inputs(test, LENGTH)[:6]
    targets = fitted.predictor.predict_split(test)[:6].argmax(axis=1)
    maps = occlusion_saliency(fitted.predictor.rocket, x, targets)
    assert maps.shape == (6, LENGTH) and (maps >= 0).all() and maps.max() > 0
    # The bump is at 30% (class "1") or 70% (class "2") of the series: the peak lies on it.
    for row, label in zip(maps, test.labels[:6], strict=True):
        centre = LENGTH * (0.3 if label == 0 else 0.7)
        assert abs(int(row.argmax()) - centre) <= 10


def test_predict_file_explains_with_occlusion(fitted, bumps, tmp_path):
    result = fitted.predictor.predict_file(bumps / "Bumps_TEST.txt",
                                           explain_to=tmp_path / "explain.png")
    assert result["explanation_method"] == EXPLANATION_METHOD
    assert result["explanation_method"].startswith("occlusion")
    assert (tmp_path / "explain.png").read_bytes()[:4] == b"\x89PNG"
    first = result["predictions"][0]
    assert len(first["saliency"]) == LENGTH and max(first["saliency"]) == pytest.approx(1)
    assert first["decision"] == first["reference"]
