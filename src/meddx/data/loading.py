"""One entry point to load any dataset, for every task.

Readers register here: by catalog ``kind`` for named datasets, and by a ``can_read(path)`` test
for paths (tried in order; image classification's readers are the fallback). Each reader returns
the dataset type its task recipe trains on (see :data:`meddx.learn.pipeline.RECIPES`).
"""

from __future__ import annotations

import importlib
import inspect
import os
from pathlib import Path
from typing import Any

from meddx.data import catalog
from meddx.errors import ConfigError

# Catalog kind -> "module:function(name, data_dir)".
READERS_BY_KIND: dict[str, str] = {
    "medmnist": "meddx.data.datasets:load_classification_dataset",
    "msd": "meddx.data.segmentation:load_segmentation_dataset",
    # Clinical-record tables (molecule tables of kind csv are refused by this reader).
    "csv": "meddx.data.tabular:load_tabular_dataset",
    "text": "meddx.data.text:load_text_dataset",
    # ECG: AAMI beats from annotated WFDB records; fixed-length UCR series.
    "wfdb": "meddx.data.ecg:load_wfdb_dataset",
    "ucr": "meddx.data.ecg:load_series_dataset",
}

# Tried in order for paths: ("module:can_read(path)", "module:function(path, data_dir)").
PATH_READERS: list[tuple[str, str]] = [
    # ECG: a folder of WFDB records (or one record), then UCR series files (numeric .txt/.tsv).
    ("meddx.data.ecg:is_wfdb_path", "meddx.data.ecg:load_wfdb_dataset"),
    ("meddx.data.ecg:is_ucr_path", "meddx.data.ecg:load_series_dataset"),
    # MSD folder (imagesTr/ + labelsTr/), images/ + masks/ folder, or an image,label manifest.
    ("meddx.data.segmentation:can_read", "meddx.data.segmentation:load_segmentation_dataset"),
    # .csv/.tsv with text + label columns; then other tables without a `path` column (records).
    ("meddx.data.text:can_read_text_table", "meddx.data.text:load_text_dataset"),
    ("meddx.data.tabular:can_read_table", "meddx.data.tabular:load_tabular_dataset"),
]

FALLBACK_PATH_READER = "meddx.data.datasets:load_classification_dataset"


def _resolve(target: str):
    module, function = target.split(":")
    return getattr(importlib.import_module(module), function)


# What a reader of many cases (volumes, records) does with a bad one: report it and go on, or
# stop the whole load with an error naming it.
ON_ERROR_MODES = ("skip", "stop")


def check_on_error(on_error: str) -> None:
    """A clear error for an ``on_error`` outside :data:`ON_ERROR_MODES`."""
    if on_error not in ON_ERROR_MODES:
        raise ConfigError(f"on_error must be one of {ON_ERROR_MODES}, got {on_error!r}")


def _read(target: str, source: Any, data_dir: Any, on_error: str) -> Any:
    reader = _resolve(target)
    # Readers of single files fail on any bad input anyway, so only many-case readers take it.
    if "on_error" in inspect.signature(reader).parameters:
        return reader(source, data_dir, on_error=on_error)
    return reader(source, data_dir)


def load_dataset(name_or_path: str | os.PathLike[str],
                 data_dir: str | os.PathLike[str] | None = None, *,
                 on_error: str = "skip") -> Any:
    """Load a dataset by catalog name or path, with the reader its kind or content calls for.

    ``on_error``: ``"skip"`` reports a bad case (volume, record) and loads the others; ``"stop"``
    raises on the first one.
    """
    check_on_error(on_error)
    # "name:part" selects part of a catalog dataset (e.g. one centre of a multi-centre table).
    if isinstance(name_or_path, str) and name_or_path.partition(":")[0] in catalog.CATALOG:
        spec = catalog.get_spec(name_or_path.partition(":")[0])
        reader = READERS_BY_KIND.get(spec.kind)
        if reader is None:
            raise ConfigError(f"dataset '{name_or_path}' ({spec.kind}, {spec.task}): this version "
                              "of meddx has no reader for that kind yet")
        return _read(reader, name_or_path, data_dir, on_error)
    path = Path(name_or_path).expanduser()
    if path.exists():
        for test, reader in PATH_READERS:
            if _resolve(test)(path):
                return _read(reader, path, data_dir, on_error)
    return _read(FALLBACK_PATH_READER, name_or_path, data_dir, on_error)
