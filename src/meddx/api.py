"""The Python API: everything the CLI does, as functions.

>>> import meddx
>>> bundle = meddx.train("breastmnist", "runs/breast", epochs=5)         # doctest: +SKIP
>>> result = meddx.evaluate("runs/breast", "breastmnist", split="test")  # doctest: +SKIP
>>> meddx.predict("runs/breast", ["scan.png"], explain_dir="heatmaps")   # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from meddx.data.catalog import fetch, list_datasets
from meddx.data.loading import check_on_error, load_dataset
from meddx.decision.bundle import Bundle, load_bundle
from meddx.decision.predictors import load_model
from meddx.errors import ConfigError, DataError, MeddxError
from meddx.fileio import write_json
from meddx.learn.evaluate import evaluate_split, write_evaluation
from meddx.learn.pipeline import train_model
from meddx.learn.trainer import TrainConfig

log = logging.getLogger(__name__)

__all__ = ["crossval", "evaluate", "fetch", "list_datasets", "load_bundle", "load_dataset",
           "load_model", "predict", "predict_inputs", "train"]


def train(dataset: str | Path, out: str | Path, *, data_dir: str | Path | None = None,
          plan: dict[str, Any] | None = None, resume: bool = False, progress: bool = True,
          split_seed: int = 0, on_error: str = "skip", test_fraction: float | None = None,
          **train_options: Any) -> Bundle:
    """Train on a dataset (catalog name or path) and write an evaluated bundle to ``out``.

    ``train_options`` are :class:`~meddx.learn.trainer.TrainConfig` fields (``epochs``,
    ``time_budget_min``, ``lr``, ``seed``, ``ensemble``...); ``plan`` overrides the automatic
    plan (``arch``, ``input_size``, ``batch_size``, ``augment``...). ``on_error="stop"`` makes
    one bad case (volume, record) stop the run instead of being reported and skipped.
    ``test_fraction`` (WFDB record folders): records held out as the bundle's test split; 0 for
    none, when the test set is elsewhere.
    """
    return train_model(dataset, out, config=TrainConfig(**train_options), plan=plan,
                       data_dir=data_dir, resume=resume, progress=progress,
                       split_seed=split_seed, on_error=on_error, test_fraction=test_fraction)


def evaluate(bundle: str | Path, dataset: str | Path, *, split: str = "test",
             data_dir: str | Path | None = None, json_path: str | Path | None = None,
             report_dir: str | Path | None = None, split_seed: int = 0,
             n_bootstrap: int = 1000, on_error: str = "skip") -> dict[str, Any]:
    """Evaluate a bundle on a dataset split; optionally write the JSON and a report folder.

    ``on_error``: a bad case in the dataset is reported and skipped, or (``"stop"``) raises.
    """
    predictor = load_model(bundle)
    data = load_dataset(dataset, data_dir, on_error=on_error)
    if hasattr(data, "adopt_class_names"):  # segmentation folders without label names
        data.adopt_class_names(predictor.class_names)
    if data.class_names != predictor.class_names:
        raise DataError(f"{dataset}: classes {data.class_names} do not match the model's "
                        f"{predictor.class_names}")
    part = data.split(split, seed=split_seed)
    fitted_on_split = _fitted_on(predictor.metadata, data.provenance, split, split_seed)
    if fitted_on_split:
        log.warning("%s was fitted on (part of) the %s split: these figures are not an "
                    "estimate for new cases", bundle, split)
    if report_dir is not None:
        metrics, html = write_evaluation(predictor, part, Path(report_dir), data.name, split,
                                         n_bootstrap)
        metrics["report"] = str(html)
    else:
        metrics, _, _ = evaluate_split(predictor, part, n_bootstrap)
        metrics = {**metrics, "dataset": data.name, "split": split}
    if fitted_on_split:
        metrics["fitted_on_this_split"] = True
    if json_path is not None:
        write_json(metrics, Path(json_path))
    return metrics


def _fitted_on(metadata: dict[str, Any], provenance: dict[str, Any], split: str,
               split_seed: int) -> bool:
    """Whether a model was fitted on (part of) this split: the same files (checksums), cut
    with the same seed, and a split its training used (``all`` holds them all)."""
    trained = metadata.get("provenance", {})
    if not trained.get("files") or trained["files"] != provenance.get("files") or \
            trained.get("split_seed", 0) != split_seed:
        return False
    return split == "all" or split in metadata.get("training", {}).get(
        "fit_on", "train").split("+")


def predict(bundle: str | Path, files: Sequence[str | Path], *,
            explain_dir: str | Path | None = None, out_dir: str | Path | None = None,
            overlay: bool = False, fs: float | None = None,
            on_error: str = "stop") -> list[dict[str, Any]]:
    """Predict each file; with ``explain_dir``, also write one heat-map PNG per file.

    ECG bundles take WFDB records or CSV signals (``fs``: their sampling rate in Hz).

    Segmentation bundles write each mask (NIfTI in the input's grid), a JSON of label volumes
    and, with ``overlay``, a PNG of the mask on the image to ``out_dir``.

    ``on_error``: a file that cannot be predicted (missing, unreadable, flat signal...) raises
    (``"stop"``), or (``"skip"``) becomes its result ``{"file", "error"}`` and the other files go
    on; results stay in the order of ``files`` either way.
    """
    check_on_error(on_error)
    predictor = load_model(bundle)
    results = []
    for index, file in enumerate(files):
        try:
            results.append(_predict_file(predictor, index, file, explain_dir=explain_dir,
                                         out_dir=out_dir, overlay=overlay, fs=fs))
        except MeddxError as error:
            if on_error == "stop":
                raise
            results.append({"file": str(file), "error": str(error)})
    return results


def _predict_file(predictor: Any, index: int, file: str | Path, *,
                  explain_dir: str | Path | None, out_dir: str | Path | None, overlay: bool,
                  fs: float | None) -> dict[str, Any]:
    if getattr(predictor, "task", None) == "segmentation":
        return predictor.predict_file(file, out_dir=out_dir or explain_dir, overlay=overlay)
    target = None
    if explain_dir is not None:
        suffix = getattr(predictor, "explanation_suffix", "gradcam")
        target = Path(explain_dir) / f"{index:03d}_{Path(file).name.split('.')[0]}_{suffix}.png"
    options = {"fs": fs} if fs is not None else {}  # CSV ECG signals need their rate
    return predictor.predict_file(file, explain_to=target, **options)


def predict_inputs(bundle: str | Path, *, records: Sequence[dict[str, Any]] | None = None,
                   table: str | Path | None = None, texts: Sequence[str] | None = None,
                   explain_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """Predict clinical records (JSON objects or a CSV/TSV table) or symptom texts.

    Each result holds probabilities, the decision and the explanation (SHAP values for records,
    word attributions for texts); with ``explain_dir`` also a plot per case.
    """
    predictor = load_model(bundle)
    target = Path(explain_dir) if explain_dir is not None else None
    wanted = {"records": records is not None, "table": table is not None,
              "texts": texts is not None}
    method = {"records": "predict_records", "table": "predict_table", "texts": "predict_texts"}
    chosen = [k for k, v in wanted.items() if v]
    if len(chosen) != 1:
        raise ConfigError("give exactly one of records, a table or texts to predict")
    if not hasattr(predictor, method[chosen[0]]):
        raise ConfigError(f"{bundle}: a {load_bundle(bundle).task} model cannot predict "
                          f"{chosen[0]}; give it files")
    value = {"records": records, "table": table, "texts": texts}[chosen[0]]
    return getattr(predictor, method[chosen[0]])(value, target)


def crossval(bundle_or_config: str | Path, dataset: str | Path | None = None, *,
             folds: int = 5, repeats: int = 1, data_dir: str | Path | None = None,
             seed: int = 0, json_path: str | Path | None = None,
             progress: bool = True, on_error: str = "skip") -> dict[str, Any]:
    """Repeated stratified k-fold cross-validation of a bundle's (or config's) settings."""
    from meddx.learn.crossval import crossval_from

    result = crossval_from(bundle_or_config, dataset, folds=folds, repeats=repeats,
                           data_dir=data_dir, seed=seed, progress=progress, on_error=on_error)
    if json_path is not None:
        write_json(result, Path(json_path))
    return result
