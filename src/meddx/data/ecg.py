"""ECG data: WFDB records, UCR series and CSV signals, turned into what the ECG recipes train on.

Two dataset types, both with the interface every task recipe expects (``split(name, seed)``,
``split_sizes(seed)``, ``class_names``, ``provenance``, ``name``):

- :class:`BeatDataset`: AAMI beat classes (N, S, V, F, Q) from whole annotated records (MIT-BIH
  and any folder of WFDB records). Every beat keeps the id of its record, and every split is
  **patient-wise** (records, never beats, are assigned to train / val / test), so that validation
  measures what matters clinically: performance on patients the model has never seen.
- :class:`SeriesDataset`: fixed-length series (UCR format: label, then values), e.g. ECG200.

Signal path of a beat (:class:`BeatConfig`): choose a lead (MLII when named) -> move each beat
mark, annotated or detected, as the R-peak detector moves its own (``align_peaks``), so windows are
cut the same way with or without annotations -> band-pass
(baseline wander below 0.5 Hz, power line and muscle noise above 40 Hz) and a notch at the mains
frequency -> resample to the model's rate -> scale by the record's median beat amplitude (gain
differs between patients and recorders) -> a window around each R peak, plus the beat minus the
record's median beat (the patient's own "normal" morphology) -> RR-interval features divided by the
record's median RR (an S beat is premature *for this patient*; absolute RR says little across
patients). With ``feature_set="full"`` (the tree model's input) a beat also gets RR averages over
its neighbours and over +-150 s, morphology against the record's median beat, the same standardised
within the record, and a down-sampled shape (:func:`feature_names`); ``feature_set="two_lead"``
adds the same morphology on the record's second lead and the irregularity of the rhythm around
the beat.

Bad records (missing ``.dat``/``.hea``, unreadable header, too short or flat signal, NaNs, unknown
sampling rate, unknown annotation symbols) raise :class:`~meddx.errors.InputFileError` naming the
record; folder readers skip such a record, keep the others and list the problems in
``dataset.problems`` and the provenance.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from scipy import signal as sps

from meddx.data import catalog
from meddx.data.datasets import ClassificationDataset, SplitData
from meddx.data.download import sha256_file
from meddx.errors import ConfigError, DataError, InputFileError, MeddxError

log = logging.getLogger(__name__)

__all__ = [
    "AAMI_CLASSES",
    "AAMI_EXCUSED_CALLS",
    "AAMI_MAP",
    "ANCHOR_BEATS",
    "BeatConfig",
    "BeatDataset",
    "BeatSplit",
    "EcgRecord",
    "SeriesDataset",
    "align_beat_marks",
    "anchor_beats",
    "correct_r_peaks",
    "detect_r_peaks",
    "extended_rr_features",
    "extract_beats",
    "feature_names",
    "filter_ecg",
    "is_ucr_path",
    "is_wfdb_path",
    "load_series_dataset",
    "load_wfdb_dataset",
    "morphology_features",
    "patient_split",
    "read_csv_signal",
    "read_signal",
    "read_ucr",
    "read_wfdb_record",
    "resample_signal",
    "rr_features",
]

AAMI_CLASSES: tuple[str, ...] = ("N", "S", "V", "F", "Q")
"""AAMI EC57 beat classes: normal/bundle-branch, supraventricular ectopic, ventricular ectopic,
fusion, unknown/paced."""

AAMI_EXCUSED_CALLS: dict[str, tuple[str, ...]] = {"V": ("F", "Q"), "S": ("Q",)}
"""Calls EC57's gross statistics count neither for nor against a class's +P: V calls on fusion
or unclassifiable beats, S calls on unclassifiable beats (PhysioNet's ``bxb``, the standard's
reference comparator: VEB FP = Nv + Sv, SVEB FP = Ns + Vs + Fs; Mondejar-Guerra et al. 2019's
published code excuses F beats called V too). Passed to the metrics as ``excused_calls`` for
beat tasks, so per-class +P is the figure the inter-patient papers compare."""

# MIT-BIH beat symbols -> AAMI class (de Chazal et al. 2004, Table I). Symbols beyond MIT-BIH's
# own (B, n, r, ?) occur in other PhysioNet databases (INCART, ...); they map as AAMI EC57 says.
AAMI_MAP: dict[str, str] = {
    **dict.fromkeys(("N", "L", "R", "e", "j", "B", "n"), "N"),
    **dict.fromkeys(("A", "a", "J", "S"), "S"),
    **dict.fromkeys(("V", "E", "r"), "V"),
    "F": "F",
    **dict.fromkeys(("/", "f", "Q", "?"), "Q"),
}

# WFDB annotation codes that are not beats (rhythm, noise, waves, comments, flutter waves).
NON_BEAT_SYMBOLS = frozenset(
    ["+", "~", "|", "s", "T", "*", "D", '"', "=", "p", "^", "t", "u", "!", "[", "]", "x", "(",
     ")", "@", " ", "`", "'"])

MIN_DURATION_S = 10.0
"""Records shorter than this cannot give stable per-record RR and amplitude statistics."""

RR_FEATURES = ("pre_rr", "post_rr", "local_rr", "pre_over_local", "post_over_pre")
"""RR features of a beat; the first three are divided by the record's median RR."""

SPLIT_CHOICES = ("train", "val", "test", "all")


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


