"""Clinical records as tables: reading, schema inference, and a split-able dataset.

A table is a CSV/TSV file with or without a header row. Its :class:`TabularSchema` says, per
column, whether it is ``numeric`` or ``categorical``, which strings mean "not recorded" (``?``,
empty, ``NA``...), whether a zero is physiologically impossible and so means "missing" (a glucose
of 0 mg/dl), and which column is the target (optionally binarised, e.g. ``num > 0``).

The schema is inferred from the file (:func:`infer_schema`) and saved (in the bundle, and as
``schema.json`` by :meth:`TabularSchema.save`); a user who disagrees writes a schema file beside
the data, ``<file>.schema.json`` (same JSON layout, any subset of keys), which then wins over the
inference. A bundle keeps the schema it was trained with, so it applies to another hospital's
export of the same columns without code.

Catalog entries read here: ``pima-diabetes`` and ``heart-disease-va-switzerland`` (both centres;
``heart-disease-va-switzerland:va`` or ``:switzerland`` for one centre).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from meddx.data import catalog
from meddx.data.datasets import stratified_parts
from meddx.data.download import sha256_file
from meddx.errors import ConfigError, DataError, DatasetNotFoundError, InputFileError
from meddx.fileio import write_json

__all__ = [
    "DEFAULT_MISSING",
    "ColumnSchema",
    "TabularDataset",
    "TabularSchema",
    "TabularSplit",
    "can_read_table",
    "infer_schema",
    "load_tabular_dataset",
    "parse_frame",
    "read_raw_table",
]

log = logging.getLogger(__name__)

DEFAULT_MISSING = ("", "?", "NA", "N/A", "NaN", "nan", "null", "NULL", "None", "-")
"""Cell values read as "not recorded" unless a schema says otherwise."""

SCHEMA_SUFFIX = ".schema.json"
MAX_CATEGORIES = 30
SPLIT_NAMES = ("train", "val", "test")

# Measurements for which a value of 0 cannot be real (a living patient), so 0 encodes "missing".
_IMPOSSIBLE_ZERO = re.compile(
    r"glucose|blood.?pressure|^bp$|skin.?thick|insulin|^bmi$|body.?mass|chol|trestbps|thalach|"
    r"heart.?rate|^hr$|systolic|diastolic|weight|height|haemoglobin|hemoglobin", re.IGNORECASE)
_TARGET_NAMES = ("outcome", "target", "label", "class", "diagnosis", "disease", "y")
_BINARISE = re.compile(r"^\s*(?P<column>[^<>=!]+?)\s*(?P<op>>=|<=|==|!=|>|<)\s*"
                       r"(?P<value>[-+]?\d+(?:\.\d+)?)\s*$")
_OPS = {">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal,
        "==": np.equal, "!=": np.not_equal}

# Facts about catalog tables that cannot be inferred from the values: coded categories.
_CATALOG_HINTS: dict[str, dict[str, Any]] = {
    "heart-disease-va-switzerland": {
        "categorical": ("cp", "restecg", "slope", "thal"),
        "zero_means_missing": ("chol", "trestbps"),
        "centres": {"va": "processed.va.data", "switzerland": "processed.switzerland.data"},
    },
}


# --------------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------------


@dataclass
class ColumnSchema:
    """One feature column.

    Attributes:
        name: Column name (header cell, or the schema's name for headerless files).
        kind: ``"numeric"`` or ``"categorical"``.
        zero_means_missing: A value of 0 is physiologically impossible and means "missing".
        categories: Known categories of a categorical column (canonical strings).
        minimum: Smallest value seen in the data the schema was inferred from (numeric).
        maximum: Largest value seen (numeric). Values outside [minimum, maximum] get a warning.
    """

    name: str
    kind: str = "numeric"
    zero_means_missing: bool = False
    categories: list[str] | None = None
    minimum: float | None = None
    maximum: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("numeric", "categorical"):
            raise ConfigError(f"column {self.name!r}: kind must be numeric or categorical, "
                              f"not {self.kind!r}")


@dataclass
class TabularSchema:
    """How to read a table: feature columns, target, missing markers, header.

    Attributes:
        columns: Feature columns, in model order.
        target: Name of the target column (None for unlabelled prediction tables).
        binarise: Rule turning a numeric target into two classes, e.g. ``"num > 0"``.
        class_names: Class names in label order.
        class_values: The target's raw values for each class (``class_names[i]`` <- any of
            ``class_values[i]``); None when ``binarise`` applies.
        missing_values: Cell strings that mean "not recorded".
        header: True when the file's first row names the columns.
        column_order: All columns of a headerless file, in file order (target included).
    """

    columns: list[ColumnSchema]
    target: str | None
    class_names: list[str]
    binarise: str | None = None
    class_values: list[list[str]] | None = None
    missing_values: list[str] = field(default_factory=lambda: list(DEFAULT_MISSING))
    header: bool = True
    column_order: list[str] | None = None

    @property
    def feature_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> ColumnSchema:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "schema") -> TabularSchema:
        data = dict(data)
        try:
            data["columns"] = [ColumnSchema(**c) if isinstance(c, Mapping) else c
                               for c in data["columns"]]
            return cls(**data)
        except (KeyError, TypeError) as error:
            raise ConfigError(f"{source}: not a valid table schema ({error})") from error

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the schema as JSON (atomically), for people to read and override."""
        return write_json(self.to_dict(), Path(path))


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def canonical_category(value: Any) -> str:
    """One spelling per category: ``"4"``, ``"4.0"`` and ``4`` are the same code."""
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text
    return format(number, "g") if math.isfinite(number) else text


