"""``fit_on: train+val``: select on the validation records, then refit on train + val with what
was selected (epochs, boosting rounds), on small synthetic records."""

from __future__ import annotations

import json

import numpy as np
import pytest

import meddx
from meddx.data.ecg import BeatConfig, BeatSplit, extract_beats, load_wfdb_dataset
from meddx.decision.model_card import render_model_card
from meddx.errors import ConfigError
from meddx.learn.boosting import train_booster
from meddx.learn.tasks import ecg as recipe
from meddx.learn.trainer import TrainConfig
from tests.cli_helpers import meddx_cli
from tests.ecg_helpers import write_folder, write_ucr_folder

QUICK = TrainConfig(epochs=3, patience=0, amp="off", num_threads=1)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = write_folder(tmp_path_factory.mktemp("refit"), n_records=6, duration_s=40)
    return load_wfdb_dataset(folder, progress=False)


def test_beat_splits_join_in_order_and_keep_their_records(dataset):
    train, val = dataset.split("train"), dataset.split("val")
    both = BeatSplit.concat([train, val])
    assert len(both) == len(train) + len(val)
    np.testing.assert_array_equal(both.labels, np.concatenate([train.labels, val.labels]))
    np.testing.assert_array_equal(both.windows[len(train):], val.windows)
    assert set(both.record_data) == set(train.record_data) | set(val.record_data)
    other = val.with_config(BeatConfig(feature_set="two_lead"))
    # A split is re-cut once per options: the model and its decision rule read the same cut.
    assert val.with_config(BeatConfig(feature_set="two_lead")) is other
    with pytest.raises(ValueError, match="different options"):
        BeatSplit.concat([train, other])


def test_booster_without_validation_grows_exactly_the_rounds_asked():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(200, 3)), rng.integers(0, 3, 200)
    booster = train_booster(x, y, None, None, num_classes=3, feature_names=["a", "b", "c"],
                            params={"verbose": -1}, max_rounds=7, early_stopping=5)
    assert booster.current_iteration() == 7


def test_booster_stops_on_the_score_it_is_given():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(200, 3)), rng.integers(0, 3, 200)
    calls = []

    def peaks_at_round_4(labels, probs):
        calls.append(probs.shape)
        return -abs(len(calls) - 4)

    booster = train_booster(x, y, x, y, num_classes=3, feature_names=["a", "b", "c"],
                            params={"verbose": -1}, max_rounds=50, early_stopping=3,
                            stop_score=peaks_at_round_4)
    assert booster.best_iteration == 4 and len(calls) == 7  # 3 rounds past the peak
    assert calls[0] == (200, 3)  # probabilities of every validation row and class


@pytest.mark.parametrize("model", ["lightgbm", "cnn+lightgbm"])
def test_refit_uses_what_the_selection_fit_chose(dataset, model, tmp_path):
    fitted = recipe.fit(dataset, tmp_path, QUICK, plan={"model": model, "fit_on": "train+val"},
                        progress=False)
    meta = fitted.metadata
    training = meta["training"]
    selection = training["selection_fit"]
    sizes = dataset.split_sizes()
    # The final model saw the validation records: it reports no validation figures, the
    # selection fit (train records only) does.
    assert "val" not in meta["metrics"]
    assert selection["train_examples"] == sizes["train"]
    assert selection["val"]["n"] == sizes["val"] and "S" in selection["val"]["per_class"]
    trees = training["lightgbm"] if model == "cnn+lightgbm" else training
    assert trees["train_examples"] == sizes["train"] + sizes["val"]
    assert trees["epochs_run"] == trees["best_iteration"] == selection["boosting_rounds"] >= 1
    if model == "cnn+lightgbm":
        assert training["train_examples"] == sizes["train"] + sizes["val"]
        assert training["epochs_run"] == selection["epochs"] <= QUICK.epochs
    # The bundle's plan is the recipe as run (select on val, then refit).
    assert meta["plan"]["fit_on"] == "train+val" and meta["plan"]["selection"] == "macro_f1"
    card = render_model_card(meta)
    assert "refitted with what a first fit on the train split alone" in card
    assert f"{selection['boosting_rounds']} boosting rounds" in card
    probs = fitted.predictor.predict_split(dataset.split("test"))
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-5)
    if model == "cnn+lightgbm":
        # The network cuts a record's beats at the positions the combined model already
        # aligned: the windows of aligning the annotated marks again for its own options.
        predictor, record = fitted.predictor, dataset.records[0]
        network = next(m for m in predictor.members if m.plan.model == "cnn")
        assert network.beat_config != predictor.beat_config
        beats = predictor._member_beats(network, record,
                                        extract_beats(record, predictor.beat_config))
        np.testing.assert_array_equal(beats.windows,
                                      extract_beats(record, network.beat_config).windows)


