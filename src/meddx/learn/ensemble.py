"""Seed ensembles: K copies of a task's network trained by the one Trainer, probabilities averaged.

Several published anchors are ensembles of networks that differ only in their random seed:
InceptionTime is five Inception networks (Ismail Fawaz et al., *Data Min. Knowl. Disc.* 34,
2020), and deep ensembles (Lakshminarayanan et al., NeurIPS 2017) improve accuracy and
calibration of small-data classifiers for the price of K trainings.

Training (:func:`train_ensemble`, reached through ``TrainConfig(ensemble=K)``): member ``i``
(0-based) is trained by the same :class:`~meddx.learn.trainer.Trainer` on the same task object
(so the same plan, splits and preprocessing) with seed ``config.seed + i``; member 0 is therefore
exactly the single model of that seed. Each member checkpoints into ``<work_dir>/member-<i+1>/``
and, when finished, writes ``member.pt`` (its best weights and training record), so a killed
ensemble resumes at the member and epoch where it stopped. The time budget covers the whole
ensemble: each member gets an equal share of what the finished members left.

Inference (:class:`ProbabilityEnsemble`): the module's output is ``log(mean_i softmax(z_i))``.
Its softmax is the members' mean probability exactly (the mean sums to one), so every consumer
that applies softmax to a network's output (prediction, test-time flips, evaluation, threshold
choice, integrated gradients) works unchanged on an ensemble. Bundles store the ensemble's
``state_dict`` (keys ``members.<i>.``); :func:`match_state` rebuilds the ensemble around the
network a predictor built from the plan, so predictors need no ensemble code of their own.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from meddx.errors import ConfigError, MeddxError

if TYPE_CHECKING:
    from meddx.learn.trainer import Trainer, TrainResult

log = logging.getLogger(__name__)

MEMBER_PREFIX = "members."
MEMBER_RESULT = "member.pt"
COMBINE_RULE = "mean of the members' class probabilities"


class ProbabilityEnsemble(nn.Module):
    """Averages the class probabilities of member networks; outputs their log.

    Members take the same arguments (``model(x)``, ``model(x, extra)``...) and return class
    scores with the classes on dimension 1, as every classifier and segmenter here does.

    Args:
        members: the trained networks (at least one).
    """

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        if not members:
            raise ConfigError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        # log-mean-exp of log-probabilities: stable even when a member is very confident.
        log_probs = torch.stack([torch.log_softmax(member(*args, **kwargs).float(), dim=1)
                                 for member in self.members])
        return torch.logsumexp(log_probs, dim=0) - math.log(len(self.members))


def ensemble_size(state_dict: dict[str, Any]) -> int:
    """Number of members of an ensemble ``state_dict`` (0 for a single network's)."""
    if not state_dict or not all(key.startswith(MEMBER_PREFIX) for key in state_dict):
        return 0
    return len({key[len(MEMBER_PREFIX):].split(".", 1)[0] for key in state_dict})


def match_state(model: nn.Module, state_dict: dict[str, Any]) -> nn.Module:
    """``model``, or an ensemble of copies of it when ``state_dict`` holds an ensemble's weights.

    Predictors build one network from the bundle's plan; this turns it into the ensemble the
    weights describe (the copies are overwritten by ``load_state_dict`` right after).
    """
    if isinstance(model, ProbabilityEnsemble):
        return model
    size = ensemble_size(state_dict)
    if size == 0 or any(key.startswith(MEMBER_PREFIX) for key in model.state_dict()):
        return model
    return ProbabilityEnsemble([model] + [copy.deepcopy(model) for _ in range(size - 1)])


def member_dir(work_dir: Path, index: int) -> Path:
    """Folder of member ``index`` (0-based) of an ensemble run."""
    return Path(work_dir) / f"member-{index + 1}"


def has_checkpoint(work_dir: Path) -> bool:
    """Whether ``work_dir`` holds an interrupted run: a single model's or any member's."""
    from meddx.learn.trainer import CHECKPOINT_NAME

    work_dir = Path(work_dir)
    return (work_dir / CHECKPOINT_NAME).exists() or any(
        (member / CHECKPOINT_NAME).exists() or (member / MEMBER_RESULT).exists()
        for member in work_dir.glob("member-*"))


def _validate(task: Any, model: nn.Module) -> dict[str, float]:
    model.eval()
    with torch.no_grad():
        scores = task.validate(model)
    # JSON has no NaN (an AUC of a one-class split): store None.
    return {key: None if math.isnan(value) else float(value) for key, value in scores.items()
            if isinstance(value, int | float)}


def _load_member(path: Path, task: Any, device: torch.device) -> tuple[nn.Module, dict]:
    try:
        record = torch.load(path, map_location=device, weights_only=True)
        model = task.build_model().to(device)
        model.load_state_dict(record.pop("weights"))
    except (RuntimeError, KeyError, EOFError, OSError) as error:
        raise ConfigError(f"{path}: cannot read this finished ensemble member ({error}); delete "
                          "its folder to train it again") from error
    return model.eval(), record


def train_ensemble(trainer: Trainer, task: Any, resume: bool = False,
                   on_epoch_end=None) -> TrainResult:
    """Train ``trainer.config.ensemble`` members of ``task`` and return their ensemble.

    Args:
        trainer: the configured trainer (its ``work_dir`` holds the members' folders).
        task: a :class:`~meddx.learn.tasks.base.TrainableTask` with ``supports_ensemble``.
        resume: continue an interrupted ensemble run.
        on_epoch_end: called with each epoch's record (which names its ``member``).

    Returns:
        A ``TrainResult`` whose model is a :class:`ProbabilityEnsemble`; ``history`` holds all
        members' epochs, ``best_score`` is the ensemble's validation score, ``best_epoch`` the
        first member's, ``elapsed_s`` the members' total, and ``extra["ensemble"]`` the
        per-member record and the validation figures of each member and of the ensemble.
    """
    from meddx.learn.trainer import (
        CHECKPOINT_NAME,
        KEEP_LAST,
        Trainer,
        TrainResult,
        atomic_torch_save,
    )

    cfg = trainer.config
    size = cfg.ensemble
    if not getattr(task, "supports_ensemble", False):
        raise ConfigError(f"ensemble {size}: the {type(task).__name__} recipe cannot train "
                          "seed ensembles (its predictor loads one network); use ensemble 1")
    work_dir = trainer.work_dir
    work_dir.mkdir(parents=True, exist_ok=True)
    if (work_dir / CHECKPOINT_NAME).exists():
        raise ConfigError(f"{work_dir} holds the checkpoint of a single-model run; resume it "
                          "without --ensemble, or delete that folder to start again")
    if not resume and has_checkpoint(work_dir):
        raise ConfigError(f"{work_dir} already holds checkpoints of an earlier ensemble run; pass "
                          "--resume to continue it, or delete that folder to start again")
    if resume and not has_checkpoint(work_dir):
        raise ConfigError(f"--resume: no interrupted ensemble run in {work_dir}")

    budget_s = cfg.time_budget_min * 60 if cfg.time_budget_min else None
    members: list[nn.Module] = []
    records: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    spent_s = 0.0
    for index in range(size):
        folder = member_dir(work_dir, index)
        seed = cfg.seed + index
        if (folder / MEMBER_RESULT).exists():
            model, record = _load_member(folder / MEMBER_RESULT, task, trainer.device)
            log.info("ensemble member %d/%d: finished earlier, loaded", index + 1, size)
        else:
            share = None
            if budget_s is not None:
                left = budget_s - spent_s
                if left <= 0:
                    log.warning("time budget spent after %d of %d ensemble members", index, size)
                    break
                share = left / (size - index) / 60
            member_cfg = replace(cfg, ensemble=1, seed=seed, time_budget_min=share)
            log.info("ensemble member %d/%d (seed %d)", index + 1, size, seed)

            def report(record: dict[str, Any], member: int = index + 1) -> None:
                if on_epoch_end:
                    on_epoch_end({**record, "member": member})

            member_resume = resume and (folder / CHECKPOINT_NAME).exists()
            result = Trainer(member_cfg, folder, trainer.device, trainer.progress).fit(
                task, resume=member_resume, on_epoch_end=report)
            model = result.model
            record = {"seed": seed, "best_epoch": result.best_epoch,
                      "best_score": result.best_score, "epochs_run": len(result.history),
                      "stop_reason": result.stop_reason, "elapsed_s": result.elapsed_s,
                      "amp": result.amp, "history": result.history}
            atomic_torch_save({"weights": {k: v.detach().cpu()
                                           for k, v in model.state_dict().items()}, **record},
                              folder / MEMBER_RESULT)
            # The finished member's record replaces its (three times larger) checkpoint.
            (folder / CHECKPOINT_NAME).unlink(missing_ok=True)
        spent_s += record["elapsed_s"]
        history += [{**row, "member": index + 1} for row in record["history"]]
        members.append(model)
        records.append(record)

    ensemble = ProbabilityEnsemble(members).to(trainer.device).eval()
    member_val = [_validate(task, member) for member in members]
    ensemble_val = _validate(task, ensemble)
    # Keep-last members were not selected by a validation metric: report the ensemble on the
    # task's comparison metric.
    metric = task.selection_metric
    if metric == KEEP_LAST:
        metric = task.comparison_metric
    score = ensemble_val.get(metric)
    # An empty validation report means nothing was held out (a fit on train + val).
    if score is None and ensemble_val:
        raise MeddxError("the ensemble has no valid validation score")
    summary = {
        "members": len(members),
        "members_planned": size,
        "combine": COMBINE_RULE,
        "selection_metric": task.selection_metric,
        "member_results": [
            {"member": i + 1, "seed": r["seed"], "best_epoch": r["best_epoch"],
             "epochs_run": r["epochs_run"], "stop_reason": r["stop_reason"],
             "elapsed_s": round(r["elapsed_s"], 1), "val": val}
            for i, (r, val) in enumerate(zip(records, member_val, strict=True))],
        "val": ensemble_val,
    }
    if score is not None:
        log.info("ensemble of %d: validation %s %.4f (members %s)", len(members), metric, score,
                 ", ".join("n/a" if v.get(metric) is None else f"{v[metric]:.4f}"
                           for v in member_val))
    reasons = "; ".join(f"member {i + 1}: {r['stop_reason']}" for i, r in enumerate(records))
    return TrainResult(model=ensemble, history=history, best_epoch=records[0]["best_epoch"],
                       best_score=score, stop_reason=reasons, elapsed_s=spent_s,
                       amp=bool(records[0]["amp"]), extra={"ensemble": summary})


def member_predictors(predictor: Any) -> list[Any]:
    """One predictor per ensemble member (shallow copies that share all but the network).

    A predictor of a single network is returned alone. Used to report what each member would
    have scored on its own beside the ensemble.
    """
    model = getattr(predictor, "model", None)
    if not isinstance(model, ProbabilityEnsemble):
        return [predictor]
    copies = []
    for index, member in enumerate(model.members):
        clone = copy.copy(predictor)
        clone.model = member
        clone.name = f"{predictor.name} member {index + 1}"
        copies.append(clone)
    return copies


MEMBER_FIGURES = ("auc", "accuracy", "balanced_accuracy", "macro_f1", "f1", "ece", "brier")


def member_figures(predictor: Any, val: Any | None, test: Any) -> list[dict[str, Any]]:
    """Validation and test figures of each member used alone, as a single model would be.

    A binary bundle with a threshold gives each member its own threshold, chosen on the
    validation split with the bundle's method (the ensemble's threshold was chosen on the
    ensemble's validation probabilities, not on the member's).

    Args:
        predictor: a loaded predictor of an ensemble bundle.
        val: the validation split, or None for a bundle fitted on it (test figures only).
        test: the split to report (the test split).

    Returns:
        One dict per member: ``member``, ``threshold``, ``val`` (with a validation split) and
        ``test`` figures (no CIs).
    """
    from meddx.learn.evaluation.metrics import choose_threshold, classification_metrics

    rows = []
    for index, single in enumerate(member_predictors(predictor)):
        parts = {"test": (test, single.predict_split(test))}
        threshold = None
        if val is not None:
            val_probs = single.predict_split(val)
            parts["val"] = (val, val_probs)
            if predictor.threshold is not None and val_probs.shape[1] == 2:
                method = (getattr(predictor, "metadata", {}) or {}).get(
                    "threshold_method") or "youden"
                threshold = choose_threshold(np.asarray(val.labels), val_probs[:, 1],
                                             method=method)
        figures = {}
        for name, (split, probs) in parts.items():
            metrics = classification_metrics(np.asarray(split.labels), probs,
                                             predictor.class_names, threshold=threshold,
                                             n_bootstrap=0, excused_calls=getattr(
                                                 predictor, "excused_calls", None))
            figures[name] = {key: metrics[key] for key in MEMBER_FIGURES if key in metrics}
        rows.append({"member": index + 1, "threshold": threshold, **figures})
    return rows
