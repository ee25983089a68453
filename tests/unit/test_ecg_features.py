"""Per-beat features (RR relative to the patient's rhythm, morphology relative to the median
beat) and the LightGBM model kind of the ECG beat recipe, on small synthetic data."""

from __future__ import annotations

import numpy as np
import pytest

from meddx.data.ecg import (
    EXTENDED_RR_FEATURES,
    IRREGULARITY_FEATURES,
    MORPHOLOGY_FEATURES,
    SECOND_LEAD_PREFIX,
    BeatConfig,
    EcgRecord,
    anchor_beats,
    extended_rr_features,
    extract_beats,
    feature_names,
    morphology_features,
    read_wfdb_record,
    rr_irregularity_features,
)
from meddx.decision.ecg_predict import predictor_for
from meddx.errors import BundleError, ConfigError
from meddx.learn.boosting import booster_probs
from meddx.learn.tasks import ecg as recipe
from meddx.learn.tasks.ecg_features import (
    class_weights,
    context_columns,
    record_balance,
    smooth_over_similar_beats,
    stopping_loss,
    train_beat_booster,
    tree_saliency,
)
from tests.ecg_helpers import write_record


def test_extended_rr_features_are_relative_to_the_patient():
    times = np.arange(400) * 0.8
    times[200] -= 0.3  # beat 200 comes 0.3 s early, then a compensatory pause
    features = extended_rr_features(times)
    assert features.shape == (400, len(EXTENDED_RR_FEATURES))
    column = {name: i for i, name in enumerate(EXTENDED_RR_FEATURES)}
    assert features[200, column["pre_rr"]] == pytest.approx(0.5 / 0.8, abs=1e-4)
    assert features[200, column["pre_over_long"]] < 0.7
    assert features[200, column["post_over_pre"]] > 2
    assert features[201, column["prev_pre_rr"]] == pytest.approx(0.5 / 0.8, abs=1e-4)
    regular = np.delete(np.arange(len(features)), [200, 201])
    np.testing.assert_allclose(features[regular, column["pre_over_centred"]], 1, atol=0.1)
    # Twice the heart rate, the same rhythm: the same features.
    # (the +-150 s long-term window holds other beats then: nearly the same)
    np.testing.assert_allclose(extended_rr_features(times / 2), features, atol=0.01)


def test_morphology_features_compare_each_beat_with_the_median_beat():
    rng = np.random.default_rng(0)
    t = np.arange(84) / 120.0
    normal = np.exp(-0.5 * ((t - 0.25) / 0.012) ** 2) + 0.15 * np.exp(-0.5 * ((t - 0.1) / 0.02)
                                                                       ** 2)
    windows = np.repeat(normal[None], 50, axis=0) + 0.01 * rng.normal(size=(50, 84))
    windows[7] = -1.5 * np.exp(-0.5 * ((t - 0.27) / 0.04) ** 2)  # wide, inverted
    features = morphology_features(windows, pre=30, fs=120.0)
    column = {name: i for i, name in enumerate(MORPHOLOGY_FEATURES)}
    others = np.delete(np.arange(50), 7)
    assert features[others, column["corr_qrs"]].min() > 0.95
    assert features[7, column["corr_qrs"]] < 0
    assert features[7, column["rms_qrs"]] > 5 * features[others, column["rms_qrs"]].max()
    assert features[7, column["qrs_width"]] > features[others, column["qrs_width"]].max()


def _atrial_bigeminy(pairs: int) -> np.ndarray:
    """Beat times of normal beats (even) each followed by a premature beat (odd): half the
    beats premature, so the median RR is neither rhythm's own."""
    return np.cumsum(np.tile([1.2, 0.6], pairs))


def test_anchor_beats_leave_out_premature_beats_whether_few_or_many():
    times = np.arange(400) * 0.8 + np.random.default_rng(0).normal(0, 0.01, 400)
    times[[100, 250]] -= 0.3
    anchors = anchor_beats(times)
    assert not anchors[[100, 250]].any()
    assert anchors.mean() > 0.3  # sinus rhythm: many beats, not only the longest RR
    bigeminy = anchor_beats(_atrial_bigeminy(200))
    # (the first beat has no RR interval before it: it takes the first one, short here)
    np.testing.assert_array_equal(bigeminy[1:], np.arange(1, 400) % 2 == 0)
    # Too few beats after the longest intervals: every beat.
    assert anchor_beats(np.arange(5) * 0.8).all()