@dataclass
class EcgRecord:
    """One ECG recording.

    Attributes:
        name: Record id (the patient key of patient-wise splits), e.g. ``"101"``.
        source: Where it was read from (path without suffix for WFDB).
        signal: ``(T, C)`` float32 samples in physical units (mV for MIT-BIH).
        fs: Sampling rate in Hz.
        leads: Lead names, one per column.
        beat_samples: Sample index of each reference beat, or None without annotations.
        beat_symbols: WFDB symbol of each reference beat (parallel to ``beat_samples``).
    """

    name: str
    source: str
    signal: np.ndarray
    fs: float
    leads: list[str]
    beat_samples: np.ndarray | None = None
    beat_symbols: list[str] | None = None
    # What its beats' cuts derive from the signal alone (filtered traces, aligned marks), kept
    # because a training cuts each record again for each model's window options. Not copied
    # by dataclasses.replace: a record with another signal or other marks starts empty.
    _derived: dict[tuple, np.ndarray] = field(default_factory=dict, init=False, repr=False,
                                              compare=False)

    def derived(self, key: tuple, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """``compute()``, computed once per ``key`` (which must name everything it reads
        besides this record's signal); callers must not change the array in place."""
        if key not in self._derived:
            self._derived[key] = compute()
        return self._derived[key]

    @property
    def duration_s(self) -> float:
        return self.signal.shape[0] / self.fs

    @property
    def annotated(self) -> bool:
        return self.beat_samples is not None

    def aami_labels(self) -> np.ndarray:
        """AAMI class index of every reference beat."""
        if self.beat_symbols is None:
            raise DataError(f"record {self.source}: has no beat annotations")
        return np.array([AAMI_CLASSES.index(AAMI_MAP[s]) for s in self.beat_symbols], np.int64)


def _check_signal(values: np.ndarray, fs: float | None, where: str, leads: Sequence[str]) -> None:
    """Reject signals no beat detector or classifier can work with; name what is wrong."""
    if fs is None or not np.isfinite(fs) or fs <= 0:
        raise InputFileError(where, f"unknown sampling rate ({fs!r}); give it in Hz "
                             "(WFDB header field, or --fs for CSV signals)")
    if values.ndim != 2 or values.shape[0] == 0 or values.shape[1] == 0:
        raise InputFileError(where, f"no signal samples (shape {values.shape})")
    bad = np.isnan(values)
    if bad.any():
        column = int(np.flatnonzero(bad.any(axis=0))[0])
        first = int(np.flatnonzero(bad[:, column])[0])
        raise InputFileError(where, f"{int(bad.sum())} NaN sample(s) (first in lead "
                             f"{leads[column]!r} at sample {first}, {first / fs:.2f} s); "
                             "gaps must be filled or cut before analysis")
    if not np.isfinite(values).all():
        raise InputFileError(where, "infinite sample values")
    duration = values.shape[0] / fs
    if duration < MIN_DURATION_S:
        raise InputFileError(where, f"too short: {values.shape[0]} samples = {duration:.1f} s "
                             f"at {fs:g} Hz; at least {MIN_DURATION_S:g} s are needed")
    spread = values.std(axis=0)
    if (spread < 1e-6).all():
        raise InputFileError(where, "flat signal (every lead is constant): electrodes off or "
                             "an empty recording")


def _wfdb_stem(path: str | os.PathLike[str]) -> Path:
    path = Path(path).expanduser()
    if path.suffix.lower() in (".hea", ".dat", ".atr", ".csv") or path.suffix in (".qrs",):
        return path.with_suffix("")
    return path


def read_wfdb_record(path: str | os.PathLike[str], annotation: str | None = "atr",
                     require_annotations: bool = False) -> EcgRecord:
    """Read a WFDB record (``.hea`` + signal files, optional annotation file).

    Args:
        path: Record path with or without suffix (``data/101``, ``data/101.hea``).
        annotation: Annotation file extension to read when present (None: ignore annotations).
        require_annotations: Raise when the annotation file is missing.

    Raises:
        InputFileError: Missing ``.hea``/``.dat``/annotations, unreadable header or signal,
            unknown sampling rate, too short or flat signal, NaNs, unknown annotation symbols.
    """
    import wfdb

    stem = _wfdb_stem(path)
    name = stem.name
    header_path = stem.with_suffix(".hea")
    if not header_path.is_file():
        raise InputFileError(header_path, f"record {name}: header file (.hea) not found")
    try:
        header = wfdb.rdheader(str(stem))
    except Exception as error:  # wfdb raises many types for bad headers
        raise InputFileError(header_path,
                             f"record {name}: unreadable WFDB header ({error})") from error
    if header.fs is None or not header.fs or header.fs <= 0:
        raise InputFileError(header_path, f"record {name}: unknown sampling rate "
                             f"({header.fs!r}) in the header")
    for file_name in sorted(set(header.file_name or [])):
        if not (stem.parent / file_name).is_file():
            raise InputFileError(stem.parent / file_name,
                                 f"record {name}: signal file not found (named in {name}.hea)")
    if not header.n_sig:
        raise InputFileError(header_path, f"record {name}: the header lists no signals")
    try:
        record = wfdb.rdrecord(str(stem), physical=True)
    except Exception as error:
        raise InputFileError(stem, f"record {name}: unreadable signal ({error})") from error
    values = np.asarray(record.p_signal, dtype=np.float64)
    leads = [str(s) for s in (record.sig_name or [f"lead{i}" for i in range(values.shape[1])])]
    _check_signal(values, float(record.fs), f"{stem} (record {name})", leads)

    samples = symbols = None
    annotation_path = stem.with_suffix(f".{annotation}") if annotation else None
    if annotation_path is not None and annotation_path.is_file():
        try:
            ann = wfdb.rdann(str(stem), annotation)
        except Exception as error:
            raise InputFileError(annotation_path,
                                 f"record {name}: unreadable annotations ({error})") from error
        all_symbols = [str(s) for s in ann.symbol]
        unknown = sorted({s for s in all_symbols if s not in AAMI_MAP and s not in
                          NON_BEAT_SYMBOLS})
        if unknown:
            raise InputFileError(annotation_path, f"record {name}: unknown annotation symbol(s) "
                                 f"{unknown}; known beat symbols: {''.join(sorted(AAMI_MAP))}")
        keep = np.array([s in AAMI_MAP for s in all_symbols], bool)
        samples = np.asarray(ann.sample, np.int64)[keep]
        symbols = [s for s, k in zip(all_symbols, keep, strict=True) if k]
        inside = (samples >= 0) & (samples < values.shape[0])
        if not inside.all():
            raise InputFileError(annotation_path, f"record {name}: {int((~inside).sum())} beat "
                                 "annotation(s) lie outside the signal")
        if len(samples) < 3:
            raise InputFileError(annotation_path,
                                 f"record {name}: only {len(samples)} annotated beat(s)")
    elif require_annotations:
        raise InputFileError(stem.with_suffix(f".{annotation}"),
                             f"record {name}: annotation file not found")
    return EcgRecord(name=name, source=str(stem), signal=values.astype(np.float32),
                     fs=float(record.fs), leads=leads, beat_samples=samples,
                     beat_symbols=symbols)


def read_csv_signal(path: str | os.PathLike[str], fs: float | None) -> EcgRecord:
    """Read a CSV signal: one column per lead, one row per sample, optional header row.

    Args:
        path: CSV file (comma, semicolon or tab separated).
        fs: Sampling rate in Hz (a CSV file does not say it).

    Raises:
        InputFileError: Missing file, unknown sampling rate, non-numeric cells, NaNs, too short
            or flat signal.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputFileError(path, "file not found")
    if fs is None:
        raise InputFileError(path, "unknown sampling rate: a CSV signal needs its rate in Hz "
                             "(--fs)")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise InputFileError(path, f"not a readable text file ({error})") from error
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise InputFileError(path, "empty file")
    dialect = csv.Sniffer().sniff(lines[0], delimiters=",;\t") if any(
        d in lines[0] for d in ",;\t") else csv.excel
    rows = list(csv.reader(lines, dialect))
    leads = [f"lead{i}" for i in range(len(rows[0]))]
    if not _all_numeric(rows[0]):
        leads = [cell.strip() or f"lead{i}" for i, cell in enumerate(rows[0])]
        rows = rows[1:]
    values = np.empty((len(rows), len(leads)))
    for index, row in enumerate(rows):
        if len(row) != len(leads):
            raise InputFileError(path, f"row {index + 1 + (leads[0] != 'lead0')}: {len(row)} "
                                 f"values, expected {len(leads)} (one per lead)")
        try:
            values[index] = [float(cell) if cell.strip() else math.nan for cell in row]
        except ValueError as error:
            raise InputFileError(path, f"row {index + 1}: non-numeric value ({error})") from error
    _check_signal(values, float(fs), str(path), leads)
    # A time column (monotonic, step 1/fs) is not a lead.
    if values.shape[1] > 1 and leads[0].lower() in ("time", "t", "time_s", "seconds", "sample"):
        values, leads = values[:, 1:], leads[1:]
    return EcgRecord(name=path.stem, source=str(path), signal=values.astype(np.float32),
                     fs=float(fs), leads=leads)


def _all_numeric(cells: Sequence[str]) -> bool:
    try:
        [float(c) for c in cells]
    except ValueError:
        return False
    return True


def read_signal(path: str | os.PathLike[str], fs: float | None = None) -> EcgRecord:
    """A WFDB record (path with or without suffix) or a CSV signal (needs ``fs``)."""
    path = Path(path).expanduser()
    if path.suffix.lower() == ".csv":
        return read_csv_signal(path, fs)
    stem = _wfdb_stem(path)
    if stem.with_suffix(".hea").is_file():
        return read_wfdb_record(stem)
    if path.is_file():
        raise InputFileError(path, "not a WFDB record (no .hea header beside it) or a .csv "
                             "signal")
    raise InputFileError(stem.with_suffix(".hea"), f"record {stem.name}: header file (.hea) not "
                         "found")


# --------------------------------------------------------------------------------------------
# Signal processing
# --------------------------------------------------------------------------------------------


def filter_ecg(values: np.ndarray, fs: float, highpass_hz: float = 0.5, lowpass_hz: float = 40.0,
               mains_hz: float | None = 60.0) -> np.ndarray:
    """Remove baseline wander and power-line interference (zero-phase, along axis 0).

    Args:
        values: ``(T,)`` or ``(T, C)`` samples.
        fs: Sampling rate in Hz.
        highpass_hz: Butterworth high-pass cut-off (baseline wander, respiration).
        lowpass_hz: Butterworth low-pass cut-off (muscle noise); ignored above 0.45 fs.
        mains_hz: Power-line frequency to notch out (50 in Europe, 60 in the Americas), None: off.
    """
    values = np.asarray(values, dtype=np.float64)
    nyquist = fs / 2
    if lowpass_hz and lowpass_hz < 0.9 * nyquist:
        sos = sps.butter(2, [highpass_hz, lowpass_hz], btype="bandpass", fs=fs, output="sos")
    else:
        sos = sps.butter(2, highpass_hz, btype="highpass", fs=fs, output="sos")
    out = sps.sosfiltfilt(sos, values, axis=0)
    if mains_hz and mains_hz < 0.95 * nyquist:
        b, a = sps.iirnotch(mains_hz, Q=30.0, fs=fs)
        out = sps.filtfilt(b, a, out, axis=0)
    return out


def resample_signal(values: np.ndarray, fs: float, target_fs: float) -> np.ndarray:
    """Resample along axis 0 from ``fs`` to ``target_fs`` (polyphase, anti-aliased)."""
    if math.isclose(fs, target_fs):
        return np.asarray(values)
    ratio = Fraction(target_fs / fs).limit_denominator(1000)
    return sps.resample_poly(values, ratio.numerator, ratio.denominator, axis=0)


R_PEAK_METHOD = "neurokit"
"""neurokit2's QRS detector used by default. On the 22 DS1 records (51,021 reference beats, EC57
150 ms match window, after the wfdb correction) it found 99.0% of the beats with 99.7% of its
detections right; Pan-Tompkins 98.4% / 96.8%, Kalidas 2017 95.7% / 98.7%, Rodrigues 2021 97.2% /
97.1%, Hamilton 2002 95.9% / 96.0% (``benchmarks/ecg.py --parts rpeaks``)."""


R_PEAK_CORRECTIONS = ("compare", "up", None)
"""How detected marks are moved (``wfdb.processing.correct_peaks``'s ``peak_dir``; None: kept)."""


def detect_r_peaks(values: np.ndarray, fs: float, source: str = "signal",
                   method: str = R_PEAK_METHOD, correction: str | None = "compare") -> np.ndarray:
    """R-peak sample indices of a single lead: a neurokit2 detector, refined with wfdb.

    neurokit2's QRS detector (``method``, one of ``neurokit2.ecg_peaks``'s) finds the beats;
    ``wfdb.processing.correct_peaks`` then moves each mark to the extreme within 50 ms: with
    ``correction="compare"`` maxima or minima, whichever deflect more over the record, with
    ``"up"`` maxima; None keeps neurokit2's marks. On DS1 "compare" puts the marks a median
    22 ms from the reference annotations (neurokit2's own: 2.8 ms), yet the beat models classify
    better from them: on the DS1 cross-validation from detected beats, mean of the S and V F1
    0.748, against 0.718 with neurokit2's marks and 0.727 with maxima only (the choice rule
    fixed before the run; 0.755 / 0.731 / 0.735 with 40 smoothing neighbours, 0.781 / 0.781 /
    0.785 with the default's 360: a tie, not re-decided).
    The offsets: ``benchmarks/ecg.py --parts rpeaks``; the F1: ``--parts mitdb``,
    ``detected_beats_by_correction``.

    Raises:
        InputFileError: Fewer than 3 beats found (no ECG, or the wrong lead or rate).
    """
    import neurokit2 as nk

    lead = np.asarray(values, dtype=np.float64)
    try:
        _, info = nk.ecg_peaks(lead, sampling_rate=int(round(fs)), method=method)
        peaks = np.asarray(info["ECG_R_Peaks"], np.int64)
    except (ValueError, IndexError, ZeroDivisionError) as error:
        raise InputFileError(source, f"R-peak detection failed ({error})") from error
    if len(peaks) >= 3 and correction is not None:
        peaks = np.unique(correct_r_peaks(lead, fs, peaks, correction))
    peaks = peaks[(peaks >= 0) & (peaks < len(lead))]
    if len(peaks) < 3:
        raise InputFileError(source, f"only {len(peaks)} heartbeat(s) detected in "
                             f"{len(lead) / fs:.1f} s; is this an ECG at {fs:g} Hz?")
    return peaks


def correct_r_peaks(values: np.ndarray, fs: float, peaks: np.ndarray,
                    correction: str) -> np.ndarray:
    """R-peak marks moved to the extreme of the band-passed lead within 50 ms
    (``wfdb.processing.correct_peaks``; ``correction`` its ``peak_dir``, see
    :data:`R_PEAK_CORRECTIONS`). One mark out per mark in, in the same order."""
    from wfdb import processing

    filtered = filter_ecg(np.asarray(values, np.float64), fs, mains_hz=None)
    return np.asarray(processing.correct_peaks(
        filtered, np.asarray(peaks, np.int64), search_radius=max(1, int(0.05 * fs)),
        smooth_window_size=max(3, int(0.03 * fs)), peak_dir=correction), np.int64)


def align_beat_marks(values: np.ndarray, fs: float, samples: np.ndarray,
                     correction: str) -> np.ndarray:
    """Beat marks (annotated or given) moved as detected R peaks are (:func:`correct_r_peaks`),
    so a model sees the same window alignment on annotated and detected beats.

    Each beat keeps its own mark: a move is kept only if it stays between the neighbouring
    marks and leaves the marks strictly increasing; otherwise the beat keeps its mark.
    """
    samples = np.asarray(samples, np.int64)
    if len(samples) == 0:
        return samples
    moved = correct_r_peaks(values, fs, samples, correction)
    before = np.concatenate([[-1], samples[:-1]])
    after = np.concatenate([samples[1:], [np.iinfo(np.int64).max]])
    moved = np.where((moved > before) & (moved < after), moved, samples)
    # Two marks moved onto (or past) each other: both keep their own. Each kept move lies
    # strictly between its neighbours' own marks, so one pass leaves the marks increasing.
    clash = np.flatnonzero(np.diff(moved) <= 0)
    moved[clash] = samples[clash]
    moved[clash + 1] = samples[clash + 1]
    return moved


def _pre_post_rr(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each beat's RR interval before and after it (the first and last beats take their one
    neighbouring interval for both)."""
    rr = np.diff(t)
    return np.concatenate([[rr[0]], rr]), np.concatenate([rr, [rr[-1]]])


def _median_rr(pre: np.ndarray, anchors: np.ndarray | None) -> float:
    """The record's RR scale: the median RR interval, or that of the anchor beats."""
    return float(np.median(pre[1:] if anchors is None else pre[anchors]))


def rr_features(beat_times_s: np.ndarray, local_beats: int = 10,
                anchors: np.ndarray | None = None) -> np.ndarray:
    """RR-interval features of every beat, normalised by the record's median RR.

    Args:
        beat_times_s: Beat times in seconds, increasing.
        local_beats: How many preceding RR intervals form the local average.
        anchors: Mask of the beats whose pre-RR intervals give the median
            (:func:`anchor_beats`); None: every RR interval.

    Returns:
        ``(N, 5)`` float32: pre-RR, post-RR and local RR over the median RR, pre-RR over the local
        RR, post-RR over pre-RR (see :data:`RR_FEATURES`), clipped to [0, 5].
    """
    t = np.asarray(beat_times_s, dtype=np.float64)
    n = len(t)
    if n < 3:
        raise DataError(f"RR features need at least 3 beats, got {n}")
    pre, post = _pre_post_rr(t)
    kernel = np.ones(local_beats) / local_beats
    padded = np.concatenate([np.full(local_beats - 1, pre[: local_beats].mean()), pre])
    local = np.convolve(padded, kernel, mode="valid")
    median = _median_rr(pre, anchors)
    eps = 1e-3
    features = np.stack([pre / median, post / median, local / median,
                         pre / np.maximum(local, eps), post / np.maximum(pre, eps)], axis=1)
    return np.clip(features, 0.0, 5.0).astype(np.float32)


LONG_RR_WINDOW_S = 150.0
"""Half-width of the long-term average RR (a ~5-minute window, de Chazal 2004)."""

EXTENDED_RR_FEATURES = (
    "pre_rr", "post_rr", "local_rr", "centred_rr", "long_rr", "prev_pre_rr", "next_post_rr",
    "pre_over_local", "pre_over_centred", "pre_over_long", "post_over_pre", "post_over_centred",
    "pre_minus_centred")
"""RR features of the ``full`` feature set (de Chazal 2004, Mondejar-Guerra 2019, relative to
the patient's own rhythm): RR values over the record's median RR, and ratios."""

MORPHOLOGY_FEATURES = (
    "corr_all", "corr_p", "corr_qrs", "corr_t", "rms_p", "rms_qrs", "rms_t", "qrs_max",
    "qrs_min", "qrs_width", "p_energy", "pre_qrs_slope")
"""Morphology of a beat relative to the record's median beat (same lead, scaled)."""

P_WAVE_FEATURES = ("corr_p", "rms_p", "p_energy")
"""The morphology features of the P-wave region."""

BEAT_PRE_S = 0.25
"""The beat itself starts this long before its R peak (room for its P wave). Its baseline, the
record's scale and the tree features are taken over the beat; a window with a longer ``pre_s``
also shows the network the end of the cycle before (E41 in docs/ecg-experiments.md)."""

SHAPE_POINTS = 14
"""Samples of the down-sampled beat and of the beat minus the median beat in the feature set."""

IRREGULARITY_FEATURES = ("rr_irregularity_local", "rr_irregularity_long", "pre_over_median_rr",
                         "post_over_median_rr")
"""Rhythm context of the ``two_lead`` set: mean absolute successive RR difference over the
neighbouring 2 x 10 and 2 x 50 beats (relative to their mean RR; high in atrial fibrillation, where
a short RR says little), and pre/post RR over the median of the neighbouring 21 RR intervals (a
local reference that a few ectopic beats do not move)."""

SECOND_LEAD_PREFIX = "lead2_"
"""Prefix of the ``two_lead`` set's features measured on the second lead."""

FEATURE_SETS = ("rr", "full", "two_lead")
TREE_FEATURE_SETS = ("full", "two_lead")
"""Feature sets the tree model takes (the ``rr`` set is the networks' side input)."""


ANCHOR_BEATS = ("all", "not_premature")
"""Which beats of a record its median beat, median RR and P-wave spread are taken over
(:attr:`BeatConfig.anchor_beats`)."""


def anchor_beats(beat_times_s: np.ndarray, window_beats: int = 50,
                 share: float = 0.9) -> np.ndarray:
    """The beats that stand for a patient's own rhythm and beat shape: those not premature.

    A beat is kept when its pre-RR interval is at least ``share`` times the 90th percentile of
    the pre-RR intervals of the ``window_beats`` beats on either side. Why: the median beat and
    median RR of a record are its ectopic beats' own when those are the majority (frequent
    atrial premature beats, bigeminy), and every feature relative to them then makes the ectopic
    beats look typical. A premature beat is not kept whether it is the exception or the rule;
    with pauses, the beats after them are. On the 22 DS1 records (annotated marks) it keeps a
    median 78% of a record's beats (21% in 203's atrial fibrillation, 100% in 112), 24-100% of
    the N beats and at most 39% of a record's S beats (207's run; none in 11 of 14 records).

    Returns:
        ``(N,)`` bool mask, every beat when fewer than 3 would be kept.
    """
    from scipy.ndimage import percentile_filter

    pre, _ = _pre_post_rr(np.asarray(beat_times_s, dtype=np.float64))
    local = percentile_filter(pre, 90, size=min(2 * window_beats + 1, len(pre)),
                              mode="nearest")
    kept = pre >= share * local
    return kept if kept.sum() >= 3 else np.ones(len(pre), bool)


def extended_rr_features(beat_times_s: np.ndarray, local_beats: int = 10,
                         anchors: np.ndarray | None = None) -> np.ndarray:
    """RR features relative to the patient's own rhythm (:data:`EXTENDED_RR_FEATURES`).

    Pre/post RR, the average of the previous ``local_beats`` RR intervals, of the ``local_beats``
    intervals around the beat, and of the intervals within +-150 s, all divided by the record's
    median RR, plus the ratios that make a premature beat stand out whatever the heart rate.
    """
    t = np.asarray(beat_times_s, dtype=np.float64)
    n = len(t)
    base = rr_features(t, local_beats, anchors).astype(np.float64)
    pre, post = _pre_post_rr(t)
    median = _median_rr(pre, anchors)
    cumulative = np.concatenate([[0.0], np.cumsum(pre)])
    half = local_beats // 2
    lo = np.clip(np.arange(n) - half, 0, n)
    hi = np.clip(np.arange(n) + half + 1, 0, n)
    centred = (cumulative[hi] - cumulative[lo]) / (hi - lo)
    lo = np.searchsorted(t, t - LONG_RR_WINDOW_S, side="left")
    hi = np.searchsorted(t, t + LONG_RR_WINDOW_S, side="right")
    long = (cumulative[hi] - cumulative[lo]) / np.maximum(hi - lo, 1)
    eps = 1e-3
    prev_pre = np.concatenate([[pre[0]], pre[:-1]])
    next_post = np.concatenate([post[1:], [post[-1]]])
    features = np.stack([
        base[:, 0], base[:, 1], base[:, 2], centred / median, long / median,
        prev_pre / median, next_post / median, base[:, 3], pre / np.maximum(centred, eps),
        pre / np.maximum(long, eps), base[:, 4], post / np.maximum(centred, eps),
        (pre - centred) / median], axis=1)
    return np.clip(features, -5.0, 5.0).astype(np.float32)


def rr_irregularity_features(beat_times_s: np.ndarray, local_beats: int = 10,
                             wide_beats: int = 50) -> np.ndarray:
    """Rhythm context of each beat (:data:`IRREGULARITY_FEATURES`), float32 ``(N, 4)``."""
    from scipy.ndimage import median_filter

    t = np.asarray(beat_times_s, dtype=np.float64)
    n = len(t)
    pre, post = _pre_post_rr(t)
    successive = np.abs(np.diff(pre, prepend=pre[0]))
    cum_successive = np.concatenate([[0.0], np.cumsum(successive)])
    cum_rr = np.concatenate([[0.0], np.cumsum(pre)])
    columns = []
    for half in (local_beats, wide_beats):
        lo = np.clip(np.arange(n) - half, 0, n)
        hi = np.clip(np.arange(n) + half + 1, 0, n)
        columns.append((cum_successive[hi] - cum_successive[lo])
                       / np.maximum(cum_rr[hi] - cum_rr[lo], 1e-3))
    local_median = np.maximum(median_filter(pre, size=2 * local_beats + 1, mode="nearest"), 1e-3)
    columns += [pre / local_median, post / local_median]
    return np.clip(np.stack(columns, axis=1), 0.0, 5.0).astype(np.float32)


def _rowwise_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=-1, keepdims=True)
    num = (a * b).sum(axis=1)
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=-1)) + 1e-6
    return num / den


