"""Task recipes: what differs between kinds of problem (image classification, segmentation...).

A recipe module exposes ``TASK_NAME`` and ``fit(dataset, work_dir, ...) -> FitOutput``; the
pipeline (:mod:`meddx.learn.pipeline`) does the rest the same way for every task: evaluation of
the test split, model card, atomic bundle. Its predictor class is registered in
:data:`meddx.decision.predictors.PREDICTORS` under the same task name.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from meddx.errors import ConfigError, DataError
from meddx.fileio import write_json


@dataclass
class FitOutput:
    """What a recipe's ``fit`` hands to the pipeline.

    Attributes:
        metadata: task-specific bundle metadata (task, class_names, threshold, plan, training,
            metrics["val"]...); the pipeline adds name, provenance, test metrics.
        state_dict: network weights (None for models stored otherwise).
        predictor: the trained model behind the task's predictor interface, used to evaluate
            the test split exactly as a loaded bundle would be.
        extra_files: further bundle files by relative name (text or bytes), e.g. a LightGBM
            model in its own text format or a tokenizer's JSON.
    """

    metadata: dict[str, Any]
    state_dict: dict[str, Any] | None
    predictor: Any
    extra_files: dict[str, str | bytes] = field(default_factory=dict)


PLAN_FILE = "plan.json"


def resolve_plan(work_dir: Path, resume: bool, make: Callable[[], Any],
                 from_dict: Callable[[dict[str, Any]], Any], require_on_resume: bool = False):
    """The plan of a run: the saved one when resuming, else ``make()``; saved to ``plan.json``.

    Resuming must reuse the plan the checkpoint was trained with, so new overrides are ignored.
    """
    plan_path = Path(work_dir) / PLAN_FILE
    if resume and plan_path.exists():
        plan = from_dict(json.loads(plan_path.read_text()))
    elif resume and require_on_resume:
        raise ConfigError(f"--resume: no interrupted run at {work_dir} (no {PLAN_FILE})")
    else:
        plan = make()
    write_json(plan.to_dict(), plan_path)
    return plan


def check_splits(train: Any, val: Any, class_names: list[str], source: str) -> None:
    """Refuse empty train/val splits and a training split missing any class."""
    for name, split in (("train", train), ("val", val)):
        if len(split) == 0:
            raise DataError(f"{source}: the {name} split is empty")
    missing = sorted(set(range(len(class_names))) - set(np.asarray(train.labels).tolist()))
    if missing:
        raise DataError(f"{source}: the training split has no example of class(es) "
                        f"{[class_names[i] for i in missing]}")