def test_anchor_beats_keep_features_relative_to_the_normal_beats():
    times = _atrial_bigeminy(100)
    premature = np.arange(200) % 2 == 1
    rng = np.random.default_rng(1)
    t = np.arange(84) / 120.0
    qrs = np.exp(-0.5 * ((t - 0.25) / 0.012) ** 2)
    p_normal = 0.15 * np.exp(-0.5 * ((t - 0.1) / 0.02) ** 2)
    windows = np.where(premature[:, None], qrs - p_normal, qrs + p_normal)
    windows = windows + 0.01 * rng.normal(size=windows.shape)
    column = {name: i for i, name in enumerate(MORPHOLOGY_FEATURES)}
    anchors = anchor_beats(times)
    shaped = morphology_features(windows, pre=30, fs=120.0, anchors=anchors)
    # Against the normal beats' median: the premature beats' P waves stand out, the normal don't.
    assert shaped[~premature, column["corr_p"]].min() > 0.9
    assert shaped[premature, column["corr_p"]].max() < 0
    rr = extended_rr_features(times, anchors=anchors)
    assert rr[premature, EXTENDED_RR_FEATURES.index("pre_rr")] == pytest.approx(0.5, abs=1e-4)
    assert rr[~premature, EXTENDED_RR_FEATURES.index("pre_rr")][1:] == pytest.approx(1.0)


def test_anchor_beats_option_cuts_a_record_and_is_checked(tmp_path):
    record = read_wfdb_record(write_record(tmp_path, "911", seed=4, duration_s=30))
    plain = extract_beats(record, BeatConfig(feature_set="two_lead", second_lead=True))
    anchored = extract_beats(record, BeatConfig(feature_set="two_lead", second_lead=True,
                                                anchor_beats="not_premature"))
    assert anchored.rr.shape == plain.rr.shape and anchored.windows.shape == plain.windows.shape
    assert np.isfinite(anchored.rr[:, :len(EXTENDED_RR_FEATURES)]).all()
    # The beat windows are the same; the template channel and the relative features move.
    np.testing.assert_array_equal(anchored.windows[:, 0], plain.windows[:, 0])
    assert not np.array_equal(anchored.windows[:, 1], plain.windows[:, 1])
    assert BeatConfig.from_dict({"feature_set": "full"}).anchor_beats == "all"
    with pytest.raises(ConfigError, match="anchor_beats"):
        BeatConfig.from_dict({"anchor_beats": "sinus"})


def test_full_feature_set_of_a_record(tmp_path):
    record = read_wfdb_record(write_record(tmp_path, "910", seed=3, duration_s=30))
    full = extract_beats(record, BeatConfig(feature_set="full"))
    assert full.rr.shape == (len(record.beat_samples), len(feature_names("full")))
    assert np.isfinite(full.rr).all()
    assert extract_beats(record, BeatConfig(feature_set="rr")).rr.shape[1] == 5
    # Bundles written before feature sets existed keep their 5 RR features.
    legacy = {k: v for k, v in BeatConfig().to_dict().items() if k != "feature_set"}
    assert BeatConfig.from_dict(legacy).feature_set == "rr"
    with pytest.raises(ConfigError, match="feature_set"):
        BeatConfig.from_dict({"feature_set": "wavelets"})


def test_irregularity_features_tell_atrial_fibrillation_from_an_ectopic_beat():
    regular = np.arange(300) * 0.8
    regular[150] -= 0.3  # one premature beat in a regular rhythm
    irregular = np.cumsum(np.random.default_rng(0).uniform(0.4, 1.2, 300))  # AF-like
    column = {name: i for i, name in enumerate(IRREGULARITY_FEATURES)}
    steady, chaotic = rr_irregularity_features(regular), rr_irregularity_features(irregular)
    assert steady.shape == (300, len(IRREGULARITY_FEATURES))
    assert chaotic[:, column["rr_irregularity_long"]].mean() > 5 * steady[
        :, column["rr_irregularity_long"]].mean()
    # Against the local median, the premature beat stands out; the median ignores it.
    assert steady[150, column["pre_over_median_rr"]] == pytest.approx(0.5 / 0.8, abs=1e-4)
    assert steady[151, column["pre_over_median_rr"]] == pytest.approx(1.1 / 0.8, abs=1e-4)