def morphology_features(windows: np.ndarray, pre: int, fs: float,
                        anchors: np.ndarray | None = None) -> np.ndarray:
    """Beat shape relative to the record's median beat, and a down-sampled shape.

    Args:
        windows: ``(N, L)`` scaled beat windows of one record (R peak at index ``pre``).
        pre: Samples before the R peak.
        fs: Rate of the windows in Hz.
        anchors: Mask of the beats whose median is the record's median beat
            (:func:`anchor_beats`); None: every beat.

    Returns:
        ``(N, 12 + 2 * SHAPE_POINTS)`` float32: :data:`MORPHOLOGY_FEATURES`, then the beat and
        the beat minus the median beat, each averaged down to :data:`SHAPE_POINTS` points.
    """
    n, length = windows.shape
    median = median_beat(windows, anchors)
    diff = windows - median

    def span(start_s: float, end_s: float) -> slice:
        return slice(int(np.clip(pre + round(start_s * fs), 0, length - 1)),
                     int(np.clip(pre + round(end_s * fs), 1, length)))

    # P wave region, QRS complex, T wave region (seconds around the R peak).
    p_part, qrs, t_part = span(-0.25, -0.08), span(-0.08, 0.08), span(0.1, 0.45)
    columns = [_rowwise_corr(windows, median)]
    for part in (p_part, qrs, t_part):
        columns.append(_rowwise_corr(windows[:, part], median[part]))
    for part in (p_part, qrs, t_part):
        columns.append(np.sqrt((diff[:, part] ** 2).mean(axis=1)))
    qrs_values = windows[:, qrs]
    columns += [qrs_values.max(axis=1) - median[qrs].max(),
                qrs_values.min(axis=1) - median[qrs].min()]
    peak = np.abs(qrs_values).max(axis=1, keepdims=True) + 1e-6
    columns.append((np.abs(qrs_values) > 0.3 * peak).sum(axis=1) / fs * 10)
    p_values = windows[:, p_part] - windows[:, p_part].mean(axis=1, keepdims=True)
    columns.append(np.sqrt((p_values ** 2).mean(axis=1)))
    onset = span(-0.08, 0.0)
    columns.append(np.abs(np.diff(windows[:, onset], axis=1)).max(axis=1) * fs / 100)
    edges = np.linspace(0, length, SHAPE_POINTS + 1).round().astype(int)
    shape = np.stack([windows[:, a:b].mean(axis=1) for a, b in zip(edges[:-1], edges[1:],
                                                                    strict=True)], axis=1)
    shape_diff = np.stack([diff[:, a:b].mean(axis=1) for a, b in zip(edges[:-1], edges[1:],
                                                                     strict=True)], axis=1)
    features = np.concatenate([np.stack(columns, axis=1), shape, shape_diff], axis=1)
    return np.clip(np.nan_to_num(features), -20, 20).astype(np.float32)


