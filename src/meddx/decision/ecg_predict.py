"""Prediction from ECG bundles: per-beat AAMI classes of a record, or classes of UCR series.

:class:`EcgBeatClassifier` reads a WFDB record (or a CSV signal with its sampling rate), finds the
beats (reference annotations when the record has them, else neurokit2 R-peak detection refined
with wfdb.processing), classifies every beat and summarises the record: beat counts per class,
S and V burden (share of beats), heart rate. With ``explain_to`` it writes a strip plot: 10 s of
the lead with each beat coloured by its class, and below it an integrated-gradients saliency
trace (Captum; Sundararajan et al., ICML 2017) showing which samples drove each beat's class
(TreeSHAP for the tree model; the network's trace for a ``cnn+lightgbm`` model, whose
probabilities are the mean of its two members'). A model with a second opinion for S beats
(``EcgPlan.second_opinion``, the default's) holds the second model's predictor too and says in
``second_opinion`` how many of a record's beats it turned to S.

:class:`EcgSeriesClassifier` classifies fixed-length series: one series (a row or a column
of numbers) or UCR lines, each with its integrated-gradients saliency.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.patches import Rectangle

from meddx.data.datasets import SplitData
from meddx.data.ecg import (
    AAMI_CLASSES,
    AAMI_EXCUSED_CALLS,
    AAMI_MAP,
    BeatConfig,
    BeatSplit,
    EcgRecord,
    ExtractedBeats,
    SeriesFile,
    extract_beats,
    feature_names,
    read_series,
    read_signal,
)
from meddx.decision.bundle import Bundle, load_weights
from meddx.errors import BundleError, InputFileError
from meddx.figures import new_figure, save_figure
from meddx.learn.boosting import booster_probs, load_booster
from meddx.learn.networks1d import Network1DSpec, build_network1d
from meddx.learn.tasks import ecg_features
from meddx.learn.tasks.ecg import (
    BEAT_TASK,
    COMBINED,
    COMPONENTS,
    SECOND_OPINION_DIR,
    SECOND_OPINION_PREFIX,
    SERIES_TASK,
    EcgPlan,
    beat_decisions,
    component_plan,
    plan_inputs,
    predict_proba,
    regular_rhythm,
    second_opinion_calls,
    series_inputs,
)
from meddx.learn.tasks.ecg_rocket import (
    EXPLANATION_METHOD,
    MINIROCKET,
    RocketModel,
    occlusion_saliency,
)
from meddx.learn.trainer import default_device

CLASS_COLOURS = {"N": "#4d9221", "S": "#f28e2b", "V": "#d62728", "F": "#9467bd", "Q": "#1f77b4"}
STRIP_SECONDS = 10.0


def _entropy(probs: np.ndarray) -> np.ndarray:
    clipped = np.clip(probs, 1e-12, 1.0)
    return -(clipped * np.log(clipped)).sum(axis=1) / np.log(probs.shape[1])


class _EcgPredictor:
    """Shared loading: plan, network, weights."""

    task = ""
    explanation_suffix = "saliency"
    # Calls the metrics leave out of +P (evaluate_split passes it on): EC57's rule for beats.
    excused_calls: dict[str, tuple[str, ...]] | None = None

    def __init__(self, metadata: dict[str, Any], state_dict: dict[str, torch.Tensor] | None,
                 device: torch.device | None = None, source: str = "bundle",
                 lgbm_text: str | None = None):
        if metadata.get("task") != self.task:
            raise BundleError(f"{source}: task {metadata.get('task')!r} is not {self.task!r}")
        self.metadata = metadata
        self.name = metadata.get("name", source)
        self.device = device or default_device()
        self.plan = EcgPlan.from_dict(metadata["plan"])
        self.model = self.booster = self.rocket = None
        self.members: list[_EcgPredictor] = []
        if self.plan.model == MINIROCKET:
            self.rocket = RocketModel.from_state_dict(state_dict, source)
        elif self.plan.model == COMBINED:
            # One predictor per member, on its own plan (the network's 5 RR features, the
            # trees' tree feature set); their probabilities are averaged.
            self.members = [type(self)(
                {**metadata, "plan": component_plan(self.plan, kind).to_dict()},
                state_dict if kind == "cnn" else None, self.device, source,
                lgbm_text=lgbm_text if kind == "lightgbm" else None) for kind in COMPONENTS]
        elif self.plan.model == "lightgbm":
            if lgbm_text is None:
                raise BundleError(f"{source}: a lightgbm ECG model needs its "
                                  f"{ecg_features.LGBM_FILE}")
            self.booster = load_booster(lgbm_text, source)
        else:
            if state_dict is None:
                raise BundleError(f"{source}: the bundle has no network weights")
            self.model = load_weights(build_network1d(Network1DSpec.from_dict(self.plan.network)),
                                      state_dict, self.device, source)
        self.class_names = list(self.plan.class_names)
        self.threshold = metadata.get("threshold")

    @classmethod
    def from_bundle(cls, bundle: Bundle, device: torch.device | None = None):
        model = bundle.metadata.get("plan", {}).get("model")
        lgbm_text = (ecg_features.read_booster_text(bundle.path)
                     if model in ("lightgbm", COMBINED) else None)
        state_dict = None if model == "lightgbm" else bundle.state_dict()
        return cls(bundle.metadata, state_dict, device, source=str(bundle.path),
                   lgbm_text=lgbm_text)

    def probabilities(self, x: torch.Tensor, extra: torch.Tensor | None) -> np.ndarray:
        """Class probabilities (N, K) of network inputs and per-beat features."""
        if self.rocket is not None:
            return self.rocket.predict_proba(x)
        if self.booster is not None:
            return booster_probs(self.booster, extra.numpy(), len(self.class_names))
        return predict_proba(self.model, x, extra, self.plan.eval_batch_size)

    def predict_split(self, split: BeatSplit | SplitData) -> np.ndarray:
        """Probabilities for every input of a split (the evaluation path's entry)."""
        if self.members:
            return np.mean([member.predict_split(split) for member in self.members], axis=0)
        x, extra = plan_inputs(self.plan, split)
        return self.probabilities(x, extra)

    def saliency(self, x: torch.Tensor, extra: torch.Tensor | None,
                 targets: np.ndarray) -> np.ndarray:
        """|Attribution| per input sample (N, L): integrated gradients summed over channels for
        networks, TreeSHAP contributions of the time-localised features for the tree model,
        occlusion for MiniRocket (its features have no useful gradient)."""
        from captum.attr import IntegratedGradients

        if self.rocket is not None:
            return occlusion_saliency(self.rocket, x, targets)
        if self.booster is not None:
            config = BeatConfig.from_dict(self.plan.beat_config)
            return ecg_features.tree_saliency(self.booster, extra.numpy(), targets,
                                              config.length, config.pre, config.fs)
        x = x.to(self.device)
        extra = None if extra is None else extra.to(self.device)
        gradients = IntegratedGradients(self.model)
        with torch.enable_grad():
            attributions = gradients.attribute(
                x, baselines=torch.zeros_like(x), target=torch.as_tensor(targets).to(self.device),
                additional_forward_args=(extra,) if extra is not None else None, n_steps=32,
                internal_batch_size=256)
        return attributions.abs().sum(dim=1).detach().cpu().numpy()


class EcgBeatClassifier(_EcgPredictor):
    """Per-beat AAMI classes of whole records, from an ECG beat bundle."""

    task = BEAT_TASK
    # For the workstation's upload form: a WFDB record (a CSV signal needs its rate, which an
    # upload does not carry).
    input_suffixes = (".hea", ".dat", ".atr")
    study_kind = "ecg"
    excused_calls = AAMI_EXCUSED_CALLS

    def __init__(self, metadata: dict[str, Any], state_dict: dict[str, torch.Tensor] | None,
                 device: torch.device | None = None, source: str = "bundle",
                 lgbm_text: str | None = None, second_opinion: EcgBeatClassifier | None = None):
        """``second_opinion``: the predictor of the plan's second opinion, which a plan with one
        needs (``EcgPlan.second_opinion``; :meth:`from_bundle` loads it)."""
        super().__init__(metadata, state_dict, device, source, lgbm_text)
        if (self.plan.second_opinion is None) != (second_opinion is None):
            raise BundleError(f"{source}: the plan's second opinion and the second model given "
                              "do not match (one is missing)")
        self.second_opinion = second_opinion

    @classmethod
    def from_bundle(cls, bundle: Bundle, device: torch.device | None = None):
        metadata = bundle.metadata
        if metadata.get("plan", {}).get("second_opinion") is None:
            return super().from_bundle(bundle, device)
        source = str(bundle.path)
        if "second_opinion" not in metadata:
            raise BundleError(f"{source}: the plan has a second opinion, the metadata no model "
                              "for it")
        weights = bundle.state_dict()
        own = {k: v for k, v in weights.items() if not k.startswith(SECOND_OPINION_PREFIX)}
        other = {k.removeprefix(SECOND_OPINION_PREFIX): v for k, v in weights.items()
                 if k.startswith(SECOND_OPINION_PREFIX)}
        if not other:
            raise BundleError(f"{source}: the bundle has no weights of its second opinion")
        second = cls({**metadata, "plan": metadata["second_opinion"]["plan"]}, other, device,
                     f"{source} ({SECOND_OPINION_DIR})", lgbm_text=ecg_features.read_booster_text(
                         bundle.path / SECOND_OPINION_DIR))
        return cls(metadata, own, device, source,
                   lgbm_text=ecg_features.read_booster_text(bundle.path), second_opinion=second)

    @property
    def beat_config(self) -> BeatConfig:
        return BeatConfig.from_dict(self.plan.beat_config)

    def predict_file(self, path: str | Path, explain_to: Path | None = None,
                     fs: float | None = None) -> dict[str, Any]:
        """Classify every beat of a WFDB record or CSV signal (CSV needs ``fs`` in Hz)."""
        start = time.perf_counter()
        record = read_signal(path, fs)
        result = self.predict_record(record, explain_to)
        result["file"] = str(path)
        result["latency_ms"] = round((time.perf_counter() - start) * 1000, 2)
        return result

    def predict_record(self, record: EcgRecord, explain_to: Path | None = None,
                       samples: np.ndarray | None = None) -> dict[str, Any]:
        """Per-beat classes and the record summary; see :meth:`predict_file`. ``samples``:
        the R peaks to classify (default: the annotations, else R-peak detection)."""
        config = self.beat_config
        beats = extract_beats(record, config, samples)
        probs = self.record_probabilities(record, beats)
        first = classes = self.first_opinion(probs, beats)
        if self.second_opinion is not None:
            classes = self.decide(probs, beats, self.record_second_opinion(record, beats))
        names = np.array(self.class_names)[classes]
        counts = {name: int((names == name).sum()) for name in self.class_names}
        n = len(classes)
        rr = np.diff(beats.marks) / record.fs
        summary = {
            "beats": n,
            "counts": counts,
            "S_burden_percent": round(100 * counts.get("S", 0) / n, 3),
            "V_burden_percent": round(100 * counts.get("V", 0) / n, 3),
            "heart_rate_bpm": round(60 / float(np.median(rr)), 1),
            "duration_s": round(record.duration_s, 1),
        }
        ectopic = [f"{c} {counts[c]} ({100 * counts[c] / n:.1f}%)" for c in ("S", "V", "F")
                   if counts.get(c)]
        result: dict[str, Any] = {
            "record": record.name,
            "lead": beats.lead,
            "sampling_rate_hz": record.fs,
            "beat_positions": ("given R peaks" if samples is not None
                               else "reference annotations" if record.annotated
                               else "R-peak detection (neurokit2 + wfdb)"),
            "summary": summary,
            "decision": ("ectopic beats: " + ", ".join(ectopic)) if ectopic
            else "no ectopic beats found",
            "probabilities": dict(zip(self.class_names, probs.mean(axis=0).round(5).tolist(),
                                      strict=True)),
            "uncertainty": float(_entropy(probs).mean()),
            "beat_table": {"time_s": np.round(beats.marks / record.fs, 3).tolist(),
                           "class": names.tolist(),
                           "confidence": probs.max(axis=1).round(4).tolist()},
            "model": self.name,
        }
        if self.second_opinion is not None:
            result["second_opinion"] = {
                "beat_options": self.plan.second_opinion["beat"],
                "min_gap": self.plan.second_opinion["min_gap"],
                "beats_called_S": int(np.count_nonzero(classes != first))}
        if record.annotated:
            reference = [AAMI_MAP[s] for s in record.beat_symbols]
            result["reference_counts"] = {c: reference.count(c) for c in AAMI_CLASSES}
        if explain_to is not None:
            result["explanation"] = str(self.strip_plot(record, beats, classes,
                                                        Path(explain_to)))
        return result

    def decide(self, probs: np.ndarray, beats: BeatSplit | ExtractedBeats,
               second_calls: np.ndarray | None = None) -> np.ndarray:
        """Each beat's class (indices): :meth:`first_opinion`, then the second opinion's gate.

        ``beats``: the beats of ``probs`` (a split, or one record's extracted beats cut with
        this model's options). ``second_calls``: the second opinion's classes of the same
        beats; a split's are computed here, one record's need the record
        (:meth:`record_second_opinion`).
        """
        calls = self.first_opinion(probs, beats)
        if self.second_opinion is None:
            return calls
        records = None
        if isinstance(beats, BeatSplit):
            records = beats.records
            if second_calls is None:
                second_calls = self.split_second_opinion(beats)
        elif second_calls is None:
            raise ValueError("one record's second opinion needs the record: "
                             "record_second_opinion")
        return self._gated(self.gate_reading(probs, beats, calls), second_calls, records,
                           shut_calls=calls)

    def first_opinion(self, probs: np.ndarray, beats: BeatSplit | ExtractedBeats,
                      margin: float | None = None) -> np.ndarray:
        """Each beat's class (indices) by this model alone (``beat_decisions``), whose rule may
        read the beats' rhythm features: :meth:`decide` without the second opinion.
        ``margin``: the ``irregular_s_margin`` applied (None: the plan's; 1: none)."""
        limit = self.plan.s_over_n_max_irregularity
        regular = None
        if limit is not None:  # only then are the features read (a split may need a re-cut)
            cut = beats.with_config(self.beat_config) if isinstance(beats, BeatSplit) else beats
            regular = regular_rhythm(cut.rr, self.beat_config.feature_set, limit)
        return beat_decisions(probs, self.class_names, self.plan.s_over_n_odds, regular,
                              self.plan.irregular_s_margin if margin is None else margin)

    def gate_reading(self, probs: np.ndarray, beats: BeatSplit | ExtractedBeats,
                     calls: np.ndarray | None = None) -> np.ndarray:
        """The first opinion's calls the second opinion's gate reads: without the irregular-S
        margin where the margin applies only where the gate stays shut
        (``irregular_s_margin_scope`` gate_shut), else :meth:`first_opinion`'s (``calls``,
        when already made)."""
        if self.plan.irregular_s_margin_scope == "gate_shut":
            return self.first_opinion(probs, beats, margin=1.0)
        return self.first_opinion(probs, beats) if calls is None else calls

    def split_second_opinion(self, beats: BeatSplit) -> np.ndarray | None:
        """The second opinion's classes (indices) of a split's beats; None without one."""
        second = self.second_opinion
        return None if second is None else second.decide(second.predict_split(beats), beats)

    def record_second_opinion(self, record: EcgRecord, beats: ExtractedBeats) -> np.ndarray:
        """The second opinion's classes (indices) of a record's beats (cut with this model's
        options), on its own cut of them."""
        second = self.second_opinion
        own = self._member_beats(second, record, beats)
        return second.decide(second.record_probabilities(record, own), own)

    def _gated(self, calls: np.ndarray, second_calls: np.ndarray,
               records: np.ndarray | None = None,
               shut_calls: np.ndarray | None = None) -> np.ndarray:
        """``calls`` with the second opinion's S calls where its gate opens (``records``: each
        beat's record; None: one record's beats; ``shut_calls``: see
        ``second_opinion_calls``)."""
        return second_opinion_calls(
            calls, second_calls, np.zeros(len(calls)) if records is None else records,
            self.class_names.index("S"), self.class_names.index("N"),
            self.plan.second_opinion["min_gap"], shut_calls)

    def _member_beats(self, member: EcgBeatClassifier, record: EcgRecord, beats):
        """The record's beats as a member model cuts them (same beats, its own features)."""
        if member.beat_config == self.beat_config:
            return beats
        # Cut at the positions already aligned (members share the marks' alignment): aligning
        # the same marks again would give the same positions at the cost of another search.
        return extract_beats(record, replace(member.beat_config, align_peaks=None),
                             beats.samples)

    def record_probabilities(self, record: EcgRecord, beats) -> np.ndarray:
        """Class probabilities (N, K) of a record's extracted beats."""
        if self.members:
            probs = np.mean([member.record_probabilities(
                record, self._member_beats(member, record, beats))
                for member in self.members], axis=0)
        else:
            probs = self.probabilities(torch.from_numpy(beats.windows),
                                       torch.from_numpy(beats.rr))
        return self._smoothed(probs, beats.rr)

    def predict_split(self, split: BeatSplit | SplitData) -> np.ndarray:
        """Probabilities for every beat of a split, smoothed within each record (plan)."""
        if not isinstance(split, BeatSplit):
            return super().predict_split(split)
        # Cut once with the plan's beat options: the trees and the smoothing read these features.
        split = split.with_config(self.beat_config)
        return self.smooth_within_records(super().predict_split(split), split)

    def smooth_within_records(self, probs: np.ndarray, split: BeatSplit) -> np.ndarray:
        """Each record's beat probabilities averaged over its similar beats (the plan's
        smoothing); ``split`` cut with this model's beat options."""
        return self._smoothed(probs, split.rr, split.records)

    def _smoothed(self, probs: np.ndarray, features: np.ndarray,
                  records: np.ndarray | None = None) -> np.ndarray:
        """Probabilities averaged over similar beats of each record, when the plan says so
        (``records``: each row's record; None: all rows are one record's)."""
        if not self.plan.smoothing_neighbours:
            return probs
        return ecg_features.smooth_within_records(
            probs, features, np.zeros(len(probs)) if records is None else records,
            feature_names(self.beat_config.feature_set), self.plan.smoothing_neighbours)

    def record_saliency(self, record: EcgRecord, beats, index: np.ndarray,
                        targets: np.ndarray) -> np.ndarray:
        """Saliency (len(index), L) of some beats; a combined model shows its network's."""
        if self.members:
            network = self.members[COMPONENTS.index("cnn")]
            return network.record_saliency(record, self._member_beats(network, record, beats),
                                           index, targets)
        return self.saliency(torch.from_numpy(beats.windows[index]),
                             torch.from_numpy(beats.rr[index]), targets)

    def strip_plot(self, record: EcgRecord, beats, classes: np.ndarray, path: Path) -> Path:
        """10 s strip, beats coloured by class (indices), with an integrated-gradients saliency
        trace."""
        config = self.beat_config
        times = beats.samples / record.fs
        abnormal = np.flatnonzero(classes != self.class_names.index("N"))
        centre = times[abnormal[0]] if len(abnormal) else times[0] + STRIP_SECONDS / 2
        t0 = max(0.0, min(centre - STRIP_SECONDS / 2, record.duration_s - STRIP_SECONDS))
        t1 = t0 + STRIP_SECONDS
        inside = np.flatnonzero((times >= t0) & (times < t1))
        trace_t = np.arange(len(beats.trace)) / config.fs
        shown = (trace_t >= t0) & (trace_t < t1)
        saliency_trace = np.zeros(len(beats.trace))
        if len(inside):
            maps = self.record_saliency(record, beats, inside, classes[inside])
            for row, index in zip(maps, inside, strict=True):
                begin = int(round(beats.samples[index] * config.fs / record.fs)) - config.pre
                cells = np.arange(begin, begin + config.length)
                ok = (cells >= 0) & (cells < len(saliency_trace))
                saliency_trace[cells[ok]] = np.maximum(saliency_trace[cells[ok]], row[ok])
        peak = saliency_trace[shown].max() if shown.any() else 0
        if peak > 0:
            saliency_trace = saliency_trace / peak

        fig = new_figure(13, 4.6)
        top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
        top.plot(trace_t[shown], beats.trace[shown], color="black", lw=0.8)
        for index in inside:
            name = self.class_names[classes[index]]
            colour = CLASS_COLOURS.get(name, "grey")
            # The beat itself: a longer window's start (``BeatConfig.beat_start``) is the
            # cycle before, the previous beat's span.
            start = times[index] - (config.pre - config.beat_start) / config.fs
            top.axvspan(start, times[index] + config.post_s, color=colour, alpha=0.18, lw=0)
            top.text(times[index], 1.02, name, transform=top.get_xaxis_transform(),
                     ha="center", va="bottom", color=colour, fontsize=9, fontweight="bold")
        handles = [Rectangle((0, 0), 1, 1, color=CLASS_COLOURS[c], alpha=0.5)
                   for c in self.class_names]
        top.legend(handles, self.class_names, loc="upper right", ncol=5, fontsize=8)
        top.set_ylabel(f"{beats.lead} (scaled)")
        summary = ", ".join(f"{c} {int((classes == i).sum())}"
                            for i, c in enumerate(self.class_names))
        top.set_title(f"record {record.name}: {t0:.1f}-{t1:.1f} s   beats in record: {summary}",
                      fontsize=10, pad=16)
        bottom.fill_between(trace_t[shown], saliency_trace[shown], color="#d62728", alpha=0.5,
                            lw=0)
        bottom.set_ylabel("TreeSHAP" if self.booster is not None
                          else "IG saliency (CNN)" if self.members else "IG saliency")
        bottom.set_ylim(0, 1.05)
        bottom.set_xlabel("time (s)")
        return save_figure(fig, path)


class EcgSeriesClassifier(_EcgPredictor):
    """Classes of fixed-length ECG series (UCR format), from an ECG series bundle.

    Files are read by :func:`meddx.data.ecg.read_series` at the model's length: one series as a
    column or a row of numbers, or UCR lines (label first). With ``explain_to``, every series
    gets its saliency (|attribution| per sample, scaled to 0-1: integrated gradients for
    networks, occlusion for MiniRocket) and the first four are drawn to a PNG.
    """

    task = SERIES_TASK
    # For the workstation's upload form: one series as a text file of numbers.
    input_suffixes = (".csv", ".tsv", ".txt")
    study_kind = "series"

    @property
    def series_length(self) -> int:
        return int(self.plan.series_length)

    def read_file(self, path: str | Path, max_series: int | None = None) -> SeriesFile:
        """The series of a file, at this model's length (see :func:`read_series`)."""
        return read_series(path, self.series_length, max_series)

    def predict_file(self, path: str | Path, explain_to: Path | None = None,
                     fs: float | None = None, max_series: int | None = None) -> dict[str, Any]:
        """Classify every series of a file; ``predictions`` holds one result per series.

        Args:
            path: Text file of numbers (see :meth:`read_file`).
            explain_to: PNG to draw the first series with their saliency to; also adds each
                series' ``saliency`` to its result.
            fs: Ignored (series have no sampling rate of their own).
            max_series: Refuse files holding more series (the workstation takes one a study).

        Raises:
            InputFileError: the file is not series this model takes.
        """
        del fs
        start = time.perf_counter()
        series = self.read_file(path, max_series)
        name = Path(path).name
        split = SplitData(list(series.values[:, None, :]), np.zeros(len(series.values), np.int64),
                          [f"{name}[{i}]" for i in range(len(series.values))])
        x = series_inputs(split, self.series_length)
        # float64 before rounding: float32 values print as 0.449070006608963, not 0.44907.
        probs = self.probabilities(x, None).astype(np.float64)
        classes = probs.argmax(axis=1)
        uncertainty = _entropy(probs)
        predictions = []
        for i, (p, c) in enumerate(zip(probs, classes, strict=True)):
            item: dict[str, Any] = {
                "series": split.sources[i], "decision": self.class_names[c],
                "probabilities": dict(zip(self.class_names, p.round(5).tolist(), strict=True)),
                "uncertainty": round(float(uncertainty[i]), 4), "threshold": None}
            if series.labels is not None:
                item["reference"] = self._label_name(float(series.labels[i]))
            predictions.append(item)
        result: dict[str, Any] = {"file": str(path), "series": len(predictions),
                                  "length": self.series_length, "layout": series.layout,
                                  "predictions": predictions, "model": self.name}
        if explain_to is not None:
            maps = self.saliency(x, None, classes).astype(np.float64)
            peaks = np.maximum(maps.max(axis=1, keepdims=True), 1e-12)
            for item, row in zip(predictions, maps / peaks, strict=True):
                item["saliency"] = row.round(4).tolist()
            result["explanation_method"] = (
                EXPLANATION_METHOD if self.rocket is not None
                else "integrated gradients (|attribution|, 0-1 per series)")
            result["explanation"] = str(self._plot(x[:4], classes[:4], probs[:4],
                                                   Path(explain_to), maps[:4]))
        result["latency_ms"] = round((time.perf_counter() - start) * 1000, 2)
        return result

    def _label_name(self, value: float) -> str:
        """The class name of a UCR label value (the value itself when the model lacks it)."""
        values = [float(v) for v in self.plan.label_values or []]
        if value in values:
            return self.class_names[values.index(value)]
        return str(int(value)) if value == int(value) else str(value)

    def _plot(self, x: torch.Tensor, classes: np.ndarray, probs: np.ndarray, path: Path,
              maps: np.ndarray | None = None) -> Path:
        maps = self.saliency(x, None, classes) if maps is None else maps
        fig = new_figure(8, 2 * len(x))
        axes = fig.subplots(len(x), 1, squeeze=False)
        for ax, series, sal, c, p in zip(axes[:, 0], x[:, 0].numpy(), maps, classes, probs,
                                         strict=True):
            ax.plot(series, color="black", lw=1)
            ax.scatter(np.arange(len(series)), series, c=sal, cmap="Reds", s=10)
            ax.set_title(f"{self.class_names[c]} (p={p[c]:.2f})", fontsize=9)
        return save_figure(fig, path)


ECG_PREDICTORS = {BEAT_TASK: EcgBeatClassifier, SERIES_TASK: EcgSeriesClassifier}


def predictor_for(metadata: dict[str, Any], state_dict: dict[str, torch.Tensor] | None,
                  device: torch.device | None = None, source: str = "bundle",
                  lgbm_text: str | None = None, **options):
    """The predictor of an ECG task's metadata (used by the recipe before the bundle exists);
    ``options``: further arguments of its class (a beat model's ``second_opinion``)."""
    cls = ECG_PREDICTORS.get(metadata.get("task"))
    if cls is None:
        raise InputFileError(source, f"not an ECG task: {metadata.get('task')!r}")
    return cls(metadata, state_dict, device, source, lgbm_text=lgbm_text, **options)