def test_refit_settings_fix_the_length_of_training():
    selected = {"plan": {**recipe.EcgPlan(task=recipe.BEAT_TASK, class_names=list("NSVFQ"),
                                          network={}, model="cnn+lightgbm").to_dict(),
                         "arch_candidates": ["resnet", "inception"]},
                "training": {"best_epoch": 4, "lightgbm": {"best_iteration": 55}}}
    plan, config, rounds = recipe.refit_settings(selected, TrainConfig(epochs=30, patience=10))
    # The network stops at the selected epoch on the schedule of all 30.
    assert (config.epochs, config.stop_epoch, config.patience, rounds) == (30, 4, 0, 55)
    assert plan.selection == recipe.KEEP_LAST and plan.arch_candidates == []


def test_no_test_split_when_the_test_set_is_elsewhere(tmp_path):
    # MIT-BIH DS1 is tested on DS2: every record can go to training (train + val).
    folder = write_folder(tmp_path / "records", n_records=5, duration_s=30)
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"model": "lightgbm"}))
    meddx_cli("train", "--dataset", folder, "--out", tmp_path / "bundle", "--plan", plan,
              "--test-fraction", "0", "--no-progress", check=True)
    bundle = meddx.load_bundle(tmp_path / "bundle")
    meta = bundle.metadata
    assert "test" not in meta["metrics"] and meta["provenance"]["split_sizes"]["test"] == 0
    assert meta["record_split"]["test"] == []
    assert len(meta["record_split"]["train"]) + len(meta["record_split"]["val"]) == 5
    assert "No test split of its own" in bundle.model_card
    assert not (tmp_path / "bundle" / "report").exists()


def test_test_fraction_is_checked(dataset, tmp_path):
    with pytest.raises(ConfigError, match=r"test fraction must be in \[0, 1\)"):
        dataset.set_test_fraction(1.0)
    ucr = write_ucr_folder(tmp_path / "ucr", length=32)[0]
    with pytest.raises(ConfigError, match="a test fraction applies to WFDB record folders"):
        meddx.train(str(ucr), tmp_path / "bundle", test_fraction=0, epochs=1, progress=False)


def test_refitted_model_classifies_given_r_peaks(dataset, tmp_path):
    from dataclasses import replace

    predictor = recipe.fit(dataset, tmp_path, QUICK, plan={"model": "lightgbm"},
                           progress=False).predictor
    record = dataset.records[0]
    unannotated = replace(record, beat_samples=None, beat_symbols=None)
    peaks = record.beat_samples[::2]  # every other beat: positions the caller chose
    given = predictor.predict_record(unannotated, samples=peaks)
    assert given["beat_positions"] == "given R peaks"
    np.testing.assert_allclose(given["beat_table"]["time_s"], np.round(peaks / record.fs, 3))
    assert predictor.predict_record(unannotated)["beat_positions"].startswith("R-peak detection")
    # The split's smoothing is the per-record smoothing of the same probabilities.
    split = dataset.split("val").with_config(predictor.beat_config)
    unsmoothed = predictor.booster.predict(split.rr)
    smoothed = predictor.smooth_within_records(unsmoothed, split)
    np.testing.assert_allclose(smoothed, predictor.predict_split(split))
    assert not np.allclose(smoothed, unsmoothed)  # the smoothing did something (on a copy)
    np.testing.assert_array_equal(unsmoothed, predictor.booster.predict(split.rr))


def test_model_of_either_alignment_classifies_every_annotated_and_given_beat(dataset,
                                                                               tmp_path):
    from dataclasses import replace

    assert dataset.config.align_peaks == "compare"  # the default: marks aligned as detection's
    predictor = recipe.fit(dataset, tmp_path, QUICK, progress=False, plan={
        "model": "lightgbm", "beat": {"align_peaks": None}}).predictor
    assert predictor.beat_config.align_peaks is None
    # The model re-cuts every beat of the aligned split at the marks as given.
    val = dataset.split("val")
    assert len(predictor.predict_split(val)) == len(val)
    record = dataset.records[0]
    result = predictor.predict_record(record)
    np.testing.assert_allclose(result["beat_table"]["time_s"],
                               np.round(record.beat_samples / record.fs, 3))
    peaks = record.beat_samples[::2]
    given = predictor.predict_record(replace(record, beat_samples=None, beat_symbols=None),
                                     samples=peaks)
    np.testing.assert_allclose(given["beat_table"]["time_s"], np.round(peaks / record.fs, 3))