def _morphology_names() -> list[str]:
    return (list(MORPHOLOGY_FEATURES) + [f"shape_{i}" for i in range(SHAPE_POINTS)]
            + [f"shape_minus_median_{i}" for i in range(SHAPE_POINTS)]
            + [f"{name}_z" for name in MORPHOLOGY_FEATURES])


def feature_names(feature_set: str) -> list[str]:
    """Names of the per-beat features of a feature set (``rr``, ``full`` or ``two_lead``)."""
    if feature_set == "rr":
        return list(RR_FEATURES)
    names = list(EXTENDED_RR_FEATURES) + _morphology_names()
    if feature_set == "two_lead":
        names += list(IRREGULARITY_FEATURES) + [SECOND_LEAD_PREFIX + name
                                                for name in _morphology_names()]
    return names


def median_beat(windows: np.ndarray, anchors: np.ndarray | None = None) -> np.ndarray:
    """The record's median beat (sample by sample), over its anchor beats if given."""
    return np.median(windows if anchors is None else windows[anchors], axis=0)


def lead_morphology(windows: np.ndarray, pre: int, fs: float,
                    anchors: np.ndarray | None = None) -> np.ndarray:
    """Morphology features of one lead's beats, then the first 12 standardised in the record."""
    morphology = morphology_features(windows, pre, fs, anchors)
    scores = standardise_within_record(morphology[:, :len(MORPHOLOGY_FEATURES)])
    if anchors is not None:
        # An S beat differs from the patient's normal beats in its P wave: those features are
        # scored against the anchor beats' spread. QRS and T features stay scored over every
        # beat: against the normal beats' narrow spread a fusion beat looked far from normal
        # and was called V (E26).
        columns = [MORPHOLOGY_FEATURES.index(name) for name in P_WAVE_FEATURES]
        scores[:, columns] = standardise_within_record(morphology[:, columns], anchors)
    return np.concatenate([morphology, scores], axis=1)


