"""Benchmark: ECG200 (UCR test), ECG5000 (CV on its train split), MIT-BIH DS1 (patient-wise CV).

- **ECG200**: trained on the official TRAIN file (validation carved out of it, stratified), tested
  once on the official TEST file; test accuracy beside InceptionTime 0.93 / ROCKET 0.906.
  ``--series-model`` (``cnn`` or ``minirocket``) picks the model kind of parts ecg200 and ecg5000;
  a non-cnn kind is stored as ``<part>_<model>``.
- **ECG200 selection** (``ecg200_selection``): the set-up (model kind, network, width, epochs,
  seed ensemble) compared by stratified 5-fold CV on the 100 TRAIN series only, one model per
  fold (``--series-candidates`` runs some; the others keep their stored rows).
- **ECG200 resamples** (``ecg200_resamples``): test accuracy over resamples of TRAIN + TEST
  (resample 0 the official split, the others sktime's ``stratified_resample``), as the published
  means of 30 resamples are made (HIVE-COTE 2 0.887, InceptionTime 0.897): one split of 100
  test series moves accuracy by several points. Reported, never used to choose.
- **ECG5000**: only the official TRAIN split (500 beats) is available, so it is evaluated by
  stratified 5-fold cross-validation on those 500 beats (each fold's model picks its epoch on a
  validation part of its own training folds); pooled out-of-fold accuracy, balanced accuracy and
  macro-F1. Not comparable one-to-one with the published figures, which test on 4,500 beats.
- **MIT-BIH DS1**: leave-records-out cross-validation (record folds stratified on beat classes,
  never a record on both sides); inside each fold, a patient-wise validation split of the training
  records picks the epoch. Pooled ("gross") Se and +P per AAMI class over all held-out records,
  as in de Chazal et al. 2004. Targets on unseen patients: V Se, +P >= 0.90; S Se >= 0.80,
  +P >= 0.60.
  The beat model is ``--beat-model``: ``cnn+lightgbm`` (the recipe's default: the 1D CNN and
  trees on the per-beat RR and morphology features, probabilities averaged), ``lightgbm`` or
  ``cnn`` (``--beat-arch``), stored as ``mitdb_<model>``.
- **models**: the beat model kind picked on validation: LightGBM on beat features, the 1D CNN
  and the two averaged, trained on the same patient-wise DS1 split, compared on its validation
  records. Kinds not named in ``--models`` keep their earlier rows in the JSON.
- **rpeaks**: R-peak detectors (neurokit2's, with the wfdb correction) against the DS1
  reference beats; part mitdb also classifies its held-out records from R peaks detected as
  ``predict`` detects them, and with each peak correction of ``detect_r_peaks``.
- **tree_stopping**: the trees' early-stopping rule of the default beat model, each rule's
  rounds used by the default's refit on the mitdb part's folds (pooled figures of the whole
  model).
- **partitions**: the beat model's DS1 CV over several partitions of the 22 patients into
  folds (the stratified folds of part mitdb, then random ones): how much the CV figures owe to
  one partition.
- **s_majority**: S beats found when they are the majority of a record: S-rich DS1 records
  cut down to their S beats, each classified by the fold model that holds it out (E26).
- **smoothing**, **second_opinion**, **seed_ensemble**: offline, on the files part partitions
  saves with ``--oof-probs``: post-processing variants, the second opinion's gate
  (``--min-gaps``) with each record's gap, and the default from a seed ensemble of trainings
  run with ``--seed-offset`` (``--ensemble-with``, E42).
- **archs**: the network default picked on validation: ResNet, InceptionTime, GRU and
  Transformer trained on the same patient-wise DS1 split, compared on its validation records.

Training time is wall-clock on this machine's CPU (``--threads`` torch/LightGBM threads);
inference time is per whole 30-minute record (reading, filtering, beat cutting, model).

    python benchmarks/ecg.py [--parts ecg200 ecg200_selection ecg200_resamples ecg5000 mitdb
        models archs tree_stopping rpeaks partitions smoothing s_majority second_opinion
        seed_ensemble]
        [--folds 5] [--partitions 6] [--first-partition 0] [--epochs 6] [--threads 2]
        [--first-resample 0] [--resamples 30]

Model choices (architecture, epochs, imbalance handling) use validation data only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import numpy as np
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
console = Console()

ANCHORS = {
    "ecg200": {"InceptionTime": 0.93, "ROCKET": 0.906, "MiniRocket": 0.899, "FCN": 0.888,
               "ResNet": 0.874},
    "ecg5000": {"ROCKET": 0.947, "MiniRocket": 0.946, "InceptionTime": 0.941, "ResNet": 0.935},
    # Inter-patient DS1 -> DS2, % (published-anchors.md).
    "mitdb": {"de Chazal 2004": {"S_se": 75.9, "S_ppv": 38.5, "V_se": 77.7, "V_ppv": 81.9},
              "Mar 2011": {"S_se": 83.2, "S_ppv": 33.5, "V_se": 86.8, "V_ppv": 75.9},
              "Zhang 2014": {"S_se": 79.1, "S_ppv": 36.0, "V_se": 85.5, "V_ppv": 92.7},
              "Mondejar-Guerra 2019": {"S_se": 78.1, "S_ppv": 49.7, "V_se": 94.7,
                                       "V_ppv": 93.9}},
}
TARGETS = {"ecg200_accuracy": 0.93, "V_se": 0.90, "V_ppv": 0.90, "S_se": 0.80, "S_ppv": 0.60}


def _config(epochs: int, seed: int = 0, threads: int = 1, ensemble: int = 1):
    from meddx.learn.trainer import TrainConfig

    return TrainConfig(epochs=epochs, patience=0, seed=seed, num_threads=threads, amp="off",
                       ensemble=ensemble)


def _series_plan(args) -> dict:
    """Series plan of the command line: ``--series-model`` (and ``--series-arch`` for cnn)."""
    if args.series_model == "cnn":
        return {"model": "cnn", "arch": args.series_arch}
    return {"model": args.series_model}


def _beat_plan(args) -> dict:
    """Beat plan overrides of the command line (``--beat-model``, ``--beat-arch``, JSON)."""
    plan = {"model": args.beat_model, **args.beat_plan}
    if "cnn" in plan["model"]:
        plan.setdefault("arch", args.beat_arch)
    return plan


def run_ecg200(args) -> dict:
    import meddx
    from meddx.learn.ensemble import member_figures

    with tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        networks = args.series_model == "cnn"
        bundle = meddx.train("ecg200", Path(scratch) / "ecg200", data_dir=args.data_dir,
                             plan=_series_plan(args), progress=False,
                             epochs=args.series_epochs, patience=0, num_threads=1, amp="off",
                             ensemble=args.series_ensemble if networks else 1)
        train_s = time.perf_counter() - start
        metrics = meddx.evaluate(Path(scratch) / "ecg200", "ecg200", split="test",
                                 data_dir=args.data_dir)
        # Inference: the 100 TEST series through the loaded bundle (reading the file aside).
        predictor = meddx.load_model(Path(scratch) / "ecg200")
        test = meddx.load_dataset("ecg200", args.data_dir).split("test")
        start = time.perf_counter()
        predictor.predict_split(test)
        infer_ms = (time.perf_counter() - start) * 1000 / len(test)
        members = None
        training = bundle.metadata["training"]
        held_out_val = "val" in bundle.metadata["metrics"]
        if bundle.metadata.get("ensemble"):
            # Each member alone is the single network of its seed: the ensemble's gain.
            data = meddx.load_dataset("ecg200", args.data_dir)
            members = member_figures(meddx.load_model(Path(scratch) / "ecg200"),
                                     data.split("val") if held_out_val else None,
                                     data.split("test"))
    result = {"test_accuracy": metrics["accuracy"], "test_accuracy_ci": metrics["ci"]["accuracy"],
              "test_auc": metrics["auc"], "test_macro_f1": metrics["macro_f1"],
              "n_test": metrics["n"], "arch": bundle.metadata["network"]["arch"],
              "model": args.series_model, "model_selection": training.get("model_selection"),
              "best_epoch": training["best_epoch"], "fit_on": training.get("fit_on", "train"),
              "train_examples": training.get("train_examples"), "train_s": round(train_s, 1),
              "fit_s": training["elapsed_s"], "inference_ms_per_series": round(infer_ms, 3),
              "anchors": ANCHORS["ecg200"], "target": TARGETS["ecg200_accuracy"],
              "meets_target": metrics["accuracy"] >= TARGETS["ecg200_accuracy"]}
    if members:
        result["ensemble"] = {
            "members": bundle.metadata["ensemble"]["members"], "member_figures": members,
            "member_test_accuracy_mean": float(np.mean([m["test"]["accuracy"]
                                                         for m in members]))}
        if held_out_val:
            val = bundle.metadata["metrics"]["val"]
            result["ensemble"].update({
                "val": {"accuracy": val["accuracy"], "auc": val["auc"],
                        "macro_f1": val["macro_f1"], "brier": val["brier"],
                        "neg_log_loss": bundle.metadata["ensemble"]["val"]["neg_log_loss"]},
                "member_val_accuracy_mean": float(np.mean([m["val"]["accuracy"]
                                                           for m in members]))})
    return result


def _series_fold(full, splits: dict, name: str):
    """A series dataset of one CV fold (its train/test splits), with ``full``'s classes."""
    from meddx.data.datasets import ClassificationDataset
    from meddx.data.ecg import SeriesDataset

    inner = ClassificationDataset(name, full.class_names, 1, 1, splits, full.provenance)
    return SeriesDataset(name, full.class_names, full.label_values, full.length, inner,
                         full.provenance)


HELD_OUT = ", val held out"
SERIES_CANDIDATES = {
    # Series models that select nothing on validation fit on all the training series by
    # default (plan fit_on "train+val"): here all 80 series of each fold's training part.
    "inception, 150 epochs": ({"arch": "inception"}, 150),
    # The recipe's InceptionTime default averages five seeds (--series-ensemble).
    "inception x5 ensemble, 150 epochs": ({"arch": "inception"}, 150, 5),
    # MiniRocket: one closed-form fit; its "epochs" are not used.
    "minirocket": ({"model": "minirocket"}, 1),
    # The set-ups as first compared: fitted on 64 series, 16 held out for validation figures.
    "inception, 150 epochs" + HELD_OUT: ({"arch": "inception", "fit_on": "train"}, 150),
    "inception x2 filters, 150 epochs" + HELD_OUT: ({"arch": "inception", "network_options": {
        "filters": 32, "depth": 6, "kernels": [39, 19, 9], "bottleneck": 32},
        "fit_on": "train"}, 150),
    "inception, 300 epochs" + HELD_OUT: ({"arch": "inception", "fit_on": "train"}, 300),
    "resnet, 150 epochs" + HELD_OUT: ({"arch": "resnet", "fit_on": "train"}, 150),
    "transformer, 150 epochs" + HELD_OUT: ({"arch": "transformer", "fit_on": "train"}, 150),
    "inception x5 ensemble, 150 epochs" + HELD_OUT: ({"arch": "inception", "fit_on": "train"},
                                                     150, 5),
    "minirocket" + HELD_OUT: ({"model": "minirocket", "fit_on": "train"}, 1),
}


def _candidate_names(args, default) -> list[str]:
    """``--series-candidates`` (else ``default``), each a key of :data:`SERIES_CANDIDATES`."""
    names = list(args.series_candidates or default)
    unknown = sorted(set(names) - set(SERIES_CANDIDATES))
    if unknown:
        raise SystemExit(f"--series-candidates: unknown {unknown}; known: "
                         f"{list(SERIES_CANDIDATES)}")
    return names


def _fit_candidate(dataset, name: str, seed: int, threads: int):
    """One :data:`SERIES_CANDIDATES` set-up fitted by the recipe on ``dataset``'s train split;
    its predictor and the number of networks it averages."""
    from meddx.learn.tasks import ecg as recipe

    plan, epochs, ensemble = (*SERIES_CANDIDATES[name], 1)[:3]
    with tempfile.TemporaryDirectory() as scratch:
        fitted = recipe.fit(dataset, Path(scratch), _config(epochs, seed, threads, ensemble),
                            plan=plan, progress=False)
    return fitted.predictor, ensemble


def run_ecg200_selection(args) -> dict:
    """The ECG200 set-up, picked by stratified 5-fold CV on the 100 TRAIN series only.

    One model per fold (seed = fold) for each candidate in :data:`SERIES_CANDIDATES`; the
    official TEST file is not read.
    """
    from sklearn.model_selection import StratifiedKFold

    from meddx.data.datasets import SplitData
    from meddx.data.ecg import load_series_dataset
    from meddx.learn.tasks import ecg as recipe

    full = load_series_dataset("ecg200", args.data_dir)
    train, val = full.split("train"), full.split("val")
    data = SplitData(train.images + val.images, np.concatenate([train.labels, val.labels]),
                     train.sources + val.sources)
    folds = list(StratifiedKFold(n_splits=args.folds, shuffle=True, random_state=0).split(
        np.zeros(len(data)), data.labels))
    rows = {}
    for name in _candidate_names(args, SERIES_CANDIDATES):
        start = time.perf_counter()
        probs = np.zeros((len(data), len(full.class_names)))
        for fold, (train_index, test_index) in enumerate(folds):
            splits = {"train": data.subset(train_index), "test": data.subset(test_index)}
            predictor, _ = _fit_candidate(_series_fold(full, splits, f"ecg200-fold{fold}"),
                                          name, fold, args.threads)
            probs[test_index] = predictor.predict_split(splits["test"])
        scores = recipe.selection_scores(np.asarray(data.labels), probs)
        rows[name] = {"cv_accuracy": scores["accuracy"], "cv_log_loss": -scores["neg_log_loss"],
                      "train_s": round(time.perf_counter() - start, 1)}
        console.print(f"ecg200 selection {name}: {rows[name]}")
    return {"evaluation": f"stratified {args.folds}-fold CV on the {len(data)} TRAIN series "
                          "(one model per fold); TEST not read", "results": rows,
            "chosen": max(rows, key=lambda n: rows[n]["cv_accuracy"])}