def test_two_lead_feature_set_measures_the_second_lead(tmp_path):
    record = read_wfdb_record(write_record(tmp_path, "911", seed=4, duration_s=30))
    names = feature_names("two_lead")
    beats = extract_beats(record, BeatConfig(feature_set="two_lead"))
    assert beats.rr.shape == (len(record.beat_samples), len(names))
    assert np.isfinite(beats.rr).all()
    full = extract_beats(record, BeatConfig(feature_set="full")).rr
    np.testing.assert_array_equal(beats.rr[:, :full.shape[1]], full)  # "full" is its prefix
    second = [i for i, name in enumerate(names) if name.startswith(SECOND_LEAD_PREFIX)]
    # The second lead of the synthetic record is the first one halved plus noise: its scaled
    # morphology correlates with the median beat as the first lead's does.
    first_corr = names.index("corr_qrs")
    second_corr = names.index(SECOND_LEAD_PREFIX + "corr_qrs")
    assert np.corrcoef(beats.rr[:, first_corr], beats.rr[:, second_corr])[0, 1] > 0.5
    one_lead = EcgRecord(name="911", source=record.source, signal=record.signal[:, :1],
                         fs=record.fs, leads=record.leads[:1], beat_samples=record.beat_samples,
                         beat_symbols=record.beat_symbols)
    single = extract_beats(one_lead, BeatConfig(feature_set="two_lead")).rr
    assert np.isnan(single[:, second]).all()  # missing for LightGBM, not made up
    assert np.isfinite(np.delete(single, second, axis=1)).all()
    # The networks can see the second lead too: its window and its beat minus median beat.
    channels = extract_beats(record, BeatConfig(second_lead=True)).windows
    assert channels.shape[1] == BeatConfig(second_lead=True).in_channels == 4
    np.testing.assert_array_equal(channels[:, :2], extract_beats(record, BeatConfig()).windows)
    assert np.corrcoef(channels[:, 0].ravel(), channels[:, 2].ravel())[0, 1] > 0.8
    assert not extract_beats(one_lead, BeatConfig(second_lead=True)).windows[:, 2:].any()


def test_smoothing_mends_scattered_calls_and_keeps_an_isolated_beat():
    rng = np.random.default_rng(0)
    names = feature_names("two_lead")
    context = context_columns(names)
    assert "pre_over_centred" in [names[i] for i in context]
    assert SECOND_LEAD_PREFIX + "corr_qrs_z" in [names[i] for i in context]
    assert "qrs_max" not in [names[i] for i in context]  # raw amplitude: differs by patient
    x = rng.normal(scale=0.1, size=(300, len(names)))
    x[:, [i for i, name in enumerate(names) if name.startswith(SECOND_LEAD_PREFIX)]] = np.nan
    v_beats, isolated = np.arange(240, 290), 290
    x[np.ix_(v_beats, context)] += 3.0  # a cluster of V beats
    x[isolated, context] -= 6.0  # one premature beat unlike every other
    probs = np.tile([0.9, 0.05, 0.05, 0.0, 0.0], (300, 1))
    probs[v_beats] = [0.1, 0.05, 0.85, 0.0, 0.0]
    scattered = np.arange(0, 240, 24)  # N beats the model called S, here and there
    probs[scattered] = [0.3, 0.6, 0.1, 0.0, 0.0]
    probs[isolated] = [0.2, 0.7, 0.1, 0.0, 0.0]
    smoothed = smooth_over_similar_beats(probs, x, names, neighbours=20)
    classes = smoothed.argmax(axis=1)
    assert (classes[scattered] == 0).all()  # mended by their own record's N beats
    assert (classes[v_beats] == 2).all()
    assert classes[isolated] == 1 and smoothed[isolated, 1] > 0.65  # its neighbours are far
    np.testing.assert_allclose(smoothed.sum(axis=1), 1.0)
    # A 10 s strip: 12 beats get 1 neighbour each; fewer than 10 are left as they are.
    strip = np.r_[np.arange(1, 9), v_beats[:4]]
    assert (smooth_over_similar_beats(probs[strip], x[strip], names, 20).argmax(axis=1)
            == probs[strip].argmax(axis=1)).all()
    np.testing.assert_array_equal(smooth_over_similar_beats(probs[:9], x[:9], names, 20),
                                  probs[:9])


