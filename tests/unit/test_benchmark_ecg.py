"""The ECG benchmark's resampling protocol and its result store (benchmarks/ecg.py)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "ecg.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("ecg_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_resample_zero_is_the_official_split(bench):
    labels = np.array([0, 1, 1, 0, 1, 0, 0, 1, 1, 1])
    train, test = bench.ecg200_resample(labels, 4, 0)
    assert train.tolist() == [0, 1, 2, 3] and test.tolist() == list(range(4, 10))


def test_resamples_keep_train_class_counts_and_partition_the_pool(bench):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 60)
    labels[:2], labels[30:32] = (0, 1), (0, 1)  # both classes on both sides
    n_train = 30
    seen = set()
    for resample in (1, 2, 3):
        train, test = bench.ecg200_resample(labels, n_train, resample)
        assert sorted(np.concatenate([train, test]).tolist()) == list(range(60))
        assert np.bincount(labels[train], minlength=2).tolist() == \
            np.bincount(labels[:n_train], minlength=2).tolist()
        again, _ = bench.ecg200_resample(labels, n_train, resample)
        assert train.tolist() == again.tolist()  # reproducible from its number
        seen.add(tuple(sorted(train.tolist())))
    assert len(seen) == 3


def test_store_merges_resample_rows_of_separate_runs(bench, tmp_path):
    out = tmp_path / "ecg.json"
    out.write_text(json.dumps({"other_part": {"kept": True}}))
    name = "minirocket"
    bench._store(out, "ecg200_resamples", {"rows": {name: {"0": {"test_accuracy": 0.8}}}})
    bench._store(out, "ecg200_resamples", {"rows": {name: {"1": {"test_accuracy": 0.9}}}})
    stored = json.loads(out.read_text())
    assert stored["other_part"] == {"kept": True}
    entry = stored["ecg200_resamples"]
    assert set(entry["rows"][name]) == {"0", "1"}
    assert entry["summary"][name]["resamples"] == 2
    assert entry["summary"][name]["mean_accuracy"] == pytest.approx(0.85)
    assert entry["summary"][name]["sd_accuracy"] == pytest.approx(np.std([0.8, 0.9], ddof=1))


def test_resample_summary_counts_the_target_and_pairs(bench):
    rows = {"a": {"0": {"test_accuracy": 0.90, "member_test_accuracy": [0.88, 0.90]},
                  "1": {"test_accuracy": 0.94, "member_test_accuracy": [0.95, 0.90]},
                  "2": {"test_accuracy": 0.85, "member_test_accuracy": [0.85, 0.80]}},
            "b": {"0": {"test_accuracy": 0.90}, "1": {"test_accuracy": 0.92},
                  "2": {"test_accuracy": 0.86}}}
    summary = bench._resample_summary(rows)
    one = "a" + bench.MEMBER_ONE
    assert set(summary) == {"a", "b", one}
    assert summary["a"]["at_or_above_target"] == 1 and summary[one]["at_or_above_target"] == 1
    assert summary["a"]["official_split_accuracy"] == 0.90
    assert (summary["a"]["resamples_above_official"], summary["a"]["resamples_below_official"]) \
        == (1, 1)
    assert summary["a"]["member_mean_accuracy"] == pytest.approx(np.mean([.88, .9, .95, .9,
                                                                          .85, .8]))
    pair = bench._resample_pairs(rows)["a vs b"]
    assert (pair["wins"], pair["losses"], pair["ties"]) == (1, 1, 1)


def test_fresh_partitions_summary_counts_partitions_below_targets(bench):
    built = bench.built_row_name()
    part = {"S_se": 0.7, "S_ppv": 0.65, "V_se": 0.95, "V_ppv": 0.89, "V_ppv_all_calls": 0.85,
            "macro_f1": 0.5, "accuracy": 0.97}
    results = {f"second_opinion_default_seeds_{bench.FRESH_DEFAULT_SETS[0]}": {
        "results": {built: {"partitions": [part, {**part, "S_se": 0.9, "S_ppv": 0.5}]}}}}
    summary = bench.fresh_partitions_summary(results)
    assert summary["partitions"] == 2
    assert summary["S_se"]["mean"] == pytest.approx(0.8)
    assert summary["S_se"]["below_target"] == 1 and summary["S_ppv"]["below_target"] == 1
    assert summary["V_se"]["below_target"] == 0 and summary["V_ppv_all_calls"]["below_target"] == 2
    assert summary["macro_f1"]["below_target"] is None
    assert bench.fresh_partitions_summary({}) == {}


def _save_partition(path: Path, number: int, cnn_seed: int, tree_seed: int = 0,
                    labels_seed: int = 0) -> None:
    """A partition file as part partitions saves it: the same beats, one training's
    probabilities."""
    from meddx.data.ecg import AAMI_CLASSES, feature_names
    from meddx.learn.tasks import ecg as recipe

    beats = np.random.default_rng(labels_seed)
    n, width = 300, len(feature_names(recipe.MODEL_FEATURE_SET[recipe.COMBINED]))
    features = beats.normal(size=(n, width)).astype(np.float32)
    arrays = {"labels": beats.integers(0, len(AAMI_CLASSES), n),
              "records": np.repeat(["100", "101"], n // 2), "features": features,
              "second_opinion_features": features}
    for prefix in ("", "second_opinion_"):
        for member, seed in (("cnn", cnn_seed), ("lightgbm", tree_seed)):
            probs = np.random.default_rng([seed, len(prefix)]).dirichlet(
                np.ones(len(AAMI_CLASSES)), n)
            arrays[f"{prefix}probs_{member}"] = probs.astype(np.float32)
    np.savez_compressed(path.parent / f"{path.stem}_p{number}.npz", **arrays)


def test_seed_ensemble_averages_the_networks_and_keeps_the_first_trees(bench, tmp_path):
    import argparse

    first, copy, other = (tmp_path / f"{name}.npz" for name in ("first", "copy", "other"))
    for number in (1, 2):
        _save_partition(first, number, cnn_seed=number)
        # The same networks with other trees: an ensemble trains its trees once, the first's.
        _save_partition(copy, number, cnn_seed=number, tree_seed=9)
    _save_partition(other, 2, cnn_seed=7)
    _save_partition(other, 3, cnn_seed=8)

    same = bench.run_seed_ensemble(argparse.Namespace(oof_probs=first, ensemble_with=[copy]))
    rows = same["results"]
    assert same["partition_numbers"] == [1, 2]
    assert rows["ensemble of 2 networks"]["partitions"] == rows["first alone"]["partitions"]
    assert rows["first alone"]["partitions"] != rows["copy alone"]["partitions"]
    assert rows["single trainings' mean"]["higher_on"] == 0

    mixed = bench.run_seed_ensemble(argparse.Namespace(oof_probs=first, ensemble_with=[other]))
    assert mixed["partition_numbers"] == [2]  # only the partitions both runs hold
    assert mixed["spread_over_trainings"]["mean_S_V_f1"] > 0
    assert mixed["results"]["ensemble of 2 networks"]["partitions"] != \
        mixed["results"]["first alone"]["partitions"]


def test_seed_ensemble_refuses_runs_of_other_beats(bench, tmp_path):
    import argparse

    first, shifted = tmp_path / "first.npz", tmp_path / "shifted.npz"
    _save_partition(first, 1, cnn_seed=1)
    _save_partition(shifted, 1, cnn_seed=2, labels_seed=5)
    with pytest.raises(SystemExit, match="partition 1: the runs' labels differ"):
        bench.run_seed_ensemble(argparse.Namespace(oof_probs=first, ensemble_with=[shifted]))
    with pytest.raises(SystemExit, match="give --ensemble-with"):
        bench.run_seed_ensemble(argparse.Namespace(oof_probs=first, ensemble_with=[]))
