"""Synthetic premature beats: training records edited so that some of their N beats come early.

Why: S beats are told from N beats mostly by timing (an atrial premature beat is conducted like a
sinus beat), and in MIT-BIH DS1 two patients hold most of them, 209 (383 of 944, in runs of
supraventricular tachycardia) and 207 (107, one run). A model trained without those two has
seen almost no run of S beats and calls them N (S Se 0.40-0.42 on the DS1 partitions that hold
both out, E32 in docs/ecg-experiments.md). Every training patient's own sinus beats can show
what an early beat of theirs looks like: here some N beats of each training record are moved
earlier, alone or as a run, by cutting a stretch of the diastole before each (so the beat's P
wave lands on the preceding T wave, as an early atrial beat's does), and the beat after the last
one comes after a longer pause (the diastole before it stretched). The edited beats are labelled
S (WFDB symbol ``A``) and the edited record is cut into beats like any other, so windows, RR
features and morphology are those of a real record; only the edited beats are added to the
training beats, under the record's name with :data:`SYNTHETIC_SUFFIX` (never a validation or
test record).

Off by default (plan option ``synthetic_premature``): on 6 DS1 partitions it raised mean S Se
0.642 -> 0.780 (0.40 -> 0.77 where 207 and 209 were both held out) but called more N beats S in
atrial fibrillation (records 201, 203), and scored lower on 2 of the 6 (E33).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from meddx.data.ecg import (
    AAMI_CLASSES,
    IRREGULARITY_FEATURES,
    BeatSplit,
    EcgRecord,
    beats_of,
    rr_irregularity_features,
)
from meddx.errors import ConfigError
from meddx.learn.tasks.ecg import IRREGULARITY_FEATURE

SYNTHETIC_SUFFIX = "+premature"
"""Suffix of an edited record's name (its beats' patient key)."""

PREMATURE_OPTIONS: dict[str, Any] = {
    "share": 1.0, "factor": [0.45, 0.8], "run_share": 0.5, "max_run": 20}
"""``share``: synthetic S beats per real S beat of the training records, spread evenly over the
records; ``factor``: range of the edited beats' RR interval as a share of the one it replaces;
``run_share``: share of edits that make a run (2 to ``max_run`` beats) rather than one beat."""

SYMBOL = "A"
"""WFDB symbol of an edited beat (atrial premature beat, AAMI S)."""

MARGIN_BEATS = 25
"""Beats at each end of a record left alone (its RR statistics need neighbours)."""

CROSSFADE_S = 0.02
"""Length of the blend across a cut (a step in the signal would ring in the filters)."""


def premature_options(option: dict[str, Any] | None) -> dict[str, Any] | None:
    """The plan's ``synthetic_premature`` option merged over :data:`PREMATURE_OPTIONS`, checked
    (None: off)."""
    if option is None:
        return None
    if not isinstance(option, dict) or set(option) - set(PREMATURE_OPTIONS):
        raise ConfigError(f"synthetic_premature must be null or a dict with keys among "
                          f"{sorted(PREMATURE_OPTIONS)}, got {option!r}")
    merged = {**PREMATURE_OPTIONS, **option}
    share, factor = merged["share"], merged["factor"]
    run_share, max_run = merged["run_share"], merged["max_run"]
    if not (isinstance(share, int | float) and share > 0):
        raise ConfigError(f"synthetic_premature.share must be a number > 0, got {share!r}")
    if not (isinstance(factor, list | tuple) and len(factor) == 2
            and all(isinstance(v, int | float) for v in factor)
            and 0.2 <= factor[0] <= factor[1] < 1):
        raise ConfigError(f"synthetic_premature.factor must be [low, high] with "
                          f"0.2 <= low <= high < 1, got {factor!r}")
    if not (isinstance(run_share, int | float) and 0 <= run_share <= 1):
        raise ConfigError(f"synthetic_premature.run_share must be in [0, 1], got {run_share!r}")
    if not (isinstance(max_run, int) and max_run >= 2):
        raise ConfigError(f"synthetic_premature.max_run must be a whole number >= 2, got "
                          f"{max_run!r}")
    return {**merged, "factor": [float(factor[0]), float(factor[1])]}


def _retime(signal: np.ndarray, start: int, end: int, length: int) -> np.ndarray:
    """Rows ``start:end`` of a ``(T, C)`` signal resampled (linearly) to ``length`` rows."""
    old = np.linspace(0.0, 1.0, end - start)
    new = np.linspace(0.0, 1.0, length)
    return np.stack([np.interp(new, old, signal[start:end, c]) for c in range(signal.shape[1])],
                    axis=1)


def premature_record(record: EcgRecord, events: int, rng: np.random.Generator,
                     options: dict[str, Any], max_irregularity: float
                     ) -> tuple[EcgRecord, np.ndarray]:
    """A copy of an annotated record with ``events`` edits, each making one N beat or a run of
    them premature (see the module's docstring), in regular rhythm only.

    Args:
        record: An annotated record.
        events: Edits wanted (fewer when the record has too few candidates).
        rng: Randomness (start, run length, prematurity, pause).
        options: :func:`premature_options`.
        max_irregularity: Beats whose ``rr_irregularity_long`` is at or above this are not
            edited (atrial fibrillation: an early beat there is not an ectopic one).

    Returns:
        The edited record (named with :data:`SYNTHETIC_SUFFIX`) and the indices of its edited
        beats; the record itself and none when nothing was edited.
    """
    samples = np.asarray(record.beat_samples, np.int64)
    labels = record.aami_labels()
    n = len(samples)
    if events <= 0 or n < 2 * MARGIN_BEATS + 3:
        return record, np.zeros(0, np.int64)
    fs = record.fs
    irregularity = rr_irregularity_features(samples / fs)[
        :, IRREGULARITY_FEATURES.index(IRREGULARITY_FEATURE)]
    usable = (labels == AAMI_CLASSES.index("N")) & (irregularity < max_irregularity)
    low, high = options["factor"]
    fade = max(1, int(round(CROSSFADE_S * fs)))
    edits: list[tuple[int, int, int]] = []  # (start, end, new length), in signal order
    edited: list[int] = []
    last = MARGIN_BEATS
    for first in np.sort(rng.choice(np.arange(MARGIN_BEATS, n - MARGIN_BEATS - 1),
                                    size=min(events, n - 2 * MARGIN_BEATS - 1), replace=False)):
        run = (int(rng.integers(2, options["max_run"] + 1))
               if rng.random() < options["run_share"] else 1)
        run = min(run, n - MARGIN_BEATS - 1 - first)
        # The run, the beat before it and the beat after it: N beats in regular rhythm.
        if first <= last + 2 or not usable[first - 1:first + run + 1].all():
            continue
        factor = rng.uniform(low, high)
        cuts, removed = [], 0
        for beat in range(first, first + run):
            before, at = samples[beat - 1], samples[beat]
            cut = int(round((1 - factor) * (at - before)))
            # Cut just after the T wave (0.6 RR); keep the last beat's QRS and this one's.
            lo = before + int(0.1 * fs)
            hi = at - int(0.08 * fs) - cut - fade
            if hi < lo:  # too short an interval to cut this much: no edit here
                cuts = []
                break
            start = int(np.clip(before + 0.6 * (at - before) - cut / 2, lo, hi))
            cuts.append((start, start + cut + fade, fade))
            removed += cut
        if not cuts:
            continue
        # The pause after: the diastole before the next beat stretched by part of the time
        # taken out (a sinus node reset, not a full compensatory pause).
        before, at = samples[first + run - 1], samples[first + run]
        start, end = before + int(0.35 * (at - before)), at - int(0.15 * (at - before))
        pause = int(round(rng.uniform(0.3, 1.0) * removed / run))
        edits += [*cuts, (start, end, end - start + pause)]
        edited += range(first, first + run)
        last = first + run
    return _apply_edits(record, edits, edited)


def _apply_edits(record: EcgRecord, edits: list[tuple[int, int, int]], edited: list[int]
                 ) -> tuple[EcgRecord, np.ndarray]:
    """The record with each ``(start, end, length)`` stretch of samples replaced: a cut
    (``length`` shorter) by its two ends blended over ``length`` samples, a pause by its
    resampling to ``length`` samples; beats after it move with it."""
    signal = np.asarray(record.signal, np.float64)
    samples = np.asarray(record.beat_samples, np.int64)
    pieces, shift, position = [], np.zeros(len(samples), np.int64), 0
    for start, end, length in edits:
        pieces.append(signal[position:start])
        if length < end - start:
            weight = np.linspace(0.0, 1.0, length)[:, None]
            pieces.append(signal[start:start + length] * (1 - weight)
                          + signal[end - length:end] * weight)
        else:
            pieces.append(_retime(signal, start, end, length))
        shift[samples >= end] += length - (end - start)
        position = end
    pieces.append(signal[position:])
    marked = set(edited)
    edited_record = replace(
        record, name=record.name + SYNTHETIC_SUFFIX,
        signal=np.concatenate(pieces).astype(np.float32), beat_samples=samples + shift,
        beat_symbols=[SYMBOL if i in marked else s
                      for i, s in enumerate(record.beat_symbols)])
    return edited_record, np.asarray(edited, np.int64)


def synthetic_premature_beats(split: BeatSplit, options: dict[str, Any], seed: int,
                              max_irregularity: float) -> BeatSplit | None:
    """Synthetic S beats made from the N beats of a training split's records (None when none
    could be made), cut with the split's beat options; join them to the split with
    :meth:`BeatSplit.concat`. Edits are drawn for ``share`` times the split's S beats; those
    that would leave regular rhythm or overlap another are skipped, so fewer are made (all 22
    DS1 records, default options: 578 for 944 S beats, 0.61, in 19 of the records)."""
    s_index = AAMI_CLASSES.index("S")
    records = [record for _, record in sorted(split.record_data.items()) if record.annotated]
    if not records:
        return None
    run_share = options["run_share"]
    mean_run = (1 - run_share) + run_share * (2 + options["max_run"]) / 2
    per_record = options["share"] * int((np.asarray(split.labels) == s_index).sum()) / len(records)
    rng = np.random.default_rng([seed, 20261123])
    made, keep = [], set()
    for record in records:
        edited_record, edited = premature_record(record, int(round(per_record / mean_run)), rng,
                                                 options, max_irregularity)
        if len(edited):
            made.append(edited_record)
            keep |= {f"{edited_record.name}:{s}" for s in edited_record.beat_samples[edited]}
    return beats_of(made, split.config, keep=keep) if made else None
