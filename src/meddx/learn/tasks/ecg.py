"""Task recipes: ECG beat classification (AAMI N/S/V/F/Q) and fixed-length ECG series (UCR).

Stages, each with a readable artifact: ``make_plan`` (``plan.json``: beat or series options,
network, imbalance handling, augmentation) -> :class:`EcgTask` trained by the one
:class:`~meddx.learn.trainer.Trainer` -> (with ``arch: "auto"``) the architecture with the best
validation score among the candidates -> the bundle.

Class imbalance is severe for beats (MIT-BIH DS1: 90% N, 1.9% S, 0.8% F). It is handled by
drawing each training epoch with class probabilities proportional to ``count ** (1 - power)``
(``imbalance_power`` 0.8 for beats, chosen on the patient-wise DS1 validation records: S beats are
drawn ~12x more often than their share, short of the full balancing that makes the network
memorise the few S-rich patients), or by a class-weighted loss; the counts, the method and the
resulting class shares are reported in the bundle.
Validation is patient-wise (see :class:`~meddx.data.ecg.BeatDataset`), and the best epoch is the
one with the highest validation macro-F1 over the classes with at least 10 validation beats.
Beats have a second model kind, ``plan.model: "lightgbm"``: gradient-boosted trees on per-beat
RR and morphology features (:mod:`meddx.learn.tasks.ecg_features`); ``model: "cnn"`` for a
network; ``model: "cnn+lightgbm"``, the default, trains both on the same records and averages
their probabilities (equal weights: 4 validation records cannot tune a weight). Validation
macro-F1 over N/S/V on the seed-0 DS1 split: both averaged 0.920, LightGBM 0.912, CNN 0.905.
Series have two model kinds: ``model: "cnn"`` (the 1D networks, seed ensembles with
``--ensemble``) and ``model: "minirocket"``, MiniRocket features with a logistic regression
(:mod:`meddx.learn.tasks.ecg_rocket`); :data:`DEFAULT_SERIES_MODEL` says which is the default.
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import f1_score
from torch import nn
from torch.nn import functional

from meddx.data.datasets import SplitData
from meddx.data.ecg import (
    TREE_FEATURE_SETS,
    BeatConfig,
    BeatDataset,
    BeatSplit,
    SeriesDataset,
    feature_names,
    resample_signal,
)
from meddx.errors import ConfigError, DataError
from meddx.fileio import write_json
from meddx.learn.ensemble import has_checkpoint
from meddx.learn.evaluate import evaluate_split
from meddx.learn.evaluation.metrics import classification_metrics
from meddx.learn.networks1d import ARCHITECTURES, Network1DSpec, build_network1d
from meddx.learn.tasks import PLAN_FILE, FitOutput, resolve_plan
from meddx.learn.trainer import KEEP_LAST, TrainConfig, Trainer

log = logging.getLogger(__name__)

BEAT_TASK = "ecg-beat-classification"
SERIES_TASK = "ecg-series-classification"
TASK_NAME = BEAT_TASK
IMBALANCE_MODES = ("sampler", "weighted_loss", "none")
COMBINED = "cnn+lightgbm"
MODELS = ("cnn", "lightgbm", COMBINED)
"""Beat model kinds: a 1D network (``network.arch``), gradient-boosted trees on the per-beat
features (:mod:`meddx.learn.tasks.ecg_features`), or both with their probabilities averaged."""
SERIES_MODELS = ("cnn", "minirocket")
"""Series model kinds: a 1D network (``network.arch``, a seed ensemble with ``--ensemble``) or
MiniRocket features + logistic regression (:mod:`meddx.learn.tasks.ecg_rocket`)."""
# Picked by stratified 5-fold CV on the 100 ECG200 TRAIN series (benchmarks/ecg.py part
# ecg200_selection, the same folds and seeds for every kind; TEST not read), by accuracy, the
# selection metric fixed before the comparison: InceptionTime ensemble of 5 0.89 (log-loss 0.66),
# one InceptionTime network 0.88 (0.93), MiniRocket 0.86 (0.35; 0.86 with three seeds). The
# networks stay the default. MiniRocket's probabilities are the better ones (log-loss 0.35 vs
# 0.66, Brier 0.096 vs 0.098) and it fits in ~1 s instead of ~5 min a network; averaging it with
# the ensemble gave 0.88 (2 series more than MiniRocket alone, McNemar p 0.5), so no combination.
DEFAULT_SERIES_MODEL = "cnn"
COMPONENTS = ("cnn", "lightgbm")
"""The members of a ``cnn+lightgbm`` model, in the order their probabilities are averaged."""
# Per-beat features each kind was tuned with: the networks the 5 RR features, the trees the
# RR + morphology set of both leads with the rhythm's irregularity (a combined model cuts both).
# "two_lead" over "full", on the pooled 5-fold leave-records-out CV of DS1 (training data; the
# independent test is DS2): cnn+lightgbm macro-F1 0.468 vs 0.462, S F1 0.450 vs 0.438, V F1
# 0.893 vs 0.877 (benchmarks/ecg.py, keys mitdb_cnn+lightgbm[_two_lead]).
MODEL_FEATURE_SET = {"cnn": "rr", "lightgbm": "two_lead", COMBINED: "two_lead"}
# Similar beats of the same record each beat's probabilities are averaged with (see
# ecg_features.smooth_over_similar_beats). Chosen on the pooled 5-fold leave-records-out CV of DS1
# (training data; DS2 is the independent test) among 10/15/20/30 neighbours and kernel widths of
# 0.5/1/2 x the record's typical 20th-neighbour distance: cnn+lightgbm S Se/+P 0.501/0.408 ->
# 0.505/0.487, V 0.898/0.888 -> 0.900/0.909; lightgbm alone S 0.464/0.348 -> 0.468/0.400, V
# 0.860/0.891 -> 0.868/0.919. Isolated ectopic beats (records with <= 20 of the class) keep their
# calls (S 18/32, V 31/35 before and after), unlike plain neighbour averaging (S 18/32 -> 10/32).
# Then more neighbours, checked on 6 partitions of the DS1 patients into folds (benchmarks/ecg.py
# --parts partitions; rules fixed before each step), mean of S-F1 and V-F1 averaged over them:
# 20 0.718, 40 0.726, 120 0.744, 360 0.762 (each step higher on all 6; S Se/+P 0.673/0.447 at 20,
# 0.649/0.611 at 360; V Se 0.876 -> 0.881), isolated ectopic beats keeping their calls (S 18/32,
# V 27/35 at 120 and 360). Records of fewer than 3,600 beats (every 30-min MIT-BIH record) get
# one neighbour per 10 beats: in effect each beat votes with the tenth of its record most like it.
SMOOTHING_NEIGHBOURS = 360
S_OVER_N_ODDS = 1.5
"""A ``cnn+lightgbm`` beat model without the rhythm-irregularity feature calls a beat S rather
than N when 1.5 p(S) > p(N), at any rhythm (with the feature: :data:`S_OVER_N_ODDS_REGULAR`).
Screened on the out-of-fold probabilities of 6 partitions of DS1 (S Se/+P 0.633/0.722 -> 0.730/
0.641, V unchanged), then confirmed on 6 partitions no choice had used, by a rule fixed before:
S Se 0.589 -> 0.694 (higher on 6 of 6), S +P 0.645, macro-F1 0.513 -> 0.518 (benchmarks/ecg.py,
docs/ecg-experiments.md, E21). The issue's S targets (Se 0.80, +P 0.60) against the default's
+P margin."""
IRREGULAR_S_MARGIN = 3.0
"""The ``cnn+lightgbm`` default's margin for S calls outside regular rhythm, in records where
the second opinion's gate stays shut (``EcgPlan.irregular_s_margin``, scope ``gate_shut``): an S
call there stands only where p(S) >= 3 p(N), since in atrial fibrillation a short RR does not
make a beat supraventricular ectopic. Looked at after E33 on its saved files, then E36's rule
written before seeds 66-71 were read. On those 6 partitions of DS1: mean of S-F1 and V-F1
0.838 -> 0.861 (higher on 6 of 6), S Se/+P 0.754/0.761 -> 0.745/0.870, V unchanged, macro-F1
0.540 -> 0.549; S-rich records cut down to their S beats keep their S calls (mean S Se 0.410
either way), where the margin in every record cut it to 0.219 (docs/ecg-experiments.md,
E34-E36)."""
IRREGULAR_S_MARGIN_SCOPES = ("all_records", "gate_shut")
"""Where ``EcgPlan.irregular_s_margin`` applies (see ``EcgPlan.irregular_s_margin_scope``)."""
IRREGULARITY_FEATURE = "rr_irregularity_long"
"""The beat feature ``EcgPlan.s_over_n_max_irregularity`` reads."""
S_OVER_N_MAX_IRREGULARITY = 0.2
"""The default's S-over-N odds apply only to beats whose ``rr_irregularity_long`` (mean absolute
successive RR difference over +-50 beats, relative to their mean RR) is below 0.2: in atrial
fibrillation a short RR does not make a beat supraventricular ectopic, and annotators call such
beats N. Screened on the out-of-fold probabilities of DS1 partitions 0-5 (S Se/+P 0.730/0.641 ->
0.719/0.735, mean S/V F1 0.793 -> 0.815, higher on 6 of 6), then confirmed on partitions 18-23,
which no choice had used, by a rule fixed before: S 0.559/0.523 -> 0.549/0.623, mean S/V F1 0.726
-> 0.746 (6 of 6), macro-F1 0.499 -> 0.507, V unchanged (docs/ecg-experiments.md, E23)."""
S_OVER_N_ODDS_REGULAR = 2.0
"""The default's S-over-N odds where the rhythm limit applies them (regular rhythm only): an N
call becomes S when 2 p(S) > p(N). With E23's limit, false S calls in atrial fibrillation no
longer pay for higher odds. Among 1.25/1.5/2/2.5/3 on the out-of-fold probabilities of DS1
partitions 0-5 and 18-23, 2 was the best odds higher than 1.5 on at least 8 of the 12 (mean S/V
F1 0.780 -> 0.797, 9 of 12; 3 scored higher on average, 0.819, on 7 of 12 only, its gains steps
where one record's beats cross together), then confirmed on partitions 24-29, which no choice had
used, by a rule fixed before: mean S/V F1 0.803 -> 0.829 (6 of 6), S Se/+P 0.630/0.793 ->
0.703/0.802, macro-F1 0.525 -> 0.536, V unchanged (docs/ecg-experiments.md, E24)."""
SECOND_OPINION_BEAT_OPTIONS = ("anchor_beats", "align_peaks", "local_beats", "lead",
                               "highpass_hz", "lowpass_hz", "mains_hz")
"""Beat options a second opinion may change: how the features are taken, not which they are."""
SECOND_OPINION = {"beat": {"anchor_beats": "not_premature"}, "min_gap": 0.05}
"""The ``cnn+lightgbm`` default's second opinion for S beats (``EcgPlan.second_opinion``): the
same model with the record's median beat, median RR and P-wave spread taken over its beats that
are not premature, so that they stay the patient's own where ectopic beats are the majority
(DS2's record 232). Alone it loses on DS1 (mean S/V F1 0.829 -> 0.779 on 6 partitions, E26);
asked only where it calls >= 5% more of a record's beats S than the model does, it changed no DS1
record on 12 partitions (the largest gap 0.049, 203's atrial fibrillation), while on the S-rich
records cut down to their S beats (``--parts s_majority``) mean S Se rose 0.066 -> 0.410 (E28,
E29 in docs/ecg-experiments.md). Built, on 12 fresh partitions it fired twice, both on 203
(mean S/V F1 0.824 -> 0.8195 on seeds 42-47, 0.7857 -> 0.7817 on 48-53, inside E29's
limits)."""
SECOND_OPINION_LIMITATION = (
    "The second opinion for S beats was tested on DS1 records cut down to their S beats, "
    "standing in for records where S beats are the majority; no such whole record was at hand. "
    "On whole DS1 records it changed calls in 2 of 25 cross-validation partitions, both times "
    "in atrial fibrillation (record 203), where it added false S calls.")
SECOND_OPINION_DIR = "second_opinion"
"""The bundle folder of the second opinion's LightGBM text."""
SECOND_OPINION_PREFIX = f"{SECOND_OPINION_DIR}."
"""The key prefix of the second opinion's network weights in the bundle's weights."""
# Class-weighted trees, weights (n / n_class) ** 0.5 (chosen on DS1 validation).
LGBM_IMBALANCE = ("weighted_loss", 0.5)
# Picked on the patient-wise DS1 validation records (benchmarks/ecg.py --parts models, seed-0
# split, macro-F1 over N/S/V): CNN + LightGBM averaged 0.920, LightGBM 0.912, InceptionTime CNN
# 0.905 (a small margin on 4 records, for ~8x LightGBM's training time).
DEFAULT_BEAT_MODEL = COMBINED
SELECTION_METRICS = ("macro_f1", "neg_log_loss", "accuracy", KEEP_LAST)
TRAIN_AND_VAL = "train+val"
FIT_ON = ("train", TRAIN_AND_VAL)
"""What the final model is fitted on. ``train+val`` is the default for beats and for series
models that select nothing on validation; series models that do (``arch: auto``, an epoch
selection metric) keep ``train`` (untested: a refit would double their training).
Beats, pooled 5-fold leave-records-out CV of DS1 (training data; DS2 is the independent test),
default cnn+lightgbm smoothed, selection on the validation records then a refit on train + val
with the chosen boosting rounds, the network stopping at its chosen epoch on the selection run's
schedule: S Se/+P 0.505/0.487 -> 0.752/0.531, V 0.900/0.909 -> 0.893/0.939, macro-F1 0.481 ->
0.510 (the rule fixed before the run: adopt if macro-F1 rises; the schedule compressed into the
chosen epochs instead gave 0.726/0.556, 0.893/0.915); trees alone S 0.468/0.400 -> 0.659/0.486.
Those runs early-stopped the trees on the weighted log-loss; the default stops them on its N/S/V
beats only (see ecg_features): S 0.751/0.532, V 0.893/0.940, macro-F1 0.510 (all with 20
smoothing neighbours).
More patients, not more beats: 2-5 more records per fold. Series, 5-fold CV of the 100 ECG200
TRAIN series, all 80 series of each fold's training part instead of 64: InceptionTime x5 0.89 ->
0.93 accuracy, one network 0.88 -> 0.92, MiniRocket 0.86 -> 0.89 (benchmarks/ecg.py, parts mitdb
and ecg200_selection)."""

# Defaults chosen on validation data (patient-wise DS1 validation records for beats, the
# stratified validation part of the training files for series): see benchmarks/ecg.py and the
# README's ECG section and docs/ecg-experiments.md for the comparison.
DEFAULT_BEAT_ARCH = "inception"
DEFAULT_SERIES_ARCH = "inception"
DEFAULT_OPTIONS: dict[str, dict[str, dict[str, Any]]] = {
    "beats": {
        "resnet": {"widths": [24, 48, 48]},
        "inception": {"filters": 8, "depth": 3, "kernels": [15, 9, 5], "bottleneck": 8},
        "gru": {"hidden": 32, "layers": 1, "stem": 16},
        "lstm": {"hidden": 32, "layers": 1, "stem": 16},
        "transformer": {"d_model": 32, "layers": 2, "heads": 4, "patch": 4},
    },
    "series": {
        "resnet": {"widths": [32, 64, 64], "stem_stride": 1},
        "inception": {"filters": 16, "depth": 6, "kernels": [39, 19, 9], "bottleneck": 16},
        "gru": {"hidden": 32, "layers": 1, "stem": 16},
        "lstm": {"hidden": 32, "layers": 1, "stem": 16},
        "transformer": {"d_model": 32, "layers": 2, "heads": 4, "patch": 4},
    },
}
AUTO_CANDIDATES = ("resnet", "inception", "gru", "transformer")
LIMITATIONS = {
    BEAT_TASK: [
        "Trained on few patients (MIT-BIH DS1: 22 records, 1975-79 Holter recordings, one lead); "
        "performance on other patients, recorders and leads is unknown until validated locally.",
        "Supraventricular (S) and fusion (F) beats are rare and vary between patients: expect "
        "lower sensitivity and positive predictive value for them than for V beats.",
        "Beats are taken from reference annotations when a record has them, else from an R-peak "
        "detector; missed or extra detections are not corrected.",
        "Paced records are outside the intended use (excluded from DS1, as in de Chazal 2004).",
        "Confidence intervals are 95% bootstrap intervals over beats; beats of one patient are "
        "correlated, so the intervals are too narrow for new patients.",
        "Integrated-gradients saliency shows which samples moved the decision, not why.",
    ],
    SERIES_TASK: [
        "Trained on one small public set of single heartbeats (UCR); other recorders, "
        "populations and beat extraction methods are untested.",
        "Inputs of another length are resampled to the training length; each series is "
        "z-normalised, so amplitude information is discarded.",
        "Confidence intervals are 95% bootstrap intervals over series.",
    ],
}


@dataclass
class EcgPlan:
    """Everything an ECG model needs besides the data; saved as ``plan.json`` and in the bundle.

    Attributes:
        task: :data:`BEAT_TASK` or :data:`SERIES_TASK`.
        class_names: Class names in label order.
        network: :class:`~meddx.learn.networks1d.Network1DSpec` as a dict.
        beat_config: :class:`~meddx.data.ecg.BeatConfig` as a dict (beats only).
        series_length: Input length of series models (other lengths are resampled).
        label_values: The UCR label value of each class (series only).
        batch_size: Training batch size.
        eval_batch_size: Inference batch size.
        imbalance: ``sampler`` (class-tempered epoch sampling), ``weighted_loss`` or ``none``.
        imbalance_power: 1 = fully balanced, 0.5 = square-root tempered, 0 = natural.
        tree_imbalance_power: The class-weight power of a ``cnn+lightgbm`` model's trees
            (its ``imbalance_power`` is the network's; a ``lightgbm`` model's is its own).
        record_balance_power: Beats: within each class, a training beat's weight (the
            network's draws, ``imbalance: sampler``; the trees' rows) is divided by its
            record's beats of that class to this power
            (:func:`meddx.learn.tasks.ecg_features.record_balance`); 0 = class weights only,
            the default and the value of bundles written before it existed (0.5 raised S Se
            on every DS1 partition it ran but failed its confirmation: E32 in
            docs/ecg-experiments.md).
        synthetic_premature: Beats: add synthetic S beats to the training beats, N beats of
            the training records made premature, alone or in runs
            (:mod:`meddx.learn.tasks.ecg_synthetic`; options
            :data:`~meddx.learn.tasks.ecg_synthetic.PREMATURE_OPTIONS`, ``{}`` for those
            defaults); None: off, the default and the value of bundles written before it
            existed (``{}`` raised mean S Se 0.642 -> 0.780 on 6 DS1 partitions but scored
            lower on 2 of them, so it failed its screen: E33 in docs/ecg-experiments.md).
        epoch_size: Inputs drawn per epoch (None: the training set size).
        label_smoothing: Cross-entropy label smoothing.
        augment: ``scale`` (amplitude sd), ``noise`` (sd), ``shift`` (max samples), ``baseline``.
        selection: Validation metric that picks the best epoch, or ``final`` for the model
            after the last epoch (fixed-length training, as InceptionTime does on small UCR
            sets, where a 20-series validation split cannot tell epochs apart).
        compare_by: Validation metric of the final models that picks the architecture (``auto``).
        arch_candidates: Architectures tried when the plan's arch is ``auto``.
        model: ``cnn`` (the 1D network of ``network``), ``lightgbm`` or ``cnn+lightgbm``
            (beats only: boosted trees on the beat features,
            :mod:`meddx.learn.tasks.ecg_features`), ``minirocket`` (series only:
            :mod:`meddx.learn.tasks.ecg_rocket`).
        lightgbm: LightGBM parameters merged over the recipe's defaults.
        smoothing_neighbours: Beats with tree features only: average each beat's
            probabilities with those of this many similar beats of the same record
            (:func:`meddx.learn.tasks.ecg_features.smooth_over_similar_beats`); 0 = off, the
            value of bundles written before it existed.
        minirocket: MiniRocket options (``num_kernels``, ``max_dilations_per_kernel``, ``C``)
            merged over :data:`meddx.learn.tasks.ecg_rocket.ROCKET_DEFAULTS` (series only).
        s_over_n_odds: Beats: a beat the arg-max calls N is called S when this times p(S)
            exceeds p(N); V, F and Q calls are left alone (a decision rule, not a reweighting:
            no class weights give it). 1 = the arg-max, the value of bundles written before it
            existed; ``cnn+lightgbm`` plans get :data:`S_OVER_N_ODDS_REGULAR` with a rhythm
            limit, :data:`S_OVER_N_ODDS` without.
        s_over_n_max_irregularity: Beats: the S-over-N odds apply only where the beat's
            ``rr_irregularity_long`` feature is below this (regular rhythm, not atrial
            fibrillation); None = everywhere, the value of bundles written before it existed;
            ``cnn+lightgbm`` plans get :data:`S_OVER_N_MAX_IRREGULARITY`.
        irregular_s_margin: Beats: an S call where the rhythm is not regular (the beat's
            ``rr_irregularity_long`` at or above ``s_over_n_max_irregularity``) stands only
            where p(S) is at least this times p(N), or becomes N. 1 = off (an S call there is
            the arg-max, so p(S) >= p(N) already), the value of bundles written before it
            existed; ``cnn+lightgbm`` plans with a second opinion and the rhythm limit get
            :data:`IRREGULAR_S_MARGIN` where the gate stays shut. In every record, 3 raised S
            +P on fresh DS1 partitions but took most S calls away in records whose S beats are
            the majority, which read as irregular (docs/ecg-experiments.md, E34, E35). Where,
            by ``irregular_s_margin_scope``.
        irregular_s_margin_scope: ``all_records``: both opinions decide with the margin, then
            the second opinion's gate (E34, E35); ``gate_shut`` (needs a second opinion; the
            default where there is one): the gate is read on the calls without the margin,
            records where it opens keep those gated calls, the others take the first opinion's
            calls with the margin (E36).
        second_opinion: Beats, ``cnn+lightgbm``: ``{"beat": {...}, "min_gap": g}``, a second
            model on the same records, the same plan with these beat options (from
            :data:`SECOND_OPINION_BEAT_OPTIONS`). In a record where it calls S on a share of the
            beats at least ``g`` above this model's share, a beat this model calls N and it
            calls S becomes S; other records keep this model's calls. None: no second model,
            the value of bundles written before it existed; the default:
            :data:`SECOND_OPINION`.
        fit_on: ``train``, or ``train+val``: the final model is fitted on the validation part
            too (a model that selects on it is first fitted on train, then refitted with
            what it chose) and the bundle has no validation figures of its own (see
            :data:`FIT_ON`); ``train`` is the value of bundles written before it existed.
    """

    task: str
    class_names: list[str]
    network: dict[str, Any]
    beat_config: dict[str, Any] | None = None
    series_length: int | None = None
    label_values: list[float] | None = None
    batch_size: int = 128
    eval_batch_size: int = 1024
    imbalance: str = "sampler"
    imbalance_power: float = 0.5
    tree_imbalance_power: float = LGBM_IMBALANCE[1]
    record_balance_power: float = 0.0
    synthetic_premature: dict[str, Any] | None = None
    epoch_size: int | None = None
    label_smoothing: float = 0.0
    augment: dict[str, float] = field(default_factory=lambda: {
        "scale": 0.1, "noise": 0.02, "shift": 3, "baseline": 0.05})
    selection: str = "macro_f1"
    compare_by: str = "macro_f1"
    arch_candidates: list[str] = field(default_factory=list)
    model: str = "cnn"
    lightgbm: dict[str, Any] = field(default_factory=dict)
    smoothing_neighbours: int = 0
    minirocket: dict[str, Any] = field(default_factory=dict)
    fit_on: str = "train"
    s_over_n_odds: float = 1.0
    s_over_n_max_irregularity: float | None = None
    irregular_s_margin: float = 1.0
    irregular_s_margin_scope: str = "all_records"
    second_opinion: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EcgPlan:
        return cls(**data)

    @property
    def is_beats(self) -> bool:
        return self.task == BEAT_TASK

    @property
    def selects_on_validation(self) -> bool:
        """Whether training picks anything (epoch, architecture, early stop) on validation."""
        return self.is_beats or (self.model != "minirocket" and (
            self.selection != KEEP_LAST or bool(self.arch_candidates)))


def make_plan(dataset: BeatDataset | SeriesDataset,
              overrides: dict[str, Any] | None = None) -> EcgPlan:
    """Sensible defaults for the dataset; ``overrides`` win.

    Recognised overrides: ``arch`` (one of the architectures or ``auto``), ``network_options``,
    ``beat`` (dict of :class:`~meddx.data.ecg.BeatConfig` fields), ``arch_candidates`` and every
    :class:`EcgPlan` field.
    """
    overrides = dict(overrides or {})
    overrides_given = dict(overrides)
    beats = isinstance(dataset, BeatDataset)
    family = "beats" if beats else "series"
    arch = overrides.pop("arch", None) or (DEFAULT_BEAT_ARCH if beats else DEFAULT_SERIES_ARCH)
    if arch != "auto" and arch not in ARCHITECTURES:
        raise ConfigError(f"unknown ECG network {arch!r}; choose auto or one of "
                          f"{', '.join(ARCHITECTURES)}")
    options = overrides.pop("network_options", None)
    # Asking for a network (arch or its options) means the CNN model kind.
    asks_network = overrides_given.get("arch") is not None or options is not None
    model = overrides.pop("model", None) or (
        "cnn" if asks_network else DEFAULT_BEAT_MODEL if beats else DEFAULT_SERIES_MODEL)
    kinds = MODELS if beats else SERIES_MODELS
    if model not in kinds:
        raise ConfigError(f"ECG model {model!r} is not one for {family}; choose "
                          + " or ".join(kinds))
    if model == "minirocket" and asks_network:
        raise ConfigError("plan options arch / network_options are for model cnn, not "
                          "minirocket (its options go in plan.minirocket)")
    if beats:
        beat_options = dict(overrides.pop("beat", {}))
        beat_options.setdefault("feature_set", MODEL_FEATURE_SET[model])
        config = BeatConfig.from_dict({**dataset.config.to_dict(), **beat_options})
        # The network of a combined model keeps the 5 RR features it was tuned with.
        n_extra = len(feature_names("rr")) if model == COMBINED else config.n_rr
        spec = dict(in_channels=config.in_channels, length=config.length, n_extra=n_extra)
        plan = EcgPlan(task=BEAT_TASK, class_names=list(dataset.class_names), network={},
                       beat_config=config.to_dict(), batch_size=128, imbalance="sampler",
                       imbalance_power=0.8, epoch_size=8192, selection="macro_f1",
                       # Strong amplitude/noise/shift augmentation: the network must not
                       # memorise the few training patients' morphology (chosen on DS1 val).
                       augment={"scale": 0.2, "noise": 0.05, "shift": 5, "baseline": 0.1},
                       model=model)
        if model == "lightgbm":
            plan.imbalance, plan.imbalance_power = LGBM_IMBALANCE
        if model != "cnn":
            plan.smoothing_neighbours = SMOOTHING_NEIGHBOURS
        if model == COMBINED:
            plan.s_over_n_odds, plan.s_over_n_max_irregularity = default_s_over_n(
                config.feature_set)
            if config.anchor_beats != SECOND_OPINION["beat"]["anchor_beats"]:
                plan.second_opinion = copy.deepcopy(SECOND_OPINION)
    else:
        spec = dict(in_channels=1, length=dataset.length, n_extra=0)
        plan = EcgPlan(task=SERIES_TASK, class_names=list(dataset.class_names), network={},
                       series_length=dataset.length, label_values=list(dataset.label_values),
                       batch_size=16, imbalance="weighted_loss", imbalance_power=0.5,
                       selection=KEEP_LAST,
                       augment={"scale": 0.1, "noise": 0.03, "shift": 4, "baseline": 0.0})
    candidates = overrides.pop("arch_candidates", None) or list(AUTO_CANDIDATES)
    plan.arch_candidates = list(candidates) if arch == "auto" else []
    first = candidates[0] if arch == "auto" else arch
    plan.network = Network1DSpec(
        arch=first, num_classes=len(dataset.class_names),
        options=dict(options if options is not None else DEFAULT_OPTIONS[family][first]),
        **spec).to_dict()
    if model == "minirocket":
        plan.model, plan.network, plan.arch_candidates = model, {"arch": "minirocket"}, []
    for key, value in overrides.items():
        if not hasattr(plan, key):
            raise ConfigError(f"unknown plan option {key!r}")
        setattr(plan, key, value)
    if (plan.model == COMBINED and plan.second_opinion is not None
            and plan.s_over_n_max_irregularity is not None):
        if "irregular_s_margin" not in overrides:
            plan.irregular_s_margin = IRREGULAR_S_MARGIN
        if "irregular_s_margin_scope" not in overrides:
            plan.irregular_s_margin_scope = "gate_shut"
    if "fit_on" not in overrides and (plan.is_beats or not plan.selects_on_validation):
        plan.fit_on = TRAIN_AND_VAL
    if plan.imbalance not in IMBALANCE_MODES:
        raise ConfigError(f"imbalance must be one of {IMBALANCE_MODES}, got {plan.imbalance!r}")
    for name in ("imbalance_power", "tree_imbalance_power", "record_balance_power"):
        power = getattr(plan, name)
        if not (_is_number(power) and 0 <= power <= 1):
            raise ConfigError(f"{name} must be a number from 0 (natural) to 1 (balanced), "
                              f"got {power!r}")
    if plan.record_balance_power and not (plan.is_beats and (
            plan.model != "cnn" or plan.imbalance == "sampler")):
        raise ConfigError("record_balance_power needs a beat model whose network samples "
                          "(imbalance sampler) or that has trees; it would change nothing here")
    if plan.synthetic_premature is not None:
        from meddx.learn.tasks.ecg_synthetic import premature_options

        if not (plan.is_beats and {"N", "S"} <= set(plan.class_names)):
            raise ConfigError("synthetic_premature needs a beat model with classes N and S")
        premature_options(plan.synthetic_premature)
    if plan.selection not in SELECTION_METRICS:
        raise ConfigError(f"selection must be one of {SELECTION_METRICS}, got "
                          f"{plan.selection!r}")
    if plan.compare_by not in SELECTION_METRICS[:-1]:
        raise ConfigError(f"compare_by must be one of {SELECTION_METRICS[:-1]}, got "
                          f"{plan.compare_by!r}")
    if plan.is_beats and plan.model != "cnn" and (plan.beat_config.get("feature_set")
                                                  not in TREE_FEATURE_SETS):
        raise ConfigError(f"model {plan.model} needs beat option feature_set in "
                          f"{TREE_FEATURE_SETS}")
    if plan.smoothing_neighbours and (not plan.is_beats or plan.model == "cnn"):
        raise ConfigError("smoothing_neighbours needs a beat model with tree features "
                          f"(lightgbm or {COMBINED}), not {plan.model}")
    if not isinstance(plan.smoothing_neighbours, int) or plan.smoothing_neighbours < 0:
        raise ConfigError(f"smoothing_neighbours must be a whole number >= 0, got "
                          f"{plan.smoothing_neighbours!r}")
    if not (_is_number(plan.s_over_n_odds) and plan.s_over_n_odds > 0):
        raise ConfigError(f"s_over_n_odds must be a number > 0, got {plan.s_over_n_odds!r}")
    limit = plan.s_over_n_max_irregularity
    if limit is not None and not (_is_number(limit) and limit > 0):
        raise ConfigError(f"s_over_n_max_irregularity must be a number > 0 or null, got "
                          f"{limit!r}")
    if plan.s_over_n_odds != 1 and not (plan.is_beats and {"N", "S"} <= set(plan.class_names)):
        raise ConfigError("s_over_n_odds needs a beat model with classes N and S")
    if limit is not None and (not plan.is_beats or IRREGULARITY_FEATURE not in feature_names(
            plan.beat_config.get("feature_set", "rr"))):
        raise ConfigError(f"s_over_n_max_irregularity needs beat option feature_set two_lead "
                          f"(its {IRREGULARITY_FEATURE} feature)")
    if not (_is_number(plan.irregular_s_margin) and plan.irregular_s_margin >= 1):
        raise ConfigError(f"irregular_s_margin must be a number >= 1 (1 = off), got "
                          f"{plan.irregular_s_margin!r}")
    if plan.irregular_s_margin != 1 and limit is None:
        raise ConfigError("irregular_s_margin needs s_over_n_max_irregularity (the limit of "
                          "regular rhythm)")
    if plan.irregular_s_margin_scope not in IRREGULAR_S_MARGIN_SCOPES:
        raise ConfigError(f"irregular_s_margin_scope must be one of {IRREGULAR_S_MARGIN_SCOPES}"
                          f", got {plan.irregular_s_margin_scope!r}")
    if plan.irregular_s_margin_scope == "gate_shut" and plan.second_opinion is None:
        raise ConfigError("irregular_s_margin_scope gate_shut needs a second_opinion (its gate)")
    if plan.second_opinion is not None:
        second_opinion_plan(plan)  # a bad second opinion fails before any fit
    if plan.fit_on not in FIT_ON:
        raise ConfigError(f"fit_on must be one of {FIT_ON}, got {plan.fit_on!r}")
    for name in plan.arch_candidates:
        if name not in ARCHITECTURES:
            raise ConfigError(f"arch_candidates: unknown network {name!r}")
    if plan.model == "minirocket":
        from meddx.learn.tasks.ecg_rocket import rocket_options

        rocket_options(plan)  # unknown or bad MiniRocket options fail before any fit
    return plan


def _is_number(value: Any) -> bool:
    """A plan value that is an int or a float (a bool is not, though Python counts it an int)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def default_s_over_n(feature_set: str) -> tuple[float, float | None]:
    """The ``cnn+lightgbm`` default's S-over-N odds and rhythm limit for a beat feature set:
    :data:`S_OVER_N_ODDS_REGULAR` below :data:`S_OVER_N_MAX_IRREGULARITY` where the features
    hold :data:`IRREGULARITY_FEATURE`, :data:`S_OVER_N_ODDS` at any rhythm where they do not."""
    if IRREGULARITY_FEATURE in feature_names(feature_set):
        return S_OVER_N_ODDS_REGULAR, S_OVER_N_MAX_IRREGULARITY
    return S_OVER_N_ODDS, None


def second_opinion_plan(plan: EcgPlan) -> EcgPlan:
    """The plan of a beat plan's second opinion (``EcgPlan.second_opinion``), checked."""
    option = plan.second_opinion
    if not plan.is_beats or plan.model != COMBINED or "S" not in plan.class_names:
        raise ConfigError(f"second_opinion needs a {COMBINED} beat model with class S")
    if not isinstance(option, dict) or set(option) - {"beat", "min_gap"}:
        raise ConfigError('second_opinion must be null or {"beat": {...}, "min_gap": number}, '
                          f"got {option!r}")
    gap = option.get("min_gap")
    if not (_is_number(gap) and 0 < gap <= 1):
        raise ConfigError(f"second_opinion.min_gap must be a share of beats in (0, 1], got {gap!r}")
    beat = option.get("beat")
    if not isinstance(beat, dict) or not beat or set(beat) - set(SECOND_OPINION_BEAT_OPTIONS):
        raise ConfigError(f"second_opinion.beat must set some of {SECOND_OPINION_BEAT_OPTIONS}, "
                          f"got {beat!r}")
    config = BeatConfig.from_dict({**plan.beat_config, **beat}).to_dict()
    if config == plan.beat_config:
        raise ConfigError("second_opinion.beat changes nothing: the second model would be the "
                          "first")
    data = {**plan.to_dict(), "beat_config": config, "second_opinion": None}
    if plan.irregular_s_margin_scope == "gate_shut":  # its gate reads calls without the margin
        data.update(irregular_s_margin=1.0, irregular_s_margin_scope="all_records")
    return EcgPlan.from_dict(data)


def second_opinion_gaps(calls: np.ndarray, second: np.ndarray, records: np.ndarray,
                        s_index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What the second opinion's gate reads, per record: the records (sorted), how many more
    of each record's beats ``second`` calls S than ``calls`` does, and each record's beats.
    In beats, not shares: 0.3 - 0.1 is below 0.2 in floating point."""
    names, inverse, beats = np.unique(records, return_inverse=True, return_counts=True)
    more = (np.bincount(inverse, np.asarray(second) == s_index, len(names))
            - np.bincount(inverse, np.asarray(calls) == s_index, len(names)))
    return names, more, beats


def second_opinion_opens(calls: np.ndarray, second: np.ndarray, records: np.ndarray,
                         s_index: int, min_gap: float) -> np.ndarray:
    """Whether each beat's record opens the second opinion's gate: ``second`` calls S on a
    share of its beats at least ``min_gap`` above ``calls``' share."""
    names, more, beats = second_opinion_gaps(calls, second, records, s_index)
    return np.isin(records, names[more >= min_gap * beats - 1e-9])


def second_opinion_calls(calls: np.ndarray, second: np.ndarray, records: np.ndarray,
                         s_index: int, n_index: int, min_gap: float,
                         shut_calls: np.ndarray | None = None,
                         margin_calls: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Beat classes (indices) with a second opinion: in each record where the gate opens
    (:func:`second_opinion_opens`), the beats ``calls`` calls N and ``second`` calls S become
    S (see ``EcgPlan.second_opinion``). ``shut_calls``: the calls of the records where it stays
    shut (``irregular_s_margin_scope`` gate_shut); None: ``calls``. ``margin_calls``: the
    (first, second) opinions' calls that the gate, read on ``calls`` and ``second``, is applied
    to in every record instead (the margin scopes E39 and E40 compared, not built)."""
    opens = second_opinion_opens(calls, np.asarray(second), records, s_index, min_gap)
    if margin_calls is not None:
        calls, second = margin_calls
    elif shut_calls is not None:
        calls = np.where(opens, calls, shut_calls)
    calls = np.array(calls, copy=True)
    calls[opens & (calls == n_index) & (np.asarray(second) == s_index)] = s_index
    return calls


def beat_decisions(probs: np.ndarray, class_names: list[str], s_over_n_odds: float = 1.0,
                   regular: np.ndarray | None = None,
                   irregular_s_margin: float = 1.0) -> np.ndarray:
    """Each beat's class (indices) from its probabilities: the arg-max, except that an N call
    becomes S when ``s_over_n_odds`` times p(S) exceeds p(N) (see ``EcgPlan.s_over_n_odds``),
    on the beats ``regular`` marks (None: every beat; see :func:`regular_rhythm`), and that an
    S call on the other beats becomes N unless p(S) >= ``irregular_s_margin`` times p(N) (see
    ``EcgPlan.irregular_s_margin``; it needs ``regular``)."""
    probs = np.asarray(probs)
    classes = probs.argmax(axis=1)
    if s_over_n_odds == 1 and irregular_s_margin == 1:
        return classes
    n, s = class_names.index("N"), class_names.index("S")
    if s_over_n_odds != 1:
        promote = (classes == n) & (s_over_n_odds * probs[:, s] > probs[:, n])
        classes[promote if regular is None else promote & regular] = s
    if irregular_s_margin != 1:
        if regular is None:
            raise ValueError("irregular_s_margin needs the beats of regular rhythm")
        classes[~regular & (classes == s)
                & (probs[:, s] < irregular_s_margin * probs[:, n])] = n
    return classes


def regular_rhythm(features: np.ndarray, feature_set: str,
                   max_irregularity: float | None) -> np.ndarray | None:
    """The beats whose rhythm is regular enough for the S-over-N odds (their
    :data:`IRREGULARITY_FEATURE` below ``max_irregularity``); None when there is no limit.
    ``features``: the beats' per-beat features of ``feature_set``."""
    if max_irregularity is None:
        return None
    return features[:, feature_names(feature_set).index(IRREGULARITY_FEATURE)] < max_irregularity


def component_plan(plan: EcgPlan, kind: str) -> EcgPlan:
    """The plan of one member (``cnn`` or ``lightgbm``) of a ``cnn+lightgbm`` beat plan.

    The network gets the 5 RR features and the plan's imbalance handling (tempered sampling);
    the trees get the plan's tree feature set and their class weights (``weighted_loss``,
    ``tree_imbalance_power``).
    """
    feature_set = MODEL_FEATURE_SET["cnn"] if kind == "cnn" else plan.beat_config["feature_set"]
    # The combined model smooths the averaged probabilities, not each member's.
    data = {**plan.to_dict(), "model": kind, "smoothing_neighbours": 0, "s_over_n_odds": 1.0,
            "s_over_n_max_irregularity": None, "irregular_s_margin": 1.0,
            "irregular_s_margin_scope": "all_records", "second_opinion": None,
            "beat_config": {**plan.beat_config, "feature_set": feature_set}}
    if kind == "lightgbm":
        data["imbalance"], data["imbalance_power"] = LGBM_IMBALANCE[0], plan.tree_imbalance_power
    return EcgPlan.from_dict(data)


def with_arch(plan: EcgPlan, arch: str) -> EcgPlan:
    """The plan with another architecture (and that architecture's default options)."""
    family = "beats" if plan.is_beats else "series"
    network = {**plan.network, "arch": arch, "options": dict(DEFAULT_OPTIONS[family][arch])}
    return EcgPlan.from_dict({**plan.to_dict(), "network": network, "arch_candidates": []})


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def series_inputs(split: SplitData, length: int) -> torch.Tensor:
    """(N, 1, length) z-normalised series; other lengths are resampled (UCR convention)."""
    rows = []
    for series in split.images:
        values = np.asarray(series, np.float64).reshape(-1)
        if len(values) != length:
            values = resample_signal(values, len(values), length)
            values = values[:length] if len(values) >= length else np.pad(
                values, (0, length - len(values)), mode="edge")
        std = values.std()
        rows.append((values - values.mean()) / (std if std > 1e-8 else 1.0))
    return torch.from_numpy(np.asarray(rows, np.float32)[:, None, :])


def plan_inputs(plan: EcgPlan, split: BeatSplit | SplitData) -> tuple[torch.Tensor,
                                                                       torch.Tensor | None]:
    """Network inputs of a split: (signals, extra features or None)."""
    if plan.is_beats:
        if not isinstance(split, BeatSplit):
            raise DataError("a beat model needs ECG beats (a WFDB dataset), not fixed series")
        split = split.with_config(BeatConfig.from_dict(plan.beat_config))
        return torch.from_numpy(split.windows), torch.from_numpy(split.rr)
    if isinstance(split, BeatSplit):
        raise DataError("a series model needs fixed-length series (UCR), not WFDB records")
    return series_inputs(split, plan.series_length), None


def predict_proba(model: nn.Module, x: torch.Tensor, extra: torch.Tensor | None,
                  batch_size: int = 1024) -> np.ndarray:
    """Class probabilities (N, K)."""
    device = next(model.parameters()).device
    outputs = []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            batch_extra = None if extra is None else extra[start:start + batch_size].to(device)
            logits = model(x[start:start + batch_size].to(device), batch_extra)
            outputs.append(functional.softmax(logits.float(), dim=1).cpu())
    return torch.cat(outputs).numpy()


def class_shares(counts: np.ndarray, plan: EcgPlan) -> np.ndarray:
    """Expected share of each class among training draws (sampler) or loss weight (loss)."""
    counts = np.maximum(np.asarray(counts, np.float64), 0)
    if plan.imbalance == "sampler":
        mass = np.where(counts > 0, counts ** (1 - plan.imbalance_power), 0)
        return mass / mass.sum()
    return counts / counts.sum()


def check_not_empty(source: str, train, val) -> None:
    """A clear error for an empty training or (when one is held out) validation split."""
    for name, split in (("train", train), ("val", val)):
        if split is not None and len(split) == 0:
            raise DataError(f"{source}: the {name} split is empty")


MIN_SELECTION_SUPPORT = 10
"""Classes with fewer validation examples than this do not enter the selection macro-F1: the F1
of 2 beats is noise that would pick epochs at random."""


def selection_scores(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """Validation metrics; macro-F1 over the classes with enough validation examples."""
    predicted = probs.argmax(axis=1)
    values, counts = np.unique(labels, return_counts=True)
    present = values[counts >= MIN_SELECTION_SUPPORT]
    if len(present) == 0:
        present = values
    nll = -np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-7, 1.0)).mean()
    scores = {"macro_f1": float(f1_score(labels, predicted, labels=present, average="macro",
                                         zero_division=0)),
              "accuracy": float((predicted == labels).mean()), "neg_log_loss": float(-nll)}
    return scores


# --------------------------------------------------------------------------------------------
# The trainer's view
# --------------------------------------------------------------------------------------------


class EcgTask:
    """The trainer's view of an ECG problem (see ``TrainableTask``)."""

    supports_ensemble = True  # its predictors load a ProbabilityEnsemble through load_weights

    def __init__(self, plan: EcgPlan, train: BeatSplit | SplitData,
                 val: BeatSplit | SplitData | None, source: str = "dataset"):
        """``val`` None: nothing held out (``fit_on`` train+val); validation reports nothing."""
        self.plan = plan
        self.selection_metric = plan.selection
        self.comparison_metric = plan.compare_by
        self.num_classes = len(plan.class_names)
        check_not_empty(source, train, val)
        self.train_x, self.train_extra = plan_inputs(plan, train)
        self.train_y = torch.as_tensor(np.asarray(train.labels), dtype=torch.long)
        self.has_validation = val is not None
        if self.has_validation:
            self.val_x, self.val_extra = plan_inputs(plan, val)
            self.val_y = np.asarray(val.labels)
        counts = np.bincount(self.train_y.numpy(), minlength=self.num_classes)
        missing = [plan.class_names[i] for i in np.flatnonzero(counts == 0)]
        if len(missing) == self.num_classes - 1 or (missing and not plan.is_beats):
            raise DataError(f"{source}: the training split has no example of class(es) {missing}")
        self.counts = counts
        shares = class_shares(counts, plan)
        self.sample_weights = None
        self.class_weights = None
        if plan.imbalance == "sampler":
            from meddx.learn.tasks.ecg_features import record_balance

            per_class = np.where(counts > 0, shares / np.maximum(counts, 1), 0)
            # make_plan allows record balancing only where beats carry their records.
            within = (record_balance(self.train_y.numpy(), train.records,
                                     plan.record_balance_power)
                      if plan.record_balance_power else 1.0)
            self.sample_weights = torch.as_tensor(per_class[self.train_y.numpy()] * within,
                                                  dtype=torch.float64)
        elif plan.imbalance == "weighted_loss":
            weights = np.where(counts > 0, (counts.sum() / np.maximum(counts, 1))
                               ** plan.imbalance_power, 0.0)
            weights = weights / weights[counts > 0].mean()
            self.class_weights = torch.as_tensor(weights, dtype=torch.float32)
        self.epoch_size = plan.epoch_size or len(self.train_y)

    def imbalance_report(self) -> dict[str, Any]:
        """How the class imbalance was handled, for the bundle and the model card."""
        names = self.plan.class_names
        report = {"method": self.plan.imbalance, "power": self.plan.imbalance_power,
                  "train_counts": dict(zip(names, self.counts.tolist(), strict=True)),
                  "train_share": dict(zip(names, (self.counts / self.counts.sum()).round(5)
                                          .tolist(), strict=True))}
        if self.plan.imbalance == "sampler":
            report["sampled_share"] = dict(zip(names, class_shares(self.counts, self.plan)
                                               .round(5).tolist(), strict=True))
        if self.class_weights is not None:
            report["loss_weights"] = dict(zip(names, self.class_weights.numpy().round(4)
                                              .tolist(), strict=True))
        return report

    # --- TrainableTask -----------------------------------------------------------------------

    def build_model(self) -> nn.Module:
        return build_network1d(Network1DSpec.from_dict(self.plan.network))

    def num_train_batches(self) -> int:
        return -(-self.epoch_size // self.plan.batch_size)

    def train_batches(self, epoch: int, generator: torch.Generator):
        n = len(self.train_y)
        if self.sample_weights is not None:
            order = torch.multinomial(self.sample_weights, self.epoch_size, replacement=True,
                                      generator=generator)
        else:
            order = torch.cat([torch.randperm(n, generator=generator)
                               for _ in range(-(-self.epoch_size // n))])[: self.epoch_size]
        for start in range(0, self.epoch_size, self.plan.batch_size):
            index = order[start:start + self.plan.batch_size]
            extra = None if self.train_extra is None else self.train_extra[index]
            yield self._augment(self.train_x[index], generator), extra, self.train_y[index]

    def _augment(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Amplitude scaling, baseline offset, noise and a small time shift (per input)."""
        cfg = self.plan.augment
        n = x.shape[0]
        if cfg.get("scale"):
            x = x * (1 + cfg["scale"] * torch.randn(n, 1, 1, generator=generator))
        if cfg.get("baseline"):
            x = x + cfg["baseline"] * torch.randn(n, 1, 1, generator=generator)
        if cfg.get("noise"):
            x = x + cfg["noise"] * torch.randn(x.shape, generator=generator)
        shift = int(cfg.get("shift", 0))
        if shift:
            offsets = torch.randint(-shift, shift + 1, (n,), generator=generator)
            positions = (torch.arange(x.shape[2])[None, :] - offsets[:, None]).clamp(
                0, x.shape[2] - 1)
            x = torch.gather(x, 2, positions[:, None, :].expand(-1, x.shape[1], -1))
        return x

    def training_loss(self, model: nn.Module, batch: tuple) -> torch.Tensor:
        x, extra, targets = batch
        device = next(model.parameters()).device
        weight = self.class_weights.to(device) if self.class_weights is not None else None
        logits = model(x.to(device), None if extra is None else extra.to(device))
        return functional.cross_entropy(logits.float(), targets.to(device), weight=weight,
                                        label_smoothing=self.plan.label_smoothing)

    def validate(self, model: nn.Module) -> dict[str, float]:
        if not self.has_validation:
            return {}
        return selection_scores(self.val_y, self.val_probabilities(model))

    def val_probabilities(self, model: nn.Module) -> np.ndarray:
        return predict_proba(model, self.val_x, self.val_extra, self.plan.eval_batch_size)


# --------------------------------------------------------------------------------------------
# Fit
# --------------------------------------------------------------------------------------------


def fit_on_report(plan: EcgPlan, n_train: int) -> dict[str, Any]:
    """The bundle's record of what the model was fitted on."""
    return {"fit_on": plan.fit_on, "train_examples": int(n_train)}


def _train_one(plan: EcgPlan, train, val, work_dir: Path, config: TrainConfig, resume: bool,
               progress: bool, source: str):
    task = EcgTask(plan, train, val, source)
    work_dir.mkdir(parents=True, exist_ok=True)
    write_json(plan.to_dict(), work_dir / PLAN_FILE)
    result = Trainer(config, work_dir, progress=progress).fit(task, resume=resume)
    return task, result


def fit(dataset: BeatDataset | SeriesDataset, work_dir: Path, config: TrainConfig,
        plan: dict[str, Any] | None = None, resume: bool = False, progress: bool = True,
        split_seed: int = 0) -> FitOutput:
    """Plan, then train the plan's model kind (networks with the one trainer).

    With ``fit_on`` train+val, a model that selects on validation is fitted twice: on train
    (selection: epoch, boosting rounds, architecture), then on train + val with what was
    selected; a model that selects nothing is fitted once on train + val. A plan with a second
    opinion fits its second model the same way, in ``work_dir/second_opinion``.
    """
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    plan_obj = resolve_plan(work_dir, resume, lambda: make_plan(dataset, plan),
                            EcgPlan.from_dict, require_on_resume=True)
    log.info("plan: %s", json.dumps(plan_obj.to_dict()))
    if plan_obj.second_opinion is None:
        return _fit_plan(plan_obj, dataset, work_dir, config, resume, progress, split_seed)
    first = _fit_plan(EcgPlan.from_dict({**plan_obj.to_dict(), "second_opinion": None}),
                      dataset, work_dir, config, resume, progress, split_seed)
    log.info("second opinion: %s", json.dumps(plan_obj.second_opinion))
    second = _fit_plan(second_opinion_plan(plan_obj), dataset, work_dir / SECOND_OPINION_DIR,
                       config, resume, progress, split_seed)
    return _with_second_opinion(plan_obj, first, second,
                                dataset.split("val", seed=split_seed)
                                if plan_obj.fit_on == "train" else None)


def _fit_plan(plan_obj: EcgPlan, dataset: BeatDataset | SeriesDataset, work_dir: Path,
              config: TrainConfig, resume: bool, progress: bool, split_seed: int) -> FitOutput:
    """Fit one plan (see :func:`fit`): on train, or selection on train and refit on train+val."""
    train = dataset.split("train", seed=split_seed)
    val = dataset.split("val", seed=split_seed)

    def fit_kind(kind_plan, fit_split, val_split, folder=work_dir, cfg=config, rounds=None):
        return _fit_kind(kind_plan, with_synthetic_beats(kind_plan, fit_split, cfg.seed),
                         val_split, dataset, folder, cfg, resume, progress, split_seed, rounds)

    if plan_obj.fit_on == "train":
        return fit_kind(plan_obj, train, val)
    both = type(train).concat([train, val])
    if not plan_obj.selects_on_validation:
        return fit_kind(plan_obj, both, None)
    selection = fit_kind(plan_obj, train, val, work_dir / "selection")
    refit_plan, refit_config, rounds = refit_settings(selection.metadata, config)
    log.info("refit on train + val: %s epochs, %s boosting rounds", refit_config.stop_epoch,
             rounds)
    final = fit_kind(refit_plan, both, None, work_dir / "refit", refit_config, rounds)
    # The bundle's plan is the recipe as run: select on val, then refit.
    final.metadata["plan"] = selection.metadata["plan"]
    final.metadata["training"]["selection_fit"] = {
        "fit_on": "train", "train_examples": len(train),
        "elapsed_s": selection.metadata["training"].get("elapsed_s"),
        "epochs": refit_config.stop_epoch, "boosting_rounds": rounds,
        "val": {k: selection.metadata["metrics"]["val"][k]
                for k in ("n", "accuracy", "macro_f1", "per_class")},
        **({"members": selection.metadata["members"]} if "members" in selection.metadata
           else {})}
    return final


def with_synthetic_beats(plan_obj: EcgPlan, split, seed: int):
    """A training split with the plan's synthetic premature beats added (the split itself when
    the plan has none)."""
    if plan_obj.synthetic_premature is None:
        return split
    from meddx.learn.tasks.ecg_synthetic import premature_options, synthetic_premature_beats

    synthetic = synthetic_premature_beats(split, premature_options(plan_obj.synthetic_premature),
                                          seed, S_OVER_N_MAX_IRREGULARITY)
    if synthetic is None:
        return split
    log.info("synthetic premature beats: %d added to %d training beats", len(synthetic),
             len(split))
    return BeatSplit.concat([split, synthetic])


def _margin_description(plan_obj: EcgPlan) -> str:
    """The bundle's words for the plan's irregular-rhythm S margin (empty when off)."""
    if plan_obj.irregular_s_margin == 1:
        return ""
    where = ("in records where the second model's share stays below that gap"
             if plan_obj.irregular_s_margin_scope == "gate_shut" else "in every record")
    return (f"{where}, an S call outside regular rhythm ({IRREGULARITY_FEATURE} >= "
            f"{plan_obj.s_over_n_max_irregularity}) stands only where p(S) >= "
            f"{plan_obj.irregular_s_margin:g} p(N), else N")


def _with_second_opinion(plan_obj: EcgPlan, first: FitOutput, second: FitOutput,
                         val: BeatSplit | None) -> FitOutput:
    """One model of a plan's first and second opinions: one bundle, one predictor."""
    from meddx.decision.ecg_predict import predictor_for
    from meddx.learn.tasks.ecg_features import LGBM_FILE

    option = plan_obj.second_opinion
    metadata = {
        **first.metadata,
        "plan": {**first.metadata["plan"], "second_opinion": option},
        "second_opinion": {key: second.metadata[key] for key in ("plan", "imbalance", "training",
                                                                 "metrics")},
        "limitations": [*first.metadata["limitations"], SECOND_OPINION_LIMITATION],
        "post_processing": "; then ".join(filter(None, (
            first.metadata.get("post_processing"),
            f"in a record where a second model, the same plan with beat options "
            f"{option['beat']}, calls S on a share of the beats at least {option['min_gap']} "
            "above this model's, the beats this model calls N and it calls S are called S",
            _margin_description(plan_obj))))}
    predictor = predictor_for(metadata, first.state_dict, source="training",
                              lgbm_text=first.extra_files[LGBM_FILE],
                              second_opinion=second.predictor)
    if val is not None:  # the validation figures of the decisions as they are made
        metadata["metrics"] = {"val": evaluate_split(predictor, val, n_bootstrap=200)[0]}
    state = {**first.state_dict,
             **{SECOND_OPINION_PREFIX + k: v for k, v in second.state_dict.items()}}
    files = {**first.extra_files, **{f"{SECOND_OPINION_DIR}/{name}": content
                                     for name, content in second.extra_files.items()}}
    return FitOutput(metadata, state, predictor, extra_files=files)


def refit_settings(selected: dict[str, Any], config: TrainConfig
                   ) -> tuple[EcgPlan, TrainConfig, int | None]:
    """The plan, training options and boosting rounds of a refit on train + val: what the
    selection fit chose (architecture, best epoch, early-stopped rounds), at fixed length."""
    plan = EcgPlan.from_dict({**selected["plan"], "selection": KEEP_LAST,
                              "arch_candidates": []})
    training = selected["training"]
    rounds = None
    if plan.model in ("lightgbm", COMBINED):
        rounds = int((training["lightgbm"] if plan.model == COMBINED else training)
                     ["best_iteration"])
    # The network stops at its selected epoch on the schedule it was selected with.
    stop = None if plan.model == "lightgbm" else int(training["best_epoch"])
    return plan, TrainConfig(**{**asdict(config), "stop_epoch": stop, "patience": 0}), rounds


def _fit_kind(plan_obj: EcgPlan, train, val, dataset, work_dir: Path, config: TrainConfig,
              resume: bool, progress: bool, split_seed: int,
              rounds: int | None = None) -> FitOutput:
    """Fit the plan's model kind on ``train``; ``val`` None: nothing held out."""
    if plan_obj.model == "minirocket":
        from meddx.learn.tasks.ecg_rocket import fit_minirocket

        return fit_minirocket(plan_obj, dataset, train, val, config, LIMITATIONS[SERIES_TASK])
    if plan_obj.model == "lightgbm":
        from meddx.learn.tasks.ecg_features import fit_lightgbm

        return fit_lightgbm(plan_obj, dataset, train, val, config, split_seed,
                            LIMITATIONS[BEAT_TASK], rounds)
    if plan_obj.model == COMBINED:
        return _fit_combined(plan_obj, dataset, train, val, work_dir, config, resume, progress,
                             split_seed, rounds)
    return _fit_networks(plan_obj, dataset, train, val, work_dir, config, resume, progress,
                         split_seed)


def _fit_networks(plan_obj: EcgPlan, dataset, train, val, work_dir: Path, config: TrainConfig,
                  resume: bool, progress: bool, split_seed: int) -> FitOutput:
    """Train the plan's network (each candidate with ``arch: auto``) and keep the best."""
    from meddx.decision.ecg_predict import predictor_for

    source = str(dataset.provenance.get("source", dataset.name))
    candidates = plan_obj.arch_candidates or [plan_obj.network["arch"]]
    if len(candidates) > 1 and config.time_budget_min:
        # The budget is for the whole run: share it between the candidates.
        config = TrainConfig(**{**asdict(config),
                                "time_budget_min": config.time_budget_min / len(candidates)})
    comparison = []
    best = None
    for arch in candidates:
        candidate_plan = with_arch(plan_obj, arch) if plan_obj.arch_candidates else plan_obj
        sub = work_dir / arch if plan_obj.arch_candidates else work_dir
        task, result = _train_one(candidate_plan, train, val, sub, config,
                                  resume and has_checkpoint(sub), progress, source)
        comparison.append({"arch": arch, "best_epoch": result.best_epoch,
                           "elapsed_s": round(result.elapsed_s, 1)})
        if not task.has_validation:  # fit_on train+val: one candidate, nothing to compare
            best = (None, candidate_plan, task, result)
            continue
        scores = selection_scores(task.val_y, task.val_probabilities(result.model))
        score = scores[plan_obj.compare_by]
        comparison[-1].update({f"val_{k}": v for k, v in scores.items()})
        log.info("%s: validation %s %.4f", arch, plan_obj.compare_by, score)
        if best is None or score > best[0]:
            best = (score, candidate_plan, task, result)
    _, final_plan, task, result = best
    metadata: dict[str, Any] = {
        "task": final_plan.task,
        "class_names": final_plan.class_names,
        "threshold": None,
        "plan": final_plan.to_dict(),
        "network": final_plan.network,
        "preprocessing": final_plan.beat_config if final_plan.is_beats else {
            "series_length": final_plan.series_length, "z_normalise": True},
        "imbalance": task.imbalance_report(),
        "intended_use": (
            "Research and decision support only: flags ectopic beats (AAMI classes) for review "
            "by a qualified reader, never a replacement. Not a certified medical device."
            if final_plan.is_beats else
            "Research use: classification of single ECG heartbeats in UCR format."),
        "limitations": LIMITATIONS[final_plan.task],
        "training": {"config": asdict(config), "best_epoch": result.best_epoch,
                     f"best_val_{final_plan.selection}": result.best_score,
                     "epochs_run": len(result.history), "stop_reason": result.stop_reason,
                     "elapsed_s": round(sum(c["elapsed_s"] for c in comparison), 1),
                     "bf16_autocast": result.amp,
                     "device": str(next(result.model.parameters()).device),
                     "history": result.history, "model_selection": comparison,
                     **fit_on_report(final_plan, len(task.train_y))},
        **result.extra,  # an ensemble's members and their validation figures
        "metrics": {},
    }
    if final_plan.is_beats:
        metadata["record_split"] = dataset.record_split(split_seed)
    state = {k: v.detach().cpu() for k, v in result.model.state_dict().items()}
    predictor = predictor_for(metadata, state, source=str(work_dir))
    if task.has_validation:
        metadata["metrics"]["val"] = classification_metrics(
            task.val_y, task.val_probabilities(result.model), final_plan.class_names,
            n_bootstrap=200, excused_calls=predictor.excused_calls)
    return FitOutput(metadata, state, predictor)


def _fit_combined(plan_obj: EcgPlan, dataset: BeatDataset, train: BeatSplit,
                  val: BeatSplit | None, work_dir: Path, config: TrainConfig, resume: bool,
                  progress: bool, split_seed: int, rounds: int | None = None) -> FitOutput:
    """Train the network (the one trainer) and the trees on the same records; one bundle."""
    from meddx.decision.ecg_predict import predictor_for
    from meddx.learn.tasks.ecg_features import LGBM_FILE, fit_lightgbm, smoothing_metadata

    # The network trains in its own folder: work_dir's plan.json stays the combined plan.
    network = _fit_networks(component_plan(plan_obj, "cnn"), dataset, train, val,
                            work_dir / "cnn", config, resume, progress, split_seed)
    trees = fit_lightgbm(component_plan(plan_obj, "lightgbm"), dataset, train, val, config,
                         split_seed, LIMITATIONS[BEAT_TASK], rounds)
    members = {"cnn": network.metadata, "lightgbm": trees.metadata}
    metadata: dict[str, Any] = {
        **network.metadata,
        "plan": plan_obj.to_dict(),
        "preprocessing": plan_obj.beat_config,
        "imbalance": {**network.metadata["imbalance"],
                      "lightgbm": trees.metadata["imbalance"]},
        "training": {**network.metadata["training"], "model": COMBINED,
                     "combination": "mean of the members' probabilities (equal weights)",
                     "lightgbm": trees.metadata["training"]},
        **smoothing_metadata(plan_obj),
    }
    if val is not None:  # each member's validation figures (a refit has none of its own)
        metadata["members"] = {kind: {"val": {k: meta["metrics"]["val"][k]
                                              for k in ("accuracy", "macro_f1", "per_class")}}
                               for kind, meta in members.items()}
    lgbm_text = trees.extra_files[LGBM_FILE]
    predictor = predictor_for(metadata, network.state_dict, source=str(work_dir),
                              lgbm_text=lgbm_text)
    # The one evaluation path, so the figures are the model's own decisions.
    metadata["metrics"] = {} if val is None else {
        "val": evaluate_split(predictor, val, n_bootstrap=200)[0]}
    return FitOutput(metadata, network.state_dict, predictor,
                     extra_files={**network.extra_files, LGBM_FILE: lgbm_text})