def standardise_within_record(values: np.ndarray,
                              anchors: np.ndarray | None = None) -> np.ndarray:
    """Robust z-scores of each column over one record's beats (median, IQR / 1.349), or over
    its anchor beats (:func:`anchor_beats`).

    Morphology varies more between patients than between a patient's N and S beats; relative
    to the patient's own spread, a slightly different P wave stands out.
    """
    basis = values if anchors is None else values[anchors]
    median = np.median(basis, axis=0)
    spread = np.subtract(*np.percentile(basis, [75, 25], axis=0)) / 1.349
    return np.clip((values - median) / np.maximum(spread, 1e-3), -20, 20).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Beats
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BeatConfig:
    """How beats are cut from a record; stored in the bundle so inference does the same.

    Attributes:
        fs: Model sampling rate in Hz (records are resampled to it).
        pre_s: Window start before the R peak, seconds. Beyond :data:`BEAT_PRE_S` the
            window holds the end of the cycle before, for the network only.
        post_s: Window end after the R peak, seconds.
        lead: Preferred lead name (falls back to the first lead when absent).
        highpass_hz: Baseline-wander cut-off.
        lowpass_hz: Low-pass cut-off.
        mains_hz: Power-line notch frequency (None: off).
        template_channel: Add the beat minus the record's median beat as a second channel.
        second_lead: Add the same channel(s) cut from the record's second lead (zeros for
            single-lead records).
        local_beats: RR intervals in the local RR average.
        feature_set: Per-beat features besides the window: ``rr`` (5 RR features), ``full``
            (13 RR features relative to the patient's rhythm, 12 morphology features relative to
            the record's median beat, a down-sampled shape, and the 12 morphology features
            standardised within the record) or ``two_lead`` (``full``, the rhythm's
            irregularity around the beat, and the morphology features of the second lead;
            missing (NaN) for single-lead records); see :func:`feature_names`.
        align_peaks: Move every beat mark, annotated or given, as detected R peaks are moved
            (:func:`align_beat_marks`; one of :data:`R_PEAK_CORRECTIONS`, None: marks used as
            they are) before windows and RR intervals are taken; detected R peaks are moved
            this way by the detector itself, once. A model then sees one
            alignment whether its beats come from annotations or from detection. On 6 partitions
            of the DS1 patients (default beat model) "compare" raised the mean of S-F1 and V-F1
            from 0.762 to 0.787, higher on 5 of 6 (``benchmarks/ecg.py --parts partitions``).
        anchor_beats: The beats a record's median beat, median RR and the spread of its P-wave
            features are taken over: ``"all"``, or ``"not_premature"`` (:func:`anchor_beats`),
            which keeps them the patient's own when ectopic beats are the majority (E26 in
            docs/ecg-experiments.md).
    """

    fs: float = 120.0
    pre_s: float = 0.25
    post_s: float = 0.45
    lead: str = "MLII"
    highpass_hz: float = 0.5
    lowpass_hz: float = 40.0
    mains_hz: float | None = 60.0
    template_channel: bool = True
    second_lead: bool = False
    local_beats: int = 10
    feature_set: str = "full"
    align_peaks: str | None = "compare"
    anchor_beats: str = "all"

    @property
    def pre(self) -> int:
        return int(round(self.pre_s * self.fs))

    @property
    def length(self) -> int:
        return self.pre + int(round(self.post_s * self.fs))

    @property
    def beat_start(self) -> int:
        """Index in the window where the beat itself starts (:data:`BEAT_PRE_S`)."""
        return max(0, self.pre - int(round(BEAT_PRE_S * self.fs)))

    @property
    def in_channels(self) -> int:
        return (2 if self.template_channel else 1) * (2 if self.second_lead else 1)

    @property
    def n_rr(self) -> int:
        return len(feature_names(self.feature_set))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BeatConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown beat option(s) {unknown}; known: {sorted(known)}")
        # Bundles written before feature sets existed used the 5 RR features.
        data = {"feature_set": "rr", **data}
        if data["feature_set"] not in FEATURE_SETS:
            raise ConfigError(f"beat option feature_set must be one of {FEATURE_SETS}, got "
                              f"{data['feature_set']!r}")
        # Bundles written before marks were aligned cut their windows at the marks as given.
        data = {"align_peaks": None, **data}
        if data["align_peaks"] not in R_PEAK_CORRECTIONS:
            raise ConfigError(f"beat option align_peaks must be one of {R_PEAK_CORRECTIONS}, "
                              f"got {data['align_peaks']!r}")
        if data.get("anchor_beats", "all") not in ANCHOR_BEATS:
            raise ConfigError(f"beat option anchor_beats must be one of {ANCHOR_BEATS}, got "
                              f"{data['anchor_beats']!r}")
        return cls(**data)


@dataclass
class ExtractedBeats:
    """Beats of one record, ready for the network."""

    windows: np.ndarray  # (N, C, L) float32
    rr: np.ndarray  # (N, F) float32
    samples: np.ndarray  # (N,) R peak the window is cut at, at the record's own rate
    marks: np.ndarray  # (N,) the beat marks as given (annotations, detections): beat identity
    lead: str
    trace: np.ndarray  # the filtered, scaled lead at the model rate (for plots)
    scale: float


def choose_lead(record: EcgRecord, preferred: str) -> int:
    """Index of the preferred lead (case-insensitive), else 0."""
    wanted = preferred.replace(" ", "").upper()
    for index, name in enumerate(record.leads):
        if name.replace(" ", "").upper() == wanted:
            return index
    return 0


def extract_beats(record: EcgRecord, config: BeatConfig,
                  samples: np.ndarray | None = None) -> ExtractedBeats:
    """Filter, resample and cut one window per beat, with RR features.

    Args:
        record: The recording.
        config: Beat options.
        samples: R-peak samples at the record's rate (default: the reference annotations, else
            neurokit2 detection).
    """
    lead = choose_lead(record, config.lead)
    if samples is None and record.beat_samples is None:
        # Detection moves its marks as ``align_peaks`` says (legacy bundles: "compare", as
        # detection always did); aligning them again would move some a second time.
        marks = samples = detect_r_peaks(_lead_signal(record, lead), record.fs, record.source,
                                         correction=config.align_peaks or "compare")
    else:
        marks = samples = np.asarray(record.beat_samples if samples is None else samples,
                                     np.int64)
        if config.align_peaks is not None:
            samples = record.derived(
                ("aligned", lead, config.align_peaks, marks.tobytes()),
                lambda: align_beat_marks(_lead_signal(record, lead), record.fs, marks,
                                         config.align_peaks)).copy()
    windows, trace, scale = _lead_windows(record, lead, samples, config)
    times = samples / record.fs
    anchors = anchor_beats(times) if config.anchor_beats == "not_premature" else None
    others = [i for i in range(record.signal.shape[1]) if i != lead]
    second = None
    if others and (config.second_lead or config.feature_set == "two_lead"):
        second, _, _ = _lead_windows(record, others[0], samples, config)
    leads = [windows]
    if config.second_lead:
        leads.append(second if second is not None else np.zeros_like(windows))
    channels = []
    for lead_windows in leads:
        channels.append(lead_windows)
        if config.template_channel:
            channels.append(lead_windows - median_beat(lead_windows, anchors)[None, :])
    if config.feature_set in TREE_FEATURE_SETS:
        start, pre = config.beat_start, config.pre - config.beat_start
        parts = [extended_rr_features(times, config.local_beats, anchors),
                 lead_morphology(windows[:, start:], pre, config.fs, anchors)]
        if config.feature_set == "two_lead":
            parts.append(rr_irregularity_features(times, config.local_beats))
            if second is not None:
                parts.append(lead_morphology(second[:, start:], pre, config.fs, anchors))
            else:
                parts.append(np.full((len(samples), len(_morphology_names())), np.nan,
                                     np.float32))
        rr = np.concatenate(parts, axis=1)
    else:
        rr = rr_features(times, config.local_beats, anchors)
    return ExtractedBeats(windows=np.stack(channels, axis=1).astype(np.float32), rr=rr,
                          samples=samples, marks=marks, lead=record.leads[lead],
                          trace=trace.astype(np.float32), scale=scale)


def _lead_signal(record: EcgRecord, lead: int) -> np.ndarray:
    return record.signal[:, lead].astype(np.float64)


def _model_rate_trace(record: EcgRecord, lead: int, config: BeatConfig) -> np.ndarray:
    """One lead filtered (:func:`filter_ecg`) and resampled to the model's rate."""
    def compute() -> np.ndarray:
        filtered = filter_ecg(_lead_signal(record, lead), record.fs, config.highpass_hz,
                              config.lowpass_hz, config.mains_hz)
        return resample_signal(filtered, record.fs, config.fs)

    return record.derived(("trace", lead, config.fs, config.highpass_hz, config.lowpass_hz,
                           config.mains_hz), compute)


