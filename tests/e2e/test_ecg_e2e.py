"""ECG end to end: synthetic patients -> train -> bundle -> evaluate a folder -> predict, explain.

Synthetic records (neurokit2 ECGSYN with premature wide ventricular beats, see
``tests/ecg_helpers.py``) go through the public API and the real CLI, exactly as MIT-BIH records
would: patient-wise split, the one trainer, the bundle, ``meddx evaluate --dataset FOLDER --split
all --json`` and ``meddx predict BUNDLE RECORD --explain``.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

import meddx
from meddx.data.ecg import extract_beats
from meddx.errors import BundleError, InputFileError
from meddx.learn.tasks import ecg as recipe
from tests.cli_helpers import assert_clear_error, meddx_cli
from tests.ecg_helpers import FS, synthetic_signal, write_folder, write_record, write_ucr

# One torch thread: these networks are tiny, and on a shared CPU more threads only wait.
QUICK = {"epochs": 4, "patience": 0, "amp": "off", "progress": False, "num_threads": 1}


@pytest.fixture(scope="module", autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def train_folder(tmp_path_factory):
    return write_folder(tmp_path_factory.mktemp("ecg-train") / "train", n_records=5,
                        duration_s=50)


# The beat model kinds of the recipe: LightGBM on beat features, a 1D CNN, and both averaged
# (the default).
@pytest.fixture(scope="module", params=["lightgbm", "cnn", "cnn+lightgbm"])
def beat_bundle(request, tmp_path_factory, train_folder):
    root = tmp_path_factory.mktemp(f"ecg-e2e-{request.param}")
    plan = {"epoch_size": 1024, "batch_size": 64} if "cnn" in request.param else {}
    bundle = meddx.train(str(train_folder), root / "bundle",
                         plan={"model": request.param, **plan}, **QUICK)
    return root, bundle


def test_training_writes_a_beat_bundle(beat_bundle):
    _, bundle = beat_bundle
    meta = bundle.metadata
    assert meta["task"] == "ecg-beat-classification"
    assert meta["class_names"] == ["N", "S", "V", "F", "Q"]
    splits = meta["record_split"]
    assert not set(splits["train"]) & (set(splits["val"]) | set(splits["test"]))
    imbalance = meta["imbalance"]
    model = meta["plan"]["model"]
    if model != "lightgbm":
        assert imbalance["method"] == "sampler"
        # Tempered sampling: V is drawn more often than its natural share, N less.
        assert imbalance["sampled_share"]["V"] > imbalance["train_share"]["V"]
    if model == "cnn+lightgbm":
        # One bundle holds both members: the network's weights and the trees' own file.
        assert (bundle.path / "lightgbm.txt").is_file() and bundle.state_dict()
        assert imbalance["lightgbm"]["method"] == "weighted_loss"
        assert meta["training"]["lightgbm"]["best_iteration"] > 0
        # Refitted on train + val: each member's validation figures are the selection fit's.
        assert meta["plan"]["fit_on"] == "train+val" and "members" not in meta
        assert set(meta["training"]["selection_fit"]["members"]) == {"cnn", "lightgbm"}
        # The network keeps its 5 RR features beside the trees' two-lead feature set.
        assert (meta["network"]["n_extra"] == 5
                and meta["preprocessing"]["feature_set"] == "two_lead")
    elif model == "lightgbm":
        # Class-weighted trees: a V beat weighs more than an N beat; the model is its own file.
        assert imbalance["method"] == "weighted_loss"
        assert imbalance["loss_weights"]["V"] > imbalance["loss_weights"]["N"]
        assert (bundle.path / "lightgbm.txt").is_file()
        assert meta["training"]["best_iteration"] > 0
        assert f"({meta['training']['best_iteration']} boosting rounds" in bundle.model_card
    if model != "cnn":
        assert (f"{recipe.SMOOTHING_NEIGHBOURS} most similar beats of the same record"
                in bundle.model_card)
    test = meta["metrics"]["test"]
    assert test["per_class"]["V"]["support"] > 0
    assert test["per_class"]["S"]["sensitivity"] is None  # no S beat: undefined, not a crash


def test_combined_model_averages_its_members(beat_bundle, train_folder):
    _, bundle = beat_bundle
    if bundle.metadata["plan"]["model"] != "cnn+lightgbm":
        pytest.skip("the cnn+lightgbm model kind only")
    predictor = meddx.load_model(bundle.path)
    split = meddx.load_dataset(str(train_folder)).split("all")
    network, trees = (member.predict_split(split) for member in predictor.members)
    assert not np.allclose(network, trees)  # two different models, not one loaded twice
    smoothed = predictor.predict_split(split)
    predictor.plan.smoothing_neighbours = 0
    np.testing.assert_allclose(predictor.predict_split(split), (network + trees) / 2, atol=1e-6)
    assert not np.allclose(smoothed, (network + trees) / 2)  # smoothed once, after averaging


def test_default_model_carries_its_second_opinion(beat_bundle, train_folder, tmp_path):
    _, bundle = beat_bundle
    if bundle.metadata["plan"]["model"] != "cnn+lightgbm":
        pytest.skip("the cnn+lightgbm model kind only")
    meta = bundle.metadata
    assert meta["plan"]["second_opinion"] == recipe.SECOND_OPINION
    assert meta["second_opinion"]["plan"]["beat_config"]["anchor_beats"] == "not_premature"
    assert meta["second_opinion"]["training"]["lightgbm"]["best_iteration"] >= 1
    assert "calls S on a share of the beats at least 0.05" in bundle.model_card
    assert meta["limitations"][-1] == recipe.SECOND_OPINION_LIMITATION
    assert (bundle.path / recipe.SECOND_OPINION_DIR / "lightgbm.txt").is_file()
    predictor = meddx.load_model(bundle.path)
    second = predictor.second_opinion
    assert second.plan.beat_config["anchor_beats"] == "not_premature"
    assert second.second_opinion is None
    dataset = meddx.load_dataset(str(train_folder))
    split = dataset.split("all")
    probs = predictor.predict_split(split)
    assert not np.allclose(second.predict_split(split), probs)  # its own model, not a copy
    # The default decides with the irregular-rhythm S margin where the gate stays shut (E36);
    # the gate alone first, then with it.
    assert (predictor.plan.irregular_s_margin, predictor.plan.irregular_s_margin_scope) == (
        recipe.IRREGULAR_S_MARGIN, "gate_shut")
    assert "stays below that gap, an S call outside regular rhythm" in bundle.model_card
    predictor.plan.irregular_s_margin, predictor.plan.irregular_s_margin_scope = 1.0, "all_records"
    # evaluate's calls (the whole split) are predict's (one record at a time).
    calls = predictor.decide(probs, split)
    first = predictor.first_opinion(probs, split)
    for record in dataset.records[:2]:
        result = predictor.predict_record(record)
        rows = split.records == record.name
        assert result["beat_table"]["class"] == [predictor.class_names[c] for c in calls[rows]]
        assert result["second_opinion"] == {
            "beat_options": {"anchor_beats": "not_premature"}, "min_gap": 0.05,
            "beats_called_S": int(np.count_nonzero(calls[rows] != first[rows]))}
    # Where the second opinion calls every beat S, the first's N calls become S, and no other.
    n, s = predictor.class_names.index("N"), predictor.class_names.index("S")
    forced = predictor.decide(probs, split, second_calls=np.full(len(split), s))
    np.testing.assert_array_equal(forced, np.where(calls == n, s, calls))
    # With the margin where the gate stays shut: records the gate opens keep the calls
    # without the margin; shut ones take the first opinion's with it; predict agrees.
    predictor.plan.irregular_s_margin, predictor.plan.irregular_s_margin_scope = 3.0, "gate_shut"
    np.testing.assert_array_equal(predictor.decide(probs, split, np.full(len(split), s)), forced)
    # The gate reads the first opinion without the margin (computed above with the plan's 1.0).
    np.testing.assert_array_equal(predictor.gate_reading(probs, split), first)
    shut = predictor.decide(probs, split, second_calls=first)
    np.testing.assert_array_equal(shut, predictor.first_opinion(probs, split))
    shut_calls = predictor.decide(probs, split)
    for record in dataset.records[:2]:
        rows = split.records == record.name
        assert predictor.predict_record(record)["beat_table"]["class"] == [
            predictor.class_names[c] for c in shut_calls[rows]]
    # A bundle that lost its second model says so.
    broken = tmp_path / "broken"
    shutil.copytree(bundle.path, broken)
    (broken / recipe.SECOND_OPINION_DIR / "lightgbm.txt").unlink()
    with pytest.raises(BundleError, match="second_opinion: the bundle has no lightgbm.txt"):
        meddx.load_model(broken)


def test_evaluation_and_prediction_give_each_beat_the_same_probabilities(beat_bundle,
                                                                        train_folder):
    _, bundle = beat_bundle
    predictor = meddx.load_model(bundle.path)
    assert predictor.plan.smoothing_neighbours == (
        0 if bundle.metadata["plan"]["model"] == "cnn" else recipe.SMOOTHING_NEIGHBOURS)
    dataset = meddx.load_dataset(str(train_folder))
    split = dataset.split("all")
    probs = predictor.predict_split(split)  # the evaluation path: whole records at once
    # CUDA's TF32 convolutions round differently for batches of other shapes.
    atol = 1e-5 if predictor.device.type == "cpu" else 1e-4
    for record in dataset.records[:2]:  # the prediction path: one record
        beats = extract_beats(record, predictor.beat_config)
        np.testing.assert_allclose(predictor.record_probabilities(record, beats),
                                   probs[split.records == record.name], atol=atol)


def test_evaluate_any_folder_of_annotated_records(beat_bundle):
    root, bundle = beat_bundle
    unseen = root / "unseen"
    for index in range(2):
        write_record(unseen, str(940 + index), seed=40 + index, duration_s=30)
    out = root / "eval.json"
    meddx_cli("evaluate", bundle.path, "--dataset", unseen, "--split", "all", "--json", out,
              check=True)
    metrics = json.loads(out.read_text())
    assert {"accuracy", "macro_f1", "per_class"} <= set(metrics)
    assert set(metrics["per_class"]) == {"N", "S", "V", "F", "Q"}
    for name in ("S", "F", "Q"):  # absent from the folder
        assert metrics["per_class"][name]["sensitivity"] is None
    # Premature wide beats on unseen patients are learnable within a few epochs.
    assert metrics["per_class"]["V"]["sensitivity"] >= 0.8
    assert metrics["per_class"]["V"]["ppv"] >= 0.8
    assert metrics["accuracy"] >= 0.9


def test_predict_record_with_explanation(beat_bundle, artifacts):
    root, bundle = beat_bundle
    record = write_record(root / "patient", "950", seed=50, duration_s=30)
    explain = artifacts / "ecg" / bundle.metadata["plan"]["model"]
    result = meddx_cli("predict", bundle.path, record, "--explain", "--out", explain, check=True)
    prediction = json.loads(result.stdout)[0]
    summary = prediction["summary"]
    assert summary["beats"] == sum(summary["counts"].values()) == len(
        prediction["beat_table"]["class"])
    truth = prediction["reference_counts"]
    assert abs(summary["counts"]["V"] - truth["V"]) <= 2
    assert summary["V_burden_percent"] == pytest.approx(
        100 * summary["counts"]["V"] / summary["beats"], abs=1e-3)
    png = explain / "000_950_saliency.png"
    assert prediction["explanation"] == str(png) and png.stat().st_size > 10_000


def test_predict_csv_signal_with_rate(beat_bundle, tmp_path):
    _, bundle = beat_bundle
    signal, peaks, symbols = synthetic_signal(seed=60, duration_s=20)
    path = tmp_path / "strip.csv"
    path.write_text("MLII\n" + "\n".join(f"{v:.5f}" for v in signal))
    with pytest.raises(InputFileError, match="strip.csv: unknown sampling rate"):
        meddx.predict(bundle.path, [path])
    prediction = meddx.predict(bundle.path, [path], fs=FS)[0]
    assert prediction["beat_positions"].startswith("R-peak detection")
    assert abs(prediction["summary"]["beats"] - len(peaks)) <= 2
    assert abs(prediction["summary"]["counts"]["V"] - symbols.count("V")) <= 2


def test_bad_record_gives_a_clear_cli_error(beat_bundle):
    root, bundle = beat_bundle
    record = write_record(root / "broken", "960", seed=70, duration_s=20)
    (root / "broken" / "960.dat").unlink()
    assert_clear_error(meddx_cli("predict", bundle.path, record),
                       "record 960: signal file not found")


def test_series_train_evaluate_predict(tmp_path):
    folder = tmp_path / "Bumps"
    folder.mkdir()
    write_ucr(folder / "Bumps_TRAIN.txt", 60, seed=0)
    write_ucr(folder / "Bumps_TEST.txt", 40, seed=1)
    bundle = meddx.train(str(folder), tmp_path / "bundle", plan={"arch": "resnet"},
                         **{**QUICK, "epochs": 8})
    assert bundle.metadata["task"] == "ecg-series-classification"
    metrics = meddx.evaluate(tmp_path / "bundle", str(folder / "Bumps_TEST.txt"), split="all")
    assert metrics["accuracy"] >= 0.9 and "fitted_on_this_split" not in metrics
    # The keep-last network fitted on train + val: figures on val are flagged as in-sample.
    assert bundle.metadata["training"]["fit_on"] == "train+val"
    assert meddx.evaluate(tmp_path / "bundle", str(folder), split="val")["fitted_on_this_split"]
    # Another set of files: its val split was never seen, so it is not flagged.
    other = tmp_path / "Other"
    other.mkdir()
    write_ucr(other / "Other_TRAIN.txt", 60, seed=2)
    write_ucr(other / "Other_TEST.txt", 40, seed=3)
    assert "fitted_on_this_split" not in meddx.evaluate(tmp_path / "bundle", str(other),
                                                        split="val")
    result = meddx.predict(tmp_path / "bundle", [folder / "Bumps_TEST.txt"])[0]
    assert result["series"] == 40
    labels = np.loadtxt(folder / "Bumps_TEST.txt")[:, 0]
    decided = np.array([float(p["decision"]) for p in result["predictions"]])
    assert [p["reference"] for p in result["predictions"]][:2] == ["1", "2"]
    assert (decided == labels).mean() >= 0.9


def test_real_ds1_evaluation_path(shared_data, tmp_path):
    """A model trained on synthetic patients is evaluated on the real DS1 folder by path."""
    train_folder = write_folder(tmp_path / "train", n_records=3, duration_s=20)
    meddx.train(str(train_folder), tmp_path / "bundle",
                plan={"epoch_size": 128, "batch_size": 64}, **{**QUICK, "epochs": 1})
    metrics = meddx.evaluate(tmp_path / "bundle", str(shared_data / "mitdb-arrhythmia-ds1"),
                             split="all", n_bootstrap=50)
    assert metrics["n"] == 51021
    assert set(metrics["per_class"]) == {"N", "S", "V", "F", "Q"}
    assert metrics["per_class"]["S"]["support"] == 944
    # +P as EC57 scores beats: V calls on F and Q beats count neither way.
    assert metrics["excused_calls"] == {"V": ["F", "Q"], "S": ["Q"]}
    cm = np.array(metrics["confusion_matrix"])
    v_calls = cm[:, 2]
    v = metrics["per_class"]["V"]

    def share(hits: int, calls: int) -> float | None:  # undefined (None) without calls
        return hits / calls if calls else None

    assert v["ppv"] == pytest.approx(share(v_calls[2], v_calls[:3].sum()))
    assert v["ppv_all_calls"] == pytest.approx(share(v_calls[2], v_calls.sum()))
