"""From a dataset to an evaluated bundle, the same way for every task.

``recipe.fit`` (plan, train, validation-chosen threshold) -> evaluation of the test split with the
one evaluation path -> model card -> atomic bundle.

Checkpoints live in ``<OUT>.ckpt/`` beside the bundle folder (with ``plan.json`` and
``history.json``); the bundle itself only appears, atomically, when everything succeeded, and the
checkpoint folder is then removed. ``resume=True`` continues a killed run from its last epoch with
the plan it started with.
"""

from __future__ import annotations

import importlib
import logging
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from meddx.data.datasets import ClassificationDataset
from meddx.data.ecg import BeatDataset, SeriesDataset
from meddx.data.loading import load_dataset
from meddx.data.segmentation import SegmentationDataset
from meddx.data.tabular import TabularDataset
from meddx.data.text import TextDataset
from meddx.decision.bundle import REPORT_DIR, Bundle, save_bundle
from meddx.decision.model_card import render_model_card
from meddx.errors import ConfigError
from meddx.learn.evaluate import write_evaluation
from meddx.learn.trainer import TrainConfig

log = logging.getLogger(__name__)

# Dataset type -> the recipe module that trains on it.
RECIPES: dict[type, str] = {
    ClassificationDataset: "meddx.learn.tasks.image_classification",
    SegmentationDataset: "meddx.learn.tasks.segmentation",
    TabularDataset: "meddx.learn.tasks.tabular",
    TextDataset: "meddx.learn.tasks.text",
    BeatDataset: "meddx.learn.tasks.ecg",
    SeriesDataset: "meddx.learn.tasks.ecg",
}


def checkpoint_dir(out: Path) -> Path:
    return Path(out).parent / f"{Path(out).name}.ckpt"


def recipe_for(dataset: Any):
    for kind, module in RECIPES.items():
        if isinstance(dataset, kind):
            return importlib.import_module(module)
    raise ConfigError(f"no task recipe trains on {type(dataset).__name__}")


def train_model(dataset: str | Path | Any, out: str | Path, *,
                config: TrainConfig | None = None, plan: dict[str, Any] | None = None,
                data_dir: str | Path | None = None, resume: bool = False, progress: bool = True,
                split_seed: int = 0, name: str | None = None, on_error: str = "skip",
                test_fraction: float | None = None) -> Bundle:
    """Train a model on a dataset and write an evaluated bundle.

    Args:
        dataset: catalog name, path, or an already loaded dataset.
        out: bundle folder to write.
        config: training-loop options.
        plan: overrides of the recipe's automatic plan.
        data_dir: where catalog datasets live (default: ``$MEDDX_DATA_DIR`` or the user cache).
        resume: continue the interrupted run that wrote ``<out>.ckpt/``.
        progress: show progress bars.
        split_seed: seed of the stratified split for datasets without their own.
        name: model name shown in reports (default: the bundle folder's name).
        on_error: a bad case while loading a dataset by name or path: ``"skip"`` (reported)
            or ``"stop"``.
        test_fraction: share of the records held out as the bundle's own test split, for
            datasets meddx splits by patient (WFDB record folders; default 0.2). 0: no test
            split and no test figures in the bundle, for a test set kept elsewhere (DS2).

    Returns:
        The written bundle.
    """
    config = config or TrainConfig()
    out = Path(out)
    if isinstance(dataset, str | Path):
        dataset = load_dataset(dataset, data_dir, on_error=on_error)
    recipe = recipe_for(dataset)
    if test_fraction is not None:
        if not hasattr(dataset, "set_test_fraction"):
            raise ConfigError(f"{dataset.name}: a test fraction applies to WFDB record folders "
                              "(split by patient here); this dataset's test split is its own "
                              "or fixed by its reader")
        dataset.set_test_fraction(test_fraction)
    test_split = None if test_fraction == 0 else dataset.split("test", seed=split_seed)
    work_dir = checkpoint_dir(out)
    work_dir.mkdir(parents=True, exist_ok=True)
    fitted = recipe.fit(dataset, work_dir, config, plan=plan, resume=resume, progress=progress,
                        split_seed=split_seed)
    metadata = {"name": name or out.name,
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                **fitted.metadata,
                "provenance": {**dataset.provenance,
                               "split_sizes": dataset.split_sizes(seed=split_seed),
                               "split_seed": split_seed}}
    fitted.predictor.name = metadata["name"]
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / REPORT_DIR
        if test_split is not None:
            metrics, _ = write_evaluation(fitted.predictor, test_split, report, dataset.name,
                                          "test")
            metadata["metrics"]["test"] = metrics
        bundle = save_bundle(out, metadata, fitted.state_dict, render_model_card(metadata),
                             extra_dirs={REPORT_DIR: report} if test_split is not None else None,
                             extra_files=getattr(fitted, "extra_files", None))
    shutil.rmtree(work_dir, ignore_errors=True)
    log.info("bundle written to %s", out)
    return bundle
