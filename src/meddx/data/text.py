"""Free-text cases (a patient's own description of symptoms) with a class label.

:func:`load_text_dataset` reads the catalog's ``symptom2disease`` table or any CSV/TSV file with a
``text`` column and a ``label`` column (other columns, such as an unnamed index, are ignored)
into a :class:`TextDataset` with the same split interface as the other datasets (seeded,
stratified 64/16/20 train/val/test unless the file has a ``split`` column).
"""

from __future__ import annotations

import csv
import io
import os
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from meddx.data import catalog
from meddx.data.download import sha256_file
from meddx.data.tabular import SPLIT_NAMES, SplitHolder
from meddx.errors import ConfigError, DataError, InputFileError

__all__ = ["TextDataset", "TextSplit", "can_read_text_table", "clean_text", "load_text_dataset"]

TEXT_COLUMNS = ("text", "description", "symptoms")
LABEL_COLUMNS = ("label", "disease", "diagnosis", "class")


def clean_text(text: Any, source: str = "text") -> str:
    """Normalise a free text (Unicode NFC, whitespace collapsed); reject empty text.

    Raises:
        DataError: the text is empty or only whitespace / control characters.
    """
    if text is None:
        raise DataError(f"{source}: the text is empty")
    cleaned = unicodedata.normalize("NFC", str(text))
    cleaned = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in cleaned)
    cleaned = " ".join(cleaned.split())
    if not cleaned:
        raise DataError(f"{source}: the text is empty; describe the symptoms in words")
    return cleaned


@dataclass
class TextSplit:
    """Texts of one split: ``texts``, ``labels`` (int64) and ``sources`` (``file:line``)."""

    texts: list[str]
    labels: np.ndarray
    sources: list[str]

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        if not len(self.texts) == len(self.labels) == len(self.sources):
            raise ValueError("TextSplit needs as many texts, labels and sources")

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: Sequence[int] | np.ndarray) -> TextSplit:
        idx = [int(i) for i in indices]
        return TextSplit([self.texts[i] for i in idx], self.labels[idx],
                         [self.sources[i] for i in idx])

    @staticmethod
    def concat(parts: Sequence[TextSplit]) -> TextSplit:
        return TextSplit([t for p in parts for t in p.texts],
                         np.concatenate([p.labels for p in parts]),
                         [s for p in parts for s in p.sources])


@dataclass
class TextDataset(SplitHolder):
    """Labelled texts. ``splits`` is ``{"all": TextSplit}`` or explicit train/val/test."""

    name: str
    class_names: list[str]
    splits: dict[str, TextSplit]
    provenance: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def _find(header: list[str], candidates: Sequence[str], wanted: str | None, path: Path,
          what: str) -> int:
    lowered = [h.strip().lower() for h in header]
    if wanted is not None:
        if wanted.lower() not in lowered:
            raise DataError(f"{path}: no {what} column {wanted!r} (columns: {header})")
        return lowered.index(wanted.lower())
    for name in candidates:
        if name in lowered:
            return lowered.index(name)
    raise DataError(f"{path}: no {what} column (expected one of {list(candidates)}; "
                    f"columns: {header})")


def read_text_table(path: Path, text_column: str | None = None,
                    label_column: str | None = None,
                    class_names: Sequence[str] | None = None) -> tuple[list[str], dict[str, Any]]:
    """Read (class names, splits) from a text CSV/TSV with a header row."""
    try:
        content = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as error:
        raise InputFileError(path, "file not found") from error
    except (OSError, UnicodeDecodeError) as error:
        raise InputFileError(path, f"cannot read the table ({error})") from error
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    rows = list(csv.reader(io.StringIO(content), delimiter=delimiter))
    if len(rows) < 2:
        raise DataError(f"{path}: the table has no texts")
    header, body = rows[0], rows[1:]
    ti = _find(header, TEXT_COLUMNS, text_column, path, "text")
    li = _find(header, LABEL_COLUMNS, label_column, path, "label")
    lowered = [h.strip().lower() for h in header]
    si = lowered.index("split") if "split" in lowered else None
    texts, labels, sources, split_of = [], [], [], []
    for number, row in enumerate(body, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise InputFileError(path, f"line {number} has {len(row)} cells, the header has "
                                 f"{len(header)}")
        label = row[li].strip()
        if not label:
            raise DataError(f"{path}: line {number}: the label is empty")
        texts.append(clean_text(row[ti], f"{path}: line {number}"))
        labels.append(label)
        sources.append(f"{path.name}:{number}")
        split_of.append(row[si].strip().lower() if si is not None else "all")
    names = list(class_names) if class_names else sorted(set(labels))
    unknown = sorted(set(labels) - set(names))
    if unknown:
        raise DataError(f"{path}: labels {unknown[:5]} are not among the classes {names}")
    if len(set(labels)) < 2:
        raise DataError(f"{path}: every text has the label {labels[0]!r}; a classifier needs at "
                        "least two classes")
    index = {n: i for i, n in enumerate(names)}
    y = np.array([index[label] for label in labels], dtype=np.int64)
    everything = TextSplit(texts, y, sources)
    wanted = sorted(set(split_of))
    if wanted == ["all"]:
        return names, {"all": everything}
    aliases = {"training": "train", "valid": "val", "validation": "val", "testing": "test"}
    splits: dict[str, TextSplit] = {}
    for name in wanted:
        key = aliases.get(name, name)
        if key not in SPLIT_NAMES:
            raise DataError(f"{path}: unknown split {name!r} (expected train, val or test)")
        splits[key] = everything.subset([i for i, s in enumerate(split_of) if s == name])
    if "train" not in splits:
        raise DataError(f"{path}: the split column names no training texts")
    return names, splits


def load_text_dataset(name_or_path: str | os.PathLike[str],
                      data_dir: str | os.PathLike[str] | None = None) -> TextDataset:
    """Load labelled texts by catalog name (kind ``text``) or CSV/TSV path."""
    if isinstance(name_or_path, str) and name_or_path in catalog.CATALOG:
        spec = catalog.get_spec(name_or_path)
        if spec.kind != "text":
            raise ConfigError(f"dataset '{name_or_path}' is a {spec.kind} dataset, not text")
        path = catalog.locate(name_or_path, data_dir) / spec.extra["table"]
        names, splits = read_text_table(path, spec.extra.get("text_column"),
                                        spec.extra.get("label_column"), spec.class_names)
        name = name_or_path
    else:
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise InputFileError(path, "file not found")
        names, splits = read_text_table(path)
        name = path.stem
    provenance = {"dataset": name, "kind": "text", "source": str(path.parent),
                  "files": {path.name: sha256_file(path)}}
    return TextDataset(name=name, class_names=names, splits=splits, provenance=provenance)


def can_read_text_table(path: str | os.PathLike[str]) -> bool:
    """True for a .csv/.tsv file whose header has a text column and a label column."""
    path = Path(path)
    if not path.is_file() or path.suffix.lower() not in (".csv", ".tsv", ".tab"):
        return False
    try:
        with path.open(encoding="utf-8-sig", errors="replace") as handle:
            first = handle.readline()
    except OSError:
        return False
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    cells = {c.strip().lower() for c in next(csv.reader([first], delimiter=delimiter), [])}
    return bool(cells & set(TEXT_COLUMNS)) and bool(cells & set(LABEL_COLUMNS))
