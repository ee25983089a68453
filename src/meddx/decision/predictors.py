"""Which predictor runs a bundle: the task registry behind :func:`load_model`.

Predictor classes are imported on first use, so a command that runs an ECG, tabular or text
model does not load the image stack (MONAI, about 8 s of start-up on 2 cores), and one that runs
an image model does not load transformers, SHAP or LightGBM.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

from meddx.decision.bundle import Bundle, load_bundle
from meddx.errors import BundleError

if TYPE_CHECKING:
    import torch

# Task name -> "module:Class"; each recipe's TASK_NAME is registered here.
PREDICTORS: dict[str, str] = {
    "image-classification": "meddx.decision.predict:ImageClassifier",
    "segmentation": "meddx.decision.segment_predict:SegmentationPredictor",
    "ecg-beat-classification": "meddx.decision.ecg_predict:EcgBeatClassifier",
    "ecg-series-classification": "meddx.decision.ecg_predict:EcgSeriesClassifier",
    "tabular-classification": "meddx.decision.tabular_predict:TabularPredictor",
    "text-classification": "meddx.decision.text_predict:TextPredictor",
}


def predictor_class(task: str) -> type | None:
    """The predictor class registered for a task, or None."""
    target = PREDICTORS.get(task)
    if target is None:
        return None
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def load_model(bundle: str | Path | Bundle, device: torch.device | None = None):
    """The predictor for a bundle's task."""
    bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    predictor = predictor_class(bundle.task)
    if predictor is None:
        raise BundleError(f"{bundle.path}: this meddx cannot run task {bundle.task!r}; "
                          f"known tasks: {', '.join(PREDICTORS)}")
    return predictor.from_bundle(bundle, device)