def _lead_windows(record: EcgRecord, lead: int, samples: np.ndarray,
                  config: BeatConfig) -> tuple[np.ndarray, np.ndarray, float]:
    """Filtered, resampled beat windows of one lead, scaled by its median beat amplitude.

    Returns:
        ``(N, L)`` windows (R peak at ``config.pre``), the scaled trace at the model rate, and
        the scale.
    """
    trace = _model_rate_trace(record, lead, config)
    peaks = np.clip(np.round(samples * config.fs / record.fs).astype(np.int64), 0,
                    len(trace) - 1)
    pre, length = config.pre, config.length
    # Edge padding keeps every annotated beat (the first and last ones included).
    padded = np.pad(trace, (pre, length), mode="edge")
    windows = padded[peaks[:, None] + np.arange(length)[None, :]]
    beat = slice(config.beat_start, None)
    windows = windows - np.median(windows[:, beat], axis=1, keepdims=True)
    # Gain differs between recorders and patients: scale by the median beat amplitude.
    scale = float(np.median(np.ptp(windows[:, beat], axis=1)))
    scale = scale if scale > 1e-6 else 1.0
    return windows / scale, trace / scale, scale


@dataclass
class BeatSplit:
    """Beats of some records: network inputs, labels and where each beat came from.

    Attributes:
        windows: ``(N, C, L)`` float32 beat windows.
        rr: ``(N, F)`` float32 RR features.
        labels: ``(N,)`` AAMI class indices.
        records: ``(N,)`` record id of each beat (the patient key).
        samples: ``(N,)`` each beat's mark as annotated, at its record's own rate (its
            identity; the window may be cut at an aligned mark, ``BeatConfig.align_peaks``).
        sources: ``"record:sample"`` of each beat.
        config: The beat options the arrays were made with.
        record_data: The records themselves, to re-cut beats with other options.
    """

    windows: np.ndarray
    rr: np.ndarray
    labels: np.ndarray
    records: np.ndarray
    samples: np.ndarray
    config: BeatConfig
    record_data: dict[str, EcgRecord] = field(default_factory=dict, repr=False)
    # The same beats cut with other options, by options: a model's probabilities and its
    # decision rule (and a second opinion's) read the same cut.
    _cuts: dict[BeatConfig, BeatSplit] = field(default_factory=dict, init=False, repr=False,
                                               compare=False)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def sources(self) -> list[str]:
        return [f"{r}:{s}" for r, s in zip(self.records, self.samples, strict=True)]

    def subset(self, mask_or_index: np.ndarray) -> BeatSplit:
        index = np.asarray(mask_or_index)
        kept = set(np.unique(self.records[index]).tolist())
        return BeatSplit(self.windows[index], self.rr[index], self.labels[index],
                         self.records[index], self.samples[index], self.config,
                         {k: v for k, v in self.record_data.items() if k in kept})

    @staticmethod
    def concat(parts: Sequence[BeatSplit]) -> BeatSplit:
        """The beats of several splits (cut with the same options), in order."""
        if len({part.config for part in parts}) != 1:
            raise ValueError("beat splits cut with different options cannot be joined")
        columns = [np.concatenate([getattr(part, name) for part in parts])
                   for name in ("windows", "rr", "labels", "records", "samples")]
        return BeatSplit(*columns, parts[0].config,
                         {k: v for part in parts for k, v in part.record_data.items()})

    def with_config(self, config: BeatConfig) -> BeatSplit:
        """The same beats cut with other options (a model trained with other settings)."""
        if config == self.config:
            return self
        if config not in self._cuts:
            self._cuts[config] = beats_of(list(self.record_data.values()), config,
                                          keep=set(self.sources))
        return self._cuts[config]


def beats_of(records: Sequence[EcgRecord], config: BeatConfig,
             keep: set[str] | None = None) -> BeatSplit:
    """Cut the annotated beats of records into one :class:`BeatSplit`."""
    parts = []
    for record in records:
        beats = extract_beats(record, config)
        labels = record.aami_labels()
        ids = np.full(len(labels), record.name, dtype=object)
        part = [beats.windows, beats.rr, labels, ids, beats.marks]
        if keep is not None:
            mask = np.array([f"{record.name}:{s}" in keep for s in beats.marks], bool)
            part = [a[mask] for a in part]
        parts.append(part)
    if not parts:
        raise DataError("no records to cut beats from")
    columns = [np.concatenate(c) for c in zip(*parts, strict=True)]
    return BeatSplit(columns[0], columns[1], columns[2], columns[3].astype(str), columns[4],
                     config, {r.name: r for r in records})


