"""Task recipes: what differs between kinds of problem (image classification, segmentation...).

A recipe module exposes ``TASK_NAME`` and ``fit(dataset, work_dir, ...) -> FitOutput``; the
pipeline (:mod:`meddx.learn.pipeline`) does the rest the same way for every task: evaluation of
the test split, model card, atomic bundle. Its predictor class is registered in
:data:`meddx.decision.predict.PREDICTORS` under the same task name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
