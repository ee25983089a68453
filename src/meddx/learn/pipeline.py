"""From a dataset to an evaluated bundle: plan -> train -> threshold -> evaluate -> bundle.

Checkpoints live in ``<OUT>.ckpt/`` beside the bundle folder (with ``plan.json`` and
``history.json``); the bundle itself only appears, atomically, when everything succeeded, and the
checkpoint folder is then removed. ``resume=True`` continues a killed run from its last epoch with
the plan it started with.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from meddx.data.datasets import ClassificationDataset, load_classification_dataset
from meddx.decision.bundle import REPORT_DIR, Bundle, save_bundle
from meddx.decision.model_card import render_model_card
from meddx.decision.predict import ImageClassifier
from meddx.errors import ConfigError
from meddx.learn.evaluate import write_evaluation
from meddx.learn.evaluation.metrics import choose_threshold, classification_metrics
from meddx.learn.tasks.image_classification import (
    TASK_NAME,
    ImageClassificationPlan,
    ImageClassificationTask,
    make_plan,
)
from meddx.learn.trainer import Trainer, TrainConfig

log = logging.getLogger(__name__)

PLAN_FILE = "plan.json"


def checkpoint_dir(out: Path) -> Path:
    return Path(out).parent / f"{Path(out).name}.ckpt"


def _load_or_make_plan(dataset: ClassificationDataset, train_split, work_dir: Path,
                       overrides: dict[str, Any] | None, resume: bool) -> ImageClassificationPlan:
    plan_path = work_dir / PLAN_FILE
    if resume:
        if not plan_path.exists():
            raise ConfigError(f"--resume: no interrupted run at {work_dir} (no {PLAN_FILE})")
        # The network must match the checkpoint, so resume ignores new plan overrides.
        return ImageClassificationPlan.from_dict(json.loads(plan_path.read_text()))
    return make_plan(dataset, train_split, overrides)


def train_model(dataset: str | Path | ClassificationDataset, out: str | Path, *,
                config: TrainConfig | None = None, plan: dict[str, Any] | None = None,
                data_dir: str | Path | None = None, resume: bool = False, progress: bool = True,
                split_seed: int = 0, name: str | None = None) -> Bundle:
    """Train a model on a dataset and write an evaluated bundle.

    Args:
        dataset: catalog name, path, or an already loaded dataset.
        out: bundle folder to write.
        config: training-loop options.
        plan: overrides of the automatic plan (see :func:`make_plan`).
        data_dir: where catalog datasets live (default: ``$MEDDX_DATA_DIR`` or the user cache).
        resume: continue the interrupted run that wrote ``<out>.ckpt/``.
        progress: show progress bars.
        split_seed: seed of the stratified split for datasets without their own.
        name: model name shown in reports (default: the bundle folder's name).

    Returns:
        The written bundle.
    """
    config = config or TrainConfig()
    out = Path(out)
    if not isinstance(dataset, ClassificationDataset):
        dataset = load_classification_dataset(dataset, data_dir)
    train_split = dataset.split("train", seed=split_seed)
    val_split = dataset.split("val", seed=split_seed)
    test_split = dataset.split("test", seed=split_seed)
    work_dir = checkpoint_dir(out)
    work_dir.mkdir(parents=True, exist_ok=True)
    plan_obj = _load_or_make_plan(dataset, train_split, work_dir, plan, resume)
    task = ImageClassificationTask(plan_obj, train_split, val_split,
                                   source=str(dataset.provenance.get("source", dataset.name)))
    (work_dir / PLAN_FILE).write_text(json.dumps(plan_obj.to_dict(), indent=2))
    log.info("plan: %s", json.dumps(plan_obj.to_dict()))

    result = Trainer(config, work_dir, progress=progress).fit(task, resume=resume)

    val_probs = task.val_probabilities(result.model, tta=True)
    threshold = None
    if len(plan_obj.class_names) == 2:
        threshold = choose_threshold(task.val_y, val_probs[:, 1], method=plan_obj.threshold_method)
    name = name or out.name
    metadata: dict[str, Any] = {
        "name": name,
        "task": TASK_NAME,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "class_names": plan_obj.class_names,
        "threshold": threshold,
        "threshold_method": plan_obj.threshold_method if threshold is not None else None,
        "plan": plan_obj.to_dict(),
        "network": plan_obj.network,
        "preprocessing": plan_obj.preprocessing,
        "provenance": {**dataset.provenance,
                       "split_sizes": {"train": len(train_split), "val": len(val_split),
                                       "test": len(test_split)},
                       "split_seed": split_seed},
        "training": {"config": asdict(config), "best_epoch": result.best_epoch,
                     "best_val_auc": result.best_score, "epochs_run": len(result.history),
                     "stop_reason": result.stop_reason, "elapsed_s": round(result.elapsed_s, 1),
                     "bf16_autocast": result.amp, "device": str(next(
                         result.model.parameters()).device), "history": result.history},
        "metrics": {"val": classification_metrics(task.val_y, val_probs, plan_obj.class_names,
                                                  threshold=threshold)},
    }
    state = {k: v.detach().cpu() for k, v in result.model.state_dict().items()}
    predictor = ImageClassifier(metadata, state, source=str(out))
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / REPORT_DIR
        metrics, _ = write_evaluation(predictor, test_split, report, dataset.name, "test")
        metadata["metrics"]["test"] = metrics
        bundle = save_bundle(out, metadata, state, render_model_card(metadata),
                             extra_dirs={REPORT_DIR: report})
    shutil.rmtree(work_dir, ignore_errors=True)
    log.info("bundle written to %s (val AUC %.4f)", out, np.nan_to_num(result.best_score))
    return bundle
