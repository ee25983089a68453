"""Synthetic ECG records for tests: neurokit2's ECGSYN simulator plus wide ventricular beats.

Each record is a neurokit2 ``ecg_simulate(method="ecgsyn")`` trace (one patient: its own heart
rate, amplitude and noise) in which every few beats one is replaced by a wide, large, inverted
complex that comes early (a premature ventricular beat, annotated ``V``); the others are annotated
``N``. Written in WFDB format (``.hea``/``.dat``/``.atr``), so the real readers are exercised.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

FS = 360


def synthetic_signal(seed: int, duration_s: float = 60.0, v_every: int = 5,
                     heart_rate: float | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(signal (T,), beat samples, beat symbols) of one synthetic patient."""
    import neurokit2 as nk

    rng = np.random.default_rng(seed)
    rate = heart_rate or float(rng.uniform(60, 85))
    ecg = nk.ecg_simulate(duration=int(duration_s), sampling_rate=FS, heart_rate=rate,
                          method="ecgsyn", noise=0.01, random_state=seed)
    # R peaks of the clean simulated trace (the simulator does not return them).
    _, info = nk.ecg_peaks(ecg, sampling_rate=FS)
    peaks = np.asarray(info["ECG_R_Peaks"], np.int64)
    ecg = np.asarray(ecg) * rng.uniform(0.8, 1.3)
    period = int(round(float(np.median(np.diff(peaks)))))
    symbols = ["N"] * len(peaks)
    t = np.arange(len(ecg))
    for k in range(2, len(peaks) - 1, v_every):
        # Premature by 30% of a cycle: erase the normal complex, draw a wide inverted one earlier.
        original = peaks[k]
        new = original - int(0.3 * period)
        window = (t > original - 0.06 * FS) & (t < original + 0.06 * FS)
        ecg[window] = np.median(ecg)
        ecg += -1.6 * np.exp(-0.5 * ((t - new) / (0.035 * FS)) ** 2) \
            + 0.6 * np.exp(-0.5 * ((t - new - 0.09 * FS) / (0.04 * FS)) ** 2)
        peaks[k] = new
        symbols[k] = "V"
    baseline = 0.2 * np.sin(2 * np.pi * 0.2 * t / FS + rng.uniform(0, 6))
    return (ecg + baseline).astype(np.float64), peaks, symbols


def write_record(folder: Path, name: str, seed: int, duration_s: float = 60.0,
                 v_every: int = 5, symbols_override: dict[int, str] | None = None) -> Path:
    """Write one synthetic annotated WFDB record; returns its path without suffix."""
    import wfdb

    folder.mkdir(parents=True, exist_ok=True)
    signal, peaks, symbols = synthetic_signal(seed, duration_s, v_every)
    for index, symbol in (symbols_override or {}).items():
        symbols[index] = symbol
    second = 0.5 * signal + 0.02 * np.random.default_rng(seed).normal(size=len(signal))
    wfdb.wrsamp(name, fs=FS, units=["mV", "mV"], sig_name=["MLII", "V1"],
                p_signal=np.stack([signal, second], axis=1), fmt=["16", "16"],
                write_dir=str(folder))
    wfdb.wrann(name, "atr", peaks, symbols, write_dir=str(folder))
    return folder / name


def write_folder(folder: Path, n_records: int = 6, duration_s: float = 60.0) -> Path:
    """A folder of synthetic patients (record names 900, 901, ...)."""
    for index in range(n_records):
        write_record(folder, str(900 + index), seed=index, duration_s=duration_s)
    return folder


def write_ucr(path: Path, n: int, length: int = 64, seed: int = 0, sep: str = " ") -> Path:
    """A UCR file: class 1 = a bump early, class 2 = a bump late (label first)."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    lines = []
    for i in range(n):
        label = 1 + i % 2
        centre = length * (0.3 if label == 1 else 0.7) + rng.normal(0, 2)
        series = np.exp(-0.5 * ((t - centre) / 4) ** 2) + rng.normal(0, 0.1, length)
        lines.append(sep.join([f"{label:.1f}", *(f"{v:.5f}" for v in series)]))
    path.write_text("\n".join(lines) + "\n")
    return path


def write_ucr_folder(parent: Path, n_train: int = 60, n_test: int = 30, length: int = 64,
                     name: str = "Bumps") -> tuple[Path, Path]:
    """A UCR dataset folder ``parent/name`` with ``name_TRAIN.txt`` (seed 0) and
    ``name_TEST.txt`` (seed 1); returns the folder and the TEST file."""
    folder = Path(parent) / name
    folder.mkdir(parents=True, exist_ok=True)
    write_ucr(folder / f"{name}_TRAIN.txt", n_train, length=length, seed=0)
    return folder, write_ucr(folder / f"{name}_TEST.txt", n_test, length=length, seed=1)