def test_record_balance_weighs_the_network_sampler_where_it_applies(dataset):
    from meddx.learn.tasks.ecg_features import record_balance

    with pytest.raises(ConfigError, match="record_balance_power"):  # would change nothing
        recipe.make_plan(dataset, {"model": "cnn", "imbalance": "weighted_loss",
                                   "record_balance_power": 0.5})
    train = dataset.split("train")
    balanced = recipe.EcgTask(recipe.component_plan(
        recipe.make_plan(dataset, {"record_balance_power": 0.5}), "cnn"), train, None)
    plain = recipe.EcgTask(recipe.component_plan(recipe.make_plan(dataset), "cnn"), train, None)
    labels = np.asarray(train.labels)
    weights, before = balanced.sample_weights.numpy(), plain.sample_weights.numpy()
    for label in np.unique(labels):  # the same class totals, spread by record within a class
        assert weights[labels == label].sum() == pytest.approx(before[labels == label].sum())
    np.testing.assert_allclose(weights, before * record_balance(labels, train.records, 0.5))
    assert not np.allclose(weights, before)


def test_irregular_s_margin_keeps_only_clear_s_calls_outside_regular_rhythm(dataset):
    names = list(dataset.class_names)
    n, s, v = (names.index(c) for c in "NSV")
    probs = np.zeros((5, len(names)))
    probs[0, [s, n]] = 0.7, 0.3    # irregular, 0.7 < 3 x 0.3: becomes N
    probs[1, [s, n]] = 0.95, 0.05  # irregular, clear: stays S
    probs[2, [s, n]] = 0.7, 0.3    # regular: the margin does not apply
    probs[3, [n, s]] = 0.6, 0.4    # regular: the odds make it S, as without the margin
    probs[4, [v, s, n]] = 0.5, 0.3, 0.2  # V calls are left alone
    regular = np.array([False, False, True, True, False])
    assert recipe.beat_decisions(probs, names, 2.0, regular).tolist() == [s, s, s, s, v]
    assert recipe.beat_decisions(probs, names, 2.0, regular, 3.0).tolist() == [n, s, s, s, v]
    with pytest.raises(ValueError, match="regular rhythm"):
        recipe.beat_decisions(probs, names, 1.0, None, 3.0)
    plan = recipe.make_plan(dataset, {"irregular_s_margin": 3,
                                      "irregular_s_margin_scope": "all_records"})
    assert plan.irregular_s_margin == 3  # the second opinion decides with it, members do not
    assert recipe.second_opinion_plan(plan).irregular_s_margin == 3
    assert recipe.component_plan(plan, "lightgbm").irregular_s_margin == 1.0
    legacy = recipe.EcgPlan.from_dict({k: v for k, v in plan.to_dict().items()
                                       if k != "irregular_s_margin"})
    assert legacy.irregular_s_margin == 1.0  # bundles written before: off
    for bad in (0.5, 0, "3", True, None):
        with pytest.raises(ConfigError, match="irregular_s_margin must be"):
            recipe.make_plan(dataset, {"irregular_s_margin": bad})
    with pytest.raises(ConfigError, match="needs s_over_n_max_irregularity"):
        recipe.make_plan(dataset, {"irregular_s_margin": 3, "s_over_n_max_irregularity": None})
    # gate_shut: the second opinion's gate reads calls without the margin, so its model has none.
    shut = recipe.make_plan(dataset, {"irregular_s_margin": 3})  # the default's scope
    assert shut.irregular_s_margin_scope == "gate_shut"
    assert (recipe.second_opinion_plan(shut).irregular_s_margin,
            recipe.second_opinion_plan(shut).irregular_s_margin_scope) == (1.0, "all_records")
    assert recipe.component_plan(shut, "cnn").irregular_s_margin_scope == "all_records"
    with pytest.raises(ConfigError, match="irregular_s_margin_scope must be"):
        recipe.make_plan(dataset, {"irregular_s_margin_scope": "some"})
    with pytest.raises(ConfigError, match="gate_shut needs a second_opinion"):
        recipe.make_plan(dataset, {"irregular_s_margin_scope": "gate_shut",
                                   "second_opinion": None})