RESAMPLE_ANCHORS = {"HIVE-COTE 2": 0.887, "InceptionTime": 0.897}
"""ECG200 test accuracy, mean of 30 resamples (aeon's published results; published-anchors.md)."""
RESAMPLED_CANDIDATES = ("inception x5 ensemble, 150 epochs", "minirocket")
"""The set-ups part ecg200_resamples runs by default: the recipe's default and MiniRocket."""


def _ecg200_pooled(args):
    """The ECG200 dataset, its TRAIN then TEST series in file order (the order resampling code
    shuffles) and the number of TRAIN series."""
    from meddx.data.datasets import SplitData
    from meddx.data.ecg import load_series_dataset

    full = load_series_dataset("ecg200", args.data_dir)
    files = full.data.splits  # the files' own splits, before the recipe carves out val
    return full, SplitData.concat([files["train"], files["test"]]), len(files["train"])


def ecg200_resample(labels: np.ndarray, n_train: int, resample: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices of one resample of the pooled ECG200 series.

    Resample 0 is the official split; resample ``r`` > 0 is sktime's ``stratified_resample``
    with ``random_state = r`` (the UCR bake-off protocol of the published 30-resample means:
    TRAIN and TEST pooled, each class's TRAIN count drawn again without replacement).
    """
    import pandas as pd
    from sktime.utils.sampling import stratified_resample

    index = np.arange(len(labels))
    if resample == 0:
        return index[:n_train], index[n_train:]
    x_train, _, x_test, _ = stratified_resample(
        pd.DataFrame({"i": index[:n_train]}), labels[:n_train],
        pd.DataFrame({"i": index[n_train:]}), labels[n_train:], random_state=resample)
    return x_train["i"].to_numpy(), x_test["i"].to_numpy()


MEMBER_ONE = ": member 1 alone (one network)"


def resample_accuracies(rows: dict) -> dict[str, dict[int, float]]:
    """Test accuracy by resample of each set-up, and of an ensemble's first member alone."""
    series = {}
    for name, by_resample in rows.items():
        series[name] = {int(r): row["test_accuracy"] for r, row in by_resample.items()}
        members = {int(r): row["member_test_accuracy"][0] for r, row in by_resample.items()
                   if "member_test_accuracy" in row}
        if members:
            series[name + MEMBER_ONE] = members
    return series


def _resample_summary(rows: dict) -> dict:
    """Each set-up's test accuracy over the resamples it has run: mean, SD, range, how often
    at the target, and against its official-split figure."""
    series = resample_accuracies(rows)
    summary = {}
    for name, by_resample in series.items():
        accuracy = np.array(list(by_resample.values()))
        official = by_resample.get(0)
        summary[name] = {"resamples": len(accuracy), "mean_accuracy": float(accuracy.mean()),
                         "sd_accuracy": float(accuracy.std(ddof=1)) if len(accuracy) > 1
                         else None,
                         "min_accuracy": float(accuracy.min()),
                         "max_accuracy": float(accuracy.max()),
                         "at_or_above_target": int(np.sum(accuracy >= TARGETS[
                             "ecg200_accuracy"] - 1e-9)),
                         "official_split_accuracy": official}
        if official is not None:
            summary[name]["resamples_above_official"] = int(np.sum(accuracy > official + 1e-9))
            summary[name]["resamples_below_official"] = int(np.sum(accuracy < official - 1e-9))
        members = [m for r in rows.get(name, {}).values()
                   for m in r.get("member_test_accuracy", [])]
        if members:
            summary[name]["member_mean_accuracy"] = float(np.mean(members))
    return summary


def _resample_pairs(rows: dict) -> dict:
    """Each pair of set-ups compared on their common resamples: wins, losses, ties and the
    Wilcoxon signed-rank p."""
    from scipy.stats import wilcoxon

    series = resample_accuracies(rows)
    pairs = {}
    names = list(series)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            common = sorted(set(series[first]) & set(series[second]))
            a = np.array([series[first][r] for r in common])
            b = np.array([series[second][r] for r in common])
            differs = np.abs(a - b) > 1e-9
            pairs[f"{first} vs {second}"] = {
                "resamples": len(common), "wins": int(np.sum(differs & (a > b))),
                "losses": int(np.sum(differs & (a < b))), "ties": int(np.sum(~differs)),
                "wilcoxon_p": float(wilcoxon(a, b).pvalue) if differs.any() else None}
    return pairs


def _accuracy(predictor, split) -> float:
    """Arg-max accuracy of a series predictor on a split."""
    return float((predictor.predict_split(split).argmax(1) == np.asarray(split.labels)).mean())


def run_ecg200_resamples(args) -> dict:
    """ECG200 test accuracy over resamples of TRAIN + TEST, as the published means are.

    For each resample (:func:`ecg200_resample`) and set-up, one model fitted on the resample's
    100 training series (seed = the resample's number) and tested on its 100 test series.
    Nothing is chosen on these figures. Each resample is stored when done, so two runs over
    different resamples (``--first-resample``, ``--resamples``) fill one entry.
    """
    from meddx.learn.ensemble import member_predictors

    full, pooled, n_train = _ecg200_pooled(args)
    names = _candidate_names(args, RESAMPLED_CANDIDATES)
    result = {"evaluation": "resample 0: the official split; 1-29: sktime's "
                            "stratified_resample of TRAIN + TEST (random_state = resample); "
                            "100 train / 100 test series each; seed = resample; nothing "
                            "chosen on them",
              "anchors_mean_of_30_resamples": RESAMPLE_ANCHORS, "rows": {}}
    for resample in range(args.first_resample, args.first_resample + args.resamples):
        train_index, test_index = ecg200_resample(np.asarray(pooled.labels), n_train, resample)
        splits = {"train": pooled.subset(train_index), "test": pooled.subset(test_index)}
        for name in names:
            start = time.perf_counter()
            predictor, ensemble = _fit_candidate(
                _series_fold(full, splits, f"ecg200-resample{resample}"), name, resample,
                args.threads)
            row = {"test_accuracy": _accuracy(predictor, splits["test"]),
                   "fit_s": round(time.perf_counter() - start, 1)}
            if ensemble > 1:
                row["member_test_accuracy"] = [_accuracy(member, splits["test"])
                                               for member in member_predictors(predictor)]
            result["rows"].setdefault(name, {})[str(resample)] = row
            console.print(f"ecg200 resample {resample} {name}: {row}")
        # Stored resample by resample: a stopped run keeps what it finished.
        _store(args.out, "ecg200_resamples" + args.tag, result)
    return result


def run_ecg5000(args) -> dict:
    from sklearn.model_selection import StratifiedKFold

    from meddx.data.ecg import load_series_dataset
    from meddx.learn.evaluation.metrics import classification_metrics
    from meddx.learn.tasks import ecg as recipe

    full = load_series_dataset("ecg5000", args.data_dir)
    data = full.split("all")
    folds = StratifiedKFold(n_splits=args.folds, shuffle=True, random_state=0)
    probs = np.zeros((len(data), len(full.class_names)))
    times = []
    for fold, (train_index, test_index) in enumerate(folds.split(np.zeros(len(data)),
                                                                 data.labels)):
        splits = {"train": data.subset(train_index), "test": data.subset(test_index)}
        dataset = _series_fold(full, splits, f"ecg5000-fold{fold}")
        with tempfile.TemporaryDirectory() as scratch:
            start = time.perf_counter()
            fitted = recipe.fit(dataset, Path(scratch), _config(args.ecg5000_epochs, fold),
                                plan={**_series_plan(args), "batch_size": 32},
                                progress=False)
            times.append(time.perf_counter() - start)
        probs[test_index] = fitted.predictor.predict_split(splits["test"])
        console.print(f"ecg5000 fold {fold + 1}/{args.folds}: "
                      f"{(probs[test_index].argmax(1) == splits['test'].labels).mean():.3f}")
    metrics = classification_metrics(data.labels, probs, full.class_names)
    return {"evaluation": f"stratified {args.folds}-fold CV on the 500 TRAIN beats (pooled "
                          "out-of-fold predictions); the official 4,500-beat TEST split is not "
                          "available",
            "cv_accuracy": metrics["accuracy"], "cv_accuracy_ci": metrics["ci"]["accuracy"],
            "cv_balanced_accuracy": metrics["balanced_accuracy"],
            "cv_macro_f1": metrics["macro_f1"],
            "per_class": {k: {"sensitivity": v["sensitivity"], "ppv": v["ppv"],
                              "support": v["support"]} for k, v in metrics["per_class"].items()},
            "train_s_per_fold": round(float(np.mean(times)), 1), "model": args.series_model,
            "arch": fitted.metadata["network"]["arch"],
            "fit_on": fitted.metadata["training"]["fit_on"],
            **({"epochs": args.ecg5000_epochs, "batch_size": 32}
               if args.series_model == "cnn" else {}),
            "anchors": ANCHORS["ecg5000"]}


MATCH_WINDOW_S = 0.15
"""A detected beat matches a reference beat within 150 ms (the ANSI/AAMI EC57 match window)."""
R_PEAK_METHODS = ("neurokit", "pantompkins1985", "hamilton2002", "kalidas2017", "rodrigues2021")


def run_rpeaks(args) -> dict:
    """R-peak detection on the 22 DS1 records against their reference beats (all beat types).

    Each neurokit2 detector with the same wfdb peak correction (``detect_r_peaks``), on the
    lead the beat models use; matched with wfdb's comparitor at the EC57 150 ms window and at
    75 ms (how far off the beat window would be cut), with the median distance of the matched
    marks from the annotations. Chosen: the best F1 at 150 ms. The default detector is also run
    with each peak correction (``R_PEAK_CORRECTIONS``).
    """
    from meddx.data.ecg import R_PEAK_CORRECTIONS, R_PEAK_METHOD, load_wfdb_dataset

    dataset = load_wfdb_dataset("mitdb-ds1", args.data_dir, progress=False)
    rows = {}
    for method in R_PEAK_METHODS:
        rows[method] = _detector_row(dataset, method, "compare")
        console.print(f"{method}: {rows[method]['150ms']}")
    corrections = {str(c): rows[R_PEAK_METHOD] if c == "compare" else
                   _detector_row(dataset, R_PEAK_METHOD, c) for c in R_PEAK_CORRECTIONS}
    alignment = _alignment_row(dataset)
    console.print(f"annotated marks aligned: {alignment}")
    return {"reference_beats": int(sum(len(r.beat_samples) for r in dataset.records)),
            "results": rows, "chosen": max(rows, key=lambda m: rows[m]["150ms"]["f1"]),
            "default_method_by_correction": {
                name: {"150ms": row["150ms"], "median_offset_ms": row["median_offset_ms"]}
                for name, row in corrections.items()},
            "annotated_marks_aligned": alignment,
            "anchor": "Pan & Tompkins 1985: 99.3% of QRS complexes, all 48 MIT-BIH records"}


def _detector_row(dataset, method: str, correction: str | None) -> dict:
    """One detector and peak correction on every record: pooled Se / +P / F1 per match
    window, the median distance (ms) of the matched marks from the annotations, the records
    with misses or extra detections, and the seconds per record."""
    from wfdb import processing

    from meddx.data.ecg import choose_lead, detect_r_peaks
    from meddx.errors import InputFileError

    windows = (MATCH_WINDOW_S, MATCH_WINDOW_S / 2)
    counts = {window: np.zeros(3, np.int64) for window in windows}
    per_record, offsets, seconds = {}, [], 0.0
    for record in dataset.records:
        start = time.perf_counter()
        try:
            peaks = detect_r_peaks(record.signal[:, choose_lead(record, "MLII")], record.fs,
                                   record.name, method=method, correction=correction)
        except InputFileError:
            peaks = np.zeros(0, np.int64)
        seconds += time.perf_counter() - start
        for window in windows:
            comparison = processing.compare_annotations(
                record.beat_samples, peaks, int(round(window * record.fs)))
            tp, fn, fp = comparison.tp, comparison.fn, comparison.fp
            counts[window] += (tp, fn, fp)
            if window == MATCH_WINDOW_S:
                match = comparison.matching_sample_nums
                found = match >= 0
                offsets.append(1000 * np.abs(peaks[match[found]]
                                             - record.beat_samples[found]) / record.fs)
                if fn + fp:
                    per_record[record.name] = {"missed": int(fn), "extra": int(fp)}
    row = {"seconds_per_record": round(seconds / len(dataset.records), 3),
           "median_offset_ms": float(np.median(np.concatenate(offsets))),
           "per_record_150ms": per_record}
    for window, (tp, fn, fp) in counts.items():
        row[f"{window * 1000:.0f}ms"] = {"sensitivity": tp / (tp + fn), "ppv": tp / (tp + fp),
                                         "f1": 2 * tp / (2 * tp + fn + fp)}
    return row


def _alignment_row(dataset) -> dict:
    """What the default ``BeatConfig.align_peaks`` does to the annotated marks of every record:
    the share moved, the median move (ms) and the seconds per record it costs."""
    from meddx.data.ecg import BeatConfig, align_beat_marks, choose_lead

    correction = BeatConfig().align_peaks
    moves, seconds = [], 0.0
    for record in dataset.records:
        lead = record.signal[:, choose_lead(record, "MLII")]
        start = time.perf_counter()
        aligned = align_beat_marks(lead, record.fs, record.beat_samples, correction)
        seconds += time.perf_counter() - start
        moves.append(1000 * np.abs(aligned - record.beat_samples) / record.fs)
    moves = np.concatenate(moves)
    return {"correction": correction, "moved_share": float((moves > 0).mean()),
            "median_move_ms": float(np.median(moves)),
            "seconds_per_record": round(seconds / len(dataset.records), 3)}


PREDICT_DETECTION = "predict"
"""``_on_detected_beats``: R peaks found by ``predict`` itself, as a user's record gets them."""


def _on_detected_beats(predictor, record, correction: str | None = PREDICT_DETECTION) -> dict:
    """The record as a user without annotations gets it: R peaks detected, beats classified.

    ``PREDICT_DETECTION``: ``predict``'s own detection (its peak correction the model's
    ``align_peaks``); a peak correction of ``detect_r_peaks``: R peaks detected with it, then
    given to ``predict`` as beat marks (so aligned as given marks are).

    Detections are matched to the reference beats (:data:`MATCH_WINDOW_S`, wfdb's comparitor);
    a reference beat without a detection counts as missed for its class, a detection without a
    reference beat as a false call of its predicted class.
    """
    from dataclasses import replace

    from wfdb import processing

    from meddx.data.ecg import choose_lead, detect_r_peaks

    start = time.perf_counter()
    unannotated = replace(record, beat_samples=None, beat_symbols=None)
    if correction == PREDICT_DETECTION:
        result = predictor.predict_record(unannotated)
        # The beat table's times are rounded to 1 ms: below half a sample up to 500 Hz.
        detected = np.round(np.asarray(result["beat_table"]["time_s"]) * record.fs
                            ).astype(np.int64)
    else:
        detected = detect_r_peaks(
            record.signal[:, choose_lead(record, predictor.beat_config.lead)], record.fs,
            record.name, correction=correction)
        result = predictor.predict_record(unannotated, samples=detected)
    seconds = time.perf_counter() - start
    predicted = np.array([predictor.class_names.index(c)
                          for c in result["beat_table"]["class"]])
    comparison = processing.compare_annotations(
        record.beat_samples, detected, int(round(MATCH_WINDOW_S * record.fs)))
    match = comparison.matching_sample_nums
    return {"record": record.name, "reference": record.aami_labels(),
            "predicted": np.where(match >= 0, predicted[np.maximum(match, 0)], -1),
            "extra": predicted[comparison.unmatched_test_inds], "seconds": seconds}


def _detected_beat_figures(parts: list[dict], class_names: list[str]) -> dict:
    """Pooled beat detection Se/+P and the S/V Se/+P of the classes on detected beats (+P as
    EC57 scores it: a call on an unmatched detection counts against it, a V call on an F or Q
    beat does not; ``_ppv_all_calls`` counts every call)."""
    from meddx.data.ecg import AAMI_EXCUSED_CALLS

    reference = np.concatenate([p["reference"] for p in parts])
    predicted = np.concatenate([p["predicted"] for p in parts])
    extra = np.concatenate([p["extra"] for p in parts])
    found = int((predicted >= 0).sum())
    figures = {"match_window_s": MATCH_WINDOW_S, "reference_beats": len(reference),
               "detection_sensitivity": found / len(reference),
               "detection_ppv": found / (found + len(extra)),
               "missed_beats": len(reference) - found, "extra_detections": len(extra),
               "seconds_per_record": round(float(np.mean([p["seconds"] for p in parts])), 2)}
    for name in ("S", "V"):
        k = class_names.index(name)
        hits = int(((reference == k) & (predicted == k)).sum())
        calls = int((predicted == k).sum() + (extra == k).sum())
        excused = [class_names.index(c) for c in AAMI_EXCUSED_CALLS.get(name, ())]
        counted = calls - int(((predicted == k) & np.isin(reference, excused)).sum())
        figures[f"{name}_se"] = hits / max(int((reference == k).sum()), 1)
        figures[f"{name}_ppv"] = hits / counted if counted else None
        figures[f"{name}_ppv_all_calls"] = hits / calls if calls else None
    # Per record and class (S, V): reference beats, those found as the class, calls made.
    figures["per_record"] = {
        p["record"]: {"missed_beats": int((p["predicted"] < 0).sum()),
                      "extra_detections": len(p["extra"]),
                      **{name: [int((p["reference"] == k).sum()),
                                int(((p["reference"] == k) & (p["predicted"] == k)).sum()),
                                int((p["predicted"] == k).sum() + (p["extra"] == k).sum())]
                         for k, name in enumerate(class_names) if name in ("S", "V")}}
        for p in parts}
    return figures


def _with_s_v_score(figures: dict) -> dict:
    """Pooled figures (per-record detail left out) with their score: the mean of the S and V
    F1, the score every post-processing and peak-correction choice was made by. F1 counts
    every call (as scikit-learn's), so it takes +P with every call counted."""
    row = {k: v for k, v in figures.items() if k != "per_record"}
    f1 = [2 * row[f"{c}_se"] * row[f"{c}_ppv_all_calls"]
          / (row[f"{c}_se"] + row[f"{c}_ppv_all_calls"]) if row[f"{c}_ppv_all_calls"] else 0.0
          for c in ("S", "V")]
    return {**row, "mean_S_V_f1": float(np.mean(f1))}


def _beat_dataset(args):
    """MIT-BIH DS1, its beats cut once with the features the command line's model needs (not
    again in every fold)."""
    from meddx.data.ecg import BeatConfig, load_wfdb_dataset
    from meddx.learn.tasks import ecg as recipe

    config = BeatConfig(**{"feature_set": recipe.MODEL_FEATURE_SET[args.beat_model],
                           **args.beat_plan.get("beat", {})})
    return load_wfdb_dataset("mitdb-ds1", args.data_dir, config=config, progress=False)


def _fit_fold(dataset, fold: int, train_records: list[str], test_records: list[str], args):
    """The command line's beat model fitted as the recipe does on one fold's training records
    (training seed: the fold's number plus ``--seed-offset``): the fitted model, the held-out
    records' beats and the training seconds."""
    from meddx.learn.tasks import ecg as recipe

    inner = dataset.subset(train_records, f"mitdb-ds1-fold{fold}", test_fraction=0.0)
    with tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        fitted = recipe.fit(inner, Path(scratch),
                            _config(args.epochs, fold + args.seed_offset, args.threads),
                            plan=_beat_plan(args), progress=False)
        train_s = time.perf_counter() - start
    every = dataset.split("all")
    return fitted, every.subset(np.flatnonzero(np.isin(every.records, test_records))), train_s


def run_mitdb(args) -> dict:
    from meddx.data.ecg import R_PEAK_CORRECTIONS

    dataset = _beat_dataset(args)
    labels_all, probs_all, decisions_all, records_all = [], [], [], []
    folds_out, train_times, infer_times, detected = [], [], [], {}
    for fold, (train_records, test_records) in enumerate(dataset.folds(args.folds, seed=0)):
        fitted, test, train_s = _fit_fold(dataset, fold, train_records, test_records, args)
        train_times.append(train_s)
        predictor = fitted.predictor
        probs = predictor.predict_split(test)
        decisions = predictor.decide(probs, test)  # the model's own calls, as evaluate's
        labels_all.append(test.labels)
        probs_all.append(probs)
        decisions_all.append(decisions)
        records_all.append(test.records)
        for record in (r for r in dataset.records if r.name in test_records[:2]):
            start = time.perf_counter()
            predictor.predict_record(record)
            infer_times.append(time.perf_counter() - start)
        for correction in (PREDICT_DETECTION, *R_PEAK_CORRECTIONS):
            detected.setdefault(correction, []).extend(
                _on_detected_beats(predictor, record, correction) for record in dataset.records
                if record.name in test_records)
        fold_metrics = _beat_metrics(test.labels, probs, n_bootstrap=0, decisions=decisions)
        training = fitted.metadata["training"]
        # A refit on train + val has no validation figures of its own: the selection fit's.
        val_metrics = (fitted.metadata["metrics"].get("val")
                       or training["selection_fit"]["val"])["per_class"]
        fold_row = {"fold": fold, "test_records": test_records,
                    "val_records": fitted.metadata["record_split"]["val"],
                    "train_s": round(train_times[-1], 1),
                    "best_epoch": training.get("best_epoch"),
                    "best_iteration": training.get("best_iteration"),
                    **_s_v_figures(val_metrics, "val_"),
                    **_s_v_figures(fold_metrics["per_class"])}
        folds_out.append(fold_row)
        console.print(f"mitdb fold {fold + 1}/{args.folds} ({', '.join(test_records)}): "
                      + ", ".join(f"{k} {v:.3f}" for k, v in fold_row.items()
                                  if k[:2] in ("S_", "V_") and v is not None))
    labels = np.concatenate(labels_all)
    probs = np.concatenate(probs_all)
    if args.oof_probs:
        # Out-of-fold probabilities for error analysis (not stored in the results JSON).
        np.savez_compressed(args.oof_probs, labels=labels, probs=probs,
                            records=np.concatenate(records_all).astype(str))
    metrics = _beat_metrics(labels, probs, decisions=np.concatenate(decisions_all))
    kept = ("sensitivity", "ppv", "ppv_all_calls", "support", "ci")
    per_class = {c: {k: v[k] for k in kept if k in v} for c, v in metrics["per_class"].items()}
    gross = _s_v_figures(per_class)
    return {"evaluation": f"{args.folds}-fold leave-records-out CV on the 22 DS1 records "
                          "(stratified record folds, patient-wise validation inside each "
                          "training fold); pooled gross statistics over all held-out beats",
            "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"],
            "per_class": per_class, "gross": gross,
            "confusion_matrix": metrics["confusion_matrix"], "folds": folds_out,
            "model": fitted.metadata["plan"]["model"],
            "arch": fitted.metadata["network"]["arch"], "plan": _beat_plan(args),
            "fit_on": fitted.metadata["plan"].get("fit_on", "train"),
            "epochs": args.epochs, "torch_threads": args.threads,
            "train_s_per_fold": round(float(np.mean(train_times)), 1),
            "train_beats_per_fold": int(len(labels) * (args.folds - 1) / args.folds),
            "inference_s_per_record": round(float(np.mean(infer_times)), 3),
            # The same held-out records without their annotations (R peaks detected) as
            # predict detects them, and with each peak correction given as beat marks.
            "detected_beats": _detected_beat_figures(detected.pop(PREDICT_DETECTION),
                                                     dataset.class_names),
            "detected_beats_by_correction": {
                str(correction): _with_s_v_score(_detected_beat_figures(parts, dataset.class_names))
                for correction, parts in detected.items()},
            "targets": {k: TARGETS[k] for k in gross if k in TARGETS},
            "meets_targets": {k: (gross[k] or 0) >= TARGETS[k] for k in gross if k in TARGETS},
            "anchors_ds1_to_ds2_percent": ANCHORS["mitdb"]}


LISTS = ("test_records", "second_opinion_records")
"""Row entries of part partitions that are record lists, not figures."""


def run_partitions(args) -> dict:
    """The beat model's DS1 cross-validation over several partitions of the 22 patients.

    Partition 0 is the mitdb part's stratified folds; the others put the records in a random
    order (the partition number its seed) and cut it into ``--folds`` near-equal folds
    (``BeatDataset.folds(stratified=False)``). ``--partitions`` of them are run from
    ``--first-partition`` on: a later first one gives partitions no earlier choice has seen.
    Each partition's figures are pooled over its held-out beats (annotated beats only); then
    their mean and range. With 22 patients a CV figure owes much to which patients share a
    fold: this is that spread.
    """
    from meddx.learn.tasks.ecg import COMBINED

    if args.oof_probs and args.beat_model != COMBINED:
        raise SystemExit(f"--oof-probs with part partitions saves the members of a {COMBINED} "
                         f"model, not {args.beat_model}")
    dataset = _beat_dataset(args)
    rows = {}
    numbers = range(args.first_partition, args.first_partition + args.partitions)
    for done, partition in enumerate(numbers, 1):
        folds = dataset.folds(args.folds, seed=partition, stratified=partition == 0)
        labels, probs, decisions, unsmoothed, records, first = [], [], [], [], [], []
        for fold, (train_records, test_records) in enumerate(folds):
            fitted, test, _ = _fit_fold(dataset, fold, train_records, test_records, args)
            labels.append(test.labels)
            records.append(test.records)
            probs.append(fitted.predictor.predict_split(test))
            decisions.append(fitted.predictor.decide(probs[-1], test))
            if getattr(fitted.predictor, "second_opinion", None) is not None:
                first.append(fitted.predictor.first_opinion(probs[-1], test))
            if args.oof_probs:
                unsmoothed.append(_saved_arrays(fitted.predictor, test))
        if args.oof_probs:
            _save_partition_probabilities(args.oof_probs, partition, labels, unsmoothed)
        labels, probs, decisions = (np.concatenate(a) for a in (labels, probs, decisions))
        metrics = _beat_metrics(labels, probs, n_bootstrap=0, decisions=decisions)
        name = ("0: stratified folds (part mitdb)" if partition == 0
                else f"{partition}: random folds (seed {partition})")
        rows[name] = {"test_records": [test for _, test in folds], **_pooled_row(metrics)}
        if first:  # the model alone, and the records where its second opinion changed a call
            alone = np.concatenate(first)
            rows[name].update({f"first_opinion_{k}": v for k, v in _pooled_row(
                _beat_metrics(labels, probs, n_bootstrap=0, decisions=alone)).items()})
            rows[name]["second_opinion_records"] = sorted(
                set(np.concatenate(records)[decisions != alone].tolist()))
        console.print(f"partitions {done}/{args.partitions}: " + ", ".join(
            f"{k} {v:.3f}" for k, v in rows[name].items() if k not in LISTS))
    keys = [key for key in next(iter(rows.values())) if key not in LISTS]
    values = {key: np.array([row[key] for row in rows.values()], np.float64) for key in keys}
    summary = {"mean": {k: float(v.mean()) for k, v in values.items()},
               "min": {k: float(v.min()) for k, v in values.items()},
               "max": {k: float(v.max()) for k, v in values.items()}}
    return {"evaluation": f"{args.folds}-fold leave-records-out CV of the {_beat_plan(args)} "
                          "beat model on the 22 DS1 records, over several partitions; pooled "
                          "over each partition's held-out beats",
            "plan": _beat_plan(args), "epochs": args.epochs,
            "results": {**rows, **{f"{stat} over {len(rows)} partitions": row
                                   for stat, row in summary.items()}}}


S_RICH_RECORDS = ("118", "207", "209", "220", "223")
"""DS1 records with at least 70 S beats, 201 aside (most of its S beats are aberrated, in atrial
fibrillation)."""


def s_majority_record(record, widen: int):
    """A record cut down to its S beats: for each run of consecutive S beats, the beat before
    the run and the run, with ``widen`` more beats on each side (the control: the same joins,
    S beats still few), joined at the midpoints of the RR intervals around each piece, each
    piece shifted to start where the last one ended."""
    from meddx.data.ecg import AAMI_CLASSES, EcgRecord

    is_s = record.aami_labels() == AAMI_CLASSES.index("S")
    starts = np.flatnonzero(is_s & ~np.r_[False, is_s[:-1]])
    ends = np.flatnonzero(is_s & ~np.r_[is_s[1:], False])
    keep = np.zeros(len(is_s), bool)
    for start, end in zip(starts, ends, strict=True):
        keep[max(start - 1 - widen, 0):end + 1 + widen] = True
    keep[[0, -1]] = False  # a piece is cut between a kept beat and its neighbour
    kept = np.flatnonzero(keep)
    marks = record.beat_samples
    pieces, samples, offset = [], [], 0
    for run in np.split(kept, np.flatnonzero(np.diff(kept) > 1) + 1):
        start = (marks[run[0] - 1] + marks[run[0]]) // 2
        end = (marks[run[-1]] + marks[run[-1] + 1]) // 2
        piece = record.signal[start:end].astype(np.float64)
        if pieces:
            piece += pieces[-1][-1] - piece[0]
        pieces.append(piece)
        samples.append(offset + marks[run] - start)
        offset += end - start
    return EcgRecord(record.name, record.source, np.concatenate(pieces).astype(np.float32),
                     record.fs, record.leads, np.concatenate(samples),
                     [record.beat_symbols[i] for i in kept])


def run_s_majority(args) -> dict:
    """S beats found when they are the majority of a record (E26).

    About three quarters of DS2's S beats are in one record, 232, where APCs outnumber the
    other beats; DS1 has no such record. Each of :data:`S_RICH_RECORDS` is classified by the
    model of the mitdb part's fold that holds it out, as it is, as a control (its S beats with
    10 beats around each run: the joins without the majority) and cut down to its S beats
    (:func:`s_majority_record`).
    """
    from meddx.data.ecg import beats_of, feature_names
    from meddx.learn.tasks import ecg as recipe

    if args.beat_model != recipe.COMBINED:
        raise SystemExit(f"part s_majority reads the members of a {recipe.COMBINED} model")
    dataset = _beat_dataset(args)
    names = feature_names(recipe.MODEL_FEATURE_SET[recipe.COMBINED])
    s = dataset.class_names.index("S")
    n = dataset.class_names.index("N")
    cuts = {"original": None, "control": 10, "S majority": 0}
    rows: dict[str, dict] = {}
    for fold, (train_records, test_records) in enumerate(dataset.folds(args.folds, seed=0)):
        held_out = [name for name in S_RICH_RECORDS if name in test_records]
        if not held_out:
            continue
        fitted, _, _ = _fit_fold(dataset, fold, train_records, test_records, args)
        predictor = fitted.predictor
        for record in (r for r in dataset.records if r.name in held_out):
            for cut, widen in cuts.items():
                derived = record if widen is None else s_majority_record(record, widen)
                split = beats_of([derived], predictor.beat_config)
                probs = predictor.predict_split(split)
                # predictor.split_second_opinion's calls, its probabilities kept for E39/E40.
                second_probs = predictor.second_opinion.predict_split(split)
                second = predictor.second_opinion.decide(second_probs, split)
                calls = predictor.decide(probs, split, second)
                metrics = _beat_metrics(split.labels, probs, n_bootstrap=0, decisions=calls)
                variants = {name: _beat_metrics(split.labels, probs, n_bootstrap=0,
                                                decisions=decided)["per_class"]["S"]
                            for name, decided in _margin_scope_calls(
                                predictor, probs, split, second_probs, second).items()}
                confusion = metrics["confusion_matrix"]
                # What the S beats look like to the model: medians over them.
                members = _member_probabilities(predictor, split)
                is_s = split.labels == s
                rows.setdefault(record.name, {})[cut] = {
                    "beats": len(is_s), "S_beats": int(is_s.sum()),
                    "S_share": round(float(is_s.mean()), 3), "S_found": confusion[s][s],
                    "S_se": metrics["per_class"]["S"]["sensitivity"],
                    "S_ppv": metrics["per_class"]["S"]["ppv"],  # None: no beat called S
                    "N_called_S": confusion[n][s],
                    **{f"S_{figure}_{name}": per_class[key] for name, per_class in variants.items()
                       for figure, key in (("se", "sensitivity"), ("ppv", "ppv"))},
                    **_second_opinion_gap(predictor, probs, split, second, s),
                    "S_beats_median": {
                        **{f"p_S_{member}": float(np.median(members[f"probs_{member}"][is_s, s]))
                           for member in ("cnn", "lightgbm")},
                        **{name: float(np.median(members["features"][is_s, names.index(name)]))
                           for name in ("pre_rr", "corr_p", "corr_p_z")}}}
            console.print(f"s_majority {record.name}: " + ", ".join(
                f"{cut} S {_fmt(row['S_se'])} / {_fmt(row['S_ppv'])} (share {row['S_share']})"
                for cut, row in rows[record.name].items()))
    # +P averaged over the records where it is defined (some beat called S), with their count.
    mean = {cut: {**{key: float(np.mean([rows[record][cut][key] for record in rows]))
                     for key in ("S_share", "S_se", *(f"S_se_{name}" for name in MARGIN_SCOPES))},
                  "S_ppv": _mean_defined([rows[record][cut]["S_ppv"] for record in rows]),
                  "records_with_S_calls": sum(rows[record][cut]["S_ppv"] is not None
                                              for record in rows)} for cut in cuts}
    return {"evaluation": "S-rich DS1 records, each classified by the mitdb part's fold model "
                          "that holds it out: as it is, as a control and cut down to its S "
                          "beats (S the majority)",
            "plan": _beat_plan(args), "epochs": args.epochs,
            "results": {**rows, "mean over records": mean}}


MARGIN_SCOPES = ("margin_after_gate", "margin_on_first_opinion")
"""Where else the irregular-rhythm S margin could go, the gate read as built (both opinions
without the margin): on both opinions' calls in every record (E39), or on the first
opinion's in every record, the second opinion's conversions without it (E40)."""


def _margin_scope_calls(predictor, probs: np.ndarray, split, second_probs: np.ndarray,
                        second_without: np.ndarray) -> dict[str, np.ndarray]:
    """The calls of :data:`MARGIN_SCOPES` on a split, from the model's own opinions
    (``second_probs``, ``second_without``: the second opinion's probabilities and its calls,
    which carry no margin)."""
    from meddx.learn.tasks import ecg as recipe

    second_with = predictor.second_opinion.first_opinion(
        second_probs, split, margin=predictor.plan.irregular_s_margin)
    s, n = (predictor.class_names.index(name) for name in ("S", "N"))
    first_with = predictor.first_opinion(probs, split)
    gate = predictor.gate_reading(probs, split, first_with)
    return {name: recipe.second_opinion_calls(
        gate, second_without, split.records, s, n,
        predictor.plan.second_opinion["min_gap"], margin_calls=(first_with, second))
        for name, second in zip(MARGIN_SCOPES, (second_with, second_without), strict=True)}


def _second_opinion_gap(predictor, probs: np.ndarray, split, second: np.ndarray | None,
                        s: int) -> dict:
    """One record's gap (what the gate reads: the share of its beats the second opinion calls
    S minus the share the first opinion calls S, :meth:`gate_reading`) and the first opinion's
    S Se; empty for a model without a second opinion (``second``: its calls)."""
    if second is None:
        return {}
    from meddx.learn.tasks import ecg as recipe

    first = predictor.first_opinion(probs, split)
    _, more, beats = recipe.second_opinion_gaps(predictor.gate_reading(probs, split, first),
                                                second, split.records, s)
    is_s = split.labels == s
    return {"second_opinion_gap": round(float(more[0] / beats[0]), 4),
            "first_opinion_S_se": float(np.mean(first[is_s] == s)) if is_s.any() else None}


def _mean_defined(values: list) -> float | None:
    """The mean of the values that are not None (None when none is)."""
    defined = [value for value in values if value is not None]
    return float(np.mean(defined)) if defined else None


def _member_probabilities(predictor, test, prefix: str = "") -> dict:
    """A combined beat model's members' unsmoothed probabilities of a split, with the beats'
    features (keys after ``prefix``): enough to re-run smoothing and averaging offline."""
    split = test.with_config(predictor.beat_config)
    return {f"{prefix}features": split.rr,
            **{f"{prefix}probs_{member.plan.model}": member.predict_split(split)
               for member in predictor.members}}


def _saved_arrays(predictor, test) -> dict:
    """What part partitions saves of a held-out fold: the beats' records, the model's member
    probabilities and features, and the same of its second opinion (keys prefixed
    ``second_opinion_``), to re-run its post-processing and gate offline."""
    cut = test.with_config(predictor.beat_config)  # the cut the features are taken from
    arrays = {"records": np.asarray(cut.records).astype(str),
              **_member_probabilities(predictor, test)}
    second = getattr(predictor, "second_opinion", None)
    if second is not None:
        arrays.update(_member_probabilities(second, test, "second_opinion_"))
    return arrays


def _save_partition_probabilities(path: Path, partition: int, labels: list, folds: list) -> None:
    """One partition's out-of-fold labels, unsmoothed probabilities and features, as
    ``<path stem>_p<partition>.npz`` (error analysis; not in the results JSON)."""
    arrays = {key: np.concatenate([fold[key] for fold in folds]) for key in folds[0]}
    target = path.with_name(f"{path.stem}_p{partition}.npz")
    np.savez_compressed(target, labels=np.concatenate(labels), **arrays)


class _PostProcessing(NamedTuple):
    """One post-processing variant of part smoothing (the default's values, or one changed)."""

    neighbours: int
    tree_weight: float
    s_scale: float
    s_over_n: float
    max_irregularity: float | None
    v_margin: float = 1.0
    v_margin_min_irregularity: float | None = None  # None: the V margin applies at any rhythm
    irregular_s_margin: float = 1.0  # EcgPlan.irregular_s_margin


def run_smoothing(args) -> dict:
    """Post-processing variants scored on part partitions' saved out-of-fold probabilities
    (``--oof-probs``, the same file name), and what smoothing costs by record length.

    Each variant averages the members (``--tree-weights``: the trees' share), smooths within
    records (``--neighbours``) and may scale the S probability (``--s-scales``), then decides
    each beat (``recipe.beat_decisions``; the default's S-over-N odds, or ``--s-over-n``, on
    the beats of regular rhythm: the default's limit or ``--max-irregularity``; or E21's odds at
    any rhythm; ``--v-margins``: a V call first needs that margin, see :func:`_without_weak_v`;
    ``--irregular-v-margins``: the same only where the rhythm irregularity is at least the
    default's S-over-N limit, E31),
    then is scored per partition by the mean of S-F1 and V-F1, as the choices of
    ``SMOOTHING_NEIGHBOURS`` were; "higher on" counts partitions where it beats the default.
    Isolated ectopic beats: those of records with at most 20 beats of the class, found.
    """
    from meddx.data.ecg import AAMI_CLASSES, feature_names
    from meddx.learn.tasks import ecg as recipe
    from meddx.learn.tasks.ecg_features import smooth_over_similar_beats

    files = _saved_partitions(args.oof_probs, "smoothing")
    names = feature_names(recipe.MODEL_FEATURE_SET[recipe.COMBINED])
    default = _default_post_processing()
    odds, limit = default.s_over_n, default.max_irregularity
    variants = {f"{n} neighbours": default._replace(neighbours=n) for n in args.neighbours}
    variants.update({f"trees {w:.2f}": default._replace(tree_weight=w)
                     for w in args.tree_weights})
    variants.update({f"S x{m}": default._replace(s_scale=m) for m in args.s_scales})
    variants.update({f"S over N x{m}": default._replace(s_over_n=m) for m in args.s_over_n})
    variants.update({f"S over N where irregularity < {q}": default._replace(max_irregularity=q)
                     for q in args.max_irregularity})
    variants.update({f"V margin x{t}": default._replace(v_margin=t) for t in args.v_margins})
    variants.update({f"V margin x{t} where irregularity >= {limit}": default._replace(
        v_margin=t, v_margin_min_irregularity=limit) for t in args.irregular_v_margins})
    # E21's decision, the default before E23 (its odds at any rhythm).
    variants["S over N at any rhythm"] = default._replace(s_over_n=recipe.S_OVER_N_ODDS,
                                                          max_irregularity=None)
    variants = {"default": default, **{k: v for k, v in variants.items() if v != default}}
    per_partition = {name: [] for name in variants}
    for path in files:
        saved = dict(np.load(path))
        labels, records = saved["labels"], saved["records"]
        smoothed = {}  # most variants share the default's averaging and smoothing, the slow step
        for name, variant in variants.items():
            key = (variant.tree_weight, variant.neighbours)
            if key not in smoothed:
                smoothed[key] = _smoothed_members(saved, variant)
            probs, predicted, weak_v = _post_processed(smoothed[key], saved["features"], variant)
            metrics = _beat_metrics(labels, probs, n_bootstrap=0, decisions=predicted)
            isolated = {}
            for cls in ("S", "V"):
                k = AAMI_CLASSES.index(cls)
                rows = np.flatnonzero(labels == k)
                _, record_of, per_record = np.unique(records[rows], return_inverse=True,
                                                     return_counts=True)
                rows = rows[per_record[record_of] <= 20]
                isolated[f"isolated_{cls}_found"] = [int((predicted[rows] == k).sum()), len(rows)]
            if variant.v_margin != 1:
                isolated["moved_V_calls"] = {
                    "by_class": _counts(np.asarray(AAMI_CLASSES)[labels[weak_v]]),
                    "by_record": _counts(records[weak_v])}
            per_partition[name].append({**_with_s_v_score(_pooled_row(metrics)), **isolated})
        console.print(f"smoothing: {path.name} scored")
    rows = _over_partitions(per_partition, "default")
    # The beats of all DS1 records taken as one long record, twice over for a day-long Holter.
    beats = np.load(files[0])["features"]
    features = np.concatenate([beats, beats])
    uniform = np.full((len(features), len(AAMI_CLASSES)), 1 / len(AAMI_CLASSES))
    cost = {}
    for n in (2_500, 20_000, len(beats), len(features)):
        start = time.perf_counter()
        smooth_over_similar_beats(uniform[:n], features[:n], names, recipe.SMOOTHING_NEIGHBOURS)
        cost[str(n)] = round(time.perf_counter() - start, 2)
        console.print(f"smoothing {n} beats: {cost[str(n)]} s")
    return {"evaluation": f"offline on {len(files)} partitions' out-of-fold probabilities "
                          f"({args.oof_probs.stem}_p*.npz); the default is "
                          f"{default.neighbours} neighbours, equal member weights, S over N odds "
                          f"{odds} where the rhythm irregularity is below {limit}",
            "results": rows, "seconds_by_beats": cost}


def _reduced(rows: list[dict], reduce=np.mean) -> dict:
    """Each figure of per-partition (or per-training) rows reduced over the rows; entries that
    are lists or dicts (the records a gate fired on...) are left out."""
    return {key: float(reduce([row[key] for row in rows])) for key in rows[0]
            if not isinstance(rows[0][key], list | dict)}


def _over_partitions(per_partition: dict[str, list[dict]], base: str) -> dict:
    """Each variant's mean figures over the partitions, on how many partitions its mean S/V F1
    is above ``base``'s ("higher on"), and its partitions' rows."""
    scores = [row["mean_S_V_f1"] for row in per_partition[base]]
    return {name: {**_reduced(parts),
                   "higher_on": sum(row["mean_S_V_f1"] > score
                                    for row, score in zip(parts, scores, strict=True)),
                   "partitions": parts}
            for name, parts in per_partition.items()}


def _saved_partitions(oof_probs: Path | None, part: str) -> list[Path]:
    """The files part partitions saved with ``--oof-probs`` (the same name), which an offline
    part reads."""
    if oof_probs is None:
        raise SystemExit(f"part {part} reads the files of part partitions: give --oof-probs")
    files = sorted(oof_probs.parent.glob(f"{oof_probs.stem}_p*.npz"))
    if not files:
        raise SystemExit(f"no {oof_probs.stem}_p*.npz next to {oof_probs}: run "
                         "--parts partitions --oof-probs with that name first")
    return files


def _default_post_processing() -> _PostProcessing:
    """The default beat model's post-processing, as offline parts re-run it."""
    from meddx.learn.tasks import ecg as recipe

    odds, limit = recipe.default_s_over_n(recipe.MODEL_FEATURE_SET[recipe.COMBINED])
    return _PostProcessing(recipe.SMOOTHING_NEIGHBOURS, 0.5, 1.0, odds, limit)


def _smoothed_members(saved: dict, variant: _PostProcessing, prefix: str = "") -> np.ndarray:
    """A saved partition's member probabilities averaged (the trees' share ``tree_weight``) and
    smoothed within records, as the model does; ``prefix``: ``second_opinion_`` for its second
    opinion's members."""
    from meddx.data.ecg import feature_names
    from meddx.learn.tasks import ecg as recipe
    from meddx.learn.tasks.ecg_features import smooth_within_records

    return smooth_within_records(
        (1 - variant.tree_weight) * saved[f"{prefix}probs_cnn"]
        + variant.tree_weight * saved[f"{prefix}probs_lightgbm"], saved[f"{prefix}features"],
        saved["records"], feature_names(recipe.MODEL_FEATURE_SET[recipe.COMBINED]),
        variant.neighbours)


def _post_processed(smoothed: np.ndarray, features: np.ndarray, variant: _PostProcessing):
    """A variant's probabilities (S scaled), its calls (indices) and the beats its V margin
    moved, from smoothed probabilities and the beats' features."""
    from meddx.data.ecg import AAMI_CLASSES
    from meddx.learn.tasks import ecg as recipe

    feature_set = recipe.MODEL_FEATURE_SET[recipe.COMBINED]
    probs = smoothed.copy()
    probs[:, AAMI_CLASSES.index("S")] *= variant.s_scale
    probs /= probs.sum(axis=1, keepdims=True)
    regular = recipe.regular_rhythm(features, feature_set, variant.max_irregularity)
    irregular = None
    if variant.v_margin_min_irregularity is not None:
        irregular = ~recipe.regular_rhythm(features, feature_set,
                                           variant.v_margin_min_irregularity)
    decided, weak_v = _without_weak_v(probs, variant.v_margin, irregular)
    calls = recipe.beat_decisions(decided, list(AAMI_CLASSES), variant.s_over_n, regular,
                                  variant.irregular_s_margin)
    return probs, calls, weak_v


GATE_SHUT = " where the gate stays shut"


def built_row_name() -> str:
    """Part second_opinion's row that scores the default decision as built (E36's margin in
    the records where the gate stays shut)."""
    from meddx.learn.tasks import ecg as recipe

    return f"irregular S margin x{recipe.IRREGULAR_S_MARGIN}{GATE_SHUT}"


def run_second_opinion(args) -> dict:
    """The default's second-opinion gate re-run offline on part partitions' saved files (a
    model with a second opinion, ``--oof-probs``) at each of ``--min-gaps``: the pooled
    figures per partition, the records where the gate fired, and each record's gap (the share
    of its beats the second opinion calls S minus the share the first calls S). Both opinions
    are post-processed as the default is, without its irregular-rhythm S margin (the default
    before E36). ``--irregular-s-margins`` t (default: the built one): both opinions' S calls in
    irregular rhythm (the S-over-N odds' limit) also need p(S) >= t p(N), or become N
    (``EcgPlan.irregular_s_margin``), the gate at the built ``min_gap``; and "where the gate
    stays shut": the first opinion's calls with the margin only in records whose gate, read
    without it, stays shut (``irregular_s_margin_scope`` gate_shut). At the built margin and
    ``min_gap``, where the gate stays shut, the figures are the partitions part's own for a
    model trained with E36 built (a check that the files re-run the model); "after the gate":
    the gate read without the margin, then both opinions' calls with it in every record (E39);
    "on the first opinion": the same with the second opinion's calls without it (E40).
    ``--s-over-n`` m (E38): the whole default decision, as built, with both opinions'
    S-over-N odds m in regular rhythm (what ``s_over_n_odds: m`` in the plan gives)."""
    from meddx.data.ecg import AAMI_CLASSES
    from meddx.learn.tasks import ecg as recipe

    files = _saved_partitions(args.oof_probs, "second_opinion")
    default = _default_post_processing()
    s, n = AAMI_CLASSES.index("S"), AAMI_CLASSES.index("N")
    min_gaps = args.min_gaps or [recipe.SECOND_OPINION["min_gap"]]
    margins = {f"irregular S margin x{t}": default._replace(irregular_s_margin=t)
               for t in args.irregular_s_margins or [recipe.IRREGULAR_S_MARGIN]}
    shut, after, on_first = GATE_SHUT, " after the gate", " on the first opinion"
    odds = {f"S over N x{m}, as built": default._replace(s_over_n=m) for m in args.s_over_n
            if m != default.s_over_n}
    per_partition: dict[str, list] = {"first opinion alone": [],
                                      **{f"min_gap {gap}": [] for gap in min_gaps},
                                      **{name + scope: [] for name in margins
                                         for scope in ("", shut, after, on_first)},
                                      **{name: [] for name in odds}}
    gaps: dict[str, list[float]] = {}
    set_aside: list[dict] = []
    for path in files:
        saved = dict(np.load(path))
        if "second_opinion_probs_cnn" not in saved:
            raise SystemExit(f"{path.name} holds no second opinion: run part partitions with a "
                             "model that has one")
        labels, records = saved["labels"], saved["records"]
        # The margins change decisions only: both opinions are smoothed once.
        smoothed = _smoothed_members(saved, default)
        second_smoothed = _smoothed_members(saved, default, "second_opinion_")
        probs, first, _ = _post_processed(smoothed, saved["features"], default)
        _, second, _ = _post_processed(second_smoothed, saved["second_opinion_features"],
                                       default)
        for record, more, beats in zip(*recipe.second_opinion_gaps(first, second, records, s),
                                       strict=True):
            gaps.setdefault(str(record), []).append(round(float(more / beats), 4))
        calls = {"first opinion alone": first, **{
            f"min_gap {gap}": recipe.second_opinion_calls(first, second, records, s, n, gap)
            for gap in min_gaps}}
        gap = recipe.SECOND_OPINION["min_gap"]
        for name, variant in margins.items():
            first_m, second_m = _opinions(smoothed, second_smoothed, saved, variant)
            calls[name] = recipe.second_opinion_calls(first_m, second_m, records, s, n, gap)
            calls[name + shut] = recipe.second_opinion_calls(first, second, records, s, n, gap,
                                                             shut_calls=first_m)
            calls[name + after] = recipe.second_opinion_calls(first, second, records, s, n, gap,
                                                              margin_calls=(first_m, second_m))
            calls[name + on_first] = recipe.second_opinion_calls(
                first, second, records, s, n, gap, margin_calls=(first_m, second))
        for name, variant in odds.items():
            calls[name] = _as_built_calls(smoothed, second_smoothed, saved, variant)
        if args.set_aside:
            built = _as_built_calls(smoothed, second_smoothed, saved, default)
            set_aside.append(_set_aside_figures(labels, records, built, probs, saved["features"],
                                                args.set_aside))
        for name, decided in calls.items():
            metrics = _beat_metrics(labels, probs, n_bootstrap=0, decisions=decided)
            per_partition[name].append({
                **_with_s_v_score(_pooled_row(metrics)),
                "fired_on": sorted(set(records[decided != first].tolist()))})
        console.print(f"second_opinion: {path.name} scored")
    rows = {name: {**_reduced(parts), "partitions": parts}
            for name, parts in per_partition.items()}
    largest = sorted(gaps.items(), key=lambda item: -max(item[1]))
    if set_aside:
        pooled = _pooled_set_aside(set_aside)
        console.print(
            f"set aside {', '.join(args.set_aside)}: S Se {pooled['S_se']['mean']:.3f} -> "
            f"{pooled['S_se_without']['mean']:.3f} without them; V +P (EC57) "
            f"{pooled['V_ppv']['mean']:.3f} -> "
            f"{pooled['V_ppv_without_their_S_called_V']['mean']:.3f} without their S beats "
            f"called V; S missed per partition {pooled['per_partition']['S_missed']:.1f}, by "
            "record " + ", ".join(f"{record} {count:.1f}" for record, count in
                                  pooled["per_partition"]["S_missed_by_record"].items()))
    return {"evaluation": f"offline on {len(files)} partitions' out-of-fold probabilities "
                          f"({args.oof_probs.stem}_p*.npz) of a model with a second opinion",
            "results": rows,
            "gap_by_record": {record: {"max": max(values), "per_partition": values}
                              for record, values in largest},
            **({"set_aside": pooled} if set_aside else {})}


def _opinions(smoothed: np.ndarray, second_smoothed: np.ndarray, saved: dict,
              variant: _PostProcessing) -> tuple[np.ndarray, np.ndarray]:
    """Both opinions' calls (indices) of a saved partition under one post-processing
    variant."""
    _, first, _ = _post_processed(smoothed, saved["features"], variant)
    _, second, _ = _post_processed(second_smoothed, saved["second_opinion_features"], variant)
    return first, second


def _as_built_calls(smoothed: np.ndarray, second_smoothed: np.ndarray, saved: dict,
                    variant: _PostProcessing) -> np.ndarray:
    """The default's whole decision with a variant's odds: the gate read on both opinions
    without the margin, the built margin where it stays shut (``gate_shut``)."""
    from meddx.data.ecg import AAMI_CLASSES
    from meddx.learn.tasks import ecg as recipe

    first, second = _opinions(smoothed, second_smoothed, saved, variant)
    _, first_margin, _ = _post_processed(
        smoothed, saved["features"], variant._replace(irregular_s_margin=recipe.IRREGULAR_S_MARGIN))
    return recipe.second_opinion_calls(
        first, second, saved["records"], AAMI_CLASSES.index("S"), AAMI_CLASSES.index("N"),
        recipe.SECOND_OPINION["min_gap"], shut_calls=first_margin)


ENSEMBLE_MEMBER_KEYS = ("probs_cnn", "second_opinion_probs_cnn")
"""The saved network probabilities a seed ensemble averages (its trees are trained once)."""


def _built_row(saved: dict, default: _PostProcessing) -> dict:
    """A saved partition's pooled figures under the default decision as built."""
    smoothed = _smoothed_members(saved, default)
    second_smoothed = _smoothed_members(saved, default, "second_opinion_")
    probs, _, _ = _post_processed(smoothed, saved["features"], default)
    calls = _as_built_calls(smoothed, second_smoothed, saved, default)
    return _with_s_v_score(_pooled_row(_beat_metrics(saved["labels"], probs, n_bootstrap=0,
                                                     decisions=calls)))


def run_seed_ensemble(args) -> dict:
    """E42 offline: the default as built from a seed ensemble of its networks.

    ``--oof-probs`` names part partitions' files of one training and ``--ensemble-with`` those
    of the same partitions trained with other seeds (``--seed-offset``). Per partition, each
    training alone and the ensemble, whose network probabilities (first and second opinion)
    are the trainings' mean per beat and whose trees are the first training's (an ensemble
    trains its trees once; ``TrainConfig(ensemble=K)``), are scored as the default is built.
    The ensemble is compared with the single trainings' mean per partition ("higher on": the
    partitions where a row's mean S/V F1 beats it); "spread" is the range of each figure over
    the single trainings, averaged over the partitions.
    """
    runs = [args.oof_probs, *args.ensemble_with]
    if len(runs) < 2:
        raise SystemExit("part seed_ensemble averages trainings: give --ensemble-with")
    by_run = {run.stem: {int(path.stem.removeprefix(f"{run.stem}_p")): path
                         for path in _saved_partitions(run, "seed_ensemble")} for run in runs}
    partitions = sorted(set.intersection(*(set(files) for files in by_run.values())))
    if not partitions:
        raise SystemExit("the --oof-probs and --ensemble-with runs share no partition")
    default = _default_post_processing()
    ensemble_name = f"ensemble of {len(runs)} networks"
    per_partition: dict[str, list[dict]] = {
        **{f"{name} alone": [] for name in by_run}, "single trainings' mean": [],
        ensemble_name: []}
    spread: list[dict] = []
    for partition in partitions:
        saved = [dict(np.load(files[partition])) for files in by_run.values()]
        for key in ("labels", "records", "features", "second_opinion_features"):
            if any(not np.array_equal(saved[0][key], other[key]) for other in saved[1:]):
                raise SystemExit(f"partition {partition}: the runs' {key} differ, so they are "
                                 "not the same partition's beats")
        singles = [_built_row(one, default) for one in saved]
        for name, row in zip(by_run, singles, strict=True):
            per_partition[f"{name} alone"].append(row)
        per_partition["single trainings' mean"].append(_reduced(singles))
        spread.append(_reduced(singles, np.ptp))
        averaged = {**saved[0], **{key: np.mean([one[key] for one in saved], axis=0)
                                   for key in ENSEMBLE_MEMBER_KEYS}}
        per_partition[ensemble_name].append(_built_row(averaged, default))
        console.print(f"seed_ensemble: partition {partition}: S/V F1 "
                      + ", ".join(f"{row['mean_S_V_f1']:.3f}" for row in singles)
                      + f"; ensemble {per_partition[ensemble_name][-1]['mean_S_V_f1']:.3f}")
    return {"evaluation": f"offline on {len(partitions)} partitions' out-of-fold probabilities "
                          f"of {len(runs)} trainings ({', '.join(by_run)}), the default "
                          "decision as built",
            "partition_numbers": partitions,
            "results": _over_partitions(per_partition, "single trainings' mean"),
            "spread_over_trainings": _reduced(spread)}


SET_ASIDE_FEATURES = ("pre_rr", "prev_pre_rr", "qrs_width_z")
"""Features whose medians describe the set-aside records' beats (an Ashman beat is premature,
after a long cycle, and wide)."""


def _set_aside_figures(labels: np.ndarray, records: np.ndarray, calls: np.ndarray,
                       probs: np.ndarray, features: np.ndarray, set_aside: list[str]) -> dict:
    """One partition's account of what ``set_aside`` records' beats do to S Se and V +P
    (``--set-aside``): the S beats missed, per record; S Se without those records; V +P as
    EC57 scores it without their S beats called V; the false V calls per record; and, per
    set-aside record, its S beats' calls, and the class probabilities and features of its S
    beats called V, its S beats called N and its V beats (pooled by
    :func:`_pooled_set_aside`)."""
    from meddx.data.ecg import AAMI_CLASSES, feature_names
    from meddx.learn.tasks import ecg as recipe

    n, s, v = (AAMI_CLASSES.index(name) for name in ("N", "S", "V"))
    names = feature_names(recipe.MODEL_FEATURE_SET[recipe.COMBINED])
    is_s, aside = labels == s, np.isin(records, set_aside)
    v_calls = calls == v
    s_called_v_aside = int((is_s & aside & v_calls).sum())
    true_v = int((v_calls & (labels == v)).sum())
    false_v = int((v_calls & np.isin(labels, [n, s])).sum())  # EC57: VEB FP = Nv + Sv
    per_record = {}
    for record in set_aside:
        mine = is_s & (records == record)
        groups = {"S called V": mine & v_calls, "S called N": mine & (calls == n),
                  "V": (records == record) & (labels == v)}
        per_record[record] = {
            "S_beats": int(mine.sum()), "S_found": int((mine & (calls == s)).sum()),
            "S_called_V": int(groups["S called V"].sum()),
            "S_called_N": int(groups["S called N"].sum()),
            "beats": {group: {**{f"p_{name}": probs[rows, AAMI_CLASSES.index(name)].tolist()
                                 for name in ("N", "S", "V")},
                              **{name: features[rows, names.index(name)].tolist()
                                 for name in SET_ASIDE_FEATURES}}
                      for group, rows in groups.items()}}
    return {"S_missed": int((is_s & (calls != s)).sum()),
            "S_missed_by_record": _counts(records[is_s & (calls != s)]),
            "S_se": float((is_s & (calls == s)).sum() / is_s.sum()),
            "S_se_without": float((is_s & ~aside & (calls == s)).sum() / (is_s & ~aside).sum()),
            "V_ppv": true_v / (true_v + false_v),
            "V_ppv_without_their_S_called_V": true_v / (true_v + false_v - s_called_v_aside),
            "S_called_V_in_them": s_called_v_aside, "false_V": false_v,
            "N_called_V_by_record": _counts(records[v_calls & (labels == n)]),
            "records": per_record}


def _pooled_set_aside(parts: list[dict]) -> dict:
    """:func:`_set_aside_figures` over partitions: means (min-max) of the figures, counts per
    partition, and per set-aside record its counts per partition with the medians of the
    probabilities and features over every partition's beats."""
    def spread(key: str) -> dict:
        values = [part[key] for part in parts]
        return {"mean": float(np.mean(values)), "min": min(values), "max": max(values)}

    def per_partition(key: str) -> dict:
        names = sorted({name for part in parts for name in part[key]},
                       key=lambda name: -sum(part[key].get(name, 0) for part in parts))
        return {name: sum(part[key].get(name, 0) for part in parts) / len(parts)
                for name in names}

    records = {}
    for record in parts[0]["records"]:
        mine = [part["records"][record] for part in parts]
        records[record] = {
            **{key: sum(row[key] for row in mine) / len(parts)
               for key in ("S_beats", "S_found", "S_called_V", "S_called_N")},
            "medians": {group: {key: float(np.median(
                sum((row["beats"][group][key] for row in mine), []) or [np.nan]))
                for key in beats} for group, beats in mine[0]["beats"].items()}}
    return {"records_set_aside": list(parts[0]["records"]),
            **{key: spread(key) for key in ("S_se", "S_se_without", "V_ppv",
                                            "V_ppv_without_their_S_called_V")},
            "per_partition": {"S_missed": sum(part["S_missed"] for part in parts) / len(parts),
                              "S_called_V_in_them": sum(part["S_called_V_in_them"]
                                                        for part in parts) / len(parts),
                              "false_V": sum(part["false_V"] for part in parts) / len(parts),
                              "S_missed_by_record": per_partition("S_missed_by_record"),
                              "N_called_V_by_record": per_partition("N_called_V_by_record")},
            "records": records}


def _without_weak_v(probs: np.ndarray, margin: float,
                    where: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The probabilities a V margin decides on (E25, E31, not adopted), and which beats it
    moved: an arg-max V call whose p(V) is below ``margin`` times the beat's second-highest
    probability loses its V, so it takes that second class (and an N call may then become S by
    the S-over-N odds); ``where``: only on these beats (None: all)."""
    from meddx.data.ecg import AAMI_CLASSES

    v = AAMI_CLASSES.index("V")
    weak = (probs.argmax(axis=1) == v) & (probs[:, v] < margin * np.sort(probs, axis=1)[:, -2])
    if where is not None:
        weak &= where
    if not weak.any():
        return probs, weak
    decided = probs.copy()
    decided[weak, v] = 0.0
    return decided, weak


def _counts(values: np.ndarray) -> dict[str, int]:
    """How often each value occurs, most frequent first."""
    return dict(Counter(map(str, values)).most_common())


def _pooled_row(metrics: dict) -> dict:
    """Macro-F1, accuracy and the S and V Se / +P of pooled classification figures."""
    return {"macro_f1": metrics["macro_f1"], "accuracy": metrics["accuracy"],
            **_s_v_figures(metrics["per_class"])}


def _beat_metrics(labels, probs, **options) -> dict:
    """Classification figures of AAMI beats, +P as EC57 scores it (see ``AAMI_EXCUSED_CALLS``)."""
    from meddx.data.ecg import AAMI_CLASSES, AAMI_EXCUSED_CALLS
    from meddx.learn.evaluation.metrics import classification_metrics

    return classification_metrics(labels, probs, list(AAMI_CLASSES),
                                  excused_calls=AAMI_EXCUSED_CALLS, **options)


def _s_v_figures(per_class: dict, prefix: str = "") -> dict:
    """``S_se``, ``S_ppv``, ``V_se``, ``V_ppv`` (+P as EC57 scores it) and ``S_ppv_all_calls``,
    ``V_ppv_all_calls`` (every call counted), after ``prefix``, of per-class figures."""
    return {f"{prefix}{c}_{m}": per_class[c][key] for c in ("S", "V")
            for m, key in (("se", "sensitivity"), ("ppv", "ppv"),
                           ("ppv_all_calls", "ppv_all_calls"))}


def _scores_by_round(booster, features: np.ndarray, num_classes: int):
    """Yield the ``(N, K)`` class probabilities after each boosting round (the raw scores each
    round adds, as LightGBM predicts them, summed)."""
    raw = np.zeros((len(features), num_classes))
    for round_index in range(booster.current_iteration()):
        raw += np.asarray(booster.predict(features, raw_score=True, start_iteration=round_index,
                                          num_iteration=1)).reshape(raw.shape)
        shifted = np.exp(raw - raw.max(axis=1, keepdims=True))
        yield shifted / shifted.sum(axis=1, keepdims=True)


def _stop_round(curve: list[float], patience: int, start: int = 1) -> int:
    """The round LightGBM's early stopping keeps: the best score from ``start`` on, stopping
    ``patience`` rounds without a better one."""
    best, best_round = -np.inf, start
    for round_number in range(start, len(curve) + 1):
        if curve[round_number - 1] > best:
            best, best_round = curve[round_number - 1], round_number
        if round_number - best_round >= patience:
            break
    return best_round


def run_tree_stopping(args) -> dict:
    """The trees' early-stopping rule of the default beat model, compared on the DS1 CV.

    Same folds as part mitdb. In each fold the default ``cnn+lightgbm`` is fitted as the recipe
    does (selection on the fold's validation records, refit on train + val); its refitted
    network is kept, and the trees are refitted at the rounds each stopping rule picks on the
    selection trees' validation curve. Each rule's figures are those of the whole default:
    network and trees averaged, smoothed within records, pooled over the held-out records.
    Fixed round counts are printed for reference (they would be tuned on this CV itself).
    """
    from meddx.data.ecg import BeatConfig, BeatSplit, feature_names, load_wfdb_dataset
    from meddx.learn.tasks import ecg as recipe
    from meddx.learn.tasks import ecg_features as trees

    config = BeatConfig(feature_set=recipe.MODEL_FEATURE_SET[recipe.COMBINED])
    dataset = load_wfdb_dataset("mitdb-ds1", args.data_dir, config=config, progress=False)
    k = len(dataset.class_names)
    stop_classes = [dataset.class_names.index(c) for c in trees.STOP_CLASSES]
    fixed = (100, 200, 300)
    probs = {}
    labels, rounds = [], {}
    for fold, (train_records, test_records) in enumerate(dataset.folds(args.folds, seed=0)):
        inner = dataset.subset(train_records, f"mitdb-ds1-fold{fold}", test_fraction=0.0)
        with tempfile.TemporaryDirectory() as scratch:
            fitted = recipe.fit(inner, Path(scratch), _config(args.epochs, fold, args.threads),
                                plan={"model": recipe.COMBINED}, progress=False)
        network, _ = fitted.predictor.members
        plan = recipe.component_plan(fitted.predictor.plan, "lightgbm")
        names = feature_names(plan.beat_config["feature_set"])
        every = dataset.split("all")
        test = every.subset(np.flatnonzero(np.isin(every.records, test_records)))
        train, val = inner.split("train"), inner.split("val")
        both = BeatSplit.concat([train, val])

        # Trees of every round, on train (the selection fit's) and on train + val (the refit).
        selection_trees, refit = [trees.train_beat_booster(
            trees.beat_features(split, plan.beat_config), np.asarray(split.labels), None, None,
            k, plan.imbalance_power, fold, names, plan.lightgbm, args.threads,
            rounds=trees.MAX_ROUNDS) for split in (train, both)]
        weights = trees.class_weights(np.bincount(train.labels, minlength=k),
                                      plan.imbalance_power)
        rules = {"validation macro-F1": (lambda y, p: recipe.selection_scores(y, p)["macro_f1"],
                                         1),
                 "weighted log-loss": (trees.stopping_loss(weights), 1),
                 "weighted log-loss, N/S/V beats (default)": (
                     trees.stopping_loss(weights, stop_classes), 1),
                 "log-loss": (trees.stopping_loss(np.ones(k)), 1),
                 "weighted log-loss, from round 100": (trees.stopping_loss(weights), 100)}
        val_x, val_y = trees.beat_features(val, plan.beat_config), np.asarray(val.labels)
        curves = {name: [] for name in rules}
        for round_probs in _scores_by_round(selection_trees, val_x, k):
            for name, (score, _) in rules.items():
                curves[name].append(score(val_y, round_probs))
        chosen = {name: _stop_round(curves[name], trees.EARLY_STOP, start)
                  for name, (_, start) in rules.items()}
        chosen.update({f"{n} rounds (reference)": n for n in fixed})
        test = test.with_config(fitted.predictor.beat_config)
        network_probs = network.predict_split(test)
        test_x = trees.beat_features(test, plan.beat_config)
        for name, n_rounds in chosen.items():
            averaged = (network_probs + refit.predict(test_x, num_iteration=n_rounds)) / 2
            probs.setdefault(name, []).append(
                fitted.predictor.smooth_within_records(averaged, test))
            rounds.setdefault(name, []).append(n_rounds)
        labels.append(test.labels)
        console.print(f"tree_stopping fold {fold + 1}/{args.folds}: rounds {chosen}")
    labels = np.concatenate(labels)
    rows = {}
    for name, parts in probs.items():
        metrics = _beat_metrics(labels, np.concatenate(parts), n_bootstrap=0)
        rows[name] = {"rounds": rounds[name], **_pooled_row(metrics)}
    eligible = [name for name in rows if "reference" not in name]
    return {"evaluation": "the default cnn+lightgbm on the mitdb part's folds, trees refitted "
                          "at each rule's rounds; pooled over all held-out beats",
            "results": rows, "best": max(eligible, key=lambda n: rows[n]["macro_f1"])}


def run_archs(args) -> dict:
    """The beat default, picked on validation: each architecture on the same patient-wise split.

    Trained on the seed-0 training records of DS1, scored on its validation records (macro-F1
    over N, S, V: the classes with >= 10 validation beats). The held-out test records of that
    split are not looked at here.
    """
    from meddx.data.ecg import load_wfdb_dataset
    from meddx.learn.tasks import ecg as recipe

    dataset = load_wfdb_dataset("mitdb-ds1", args.data_dir, progress=False)
    val = dataset.split("val")
    rows = {}
    for arch in args.archs:
        with tempfile.TemporaryDirectory() as scratch:
            start = time.perf_counter()
            fitted = recipe.fit(dataset, Path(scratch), _config(args.epochs, 0, args.threads),
                                plan={**args.beat_plan, "model": "cnn", "arch": arch},
                                progress=False)
            train_s = time.perf_counter() - start
        metrics = _beat_metrics(val.labels, fitted.predictor.predict_split(val), n_bootstrap=0)
        rows[arch] = {"val_macro_f1_selection": fitted.metadata["training"]["model_selection"][0]
                      ["val_macro_f1"],
                      "best_epoch": fitted.metadata["training"]["best_epoch"],
                      **_s_v_figures(metrics["per_class"], "val_"),
                      "train_s": round(train_s, 1)}
        console.print(f"{arch}: {rows[arch]}")
    return {"split": dataset.record_split(0), "epochs": args.epochs, "results": rows,
            "chosen": max(rows, key=lambda a: rows[a]["val_macro_f1_selection"])}


def run_models(args) -> dict:
    """The beat model kind, picked on validation: each kind on the same patient-wise split.

    Trained on the seed-0 training records of DS1 and scored on its validation records
    (macro-F1 over N, S, V: the classes with >= 10 validation beats, as the recipe's epoch
    selection). The seed-0 test records are not looked at here.
    """
    from meddx.data.ecg import load_wfdb_dataset
    from meddx.learn.tasks import ecg as recipe

    dataset = load_wfdb_dataset("mitdb-ds1", args.data_dir, progress=False)
    val = dataset.split("val")
    rows = {}
    for model in args.models:
        plan = {"model": model, **({"arch": args.beat_arch} if "cnn" in model else {})}
        with tempfile.TemporaryDirectory() as scratch:
            start = time.perf_counter()
            fitted = recipe.fit(dataset, Path(scratch), _config(args.epochs, 0, args.threads),
                                plan=plan, progress=False)
            train_s = time.perf_counter() - start
        probs = fitted.predictor.predict_split(val)
        metrics = _beat_metrics(val.labels, probs, n_bootstrap=0)
        rows[model] = {"val_macro_f1_selection": recipe.selection_scores(val.labels, probs)
                       ["macro_f1"],
                       **_s_v_figures(metrics["per_class"], "val_"),
                       "train_s": round(train_s, 1)}
        for kind, member in zip(recipe.COMPONENTS, fitted.predictor.members, strict=False):
            # Each member alone on the same records: what the averaging adds.
            rows[model][f"member_{kind}_val_macro_f1"] = recipe.selection_scores(
                val.labels, member.predict_split(val))["macro_f1"]
        console.print(f"{model}: {rows[model]}")
    return {"split": dataset.record_split(0), "results": rows,
            "chosen": max(rows, key=lambda m: rows[m]["val_macro_f1_selection"])}


MERGED_ROWS = {"models": "val_macro_f1_selection", "archs": "val_macro_f1_selection",
               "ecg200_selection": "cv_accuracy"}
"""Parts whose rows are merged with the stored ones (rows not run now are kept), and the score
that picks the chosen row."""


def _merge_stored(key: str, stored: dict, result: dict) -> dict:
    """A part's new result merged with what the JSON holds for it (see :func:`_store`)."""
    if key in MERGED_ROWS:
        rows = {**stored.get("results", {}), **result["results"]}
        return {**stored, **result, "results": rows,
                "chosen": max(rows, key=lambda m: rows[m][MERGED_ROWS[key]])}
    if key.startswith("ecg200_resamples"):
        rows = dict(stored.get("rows", {}))
        for name, by_resample in result["rows"].items():
            rows[name] = {**rows.get(name, {}), **by_resample}
        return {**stored, **result, "rows": rows, "summary": _resample_summary(rows),
                "paired": _resample_pairs(rows)}
    return result


def _store(out: Path, key: str, result: dict) -> dict:
    """Write one part's result into the JSON, keeping every other part.

    The file is read again just before the write, under a lock, so that runs of other parts
    (or of the same resampled part over other resamples) at the same time keep their results;
    rows of parts that merge are merged with the stored ones (:func:`_merge_stored`).
    """
    import fcntl

    from meddx.fileio import write_text

    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_name(f".{out.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        results = json.loads(out.read_text()) if out.exists() else {}
        results[key] = _merge_stored(key, results.get(key, {}), result)
        write_text(json.dumps(results, indent=2), out)
    return results


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def print_table(results: dict) -> None:
    table = Table(title="ECG benchmark (this CPU)")
    for column in ("dataset", "evaluation", "metric", "ours", "anchor / target"):
        table.add_column(column)
    for key in (k for k in ("ecg200", "ecg200_minirocket") if k in results):
        r = results[key]
        table.add_row("ECG200", f"official test (100), {r['arch']}", "accuracy",
                      _fmt(r["test_accuracy"]), "InceptionTime 0.93, ROCKET 0.906; target >= 0.93")
        if "ensemble" in r:
            table.add_row("", f"ensemble of {r['ensemble']['members']}; members alone (mean)",
                          "accuracy", _fmt(r["ensemble"]["member_test_accuracy_mean"]), "")
    resampled = results.get("ecg200_resamples", {}).get("rows", {})
    anchors = ", ".join(f"{k} {v}" for k, v in RESAMPLE_ANCHORS.items())
    for name, row in _resample_summary(resampled).items():
        table.add_row("ECG200", f"{row['resamples']} resamples, {name}",
                      "mean accuracy (SD; range); at target",
                      f"{_fmt(row['mean_accuracy'])} ({_fmt(row['sd_accuracy'])}; "
                      f"{_fmt(row['min_accuracy'])}-{_fmt(row['max_accuracy'])}); "
                      f"{row.get('at_or_above_target', 'n/a')}",
                      f"{anchors} (30 resamples); target {TARGETS['ecg200_accuracy']}")
    for pair, row in _resample_pairs(resampled).items():
        table.add_row("", pair, "wins / losses / ties (Wilcoxon p)",
                      f"{row['wins']} / {row['losses']} / {row['ties']} "
                      f"({_fmt(row['wilcoxon_p'])})", "")
    for key in (k for k in ("ecg5000", "ecg5000_minirocket") if k in results):
        r = results[key]
        table.add_row("ECG5000", f"5-fold CV, 500 train beats, {r['arch']}", "accuracy",
                      _fmt(r["cv_accuracy"]), "ROCKET 0.947, InceptionTime 0.941 (4,500 test)")
        table.add_row("", "", "macro-F1 / bal. acc.",
                      f"{_fmt(r['cv_macro_f1'])} / {_fmt(r['cv_balanced_accuracy'])}", "")

    def target_rows(evaluation: str, figures: dict) -> None:
        # +P both ways: as EC57 scores it (the anchors' way) and with every call counted.
        for key, label in (("V_se", "V Se"), ("V_ppv", "V +P (EC57)"),
                           ("V_ppv_all_calls", "V +P (every call)"), ("S_se", "S Se"),
                           ("S_ppv", "S +P (EC57)"), ("S_ppv_all_calls", "S +P (every call)")):
            if key not in figures:  # entries stored before every-call +P was kept
                continue
            figure, value = key.removesuffix("_all_calls"), figures[key]
            target = TARGETS[figure]
            table.add_row("MIT-BIH DS1", evaluation, label,
                          "n/a" if value is None else f"{value:.4f}",  # 0.8997 is not 0.900
                          f"target >= {target:.2f} "
                          f"({'met' if (value or 0) >= target else 'missed'}); "
                          "Mondejar-Guerra (DS2) "
                          f"{ANCHORS['mitdb']['Mondejar-Guerra 2019'][figure] / 100:.3f}")

    fresh = fresh_partitions_summary(results)
    for key, target in FRESH_FIGURES.items() if fresh else ():
        row = fresh[key]
        table.add_row("MIT-BIH DS1", f"default over {fresh['partitions']} fresh partitions",
                      f"{key}: mean (min-max)",
                      f"{row['mean']:.3f} ({row['min']:.3f}-{row['max']:.3f})",
                      "" if target is None else f"target >= {TARGETS[target]:.2f}; below on "
                      f"{row['below_target']} of {fresh['partitions']}")
    for name in sorted(k for k in results if k.startswith("mitdb_")):
        r = results[name]
        target_rows(f"leave-records-out CV, {name[6:]}", r["gross"])
        table.add_row("", "", "accuracy / macro-F1",
                      f"{_fmt(r['accuracy'])} / {_fmt(r['macro_f1'])}", "")
        table.add_row("", "", "train s/fold, infer s/record",
                      f"{r['train_s_per_fold']:.0f} / {r['inference_s_per_record']:.2f}", "")
        if "detected_beats" in r:
            d = r["detected_beats"]
            table.add_row("", "without annotations (R peaks detected)", "beats found / +P",
                          f"{d['detection_sensitivity']:.4f} / {d['detection_ppv']:.4f}",
                          "Pan-Tompkins 1985: 99.3% of QRS complexes (48 records)")
            table.add_row("", "", "S Se / +P, V Se / +P",
                          f"{_fmt(d['S_se'])} / {_fmt(d['S_ppv'])}, "
                          f"{_fmt(d['V_se'])} / {_fmt(d['V_ppv'])}", "")
        if "detected_beats_by_correction" in r:
            table.add_row("", "", "mean S/V F1 by peak correction", ", ".join(
                f"{name} {row['mean_S_V_f1']:.3f}"
                for name, row in r["detected_beats_by_correction"].items()), "")
    if "partitions" in results:
        # The default over several partitions of the patients: its mean is the figure to expect.
        mean = next(key for key in results["partitions"]["results"] if key.startswith("mean"))
        target_rows(f"{mean} (part partitions)", results["partitions"]["results"][mean])
    console.print(table)
    val_columns = ("val macro-F1", "S Se", "S +P", "V Se", "V +P")
    scored_columns = ("score", "higher on", "macro-F1", "S Se", "S +P", "V Se", "V +P")

    def val_cells(row: dict) -> list[str]:
        return [_fmt(row.get(key)) for key in ("val_macro_f1_selection", "val_S_se", "val_S_ppv",
                                           "val_V_se", "val_V_ppv")]

    def scored_cells(row: dict) -> list[str]:  # rows of _over_partitions
        return [_fmt(row["mean_S_V_f1"]), str(row["higher_on"]),
                *(_fmt(row.get(key)) for key in ("macro_f1", "S_se", "S_ppv", "V_se", "V_ppv"))]

    def window_cells(row: dict) -> list[str]:
        return [f"{row[w]['sensitivity']:.4f} / {row[w]['ppv']:.4f}" for w in ("150ms", "75ms")]

    # Parts that compare candidates: title, columns, the cells of one row, the chosen row's tag.
    comparisons = {
        "models": ("beat model kinds on the DS1 validation records (seed-0 split)",
                   ("model", *val_columns, "train s"),
                   lambda row: [*val_cells(row), f"{row['train_s']:.0f}"], " (default)"),
        "ecg200_selection": ("ECG200 set-ups, 5-fold CV on the TRAIN series",
                             ("set-up", "CV accuracy", "CV log-loss", "train s"),
                             lambda row: [_fmt(row["cv_accuracy"]), _fmt(row.get("cv_log_loss")),
                                          f"{row['train_s']:.0f}"], " (chosen)"),
        "tree_stopping": ("trees' early stopping of the default, DS1 CV (pooled)",
                          ("rule", "rounds per fold", "macro-F1", "S Se", "S +P", "V Se",
                           "V +P"),
                          lambda row: [" ".join(map(str, row["rounds"])),
                                       *(_fmt(row.get(key)) for key in ("macro_f1", "S_se", "S_ppv",
                                                                    "V_se", "V_ppv"))], ""),
        "partitions": ("the beat model's DS1 CV over partitions of the patients (pooled); "
                       "targets S Se / +P {S_se} / {S_ppv}, V {V_se} / {V_ppv}".format(**TARGETS),
                       ("partition", "macro-F1", "S Se", "S +P", "V Se", "V +P (EC57)",
                        "V +P (every call)"),
                       lambda row: [_fmt(row.get(key)) for key in ("macro_f1", "S_se", "S_ppv",
                                                               "V_se", "V_ppv",
                                                               "V_ppv_all_calls")], ""),
        "smoothing": ("post-processing variants on the partitions' out-of-fold probabilities "
                      "(means over partitions; score: mean of S-F1 and V-F1)",
                      ("variant", *scored_columns), scored_cells, ""),
        "seed_ensemble": ("the default as built from single trainings and their seed "
                          "ensemble, offline (means over partitions; score: mean of S-F1 and "
                          "V-F1; higher on: partitions above the single trainings' mean)",
                          ("training", *scored_columns), scored_cells, ""),
        "rpeaks": ("R-peak detection on the DS1 reference beats",
                   ("detector", "Se / +P (150 ms)", "Se / +P (75 ms)", "median offset ms",
                    "s/record"),
                   lambda row: [*window_cells(row), f"{row['median_offset_ms']:.1f}",
                                f"{row['seconds_per_record']:.2f}"], " (default)"),
        "archs": ("beat architectures on the DS1 validation records (seed-0 split)",
                  ("arch", *val_columns), val_cells, " (default)"),
    }
    for part, (title, columns, cells, chosen_tag) in comparisons.items():
        for key in (k for k in results if k == part or k.startswith(f"{part}_")):
            table = Table(title=f"{title} [{key}]")
            for column in columns:
                table.add_column(column)
            for name, row in results[key]["results"].items():
                chosen = chosen_tag if name == results[key].get("chosen") else ""
                table.add_row(name + chosen, *cells(row))
            console.print(table)
    corrections = results.get("rpeaks", {}).get("default_method_by_correction")
    if corrections:
        table = Table(title="default R-peak detector by peak correction (detect_r_peaks)")
        for column in ("correction", "Se / +P (150 ms)", "median offset from annotations ms"):
            table.add_column(column)
        for name, row in corrections.items():
            table.add_row(name, f"{row['150ms']['sensitivity']:.4f} / {row['150ms']['ppv']:.4f}",
                          f"{row['median_offset_ms']:.1f}")
        console.print(table)

FRESH_DEFAULT_SETS = ("72_77", "78_83", "84_89", "90_95", "96_101", "102_107")
"""The partition sets read with the default as it is (E36 built), each never read before."""


def plot_ecg200_resamples(entry: dict, path: Path) -> None:
    """Each set-up's test accuracy on every resample, its mean, the official split, and the
    published 30-resample means and the target."""
    from meddx.figures import new_figure, save_figure

    rows = list(resample_accuracies(entry["rows"]).items())
    figure = new_figure(10, 1.6 + 0.8 * len(rows))
    axes = figure.add_subplot()
    rng = np.random.default_rng(0)
    labels = []
    for y, (name, accuracy) in enumerate(rows):
        values = np.array(list(accuracy.values()))
        axes.scatter(values, y + rng.uniform(-0.15, 0.15, len(values)), s=14, alpha=0.5,
                     color="tab:blue", label="a resample" if y == 0 else None)
        axes.plot(values.mean(), y, "D", color="black", markersize=8,
                  label="mean" if y == 0 else None)
        if 0 in accuracy:
            axes.plot(accuracy[0], y, "o", mfc="none", mec="tab:red", markersize=11,
                      label="official split" if y == 0 else None)
        labels.append("\n".join([*textwrap.wrap(name, 36),
                                  f"mean {values.mean():.3f} over {len(values)}"]))
    for (label, value), colour in zip(RESAMPLE_ANCHORS.items(), ("tab:green", "tab:purple"),
                                      strict=True):
        axes.axvline(value, linestyle=":", color=colour, label=f"{label} {value} (published)")
    axes.axvline(TARGETS["ecg200_accuracy"], linestyle="--", color="grey",
                 label=f"target {TARGETS['ecg200_accuracy']}")
    axes.set_yticks(range(len(rows)), labels, fontsize=8)
    axes.set_ylim(-0.6, len(rows) - 0.4)
    axes.invert_yaxis()
    axes.set_xlabel("test accuracy")
    axes.legend(fontsize=7, bbox_to_anchor=(1.01, 1), loc="upper left")
    axes.set_title("ECG200 over resamples of TRAIN + TEST (100 train / 100 test series each)")
    console.print(f"plot: {save_figure(figure, path)}")


def fresh_partitions(results: dict) -> dict[str, list[dict]]:
    """The default's figures on each partition of :data:`FRESH_DEFAULT_SETS` that is stored, by
    set (part second_opinion's row for the default as built)."""
    built = built_row_name()
    entries = {seeds: results.get(f"second_opinion_default_seeds_{seeds}", {}).get("results", {})
               for seeds in FRESH_DEFAULT_SETS}
    return {seeds: rows[built]["partitions"] for seeds, rows in entries.items() if built in rows}


FRESH_FIGURES = {"S_se": "S_se", "S_ppv": "S_ppv", "V_se": "V_se", "V_ppv": "V_ppv",
                 "V_ppv_all_calls": "V_ppv", "macro_f1": None, "accuracy": None}
"""The fresh partitions' figures summarised, and the target each is held to (None: none)."""


def fresh_partitions_summary(results: dict) -> dict:
    """Mean, range and partitions below the target of the default's figures over every stored
    fresh partition (:func:`fresh_partitions`)."""
    parts = [part for by_set in fresh_partitions(results).values() for part in by_set]
    if not parts:
        return {}
    summary = {"partitions": len(parts)}
    for key, target in FRESH_FIGURES.items():
        values = np.array([part[key] for part in parts])
        summary[key] = {"mean": float(values.mean()), "min": float(values.min()),
                        "max": float(values.max()),
                        "below_target": None if target is None
                        else int(np.sum(values < TARGETS[target]))}
    return summary


def plot_partitions(results: dict, path: Path) -> None:
    """S and V sensitivity against +P on each fresh partition of DS1 read with the default as
    built, with the targets."""
    from meddx.figures import new_figure, save_figure

    figure = new_figure(10, 4.5)
    panels = {"S": figure.add_subplot(1, 2, 1), "V": figure.add_subplot(1, 2, 2)}
    for seeds, parts in fresh_partitions(results).items():
        for cls, axes in panels.items():
            axes.scatter([p[f"{cls}_ppv"] for p in parts], [p[f"{cls}_se"] for p in parts],
                         label=f"seeds {seeds.replace('_', '-')}", s=28, alpha=0.8)
    for cls, axes in panels.items():
        axes.axhline(TARGETS[f"{cls}_se"], linestyle="--", color="grey")
        axes.axvline(TARGETS[f"{cls}_ppv"], linestyle="--", color="grey")
        axes.set_xlabel(f"{cls} +P (as EC57 scores it)")
        axes.set_ylabel(f"{cls} Se")
        axes.set_title(f"{cls} beats, one point per partition (dashed: targets)")
    panels["S"].legend(fontsize=8, loc="center left")
    figure.suptitle("MIT-BIH DS1, the default over fresh partitions of the 22 patients")
    console.print(f"plot: {save_figure(figure, path)}")


def write_plots(results: dict, folder: Path) -> None:
    """The plots of the stored results that have them, beside the JSON."""
    if results.get("ecg200_resamples", {}).get("rows"):
        plot_ecg200_resamples(results["ecg200_resamples"], folder / "ecg200_resamples.png")
    if fresh_partitions(results):
        plot_partitions(results, folder / "ecg_ds1_partitions.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="*", default=["ecg200", "ecg5000", "mitdb"],
                        help="parts to run (none: only the table and plots of stored results)",
                        choices=["ecg200", "ecg200_selection", "ecg200_resamples", "ecg5000",
                                 "mitdb", "archs", "models", "tree_stopping", "rpeaks",
                                 "partitions", "smoothing", "s_majority", "second_opinion",
                                 "seed_ensemble"])
    parser.add_argument("--models", nargs="+", default=["lightgbm", "cnn", "cnn+lightgbm"],
                        help="beat model kinds compared on validation (part 'models')")
    parser.add_argument("--beat-model", default="cnn+lightgbm",
                        choices=["lightgbm", "cnn", "cnn+lightgbm"],
                        help="beat model of part mitdb, stored as mitdb_<model><tag>")
    parser.add_argument("--oof-probs", type=Path,
                        help="parts mitdb and partitions: also save the out-of-fold "
                             "probabilities (.npz; partitions: unsmoothed, per member, one "
                             "file per partition, which parts smoothing and second_opinion read)")
    parser.add_argument("--neighbours", nargs="+", type=int,
                        default=[40, 60, 80, 120, 160, 240, 360],
                        help="part smoothing: smoothing neighbours compared")
    parser.add_argument("--tree-weights", nargs="+", type=float, default=[1 / 3, 2 / 3],
                        help="part smoothing: the trees' share of the member average")
    parser.add_argument("--s-scales", nargs="+", type=float, default=[1.5, 2, 3],
                        help="part smoothing: S probability multipliers after smoothing")
    parser.add_argument("--s-over-n", nargs="+", type=float, default=[1.0, 2.0],
                        help="parts smoothing and second_opinion: S-over-N odds of the "
                             "decision compared (1: the arg-max)")
    parser.add_argument("--max-irregularity", nargs="+", type=float, default=[0.15, 0.3],
                        help="part smoothing: rhythm irregularity limits of the S-over-N odds "
                             "compared (the default's, and no limit, always)")
    parser.add_argument("--v-margins", nargs="+", type=float, default=[],
                        help="part smoothing: margins a V call needs over the beat's second "
                             "class (E25, not adopted; 1: the arg-max)")
    parser.add_argument("--irregular-v-margins", nargs="+", type=float, default=[],
                        help="part smoothing: the same margins on the beats in irregular "
                             "rhythm only (E31)")
    parser.add_argument("--irregular-s-margins", nargs="+", type=float,
                        help="part second_opinion: margins an S call in irregular rhythm needs "
                             "over p(N) (default: the built one, 3)")
    parser.add_argument("--set-aside", nargs="+", default=[],
                        help="part second_opinion: records whose missed S beats and S beats "
                             "called V are accounted for (S Se without them, V +P without "
                             "their S beats called V), for the default as built")
    parser.add_argument("--ensemble-with", nargs="+", type=Path, default=[],
                        help="part seed_ensemble: the --oof-probs names of the same partitions "
                             "trained with other seeds, averaged with --oof-probs (E42)")
    parser.add_argument("--min-gaps", nargs="+", type=float,
                        help="part second_opinion: the gate's min_gap values compared "
                             "(default: the default's)")
    parser.add_argument("--tag", default="",
                        help="suffix of the parts' stored keys (variants)")
    parser.add_argument("--threads", type=int, default=1, help="torch / LightGBM threads")
    parser.add_argument("--archs", nargs="+", default=["resnet", "inception", "gru",
                                                      "transformer"])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--partitions", type=int, default=6,
                        help="part partitions: how many partitions (0: the stratified folds, "
                             "1, 2, ...: random folds with that seed)")
    parser.add_argument("--first-partition", type=int, default=0,
                        help="part partitions: the number of the first one (default 0)")
    parser.add_argument("--epochs", type=int, default=6, help="beat model epochs")
    parser.add_argument("--seed-offset", type=int, default=0,
                        help="parts mitdb, partitions and s_majority: added to each fold's "
                             "training seed (the fold's number), to see how much the figures "
                             "owe to one training")
    parser.add_argument("--series-epochs", type=int, default=150,
                        help="ECG200 epochs (part ecg200_selection compares 150 and 300)")
    parser.add_argument("--series-ensemble", type=int, default=5,
                        help="ECG200 networks (seeds) averaged, as InceptionTime's 5")
    parser.add_argument("--resamples", type=int, default=30,
                        help="part ecg200_resamples: how many resamples (0: the official split)")
    parser.add_argument("--first-resample", type=int, default=0,
                        help="part ecg200_resamples: the number of the first one")
    parser.add_argument("--ecg5000-epochs", type=int, default=25)
    parser.add_argument("--beat-arch", default="inception")
    parser.add_argument("--series-arch", default="inception")
    parser.add_argument("--series-model", default="cnn", choices=["cnn", "minirocket"],
                        help="series model of parts ecg200 and ecg5000; stored as "
                             "<part>_<model> unless cnn")
    parser.add_argument("--series-candidates", nargs="+",
                        help="parts ecg200_selection (default: all; rows not run keep their "
                             "stored figures) and ecg200_resamples (default: the recipe's "
                             "default and minirocket): the set-ups to run")
    parser.add_argument("--beat-plan", type=json.loads, default={},
                        help="JSON plan overrides for the beat model")
    parser.add_argument("--data-dir", default=os.environ.get("MEDDX_DATA_DIR"))
    parser.add_argument("--out", type=Path, default=RESULTS / "ecg.json")
    args = parser.parse_args()
    if args.oof_probs is not None and {"mitdb", "partitions"} & set(args.parts):
        # Parts that write it find its folder there, not after their runs.
        args.oof_probs.parent.mkdir(parents=True, exist_ok=True)

    import torch

    torch.set_num_threads(args.threads)
    runners = {"ecg200": run_ecg200, "ecg200_selection": run_ecg200_selection,
               "ecg200_resamples": run_ecg200_resamples,
               "ecg5000": run_ecg5000, "mitdb": run_mitdb,
               "archs": run_archs, "models": run_models, "tree_stopping": run_tree_stopping,
               "rpeaks": run_rpeaks, "partitions": run_partitions, "smoothing": run_smoothing,
               "s_majority": run_s_majority, "second_opinion": run_second_opinion,
               "seed_ensemble": run_seed_ensemble}
    for part in args.parts:
        console.print(f"[bold]{part}[/]")
        start = time.perf_counter()
        key = (f"mitdb_{args.beat_model}" if part == "mitdb"
               else f"{part}_{args.series_model}" if part in ("ecg200", "ecg5000")
               and args.series_model != "cnn" else part) + args.tag
        _store(args.out, key, {**runners[part](args),
                               "wall_s": round(time.perf_counter() - start, 1)})
    results = (_store(args.out, "machine", {"cpu_count": os.cpu_count(),
                                            "torch_threads": args.threads,
                                            "python": sys.version.split()[0]})
               if args.parts else json.loads(args.out.read_text()))
    print_table(results)
    write_plots(results, args.out.parent)
    console.print(f"results: {args.out}")


if __name__ == "__main__":
    main()