def patient_split(records: np.ndarray, labels: np.ndarray, fraction: float,
                  seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split beats into (rest, carved) by whole records, stratified on beat classes.

    ``fraction`` of the records (rounded to a number of folds) go to ``carved``; a record is
    never in both. Returns boolean masks over the beats.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    unique = np.unique(records)
    if fraction <= 0:
        return np.ones(len(records), bool), np.zeros(len(records), bool)
    n_folds = max(2, min(len(unique), int(round(1 / fraction))))
    if len(unique) < 2:
        raise DataError(f"a patient-wise split needs at least 2 records, got {len(unique)}")
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    # Stratify on the class of each beat; the least frequent classes drive the assignment.
    _, carved = next(splitter.split(np.zeros(len(labels)), labels, groups=records))
    mask = np.zeros(len(records), bool)
    mask[carved] = True
    return ~mask, mask


class BeatDataset:
    """AAMI beats from whole annotated records, with patient-wise splits.

    Args:
        name: Dataset name.
        records: Annotated records (one patient each, as in MIT-BIH).
        provenance: Source, files and checksums.
        config: Beat options the arrays are cut with.
        problems: Records that could not be read, with the reason.
        val_fraction: Share of the non-test records used for validation.
        test_fraction: Share of the records held out for testing.
    """

    class_names: list[str] = list(AAMI_CLASSES)

    def __init__(self, name: str, records: Sequence[EcgRecord], provenance: dict[str, Any],
                 config: BeatConfig | None = None, problems: Sequence[str] = (),
                 val_fraction: float = 0.2, test_fraction: float = 0.2):
        if not records:
            raise DataError(f"{name}: no usable annotated record" + (
                "; problems: " + "; ".join(problems) if problems else ""))
        self.name = name
        self.records = list(records)
        self.config = config or BeatConfig()
        self.problems = list(problems)
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.class_names = list(AAMI_CLASSES)
        self._all = beats_of(self.records, self.config)
        self._splits: dict[int, dict[str, np.ndarray]] = {}
        self.provenance = {**provenance, "records": [r.name for r in self.records],
                           "problems": self.problems, "beat_config": self.config.to_dict(),
                           "class_counts": self.class_counts()}

    def class_counts(self, split: str = "all", seed: int = 0) -> dict[str, int]:
        labels = self.split(split, seed).labels
        return dict(zip(self.class_names, np.bincount(labels, minlength=5).tolist(), strict=True))

    def record_split(self, seed: int = 0) -> dict[str, list[str]]:
        """Which records are in train, val and test for this seed."""
        masks = self._masks(seed)
        return {k: sorted(set(self._all.records[m].tolist())) for k, m in masks.items()}

    def _masks(self, seed: int) -> dict[str, np.ndarray]:
        if seed not in self._splits:
            beats = self._all
            n_records = len(np.unique(beats.records))
            needed = 2 + (self.test_fraction > 0)
            if n_records < needed:
                raise DataError(f"{self.name}: a patient-wise split needs at least {needed} "
                                f"records, got {n_records}; evaluate with split 'all'")
            rest, test = patient_split(beats.records, beats.labels, self.test_fraction, seed)
            index = np.flatnonzero(rest)
            train_part, val_part = patient_split(beats.records[index], beats.labels[index],
                                                 self.val_fraction, seed + 1)
            train = np.zeros(len(beats), bool)
            val = np.zeros(len(beats), bool)
            train[index[train_part]] = True
            val[index[val_part]] = True
            self._splits[seed] = {"train": train, "val": val, "test": test}
        return self._splits[seed]

    def split(self, name: str, seed: int = 0) -> BeatSplit:
        """Beats of a patient-wise split: ``train``, ``val``, ``test`` or ``all``.

        Raises:
            ConfigError: Unknown split name.
            DataError: Too few records for a patient-wise split, or the split is empty.
        """
        if name not in SPLIT_CHOICES:
            raise ConfigError(f"unknown split '{name}' for dataset '{self.name}' (expected "
                              "train, val, test or all)")
        if name == "all":
            return self._all
        part = self._all.subset(np.flatnonzero(self._masks(seed)[name]))
        if len(part) == 0:
            raise DataError(f"split '{name}' of dataset '{self.name}' is empty")
        return part

    def split_sizes(self, seed: int = 0) -> dict[str, int]:
        return {k: int(m.sum()) for k, m in self._masks(seed).items()}

    def set_test_fraction(self, fraction: float) -> None:
        """Hold out this share of the records as the dataset's own test split; 0: none, for a
        training set whose test set is elsewhere (MIT-BIH DS1, tested on DS2)."""
        if not 0 <= fraction < 1:
            raise ConfigError(f"test fraction must be in [0, 1), got {fraction}")
        self.test_fraction = float(fraction)
        self._splits.clear()

    def folds(self, n_folds: int, seed: int = 0, stratified: bool = True
              ) -> list[tuple[list[str], list[str]]]:
        """Leave-records-out folds (train records, test records).

        ``stratified``: scikit-learn's ``StratifiedGroupKFold``, records spread so that each
        fold's beat classes look alike. It shuffles only records tied on their class spread, so
        on MIT-BIH DS1 every ``seed`` gives the same folds. ``stratified=False``: the records
        in a random order (``seed``) cut into ``n_folds`` near-equal folds, to measure how much
        a cross-validated figure owes to one partition of few patients.
        """
        beats = self._all
        if not stratified:
            names = sorted(set(beats.records.tolist()))
            if len(names) < n_folds:
                raise DataError(f"{self.name}: {len(names)} records cannot make {n_folds} folds")
            order = np.random.default_rng(seed).permutation(len(names))
            chunks = [{names[i] for i in part} for part in np.array_split(order, n_folds)]
            return [(sorted(set(names) - chunk), sorted(chunk)) for chunk in chunks]
        from sklearn.model_selection import StratifiedGroupKFold

        splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        out = []
        for train, test in splitter.split(np.zeros(len(beats)), beats.labels, beats.records):
            out.append((sorted(set(beats.records[train].tolist())),
                        sorted(set(beats.records[test].tolist()))))
        return out

    def subset(self, record_names: Iterable[str], name: str | None = None,
               test_fraction: float | None = None) -> BeatDataset:
        """A dataset of some records only (cross-validation folds: ``test_fraction=0``)."""
        wanted = set(record_names)
        return BeatDataset(name or self.name, [r for r in self.records if r.name in wanted],
                           self.provenance, self.config, val_fraction=self.val_fraction,
                           test_fraction=(self.test_fraction if test_fraction is None
                                          else test_fraction))


def _read_records(stems: Sequence[Path], progress: bool = True, on_error: str = "skip"
                  ) -> tuple[list[EcgRecord], list[str]]:
    """Read annotated records; a bad record is reported and skipped, the others keep going.

    With ``on_error="stop"`` the first bad record raises instead.
    """
    from rich.progress import Progress

    records, problems = [], []
    with Progress(transient=True, disable=not progress or len(stems) < 5) as bar:
        for stem in bar.track(stems, description="reading ECG records"):
            try:
                records.append(read_wfdb_record(stem, require_annotations=True))
            except MeddxError as error:
                if on_error == "stop":
                    raise
                log.warning("skipping record %s: %s", stem.name, error)
                problems.append(str(error))
    return records, problems


def _record_stems(folder: Path) -> tuple[list[Path], list[str]]:
    """Record stems of a folder (one per .hea), and problems for signal files without header."""
    headers = sorted(folder.glob("*.hea"))
    stems = [h.with_suffix("") for h in headers]
    known = {s.name for s in stems}
    problems = [f"{dat}: record {dat.stem}: header file (.hea) not found"
                for dat in sorted(folder.glob("*.dat")) if dat.stem not in known]
    return stems, problems


def _wfdb_provenance(name: str, kind: str, source: Path, files: Iterable[Path]) -> dict[str, Any]:
    return {"dataset": name, "kind": kind, "source": str(source),
            "files": {p.name: sha256_file(p) for p in sorted(files) if p.is_file()}}


def load_wfdb_dataset(name_or_path: str | os.PathLike[str],
                      data_dir: str | os.PathLike[str] | None = None,
                      config: BeatConfig | None = None, progress: bool = True,
                      on_error: str = "skip") -> BeatDataset:
    """A :class:`BeatDataset` from a catalog name (kind ``wfdb``), a folder or one record.

    Every record needs reference beat annotations (``.atr``); records that cannot be read are
    skipped and listed in ``dataset.problems`` (``on_error="stop"``: the first one raises).
    """
    if isinstance(name_or_path, str) and name_or_path in catalog.CATALOG:
        spec = catalog.get_spec(name_or_path)
        if spec.kind != "wfdb":
            raise ConfigError(f"dataset '{name_or_path}' is a {spec.kind} dataset, not WFDB")
        folder = catalog.locate(name_or_path, data_dir)
        stems = [folder / r for r in spec.extra.get("records", ())]
        problems: list[str] = []
        for remote in spec.files:
            issue = catalog.verify_file(folder / remote.name, remote)
            if issue:
                raise DataError(f"{folder / remote.name}: {issue}; fetch the dataset again")
        provenance = {"dataset": spec.name, "kind": "wfdb", "source": str(folder),
                      "files": {f.name: f.sha256 for f in spec.files}}
        name = spec.name
    else:
        path = Path(name_or_path).expanduser()
        if path.is_dir():
            stems, problems = _record_stems(path)
            if not stems:
                raise DataError(f"{path}: no WFDB record (.hea header) in this folder" + (
                    "; " + "; ".join(problems) if problems else ""))
            name = path.name
        else:
            stem = _wfdb_stem(path)
            if not stem.with_suffix(".hea").exists():
                raise InputFileError(stem.with_suffix(".hea"),
                                     f"record {stem.name}: header file (.hea) not found")
            stems, problems, name = [stem], [], stem.name
        files = [f for s in stems for f in s.parent.glob(f"{s.name}.*")]
        provenance = _wfdb_provenance(name, "wfdb", path, files)
    if problems and on_error == "stop":
        raise DataError(problems[0])
    records, read_problems = _read_records(stems, progress, on_error)
    return BeatDataset(name, records, provenance, config, problems + read_problems)


def is_wfdb_path(path: Path) -> bool:
    """A folder holding WFDB headers, or one record (``dir/101``, ``dir/101.hea``)."""
    path = Path(path)
    if path.is_dir():
        return any(path.glob("*.hea"))
    return _wfdb_stem(path).with_suffix(".hea").is_file()


# --------------------------------------------------------------------------------------------
# UCR series
# --------------------------------------------------------------------------------------------


_UCR_SPLIT = re.compile(r"^(?P<stem>.+)_(?P<split>TRAIN|TEST)\.(txt|tsv|csv)$", re.IGNORECASE)


def _split_cells(line: str) -> list[str]:
    """Cells of one line: comma- or tab-separated when it holds those, else whitespace-separated.

    Delimited cells are kept one by one (``1,,3`` has an empty cell, which is an error, rather
    than silently becoming ``1,3``).
    """
    for delimiter in (",", "\t"):
        if delimiter in line:
            return [cell.strip() for cell in line.split(delimiter)]
    return line.split()


def _numeric_lines(path: str | os.PathLike[str]) -> list[tuple[int, list[float]]]:
    """``(line number, values)`` of every non-blank line of a text file of numbers.

    Raises:
        InputFileError: Missing or unreadable file, an empty or non-numeric cell.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputFileError(path, "file not found")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise InputFileError(path, f"not a readable text file ({error})") from error
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        values = []
        for column, cell in enumerate(_split_cells(line.strip()), start=1):
            try:
                values.append(float(cell))
            except ValueError as error:
                what = f"non-numeric value {cell[:20]!r}" if cell else "empty cell"
                raise InputFileError(path, f"line {number}: {what} (value {column})") from error
        rows.append((number, values))
    return rows


def read_ucr(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read a UCR file: one series per line, label first, then values (whitespace, tab or comma).

    Returns:
        ``(series (N, L) float32, labels (N,) float64)``.

    Raises:
        InputFileError: Missing or unreadable file, non-numeric values, NaNs (variable-length
            series), ragged rows.
    """
    path = Path(path).expanduser()
    rows = []
    for number, values in _numeric_lines(path):
        if len(values) < 3:
            raise InputFileError(path, f"line {number}: a label and at least 2 values needed")
        if rows and len(values) != len(rows[0]):
            raise InputFileError(path, f"line {number}: {len(values) - 1} values, but line 1 has "
                                 f"{len(rows[0]) - 1}; series must have one length")
        rows.append(values)
    if not rows:
        raise InputFileError(path, "no series in the file")
    data = np.asarray(rows)
    if np.isnan(data).any():
        line = int(np.flatnonzero(np.isnan(data).any(axis=1))[0]) + 1
        raise InputFileError(path, f"series {line} holds NaN values (variable-length UCR series "
                             "are not supported)")
    return data[:, 1:].astype(np.float32), data[:, 0]


@dataclass
class SeriesFile:
    """The series of one file, as a series model reads them (see :func:`read_series`).

    Attributes:
        values: ``(N, L)`` float32 series.
        labels: ``(N,)`` label values of UCR lines, or None for unlabelled series.
        layout: ``"column"`` (one series, one value per line), ``"row"`` (unlabelled series,
            one per line) or ``"ucr"`` (a label, then the values, per line).
    """

    values: np.ndarray
    labels: np.ndarray | None
    layout: str


def read_series(path: str | os.PathLike[str], length: int,
                max_series: int | None = None) -> SeriesFile:
    """Read series of ``length`` values for a series model from a text file of numbers.

    Layouts (comma, tab or whitespace separated, no header):

    * one column: one series, a value per line;
    * rows of ``length`` values: one unlabelled series per line;
    * rows of ``length + 1`` values: UCR lines, the label first (the archive's own files).

    The length is the model's: series are not stretched to fit (a 10 s rhythm strip is not a
    heartbeat), so any other length is an error naming both.

    Raises:
        InputFileError: Missing, unreadable or empty file; non-numeric, empty or non-finite
            values; a length the model does not take; rows of mixed lengths; more than
            ``max_series`` series.
    """
    path = Path(path).expanduser()
    rows = _numeric_lines(path)
    expected = (f"this model classifies series of {length} values (one row or one column of "
                f"numbers, or UCR lines: a label, then {length} values)")
    if not rows:
        raise InputFileError(path, f"no values in the file; {expected}")
    if len(rows) > 1 and all(len(values) == 1 for _, values in rows):
        data = np.array([[values[0] for _, values in rows]])
        layout, labels = "column", None
        if data.shape[1] != length:
            raise InputFileError(path, f"{data.shape[1]} values in one column; {expected}")
    else:
        first = len(rows[0][1])
        if first not in (length, length + 1):
            raise InputFileError(path, f"line {rows[0][0]}: {first} values; {expected}")
        for number, values in rows[1:]:
            if len(values) != first:
                raise InputFileError(path, f"line {number}: {len(values)} values, but line "
                                     f"{rows[0][0]} has {first}; {expected}")
        data = np.array([values for _, values in rows])
        layout = "ucr" if first == length + 1 else "row"
        labels = data[:, 0].copy() if layout == "ucr" else None
        data = data[:, 1:] if layout == "ucr" else data
    bad = ~np.isfinite(data)
    if bad.any():
        row, column = (int(i) for i in np.argwhere(bad)[0])
        # A column's values are its lines; a row's line is the row.
        line = rows[column][0] if layout == "column" else rows[row][0]
        raise InputFileError(path, f"line {line}: value is not a finite number (NaN or "
                             "infinite)")
    if max_series is not None and len(data) > max_series:
        raise InputFileError(path, f"holds {len(data)} series; give at most {max_series} per "
                             "file")
    return SeriesFile(data.astype(np.float32), labels, layout)


def is_ucr_path(path: Path) -> bool:
    """A ``.txt``/``.tsv`` file whose first line is all numbers, or a folder of ``*_TRAIN`` ones."""
    path = Path(path)
    if path.is_dir():
        return any(_UCR_SPLIT.match(p.name) for p in path.iterdir() if p.is_file())
    if path.suffix.lower() not in (".txt", ".tsv") or not path.is_file():
        return False
    with path.open(errors="replace") as handle:
        first = handle.readline().strip()
    cells = re.split(r"[,\s]+", first) if first else []
    return len(cells) >= 3 and _all_numeric(cells)


@dataclass
class SeriesDataset:
    """Fixed-length series for classification (UCR), one channel.

    Splits are the files' own (``*_TRAIN``/``*_TEST``); missing ones are carved out with a seeded
    stratified split (the same code as image datasets).

    Attributes:
        name: Dataset name.
        class_names: Class names, label ``i`` is ``class_names[i]``.
        label_values: The file's label value of each class.
        length: Series length.
        data: The series as an image-free :class:`ClassificationDataset` of ``(1, L)`` arrays.
        provenance: Source and checksums.
    """

    name: str
    class_names: list[str]
    label_values: list[float]
    length: int
    data: ClassificationDataset
    provenance: dict[str, Any]
    val_fraction: float = 0.2
    test_fraction: float = 0.2

    def split(self, name: str, seed: int = 0) -> SplitData:
        return self.data.split(name, seed, self.val_fraction, self.test_fraction)

    def split_sizes(self, seed: int = 0) -> dict[str, int]:
        return self.data.split_sizes(seed, self.val_fraction, self.test_fraction)


SERIES_CLASSES_FILE = "classes.json"
"""Beside UCR files: ``{"class_names": [...], "label_values": [...]}``, the name of each label
value (UCR files hold numbers only; a dataset exported from the workstation keeps its names)."""


def _series_classes(folder: Path) -> tuple[list[str], list[float]] | None:
    """Class names and label values from ``folder/classes.json``, or None without one."""
    path = folder / SERIES_CLASSES_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        names = [str(n) for n in data["class_names"]]
        values = [float(v) for v in data["label_values"]]
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise InputFileError(path, "needs class_names and label_values lists "
                             f"({type(error).__name__}: {error})") from error
    if len(names) != len(values) or len(set(names)) != len(names) or \
            len(set(values)) != len(values) or len(names) < 2:
        raise InputFileError(path, "class_names and label_values must be two lists of the same "
                             "length (at least 2), without repeats")
    return names, values


def _catalog_ucr_spec(file_name: str) -> catalog.DatasetSpec | None:
    for spec in catalog.CATALOG.values():
        if spec.kind == "ucr" and file_name in spec.extra.get("splits", {}).values():
            return spec
    return None


def load_series_dataset(name_or_path: str | os.PathLike[str],
                        data_dir: str | os.PathLike[str] | None = None) -> SeriesDataset:
    """A :class:`SeriesDataset` from a catalog name (kind ``ucr``), a UCR file or a folder.

    A file named like a catalog dataset's file (``ECG200_TEST.txt``) takes that dataset's class
    names, so a bundle trained on the catalog dataset can be evaluated on the file.
    """
    spec = None
    if isinstance(name_or_path, str) and name_or_path in catalog.CATALOG:
        spec = catalog.get_spec(name_or_path)
        if spec.kind != "ucr":
            raise ConfigError(f"dataset '{name_or_path}' is a {spec.kind} dataset, not UCR")
        folder = catalog.locate(name_or_path, data_dir)
        files = {split: folder / file for split, file in spec.extra["splits"].items()}
        name, source = spec.name, folder
    else:
        path = Path(name_or_path).expanduser()
        if not path.exists():
            raise InputFileError(path, "file not found")
        if path.is_dir():
            files = {m["split"].lower(): p for p in sorted(path.iterdir())
                     if (m := _UCR_SPLIT.match(p.name))}
            if not files:
                raise DataError(f"{path}: no *_TRAIN/*_TEST UCR files in this folder")
            name = path.name
        else:
            files = {"all": path}
            match = _UCR_SPLIT.match(path.name)
            name = match["stem"] if match else path.stem
        spec = _catalog_ucr_spec(next(iter(files.values())).name)
        source = path
    raw = {split: read_ucr(path) for split, path in files.items()}
    lengths = {split: x.shape[1] for split, (x, _) in raw.items()}
    if len(set(lengths.values())) > 1:
        raise DataError(f"{source}: series lengths differ between files {lengths}")
    named = None if spec is not None else _series_classes(next(iter(files.values())).parent)
    if spec is not None:
        values = [float(v) for v in spec.extra["label_values"]]
        class_names = list(spec.class_names)
        name = spec.name
    elif named is not None:
        class_names, values = named
    else:
        values = sorted({float(v) for _, y in raw.values() for v in y})
        class_names = [str(int(v)) if v == int(v) else str(v) for v in values]
    splits = {}
    for split, (x, y) in raw.items():
        unknown = sorted({float(v) for v in y} - set(values))
        if unknown:
            raise DataError(f"{files[split]}: label value(s) {unknown} are not among the "
                            f"classes {dict(zip(class_names, values, strict=True))}")
        labels = np.array([values.index(float(v)) for v in y], np.int64)
        splits[split] = SplitData(list(x[:, None, :]), labels,
                                  [f"{files[split].name}[{i}]" for i in range(len(labels))])
    provenance = {"dataset": name, "kind": "ucr", "source": str(source),
                  "files": {p.name: sha256_file(p) for p in files.values()}}
    data = ClassificationDataset(name=name, class_names=class_names, spatial_dims=1,
                                 in_channels=1, splits=splits, provenance=provenance)
    return SeriesDataset(name, class_names, values, next(iter(lengths.values())), data,
                         provenance)


def series_config(dataset: SeriesDataset) -> dict[str, Any]:
    """What a series model needs to know about its input (stored in the plan)."""
    return {"length": dataset.length, "label_values": dataset.label_values}