def test_s_over_n_odds_turns_only_n_calls_into_s(dataset, tmp_path):
    from types import SimpleNamespace

    from meddx.data.ecg import feature_names
    from meddx.learn.evaluate import evaluate_split

    default = recipe.make_plan(dataset)  # the default kind
    assert default.s_over_n_odds == recipe.S_OVER_N_ODDS_REGULAR
    assert default.s_over_n_max_irregularity == recipe.S_OVER_N_MAX_IRREGULARITY
    assert recipe.make_plan(dataset, {"model": "lightgbm"}).s_over_n_odds == 1.0
    member = recipe.component_plan(default, "lightgbm")
    assert (member.s_over_n_odds, member.s_over_n_max_irregularity) == (1.0, None)
    legacy = {k: v for k, v in default.to_dict().items()
              if k not in ("s_over_n_odds", "s_over_n_max_irregularity")}
    legacy = recipe.EcgPlan.from_dict(legacy)  # bundles written before
    assert (legacy.s_over_n_odds, legacy.s_over_n_max_irregularity) == (1.0, None)
    for bad in (0, -1.5, "2", True):
        with pytest.raises(ConfigError, match="s_over_n_odds"):
            recipe.make_plan(dataset, {"s_over_n_odds": bad})
        with pytest.raises(ConfigError, match="s_over_n_max_irregularity must be"):
            recipe.make_plan(dataset, {"s_over_n_max_irregularity": bad})
    # Without the irregularity feature the default has no limit; asking for one is an error.
    full = {"beat": {"feature_set": "full"}}
    without_limit = recipe.make_plan(dataset, full)  # the odds at any rhythm: E21's
    assert (without_limit.s_over_n_odds, without_limit.s_over_n_max_irregularity) == (
        recipe.S_OVER_N_ODDS, None)
    with pytest.raises(ConfigError, match="feature_set two_lead"):
        recipe.make_plan(dataset, {**full, "s_over_n_max_irregularity": 0.2})
    predictor = recipe.fit(dataset, tmp_path, QUICK, progress=False, plan={
        "model": "lightgbm", "s_over_n_odds": 2.0, "s_over_n_max_irregularity": 0.2}).predictor
    n, s, v = (predictor.class_names.index(c) for c in "NSV")
    probs = np.zeros((5, len(predictor.class_names)))
    probs[0, [n, s]] = 0.6, 0.4   # 2 x 0.4 > 0.6: N call becomes S
    probs[1, [n, s]] = 0.9, 0.1   # stays N
    probs[2, [v, s, n]] = 0.5, 0.3, 0.2  # V calls are left alone
    probs[3, [s, n]] = 0.7, 0.3   # already S
    probs[4, [n, s]] = 0.6, 0.4   # as beat 0, but in an irregular rhythm: stays N
    features = np.zeros((5, len(feature_names("two_lead"))), np.float32)
    features[:, feature_names("two_lead").index(recipe.IRREGULARITY_FEATURE)] = [
        0.05, 0.05, 0.05, 0.05, 0.35]
    beats = SimpleNamespace(rr=features)
    assert predictor.decide(probs, beats).tolist() == [s, n, v, s, n]
    predictor.plan.s_over_n_max_irregularity = None  # the odds at any rhythm
    assert predictor.decide(probs, beats).tolist() == [s, n, v, s, s]
    predictor.plan.s_over_n_max_irregularity = 0.2
    # In irregular rhythm an S call needs the margin: beat 3 (0.7 < 3 x 0.3) becomes N there.
    features[3, feature_names("two_lead").index(recipe.IRREGULARITY_FEATURE)] = 0.35
    assert predictor.decide(probs, beats).tolist() == [s, n, v, s, n]
    predictor.plan.irregular_s_margin = 3.0
    assert predictor.decide(probs, beats).tolist() == [s, n, v, n, n]
    predictor.plan.irregular_s_margin = 1.0
    # evaluate scores the model's own calls, and predict reports them.
    val = dataset.split("val")
    metrics = evaluate_split(predictor, val, n_bootstrap=0)[0]
    calls = predictor.decide(predictor.predict_split(val), val)
    k = len(predictor.class_names)
    expected = np.bincount(val.labels * k + calls, minlength=k * k).reshape(k, k)
    assert metrics["confusion_matrix"] == expected.tolist()
    record = dataset.records[0]
    beats = extract_beats(record, predictor.beat_config)
    record_calls = predictor.decide(predictor.record_probabilities(record, beats), beats)
    assert predictor.predict_record(record)["beat_table"]["class"] == [
        predictor.class_names[c] for c in record_calls]