def test_class_weights_favour_rare_classes():
    weights = class_weights(np.array([900, 50, 40, 10, 0]), power=0.5)
    assert weights[4] == 0 and weights[3] > weights[1] > weights[0]
    assert (weights * [900, 50, 40, 10, 0]).sum() == pytest.approx(1000)


def test_record_balance_evens_out_a_class_across_records():
    # Class 1: 400 beats in record a, 4 in b, 1 in c; class 0: 100 in each of a and b.
    labels = np.r_[np.ones(405, int), np.zeros(200, int)]
    records = np.r_[["a"] * 400, ["b"] * 4, ["c"], ["a"] * 100, ["b"] * 100]
    np.testing.assert_array_equal(record_balance(labels, records, 0.0), np.ones(605))
    multipliers = record_balance(labels, records, 0.5)
    for label in (0, 1):  # class totals stay as the class weights set them
        assert multipliers[labels == label].mean() == pytest.approx(1.0)
    np.testing.assert_allclose(multipliers[labels == 0], 1.0)  # equal counts: unchanged
    share = {r: multipliers[(labels == 1) & (records == r)].sum() / 405 for r in "abc"}
    # Shares of the class's weight go as the square root of the records' counts (20 : 2 : 1).
    assert share["a"] / share["b"] == pytest.approx(10) and share["b"] / share["c"] == \
        pytest.approx(2)
    assert share["a"] < 400 / 405


def test_stopping_loss_weighs_only_the_stop_classes():
    weights = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    labels = np.array([0, 1, 2, 3])
    probs = np.full((4, 5), 0.05)
    probs[np.arange(4), labels] = [0.5, 0.25, 0.8, 1e-9]  # the F beat is badly missed
    expected = -(1 * np.log(2) + 2 * np.log(4) - 3 * np.log(0.8)) / 6
    assert stopping_loss(weights, [0, 1, 2])(labels, probs) == pytest.approx(expected)
    # The F beat counts when every class does, and when no beat of the stop classes is there.
    everything = stopping_loss(weights)(labels, probs)
    assert everything < expected
    only_f = stopping_loss(weights, [0, 1, 2])(labels[3:], probs[3:])
    assert only_f == pytest.approx(np.log(1e-7))


def test_booster_learns_premature_beats_and_explains_by_region():
    rng = np.random.default_rng(1)
    n, names = 1500, feature_names("full")
    x = rng.normal(size=(n, len(names)))
    y = (rng.random(n) < 0.1).astype(np.int64)  # class 1 ("S"): early and a different P wave
    x[y == 1, names.index("pre_over_centred")] -= 3
    x[y == 1, names.index("corr_p")] -= 3
    booster = train_beat_booster(x[:1000], y[:1000], x[1000:], y[1000:], num_classes=5,
                                 power=0.5, seed=0, names=names)
    probs = booster_probs(booster, x[1000:], 5)
    assert probs.shape == (500, 5)
    assert (probs.argmax(1) == y[1000:]).mean() > 0.95
    maps = tree_saliency(booster, x[1000:1010], probs[:10].argmax(1), length=84, pre=30, fs=120)
    assert maps.shape == (10, 84)
    early = y[1000:1010] == 1
    assert early.any()  # the P-wave region carries the evidence of the S beats
    p_wave = maps[early][:, 0:20].sum(axis=1)
    assert (p_wave > maps[early][:, 45:].sum(axis=1)).all()


