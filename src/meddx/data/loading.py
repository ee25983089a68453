"""One entry point to load any dataset, for every task.

Readers register here: by catalog ``kind`` for named datasets, and by a ``can_read(path)`` test
for paths (tried in order; image classification's readers are the fallback). Each reader returns
the dataset type its task recipe trains on (see :data:`meddx.learn.pipeline.RECIPES`).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from meddx.data import catalog
from meddx.errors import ConfigError

# Catalog kind -> "module:function(name, data_dir)".
READERS_BY_KIND: dict[str, str] = {
    "medmnist": "meddx.data.datasets:load_classification_dataset",
}

# Tried in order for paths: ("module:can_read(path)", "module:function(path, data_dir)").
PATH_READERS: list[tuple[str, str]] = []

FALLBACK_PATH_READER = "meddx.data.datasets:load_classification_dataset"


def _resolve(target: str):
    module, function = target.split(":")
    return getattr(importlib.import_module(module), function)


def load_dataset(name_or_path: str | os.PathLike[str],
                 data_dir: str | os.PathLike[str] | None = None) -> Any:
    """Load a dataset by catalog name or path, with the reader its kind or content calls for."""
    if isinstance(name_or_path, str) and name_or_path in catalog.CATALOG:
        spec = catalog.get_spec(name_or_path)
        reader = READERS_BY_KIND.get(spec.kind)
        if reader is None:
            raise ConfigError(f"dataset '{name_or_path}' ({spec.kind}, {spec.task}): this version "
                              "of meddx has no reader for that kind yet")
        return _resolve(reader)(name_or_path, data_dir)
    path = Path(name_or_path).expanduser()
    if path.exists():
        for test, reader in PATH_READERS:
            if _resolve(test)(path):
                return _resolve(reader)(path, data_dir)
    return _resolve(FALLBACK_PATH_READER)(name_or_path, data_dir)
