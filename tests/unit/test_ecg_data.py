"""ECG readers, signal processing, beats, RR features and patient-wise splits."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from meddx.data.ecg import (
    AAMI_CLASSES,
    BeatConfig,
    align_beat_marks,
    beats_of,
    detect_r_peaks,
    extract_beats,
    filter_ecg,
    is_ucr_path,
    is_wfdb_path,
    load_wfdb_dataset,
    read_csv_signal,
    read_signal,
    read_ucr,
    read_wfdb_record,
    resample_signal,
    rr_features,
)
from meddx.data.loading import load_dataset
from meddx.errors import ConfigError, DataError, InputFileError
from tests.ecg_helpers import FS, write_folder, write_record, write_ucr


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """Six synthetic patients in one WFDB folder (shared: writing them takes a few seconds)."""
    return write_folder(tmp_path_factory.mktemp("ecg") / "records", n_records=6, duration_s=40)


def test_read_synthetic_record(records):
    record = read_wfdb_record(records / "900.hea")
    assert record.fs == FS and record.leads == ["MLII", "V1"]
    assert record.signal.shape == (40 * FS, 2) and record.signal.dtype == np.float32
    labels = record.aami_labels()
    assert set(labels.tolist()) == {AAMI_CLASSES.index("N"), AAMI_CLASSES.index("V")}
    assert len(labels) == len(record.beat_samples) > 40


def test_r_peak_detection_finds_the_annotated_beats(records):
    record = read_wfdb_record(records / "901")
    peaks = detect_r_peaks(record.signal[:, 0], record.fs)
    reference = record.beat_samples
    # AAMI EC57 matching window: a detection within 75 ms of a reference beat is a match.
    distance = np.abs(peaks[:, None] - reference[None, :])
    sensitivity = (distance.min(axis=0) <= 0.075 * FS).mean()
    ppv = (distance.min(axis=1) <= 0.075 * FS).mean()
    assert sensitivity >= 0.97 and ppv >= 0.97


def test_aligned_marks_sit_where_detection_puts_them(records):
    record = read_wfdb_record(records / "901")
    lead = record.signal[:, 0]
    detected = detect_r_peaks(lead, record.fs)
    reference = record.beat_samples
    nearest = detected[np.abs(detected[:, None] - reference[None, :]).argmin(axis=0)]
    # Marks 20 ms late land back on the detected peaks; one mark per beat, in order.
    late = reference + int(0.02 * FS)
    aligned = align_beat_marks(lead, record.fs, late, "compare")
    assert len(aligned) == len(late) and (np.diff(aligned) > 0).all()
    assert (np.abs(aligned - nearest) <= 1).mean() >= 0.95
    assert (aligned != late).mean() >= 0.95
    # Two marks either side of one peak would both move onto it: each keeps its own mark.
    peak = int(aligned[1])
    twins = np.concatenate([[peak - 3, peak + 3], aligned[2:6]])
    kept = align_beat_marks(lead, record.fs, twins, "compare")
    assert kept[:2].tolist() == [peak - 3, peak + 3] and (np.diff(kept) > 0).all()
    assert len(align_beat_marks(lead, record.fs, np.zeros(0, np.int64), "compare")) == 0


def test_beat_windows_cut_at_aligned_marks(records, monkeypatch):
    record = read_wfdb_record(records / "901")
    as_given = extract_beats(record, BeatConfig(align_peaks=None))
    aligned = extract_beats(record, BeatConfig())  # the default: aligned as detection does
    assert len(aligned.samples) == len(as_given.samples) == len(record.beat_samples)
    assert (as_given.samples == record.beat_samples).all()
    assert (aligned.samples == align_beat_marks(record.signal[:, 0], record.fs,
                                                record.beat_samples, "compare")).all()
    assert (aligned.marks == record.beat_samples).all()
    # A split re-cut for a model of the other alignment (evaluate with a bundle written before
    # marks were aligned) keeps every beat, both ways: beats are known by their annotated marks.
    split = beats_of([record], BeatConfig())
    recut = split.with_config(BeatConfig(align_peaks=None))
    assert recut.sources == split.sources and (recut.labels == split.labels).all()
    assert not np.allclose(recut.windows, split.windows)
    assert recut.with_config(BeatConfig()).sources == split.sources
    # Without annotations the detector's marks are already aligned: they are cut as detected,
    # not moved a second time.
    unannotated = replace(record, beat_samples=None, beat_symbols=None)
    monkeypatch.setattr("meddx.data.ecg.align_beat_marks", None)
    for align in ("compare", "up"):
        detected = extract_beats(unannotated, BeatConfig(align_peaks=align))
        expected = detect_r_peaks(record.signal[:, 0], record.fs, correction=align)
        assert (detected.marks == expected).all() and (detected.samples == expected).all()
    # Bundles written before the option existed cut at the marks as given.
    legacy = {k: v for k, v in BeatConfig().to_dict().items() if k != "align_peaks"}
    assert BeatConfig.from_dict(legacy).align_peaks is None
    with pytest.raises(ConfigError, match="align_peaks"):
        BeatConfig.from_dict({"align_peaks": "down"})


def test_filter_removes_baseline_wander_and_mains():
    fs = 360.0
    t = np.arange(int(20 * fs)) / fs
    qrs_like = np.sin(2 * np.pi * 10 * t)
    noisy = qrs_like + 2.0 * np.sin(2 * np.pi * 0.15 * t) + 0.5 * np.sin(2 * np.pi * 60 * t)
    clean = filter_ecg(noisy, fs)
    middle = slice(int(2 * fs), int(18 * fs))  # away from the filter's edge transients
    assert np.abs(clean[middle] - qrs_like[middle]).max() < 0.15


def test_resample_keeps_duration_and_shape():
    values = np.random.default_rng(0).normal(size=(3600, 2))
    out = resample_signal(values, 360, 120)
    assert out.shape == (1200, 2)
    assert resample_signal(values, 360, 360) is values


def test_rr_features_are_normalised_per_record():
    regular = np.arange(20) * 0.8
    features = rr_features(regular)
    assert features.shape == (20, 5)
    np.testing.assert_allclose(features, 1.0, atol=1e-5)
    # The same rhythm twice as fast gives the same features: only relative timing counts.
    np.testing.assert_allclose(rr_features(regular / 2), features, atol=1e-5)
    premature = regular.copy()
    premature[10] -= 0.3
    f = rr_features(premature)
    assert f[10, 0] < 0.7 and f[10, 1] > 1.3 and f[10, 4] > 1.8


def test_recutting_a_record_filters_and_aligns_it_once(records, monkeypatch):
    import meddx.data.ecg as ecg

    fresh = read_wfdb_record(records / "903")
    options = [BeatConfig(), BeatConfig(pre_s=0.9, feature_set="two_lead"),
               BeatConfig(template_channel=False, feature_set="rr")]
    expected = [extract_beats(fresh, config) for config in options]
    calls = {"filter": 0, "align": 0}
    for name, key in (("filter_ecg", "filter"), ("align_beat_marks", "align")):
        def counted(*args, _original=getattr(ecg, name), _key=key, **kwargs):
            calls[_key] += 1
            return _original(*args, **kwargs)
        monkeypatch.setattr(ecg, name, counted)
    record = read_wfdb_record(records / "903")
    for _ in range(2):
        for config, before in zip(options, expected, strict=True):
            beats = extract_beats(record, config)
            for field in ("windows", "rr", "samples", "marks", "trace"):
                assert np.array_equal(getattr(beats, field), getattr(before, field),
                                      equal_nan=True)
    # Each lead filtered once (the two_lead set cuts the second lead too), the marks aligned
    # once (aligning band-passes the lead itself: the third filter call).
    assert calls == {"filter": 3, "align": 1}
    # Other filter settings or other marks are computed, not taken from the cache; a record
    # with another signal (dataclasses.replace) starts with none of it.
    extract_beats(record, BeatConfig(lowpass_hz=30.0))
    extract_beats(record, BeatConfig(), samples=record.beat_samples[::2])
    assert calls == {"filter": 3 + 1 + 1, "align": 2}
    flipped = replace(record, signal=-record.signal)
    assert not np.allclose(extract_beats(flipped, BeatConfig()).trace, expected[0].trace)


def test_beat_windows_and_template_channel(records):
    record = read_wfdb_record(records / "902")
    config = BeatConfig()
    beats = extract_beats(record, config)
    assert beats.windows.shape == (len(record.beat_samples), 2, config.length)
    assert beats.lead == "MLII"
    # Channel 2 is the beat minus the record's median beat: ~0 for typical (N) beats.
    normal = record.aami_labels() == 0
    assert np.abs(beats.windows[normal, 1]).mean() < np.abs(beats.windows[~normal, 1]).mean()


def test_patient_wise_split_never_shares_a_record(records):
    dataset = load_wfdb_dataset(records, progress=False)
    assert dataset.class_names == list(AAMI_CLASSES)
    for seed in range(3):
        parts = {name: set(dataset.split(name, seed).records.tolist())
                 for name in ("train", "val", "test")}
        assert parts["train"] and parts["val"] and parts["test"]
        assert not parts["train"] & parts["val"]
        assert not parts["train"] & parts["test"]
        assert not parts["val"] & parts["test"]
        assert set().union(*parts.values()) == {r.name for r in dataset.records}
        sizes = dataset.split_sizes(seed)
        assert sum(sizes.values()) == len(dataset.split("all"))
    names = {r.name for r in dataset.records}
    partitions = []
    for folds in (dataset.folds(3), *(dataset.folds(3, seed, stratified=False)
                                      for seed in range(4))):
        tested = [set(test) for _, test in folds]
        assert set().union(*tested) == names and sum(map(len, tested)) == len(names)
        for train, test in folds:
            assert not set(train) & set(test) and set(train) | set(test) == names
        partitions.append(sorted(map(sorted, tested)))
    # Random partitions differ with the seed (the stratified ones need not).
    assert len({str(p) for p in partitions[1:]}) > 1
    with pytest.raises(DataError, match="cannot make 99 folds"):
        dataset.folds(99, stratified=False)


def test_registered_path_readers(records):
    assert is_wfdb_path(records) and is_wfdb_path(records / "900")
    dataset = load_dataset(str(records))
    assert type(dataset).__name__ == "BeatDataset"
    single = load_dataset(str(records / "903.hea"))
    assert single.provenance["records"] == ["903"]
    with pytest.raises(DataError, match="needs at least 3 records"):
        single.split("train")
    with pytest.raises(ConfigError, match="unknown split"):
        dataset.split("validation")


# --- bad input ------------------------------------------------------------------------------


def test_missing_dat_and_hea(tmp_path):
    stem = write_record(tmp_path, "910", seed=1, duration_s=20)
    (tmp_path / "910.dat").unlink()
    with pytest.raises(InputFileError, match=r"910\.dat.*record 910: signal file not found"):
        read_wfdb_record(stem)
    write_record(tmp_path, "911", seed=2, duration_s=20)
    (tmp_path / "911.hea").unlink()
    with pytest.raises(InputFileError, match=r"record 911: header file \(\.hea\) not found"):
        read_signal(tmp_path / "911")


def test_unreadable_header(tmp_path):
    write_record(tmp_path, "912", seed=3, duration_s=20)
    (tmp_path / "912.hea").write_text("this is not a header\n\x00\x01")
    with pytest.raises(InputFileError, match="record 912: unreadable WFDB header"):
        read_wfdb_record(tmp_path / "912")


def test_too_short_and_flat_records(tmp_path):
    import wfdb

    wfdb.wrsamp("913", fs=360, units=["mV"], sig_name=["MLII"],
                p_signal=np.random.default_rng(0).normal(size=(360 * 3, 1)), fmt=["16"],
                write_dir=str(tmp_path))
    with pytest.raises(InputFileError, match=r"record 913.*too short: 1080 samples = 3\.0 s"):
        read_wfdb_record(tmp_path / "913")
    wfdb.wrsamp("914", fs=360, units=["mV"], sig_name=["MLII"],
                p_signal=np.full((360 * 20, 1), 0.25), fmt=["16"], write_dir=str(tmp_path))
    with pytest.raises(InputFileError, match=r"record 914.*flat signal"):
        read_wfdb_record(tmp_path / "914")


def test_unknown_annotation_symbols(tmp_path):
    import wfdb

    stem = write_record(tmp_path, "915", seed=4, duration_s=20)
    record = read_wfdb_record(stem)
    symbols = list(record.beat_symbols)
    symbols[3] = "Z"
    custom = pd.DataFrame({"label_store": [45], "symbol": ["Z"], "description": ["mystery"]})
    wfdb.wrann("915", "atr", record.beat_samples, symbols, custom_labels=custom,
               write_dir=str(tmp_path))
    with pytest.raises(InputFileError, match=r"record 915: unknown annotation symbol\(s\) \['Z'\]"):
        read_wfdb_record(stem)


def test_csv_signal_needs_rate_and_no_nans(tmp_path):
    rng = np.random.default_rng(0)
    values = np.sin(np.linspace(0, 200, 360 * 15)) + 0.01 * rng.normal(size=360 * 15)
    path = tmp_path / "strip.csv"
    rows = ["time,MLII"] + [f"{i / 360:.5f},{v:.5f}" for i, v in enumerate(values)]
    path.write_text("\n".join(rows))
    with pytest.raises(InputFileError, match="strip.csv: unknown sampling rate"):
        read_csv_signal(path, None)
    record = read_csv_signal(path, 360)
    assert record.leads == ["MLII"] and record.signal.shape == (360 * 15, 1)
    rows[100] = "0.27500,"
    path.write_text("\n".join(rows))
    with pytest.raises(InputFileError, match=r"strip.csv: 1 NaN sample\(s\) .*lead 'MLII'"):
        read_csv_signal(path, 360)


def test_bad_record_is_reported_and_the_others_keep_going(tmp_path):
    folder = tmp_path / "mixed"
    for index in range(4):
        write_record(folder, str(920 + index), seed=10 + index, duration_s=20)
    (folder / "921.dat").unlink()
    (folder / "922.hea").unlink()
    dataset = load_wfdb_dataset(folder, progress=False)
    assert [r.name for r in dataset.records] == ["920", "923"]
    problems = " | ".join(dataset.problems)
    assert "record 921: signal file not found" in problems
    assert "record 922: header file (.hea) not found" in problems
    assert dataset.provenance["problems"] == dataset.problems


def test_folder_without_usable_records(tmp_path):
    (tmp_path / "930.hea").write_text("garbage")
    with pytest.raises(DataError, match="no usable annotated record.*930"):
        load_wfdb_dataset(tmp_path, progress=False)


# --- UCR ------------------------------------------------------------------------------------


def test_ucr_reader_and_splits(tmp_path):
    folder = tmp_path / "Toy"
    folder.mkdir()
    write_ucr(folder / "Toy_TRAIN.tsv", 40, sep="\t", seed=0)
    write_ucr(folder / "Toy_TEST.tsv", 20, sep="\t", seed=1)
    series, labels = read_ucr(folder / "Toy_TRAIN.tsv")
    assert series.shape == (40, 64) and set(labels.tolist()) == {1.0, 2.0}
    assert is_ucr_path(folder) and is_ucr_path(folder / "Toy_TEST.tsv")
    dataset = load_dataset(str(folder))
    assert type(dataset).__name__ == "SeriesDataset"
    assert dataset.class_names == ["1", "2"] and dataset.length == 64
    assert len(dataset.split("test")) == 20  # the file's own test split
    sizes = dataset.split_sizes()
    assert sizes["train"] + sizes["val"] == 40 and sizes["val"] > 0


def test_ucr_reader_errors(tmp_path):
    ragged = tmp_path / "ragged.txt"
    ragged.write_text("1 0.1 0.2 0.3\n2 0.1 0.2\n")
    with pytest.raises(InputFileError, match="line 2: 2 values, but line 1 has 3"):
        read_ucr(ragged)
    words = tmp_path / "words.txt"
    words.write_text("1 0.1 abc 0.3\n")
    with pytest.raises(InputFileError, match="line 1: non-numeric value"):
        read_ucr(words)
    assert not is_ucr_path(words)


# --- the real records -----------------------------------------------------------------------


def test_real_mitdb_records(shared_data):
    folder = shared_data / "mitdb-arrhythmia-ds1"
    # Beat totals per record, as published (and in the folder's README).
    expected = {"101": [1860, 3, 0, 0, 2], "208": [1586, 2, 992, 373, 2]}
    for name, counts in expected.items():
        record = read_wfdb_record(folder / name)
        assert record.fs == 360 and record.signal.shape == (650000, 2)
        assert np.bincount(record.aami_labels(), minlength=5).tolist() == counts
    record = read_wfdb_record(folder / "114")
    assert record.leads == ["V5", "MLII"]
    assert extract_beats(record, BeatConfig()).lead == "MLII"  # the preferred lead, not column 0


def test_real_r_peak_detection_against_the_reference_beats(shared_data):
    from wfdb import processing

    # 119: sinus rhythm with ventricular bigeminy; 208: PVCs and fusion beats (the default
    # detector missed 12 of 2,955 beats and added 5 there).
    for name, at_least in (("119", 0.999), ("208", 0.99)):
        record = read_wfdb_record(shared_data / "mitdb-arrhythmia-ds1" / name)
        lead = record.leads.index("MLII")
        peaks = detect_r_peaks(record.signal[:, lead], record.fs, name)
        # The ANSI/AAMI EC57 match window: a detection within 150 ms of a reference beat.
        comparison = processing.compare_annotations(record.beat_samples, peaks,
                                                    int(0.15 * record.fs))
        assert comparison.sensitivity >= at_least and comparison.positive_predictivity >= at_least
    # The default correction moves 112's marks to its S waves (whose deflection is larger over
    # the record); neurokit2's own marks sit on the annotated R peaks.
    record = read_wfdb_record(shared_data / "mitdb-arrhythmia-ds1" / "112")
    lead = record.signal[:, record.leads.index("MLII")]
    offset_ms = {correction: 1000 * np.median(np.abs(
        detect_r_peaks(lead, record.fs, "112", correction=correction)[:, None]
        - record.beat_samples[None, :]).min(axis=0)) / record.fs
        for correction in ("compare", None)}
    assert offset_ms["compare"] > 15 and offset_ms[None] < 5


def test_real_ds1_patient_wise_split(shared_data):
    dataset = load_dataset("mitdb-ds1", shared_data)
    assert len(dataset.records) == 22 and not dataset.problems
    assert dataset.class_counts() == {"N": 45866, "S": 944, "V": 3788, "F": 415, "Q": 8}
    parts = dataset.record_split(seed=0)
    assert not set(parts["train"]) & set(parts["val"])
    assert not set(parts["train"]) & set(parts["test"])
    assert not set(parts["val"]) & set(parts["test"])
    for name in ("train", "val", "test"):
        split = dataset.split(name)
        assert set(split.records.tolist()) == set(parts[name])
    for train, test in dataset.folds(5):
        assert not set(train) & set(test) and len(train) + len(test) == 22


def test_real_ucr_files(shared_data):
    ecg200 = load_dataset("ecg200", shared_data)
    assert ecg200.class_names == ["abnormal", "normal"] and ecg200.length == 96
    assert len(ecg200.split("test")) == 100
    test = ecg200.split("test")
    assert np.bincount(test.labels).tolist() == [36, 64]
    # The catalog file read by path gets the catalog's class names (bundles can evaluate it).
    by_path = load_dataset(str(shared_data / "ecg200-ucr" / "ECG200_TEST.txt"))
    assert by_path.class_names == ["abnormal", "normal"] and len(by_path.split("all")) == 100
    ecg5000 = load_dataset("ecg5000", shared_data)
    assert np.bincount(ecg5000.split("all").labels).tolist() == [292, 177, 10, 19, 2]