def test_plan_choices_for_the_tree_model(tmp_path):
    from meddx.data.ecg import load_wfdb_dataset

    for index in range(3):
        write_record(tmp_path, str(920 + index), seed=index, duration_s=20)
    dataset = load_wfdb_dataset(tmp_path, progress=False)
    plan = recipe.make_plan(dataset)
    assert plan.model == recipe.DEFAULT_BEAT_MODEL
    tree = recipe.make_plan(dataset, {"model": "lightgbm"})
    assert tree.beat_config["feature_set"] == "two_lead" and tree.imbalance == "weighted_loss"
    # The networks keep the 5 RR features they were tuned with.
    assert recipe.make_plan(dataset, {"model": "cnn"}).beat_config["feature_set"] == "rr"
    # Naming a network asks for the network model kind.
    assert recipe.make_plan(dataset, {"arch": "resnet"}).model == "cnn"
    with pytest.raises(ConfigError, match="ECG model .svm. is not one for beats"):
        recipe.make_plan(dataset, {"model": "svm"})
    with pytest.raises(ConfigError, match="feature_set in"):
        recipe.make_plan(dataset, {"model": "lightgbm", "beat": {"feature_set": "rr"}})
    metadata = {"task": recipe.BEAT_TASK, "plan": tree.to_dict(), "class_names": list("NSVFQ")}
    with pytest.raises(BundleError, match="lightgbm.txt"):
        predictor_for(metadata, None)
    # Both kinds averaged: the beats carry the trees' features, the network keeps its 5 RR
    # features and tempered sampling, the trees their class weights.
    both = recipe.make_plan(dataset, {"model": "cnn+lightgbm"})
    assert both.beat_config["feature_set"] == "two_lead" and both.network["n_extra"] == 5
    network = recipe.component_plan(both, "cnn")
    assert network.beat_config["feature_set"] == "rr" and network.imbalance == "sampler"
    trees = recipe.component_plan(both, "lightgbm")
    assert trees.beat_config["feature_set"] == "two_lead" and trees.imbalance == "weighted_loss"
    assert (network.imbalance_power, trees.imbalance_power) == (0.8, recipe.LGBM_IMBALANCE[1])
    heavier = recipe.make_plan(dataset, {"model": "cnn+lightgbm", "tree_imbalance_power": 0.75})
    assert recipe.component_plan(heavier, "lightgbm").imbalance_power == 0.75
    assert recipe.component_plan(heavier, "cnn").imbalance_power == 0.8
    with pytest.raises(ConfigError, match="tree_imbalance_power must be a number from 0"):
        recipe.make_plan(dataset, {"tree_imbalance_power": 2})
    # The tree kinds smooth within records; a combined model smooths its average, once.
    assert tree.smoothing_neighbours == both.smoothing_neighbours == recipe.SMOOTHING_NEIGHBOURS
    assert trees.smoothing_neighbours == network.smoothing_neighbours == 0
    assert recipe.make_plan(dataset, {"model": "cnn"}).smoothing_neighbours == 0
    with pytest.raises(ConfigError, match="smoothing_neighbours needs a beat model with tree"):
        recipe.make_plan(dataset, {"model": "cnn", "smoothing_neighbours": 10})
    with pytest.raises(ConfigError, match="smoothing_neighbours must be a whole number"):
        recipe.make_plan(dataset, {"model": "lightgbm", "smoothing_neighbours": -1})
    # Bundles written before the option existed read as "off".
    old = {k: v for k, v in tree.to_dict().items() if k != "smoothing_neighbours"}
    assert recipe.EcgPlan.from_dict(old).smoothing_neighbours == 0
    with pytest.raises(ConfigError, match="cnn\\+lightgbm needs beat option feature_set"):
        recipe.make_plan(dataset, {"model": "cnn+lightgbm", "beat": {"feature_set": "rr"}})
    with pytest.raises(BundleError, match="no network weights"):
        predictor_for({**metadata, "plan": both.to_dict()}, None, lgbm_text="unused")


def test_a_longer_window_shows_the_network_the_cycle_before_and_leaves_the_beat_alone(tmp_path):
    record = read_wfdb_record(write_record(tmp_path, "912", seed=5, duration_s=30))
    short = extract_beats(record, BeatConfig(feature_set="two_lead"))
    long = extract_beats(record, BeatConfig(feature_set="two_lead", pre_s=0.5))
    start = BeatConfig(pre_s=0.5).beat_start
    assert start == 30 and BeatConfig().beat_start == 0
    assert long.windows.shape[2] == short.windows.shape[2] + start
    # The beat itself keeps its baseline and scale; the tree features do not move.
    np.testing.assert_allclose(long.windows[:, 0, start:], short.windows[:, 0], atol=1e-6)
    np.testing.assert_array_equal(long.rr, short.rr)
    # Before the beat: the previous beat's T wave and the diastole (not a copy of the beat).
    assert np.abs(long.windows[5:-5, 0, :start]).max() > 0.05
