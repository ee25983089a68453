"""Synthetic premature beats: N beats of training records moved early, labelled S, cut like
any record's beats, and added to the training beats only."""

from __future__ import annotations

import numpy as np
import pytest

from meddx.data.ecg import BeatConfig, EcgRecord, load_wfdb_dataset
from meddx.errors import ConfigError
from meddx.learn.tasks import ecg as recipe
from meddx.learn.tasks.ecg_synthetic import (
    SYMBOL,
    SYNTHETIC_SUFFIX,
    premature_options,
    premature_record,
    synthetic_premature_beats,
)
from meddx.learn.trainer import TrainConfig
from tests.ecg_helpers import FS, synthetic_signal, write_record

QUICK = TrainConfig(epochs=2, patience=0, amp="off", num_threads=1)


def _record(seed: int = 0, duration_s: float = 150.0) -> EcgRecord:
    signal, peaks, symbols = synthetic_signal(seed, duration_s, v_every=40)
    return EcgRecord(name="900", source="synthetic", signal=signal[:, None].astype(np.float32),
                     fs=FS, leads=["MLII"], beat_samples=peaks, beat_symbols=symbols)


def test_premature_record_moves_n_beats_early_and_keeps_every_qrs():
    record = _record()
    options = premature_options({"factor": [0.6, 0.6], "run_share": 0.5, "max_run": 4})
    edited_record, edited = premature_record(record, 8, np.random.default_rng(1), options, 0.2)
    assert edited_record.name == "900" + SYNTHETIC_SUFFIX
    assert len(edited) >= 4
    old, new = record.beat_samples, edited_record.beat_samples
    old_rr, new_rr = np.diff(old), np.diff(new)
    symbols = np.array(edited_record.beat_symbols)
    assert (symbols[edited] == SYMBOL).all()
    assert [s for i, s in enumerate(symbols) if i not in set(edited)] == [
        s for i, s in enumerate(record.beat_symbols) if i not in set(edited)]
    assert all(record.beat_symbols[i] == "N" for i in edited)  # only N beats are moved
    # Each edited beat comes after 0.6 of the interval it replaces (to a sample).
    np.testing.assert_allclose(new_rr[edited - 1], 0.6 * old_rr[edited - 1], atol=1)
    # The beat after each run waits longer than it did; beats away from the edits keep theirs.
    after = np.setdiff1d(edited + 1, edited)
    assert (new_rr[after - 1] > old_rr[after - 1]).all()
    untouched = np.setdiff1d(np.arange(1, len(old)), np.concatenate([edited, after]))
    np.testing.assert_array_equal(new_rr[untouched - 1], old_rr[untouched - 1])
    # Every beat's own complex is kept sample for sample: only diastole is cut or stretched.
    span = np.arange(-int(0.08 * FS), int(0.1 * FS))
    for before_mark, after_mark in zip(old[1:-1], new[1:-1], strict=True):
        np.testing.assert_array_equal(edited_record.signal[after_mark + span],
                                      record.signal[before_mark + span])
    assert len(edited_record.signal) == len(record.signal) + int(new[-1] - old[-1])


def test_irregular_rhythm_and_short_records_are_left_alone():
    record = _record()
    options = premature_options({})
    # Every beat counts as irregular: nothing to edit.
    assert len(premature_record(record, 8, np.random.default_rng(0), options, 1e-9)[1]) == 0
    short = _record(duration_s=30)
    assert len(premature_record(short, 8, np.random.default_rng(0), options, 0.2)[1]) == 0


def test_options_are_checked():
    assert premature_options(None) is None
    assert premature_options({})["factor"] == [0.45, 0.8]
    for bad in ({"share": 0}, {"factor": [0.9, 0.5]}, {"factor": [0.1, 0.5]},
                {"run_share": 1.5}, {"max_run": 1}, {"runs": 3}, [0.5]):
        with pytest.raises(ConfigError, match="synthetic_premature"):
            premature_options(bad)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synthetic")
    for index in range(5):
        # A few atrial premature beats (by label) in each record, so there are S beats to match.
        write_record(folder, str(900 + index), seed=index, duration_s=90, v_every=20,
                     symbols_override={12: "A", 33: "A", 61: "A"})
    return load_wfdb_dataset(folder, progress=False)


def test_synthetic_beats_join_the_training_beats_only(dataset, tmp_path):
    with pytest.raises(ConfigError, match="synthetic_premature"):
        recipe.make_plan(dataset, {"synthetic_premature": {"share": -1}})
    plan = recipe.make_plan(dataset, {"model": "lightgbm", "synthetic_premature": {"share": 2}})
    train = dataset.split("train")
    assert recipe.with_synthetic_beats(recipe.make_plan(dataset), train, 0) is train
    joined = recipe.with_synthetic_beats(plan, train, 0)
    added = joined.subset(np.arange(len(train), len(joined)))
    assert len(added) > 0 and (added.labels == 1).all()  # S
    assert all(name.endswith(SYNTHETIC_SUFFIX) for name in added.records)
    assert {name.removesuffix(SYNTHETIC_SUFFIX) for name in added.records} <= set(train.records)
    # The edited records are cut again with other options like any record.
    recut = joined.with_config(BeatConfig(feature_set="two_lead"))
    assert len(recut) == len(joined)
    np.testing.assert_array_equal(recut.labels, joined.labels)
    again = synthetic_premature_beats(train, premature_options({"share": 2}), 0, 0.2)
    np.testing.assert_array_equal(again.samples, added.samples)  # seeded: the same edits
    fitted = recipe.fit(dataset, tmp_path, QUICK, progress=False, plan={
        "model": "lightgbm", "synthetic_premature": {"share": 2}})
    both = len(dataset.split("train")) + len(dataset.split("val"))
    assert fitted.metadata["training"]["train_examples"] > both  # refit on train + val + added
    assert fitted.metadata["plan"]["synthetic_premature"] == {"share": 2}