def read_raw_table(path: str | os.PathLike[str], header: bool | None = None,
                   missing_values: Iterable[str] = DEFAULT_MISSING,
                   ) -> tuple[list[str] | None, list[list[str]]]:
    """Read a CSV/TSV file as strings.

    Args:
        path: the file (``.tsv``/``.tab`` are tab-separated; other delimiters are sniffed).
        header: True/False, or None to detect: the first row is a header when some of its
            cells are not numbers (nor missing markers) where the rows below hold numbers.
        missing_values: strings that mean "missing" (not evidence of a header).

    Returns:
        (header cells or None, rows of stripped cells).

    Raises:
        InputFileError: missing, unreadable, empty or ragged file.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as error:
        raise InputFileError(path, "file not found") from error
    except (OSError, UnicodeDecodeError) as error:
        raise InputFileError(path, f"cannot read the table ({error})") from error
    if not text.strip():
        raise InputFileError(path, "the table is empty")
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else _sniff_delimiter(text)
    rows = [[cell.strip() for cell in row] for row in csv.reader(io.StringIO(text),
                                                                 delimiter=delimiter)]
    rows = [row for row in rows if any(row)]
    width = len(rows[0])
    for number, row in enumerate(rows, start=1):
        if len(row) != width:
            raise InputFileError(path, f"line {number} has {len(row)} cells, the first line "
                                 f"has {width}")
    if header is None:
        header = _looks_like_header(rows, set(missing_values))
    if header:
        return rows[0], rows[1:]
    return None, rows


def _sniff_delimiter(text: str) -> str:
    sample = "\n".join(text.splitlines()[:20])
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _looks_like_header(rows: list[list[str]], missing: set[str]) -> bool:
    if len(rows) < 2:
        return False
    first, rest = rows[0], rows[1:51]
    for index, cell in enumerate(first):
        if cell in missing or _is_number(cell):
            continue
        below = [row[index] for row in rest if row[index] not in missing]
        numeric_below = sum(_is_number(v) for v in below)
        # A word over numbers, or a word that never recurs below it: a column name.
        if (below and numeric_below >= 0.5 * len(below)) or cell not in below:
            return True
    return False


def parse_frame(header: Sequence[str], rows: Sequence[Sequence[str]], schema: TabularSchema,
                source: str, row_offset: int = 1, require_target: bool = True,
                ) -> tuple[pd.DataFrame, np.ndarray | None, list[str]]:
    """Turn string cells into typed feature columns (NaN / None for missing) and labels.

    Args:
        header: column names of ``rows``.
        rows: string cells.
        schema: what each column is.
        source: file name for error messages.
        row_offset: file line number of ``rows[0]`` (for messages).
        require_target: the target column must be present (training, evaluation).

    Returns:
        (features in schema order, labels or None when the table has no target, warnings).

    Raises:
        DataError: a required column is missing, a numeric cell is not a number, a value is
            infinite, a target value is not one of the classes.
    """
    names = list(header)
    if len(set(names)) != len(names):
        duplicated = sorted({n for n in names if names.count(n) > 1})
        raise DataError(f"{source}: duplicated column name(s) {duplicated}")
    index = {name: i for i, name in enumerate(names)}
    warnings: list[str] = []
    missing_cols = [c for c in schema.feature_names if c not in index]
    if missing_cols:
        raise DataError(f"{source}: column(s) {missing_cols} are missing (the model needs "
                        f"{schema.feature_names}); give an empty cell or null for a value that "
                        "was not measured, it is then imputed")
    known = set(schema.feature_names) | ({schema.target} if schema.target else set())
    extra = [n for n in names if n not in known]
    if extra:
        warnings.append(f"{source}: column(s) {extra} are not used by the model and were ignored")
    missing = set(schema.missing_values)
    data: dict[str, Any] = {}
    for col in schema.columns:
        cells = [row[index[col.name]] for row in rows]
        if col.kind == "numeric":
            data[col.name] = _parse_numeric(cells, col, missing, source, row_offset)
        else:
            data[col.name] = pd.Series(
                [None if c in missing else canonical_category(c) for c in cells], dtype=object)
    frame = pd.DataFrame(data, columns=schema.feature_names)
    labels = None
    if schema.target is not None and schema.target in index:
        labels = _parse_target([row[index[schema.target]] for row in rows], schema, source,
                               row_offset, missing)
    elif require_target:
        raise DataError(f"{source}: the target column {schema.target!r} is missing")
    return frame, labels, warnings


def _parse_numeric(cells: Sequence[str], col: ColumnSchema, missing: set[str], source: str,
                   row_offset: int) -> np.ndarray:
    values = np.empty(len(cells), dtype=np.float64)
    for i, cell in enumerate(cells):
        if cell in missing:
            values[i] = np.nan
            continue
        try:
            value = float(cell)
        except ValueError:
            raise DataError(f"{source}: line {i + row_offset}, column {col.name!r}: {cell!r} is "
                            "not a number (write it as an empty cell or '?' if it was not "
                            "measured)") from None
        if math.isinf(value):
            raise DataError(f"{source}: line {i + row_offset}, column {col.name!r}: infinite "
                            "value")
        values[i] = value
    if col.zero_means_missing:
        values[values == 0] = np.nan
    return values


def _parse_target(cells: Sequence[str], schema: TabularSchema, source: str, row_offset: int,
                  missing: set[str]) -> np.ndarray:
    labels = np.empty(len(cells), dtype=np.int64)
    rule = _binarise_rule(schema.binarise) if schema.binarise else None
    lookup = {}
    for k, values in enumerate(schema.class_values or []):
        for value in values:
            lookup[canonical_category(value)] = k
    for i, cell in enumerate(cells):
        if cell in missing:
            raise DataError(f"{source}: line {i + row_offset}: the target {schema.target!r} is "
                            "missing; remove unlabelled rows from a training/evaluation table")
        if rule is not None:
            try:
                labels[i] = int(_OPS[rule[0]](float(cell), rule[1]))
            except ValueError:
                raise DataError(f"{source}: line {i + row_offset}: target {cell!r} is not a "
                                "number") from None
            continue
        key = canonical_category(cell)
        if key not in lookup:
            raise DataError(f"{source}: line {i + row_offset}: target {cell!r} is not one of the "
                            f"classes {schema.class_names}")
        labels[i] = lookup[key]
    return labels


def target_cell(schema: TabularSchema, class_index: int) -> str:
    """The target cell that :func:`parse_frame` reads back as ``class_names[class_index]``.

    A class-valued target gives the class's first raw value; a binarised one (``num > 0``) a
    value on the class's side of the rule (the threshold itself, or one step past it).

    Raises:
        ConfigError: the schema has no target, or the index is not one of its classes.
    """
    if schema.target is None or not 0 <= class_index < len(schema.class_names):
        raise ConfigError(f"schema: no target value for class {class_index} (target "
                          f"{schema.target!r}, classes {schema.class_names})")
    if not schema.binarise:
        return str(schema.class_values[class_index][0])
    op, threshold = _binarise_rule(schema.binarise)
    for value in (threshold, threshold + 1, threshold - 1):
        if int(_OPS[op](value, threshold)) == class_index:
            return canonical_category(value)
    raise ConfigError(f"schema: the rule {schema.binarise!r} has no value for class "
                      f"{schema.class_names[class_index]!r}")


def _binarise_rule(text: str) -> tuple[str, float]:
    match = _BINARISE.match(text)
    if not match:
        raise ConfigError(f"binarise rule {text!r} is not of the form 'column > number'")
    return match["op"], float(match["value"])


# --------------------------------------------------------------------------------------------
# Inference
# --------------------------------------------------------------------------------------------


def infer_schema(header: Sequence[str], rows: Sequence[Sequence[str]], source: str, *,
                 target: str | None = None, binarise: str | None = None,
                 class_names: Sequence[str] | None = None,
                 missing_values: Iterable[str] = DEFAULT_MISSING,
                 zero_means_missing: Iterable[str] | None = None,
                 categorical: Iterable[str] = (), header_present: bool = True) -> TabularSchema:
    """Infer a schema from string cells.

    Rules: a column is numeric when every recorded cell is a number; categorical when it holds
    words with at most :data:`MAX_CATEGORIES` distinct values; a column that is mostly numbers
    with a few words is an error (an undeclared missing marker, or a typo) naming the cells.
    Zeros mean missing in columns named like physiological measurements that cannot be 0
    (glucose, blood pressure, BMI, insulin, cholesterol, heart rate...), unless
    ``zero_means_missing`` lists the columns explicitly. The target is ``target``, else a
    column named outcome/target/label/class/diagnosis, else the last column.

    Raises:
        DataError: unusable column, or a target with a single class.
    """
    names = list(header)
    missing = list(dict.fromkeys(missing_values))
    if target is None:
        lowered = {n.lower(): n for n in names}
        target = next((lowered[t] for t in _TARGET_NAMES if t in lowered), names[-1])
    if target not in names:
        raise DataError(f"{source}: the target column {target!r} is not among {names}")
    categorical = set(categorical)
    columns = []
    for position, name in enumerate(names):
        if name == target:
            continue
        cells = [row[position] for row in rows if row[position] not in missing]
        numeric = [c for c in cells if _is_number(c)]
        if name in categorical or (cells and len(numeric) < 0.75 * len(cells)):
            categories = sorted({canonical_category(c) for c in cells})
            if len(categories) > MAX_CATEGORIES and name not in categorical:
                raise DataError(f"{source}: column {name!r} has {len(categories)} distinct "
                                "words; free text is not a clinical-record feature (drop the "
                                "column or declare it in a schema file)")
            columns.append(ColumnSchema(name, "categorical", categories=categories))
            continue
        if len(numeric) < len(cells):
            odd = sorted({c for c in cells if not _is_number(c)})[:5]
            raise DataError(f"{source}: column {name!r} holds numbers and the non-numbers {odd}; "
                            "if these mean 'not recorded', list them in missing_values of a "
                            f"schema file ({Path(source).name}{SCHEMA_SUFFIX})")
        values = np.array([float(c) for c in numeric]) if numeric else np.zeros(0)
        if values.size and not np.isfinite(values).all():
            raise DataError(f"{source}: column {name!r} contains infinite values")
        if zero_means_missing is None:
            zero_missing = bool(_IMPOSSIBLE_ZERO.search(name)) and bool((values == 0).any())
        else:
            zero_missing = name in set(zero_means_missing)
        kept = values[values != 0] if zero_missing else values
        columns.append(ColumnSchema(
            name, "numeric", zero_means_missing=zero_missing,
            minimum=float(kept.min()) if kept.size else None,
            maximum=float(kept.max()) if kept.size else None))
    if not columns:
        raise DataError(f"{source}: the table has no feature column besides the target")
    target_cells = [row[names.index(target)] for row in rows if row[names.index(target)]
                    not in missing]
    class_values = None
    if binarise:
        _binarise_rule(binarise)
        names_out = list(class_names or ("negative", "positive"))
    else:
        distinct = sorted({canonical_category(c) for c in target_cells},
                          key=lambda v: (not _is_number(v), float(v) if _is_number(v) else 0, v))
        if class_names and len(class_names) == len(distinct):
            names_out = list(class_names)
        else:
            names_out = distinct
        class_values = [[v] for v in distinct]
    schema = TabularSchema(columns=columns, target=target, binarise=binarise,
                           class_names=[str(n) for n in names_out], class_values=class_values,
                           missing_values=missing, header=header_present,
                           column_order=None if header_present else names)
    return schema


def _apply_overrides(schema: TabularSchema, overrides: Mapping[str, Any],
                     source: str) -> TabularSchema:
    """Merge a user schema file over the inferred schema (columns merge by name)."""
    data = schema.to_dict()
    for key, value in overrides.items():
        if key == "columns":
            # Entries update the inferred column of the same name; {"drop": true} removes it.
            by_name = {c["name"]: c for c in data["columns"]}
            for col in value:
                if not isinstance(col, Mapping) or "name" not in col:
                    raise ConfigError(f"{source}: every column entry needs a name")
                if col["name"] not in by_name:
                    raise ConfigError(f"{source}: column {col['name']!r} is not a feature "
                                      f"column of the table ({sorted(by_name)})")
                if col.get("drop"):
                    del by_name[col["name"]]
                    continue
                update = dict(col)
                if update.get("kind") == "categorical":
                    update.setdefault("minimum", None)
                    update.setdefault("maximum", None)
                by_name[col["name"]] = {**by_name[col["name"]], **update}
            data["columns"] = list(by_name.values())
        elif key in data:
            data[key] = value
        else:
            raise ConfigError(f"{source}: unknown schema key {key!r} (known: {sorted(data)})")
    return TabularSchema.from_dict(data, source)


# --------------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------------


@dataclass
class TabularSplit:
    """Records of one split.

    Attributes:
        features: One row per patient, feature columns in schema order (NaN / None = missing).
        labels: ``int64`` class indices.
        sources: Where each row came from (``file:line``).
    """

    features: pd.DataFrame
    labels: np.ndarray
    sources: list[str]

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        self.features = self.features.reset_index(drop=True)
        if not len(self.features) == len(self.labels) == len(self.sources):
            raise ValueError("TabularSplit needs as many rows, labels and sources")

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: Sequence[int] | np.ndarray) -> TabularSplit:
        idx = [int(i) for i in indices]
        return TabularSplit(self.features.iloc[idx], self.labels[idx],
                            [self.sources[i] for i in idx])

    @staticmethod
    def concat(parts: Sequence[TabularSplit]) -> TabularSplit:
        return TabularSplit(pd.concat([p.features for p in parts], ignore_index=True),
                            np.concatenate([p.labels for p in parts]),
                            [s for p in parts for s in p.sources])


@dataclass
class SplitHolder:
    """Shared split logic of record and text datasets (``splits`` + seeded stratified carving).

    Subclasses hold ``name``, ``class_names``, ``splits`` (``{"all": ...}`` or train/val/test)
    and ``provenance``.
    """

    VAL_FRACTION = 0.2
    TEST_FRACTION = 0.2

    def _resolve(self, seed: int) -> dict[str, Any]:
        cache = self.__dict__.setdefault("_derived", {})
        if seed not in cache:
            splits = self.splits
            if "all" in splits:
                rest, test, val = splits["all"], None, None
            else:
                rest, test, val = splits["train"], splits.get("test"), splits.get("val")
            if test is None:
                keep, carved = stratified_parts(rest.labels, self.TEST_FRACTION, seed)
                rest, test = rest.subset(keep), rest.subset(carved)
            if val is None:
                keep, carved = stratified_parts(rest.labels, self.VAL_FRACTION, seed)
                rest, val = rest.subset(keep), rest.subset(carved)
            cache[seed] = {"train": rest, "val": val, "test": test}
        return cache[seed]

    def split(self, name: str, seed: int = 0):
        """Records of ``train``, ``val``, ``test`` (seeded stratified 64/16/20) or ``all``."""
        if name == "all":
            parts = [self.splits[k] for k in (*SPLIT_NAMES, "all") if k in self.splits]
            data = parts[0] if len(parts) == 1 else type(parts[0]).concat(parts)
        elif name in SPLIT_NAMES:
            data = self._resolve(seed)[name]
        else:
            raise ConfigError(f"unknown split '{name}' for dataset '{self.name}' (expected "
                              "train, val, test or all)")
        if len(data) == 0:
            raise DataError(f"split '{name}' of dataset '{self.name}' is empty")
        return data

    def split_sizes(self, seed: int = 0) -> dict[str, int]:
        resolved = self._resolve(seed)
        return {k: len(resolved[k]) for k in SPLIT_NAMES}


@dataclass
class TabularDataset(SplitHolder):
    """A clinical-record table with a target.

    Attributes:
        name: Dataset name (catalog name, possibly ``name:centre``, or file stem).
        class_names: Class names in label order.
        schema: How the table was read (saved in bundles).
        splits: ``{"all": TabularSplit}`` or explicit train/val/test splits.
        provenance: dataset, kind, source, files (sha256).
        warnings: Notes from reading (ignored columns...).
    """

    name: str
    class_names: list[str]
    schema: TabularSchema
    splits: dict[str, TabularSplit]
    provenance: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def _check_classes(labels: np.ndarray, class_names: Sequence[str], source: str) -> None:
    present = np.unique(labels)
    if len(present) < 2:
        only = class_names[int(present[0])] if len(present) else "none"
        raise DataError(f"{source}: the target has a single class ({only!r}); a classifier "
                        "needs examples of at least two classes")


def _read_one(path: Path, spec_extra: Mapping[str, Any] | None, hints: Mapping[str, Any],
              class_names: Sequence[str] | None) -> tuple[TabularSchema, TabularSplit, list[str]]:
    extra = dict(spec_extra or {})
    missing = list(DEFAULT_MISSING)
    for marker in extra.get("missing_values", ()):
        if marker not in missing:
            missing.append(marker)
    overrides: dict[str, Any] = {}
    sidecar = path.with_name(path.name + SCHEMA_SUFFIX)
    if sidecar.exists():
        try:
            overrides = json.loads(sidecar.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ConfigError(f"{sidecar}: cannot read the schema file ({error})") from error
        if not isinstance(overrides, dict):
            raise ConfigError(f"{sidecar}: a schema file holds a JSON object")
        missing = list(dict.fromkeys([*missing, *overrides.get("missing_values", [])]))
    header_flag = overrides.get("header", extra.get("header"))
    header, rows = read_raw_table(path, header_flag, missing)
    has_header = header is not None
    if header is None:
        header = overrides.get("column_order") or list(extra.get("columns", ())) or [
            f"column_{i + 1}" for i in range(len(rows[0]))]
        if len(header) != len(rows[0]):
            raise DataError(f"{path}: {len(rows[0])} columns but the schema names "
                            f"{len(header)}: {header}")
    if not rows:
        raise DataError(f"{path}: the table has a header but no records")
    schema = infer_schema(
        header, rows, str(path), target=overrides.get("target", extra.get("target")),
        binarise=overrides.get("binarise", extra.get("binarise_target")),
        class_names=class_names, missing_values=missing,
        zero_means_missing=extra.get("zero_means_missing", hints.get("zero_means_missing")),
        categorical=hints.get("categorical", ()), header_present=has_header)
    if overrides:
        schema = _apply_overrides(schema, overrides, str(sidecar))
    first_line = 2 if schema.header else 1
    frame, labels, warnings = parse_frame(header, rows, schema, str(path), first_line)
    _check_classes(labels, schema.class_names, str(path))
    sources = [f"{path.name}:{i + first_line}" for i in range(len(rows))]
    return schema, TabularSplit(frame, labels, sources), warnings


def load_tabular_dataset(name_or_path: str | os.PathLike[str],
                         data_dir: str | os.PathLike[str] | None = None) -> TabularDataset:
    """Load a clinical-record table by catalog name (``name`` or ``name:centre``) or path.

    Raises:
        DatasetNotFoundError: unknown catalog name or files not present.
        InputFileError / DataError / ConfigError: unreadable or invalid table or schema.
    """
    text = str(name_or_path)
    base, _, centre = text.partition(":")
    if isinstance(name_or_path, str) and base in catalog.CATALOG:
        spec = catalog.get_spec(base)
        if spec.kind != "csv" or spec.task != "classification" or "smiles_column" in spec.extra:
            raise ConfigError(f"dataset '{base}' ({spec.kind}, {spec.task}) is not a table of "
                              "clinical records with a class target")
        folder = catalog.locate(base, data_dir)
        hints = _CATALOG_HINTS.get(base, {})
        tables = list(spec.extra.get("tables") or [spec.extra["table"]])
        if centre:
            centres = hints.get("centres", {})
            if centre not in centres:
                known = ", ".join(f"{base}:{c}" for c in sorted(centres)) or "(none)"
                raise DatasetNotFoundError(f"dataset '{base}' has no centre {centre!r}; "
                                           f"choose one of {known}")
            tables = [centres[centre]]
        paths = [folder / t for t in tables]
        class_names = list(spec.class_names or ()) or None
        name = text
    else:
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise InputFileError(path, "file not found")
        paths, hints, class_names, name, spec = [path], {}, None, path.stem, None
    parts, schema, warnings = [], None, []
    for path in paths:
        one_schema, part, notes = _read_one(path, spec.extra if spec else None, hints,
                                            class_names)
        warnings += notes
        schema = one_schema if schema is None else _merge_schemas(schema, one_schema)
        parts.append(part)
    data = parts[0] if len(parts) == 1 else TabularSplit.concat(parts)
    for note in warnings:
        log.warning(note)
    provenance = {"dataset": name, "kind": "csv", "source": str(paths[0].parent),
                  "files": {p.name: sha256_file(p) for p in paths}}
    return TabularDataset(name=name, class_names=schema.class_names, schema=schema,
                          splits={"all": data}, provenance=provenance, warnings=warnings)


def _merge_schemas(first: TabularSchema, second: TabularSchema) -> TabularSchema:
    """One schema for several files of the same layout (ranges and categories widened)."""
    if first.feature_names != second.feature_names:
        raise DataError(f"the tables have different columns: {first.feature_names} vs "
                        f"{second.feature_names}")
    merged = TabularSchema.from_dict(first.to_dict())
    for col, other in zip(merged.columns, second.columns, strict=True):
        if col.kind != other.kind:
            col.kind = "categorical"
        col.zero_means_missing = col.zero_means_missing or other.zero_means_missing
        if col.kind == "categorical":
            col.categories = sorted(set(col.categories or []) | set(other.categories or []))
            col.minimum = col.maximum = None
        else:
            lows = [v for v in (col.minimum, other.minimum) if v is not None]
            highs = [v for v in (col.maximum, other.maximum) if v is not None]
            col.minimum, col.maximum = (min(lows) if lows else None), (max(highs) if highs
                                                                        else None)
    if merged.class_values is not None and second.class_values is not None:
        values = {v[0] for v in merged.class_values} | {v[0] for v in second.class_values}
        merged.class_values = [[v] for v in sorted(values)]
    return merged


def can_read_table(path: str | os.PathLike[str]) -> bool:
    """True for a .csv/.tsv table of records (not an image manifest, not a symptom-text table).

    An image manifest has a ``path`` column; a text table has a ``text`` column.
    """
    path = Path(path)
    if not path.is_file() or path.suffix.lower() not in (".csv", ".tsv", ".tab"):
        return False
    try:
        with path.open(encoding="utf-8-sig", errors="replace") as handle:
            first = handle.readline()
    except OSError:
        return False
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else _sniff_delimiter(first)
    cells = {c.strip().lower() for c in next(csv.reader([first], delimiter=delimiter), [])}
    return "path" not in cells and "text" not in cells and "smiles" not in cells
