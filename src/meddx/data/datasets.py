"""Image classification datasets: readers and seeded, stratified splits.

:func:`load_classification_dataset` turns any of these into one :class:`ClassificationDataset`:

- a catalog name of kind ``medmnist`` (``"pneumoniamnist"``, ``"adrenalmnist3d"``...);
- a MedMNIST-format ``.npz`` file (``train/val/test_images`` + ``_labels``);
- a ``.csv`` manifest with columns ``path,label`` and optionally ``split``;
- a folder with one subfolder per class, optionally inside ``train/``, ``val/``, ``test/``.

Images are ``float32`` channel-first arrays, one per case (sizes may differ; the task resizes).
A dataset's own split (MedMNIST's official split, a manifest's ``split`` column, split folders) is
always used when present; missing splits are carved out with a seeded stratified split, so the same
seed gives the same cases. Every dataset carries a provenance record (source, SHA-256 of its
files, split sizes) that ends up in the model bundle.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from meddx.data import catalog
from meddx.data.download import sha256_file
from meddx.data.images import detect_format, read_image
from meddx.errors import ConfigError, DataError, InputFileError

__all__ = [
    "MAX_HASHED_FILES",
    "SPLIT_NAMES",
    "ClassificationDataset",
    "SplitData",
    "load_classification_dataset",
]

log = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "val", "test")
"""Splits a dataset can define; ``"all"`` additionally means every case."""

MAX_HASHED_FILES = 5000
"""Folder/manifest datasets with more image files than this get a size-only fingerprint."""

# Spellings accepted for split names in manifests and folder layouts.
_SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}


# --------------------------------------------------------------------------------------------
# Data containers
# --------------------------------------------------------------------------------------------


@dataclass
class SplitData:
    """The cases of one split.

    Attributes:
        images: One ``float32`` array ``(C, *spatial)`` per case.
        labels: ``int64`` class indices, shape ``(N,)``.
        sources: Where each case came from (file path, or ``file.npz:split[i]``).
    """

    images: list[np.ndarray]
    labels: np.ndarray
    sources: list[str]

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        if not (len(self.images) == len(self.labels) == len(self.sources)):
            raise ValueError(
                f"SplitData needs as many images ({len(self.images)}), labels ({len(self.labels)})"
                f" and sources ({len(self.sources)})"
            )

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: Sequence[int] | np.ndarray) -> SplitData:
        """Return the cases at ``indices`` (in that order)."""
        idx = [int(i) for i in indices]
        return SplitData(
            [self.images[i] for i in idx], self.labels[idx], [self.sources[i] for i in idx]
        )

    @staticmethod
    def concat(parts: Sequence[SplitData]) -> SplitData:
        """Concatenate splits in order."""
        images: list[np.ndarray] = []
        sources: list[str] = []
        for part in parts:
            images.extend(part.images)
            sources.extend(part.sources)
        labels = np.concatenate([p.labels for p in parts]) if parts else np.zeros(0, np.int64)
        return SplitData(images, labels, sources)

    def class_counts(self, num_classes: int) -> list[int]:
        """Number of cases per class index."""
        return np.bincount(self.labels, minlength=num_classes).astype(int).tolist()


def _empty_split() -> SplitData:
    return SplitData([], np.zeros(0, np.int64), [])


def stratified_parts(labels: np.ndarray, fraction: float, seed: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Indices (rest, carved) with ``fraction`` carved off, stratified when possible."""
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(labels))
    if fraction <= 0 or len(labels) < 2:
        return indices, indices[:0]
    try:
        rest, carved = train_test_split(indices, test_size=fraction, random_state=seed,
                                        stratify=labels)
    except ValueError:
        # Classes with a single case cannot be split: they stay on the training side, or a
        # rare class could vanish from training altogether. The others are split at random.
        values, counts = np.unique(labels, return_counts=True)
        single = np.isin(labels, values[counts < 2])
        log.warning("cannot stratify a %.0f%% split of %d cases (%d in classes of one case, "
                    "kept for training); splitting the rest at random", 100 * fraction,
                    len(labels), int(single.sum()))
        if (~single).sum() < 2:
            return indices, indices[:0]
        rest, carved = train_test_split(indices[~single], test_size=fraction,
                                        random_state=seed)
        rest = np.concatenate([rest, indices[single]])
    return np.sort(rest), np.sort(carved)


def _carve(data: SplitData, fraction: float, seed: int) -> tuple[SplitData, SplitData]:
    """Split off ``fraction`` of ``data`` with :func:`stratified_parts`; both keep case order."""
    if fraction <= 0 or len(data) < 2:
        return data, _empty_split()
    rest, carved = stratified_parts(np.asarray(data.labels), fraction, seed)
    return data.subset(rest), data.subset(carved)


@dataclass
class ClassificationDataset:
    """An image classification dataset.

    Attributes:
        name: Dataset name (catalog name, or file/folder stem).
        class_names: Class names; label ``i`` means ``class_names[i]``.
        spatial_dims: 2 or 3.
        in_channels: Channels per image.
        splits: The dataset's own splits (``"train"``, ``"val"``, ``"test"``), or a single
            ``"all"`` entry when it has none.
        provenance: ``{"dataset", "kind", "source", "files": {relpath: sha256}, "split_sizes"}``.
    """

    name: str
    class_names: list[str]
    spatial_dims: int
    in_channels: int
    splits: dict[str, SplitData]
    provenance: dict[str, Any]
    _derived: dict[tuple[int, float, float], dict[str, SplitData]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        keys = set(self.splits)
        if not keys or not (keys <= set(SPLIT_NAMES) or keys == {"all"}):
            raise ValueError(
                f"splits must be a subset of {SPLIT_NAMES} or exactly {{'all'}}, not {sorted(keys)}"
            )

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    def _resolve(
        self, seed: int, val_fraction: float, test_fraction: float
    ) -> dict[str, SplitData]:
        for label, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"{label} must be in [0, 1), not {value}")
        key = (int(seed), float(val_fraction), float(test_fraction))
        if key not in self._derived:
            if "all" in self.splits:
                rest, test, val = self.splits["all"], None, None
            else:
                rest = self.splits.get("train", _empty_split())
                test, val = self.splits.get("test"), self.splits.get("val")
            # Test first, then validation from what is left: the test set does not depend on
            # val_fraction.
            if test is None:
                rest, test = _carve(rest, test_fraction, seed)
            if val is None:
                rest, val = _carve(rest, val_fraction, seed)
            self._derived[key] = {"train": rest, "val": val, "test": test}
        return self._derived[key]

    def split(
        self, name: str, seed: int = 0, val_fraction: float = 0.1, test_fraction: float = 0.2
    ) -> SplitData:
        """Return the cases of a split.

        Args:
            name: ``"train"``, ``"val"``, ``"test"`` or ``"all"``.
            seed: Seed of the stratified split used for splits the dataset does not define.
            val_fraction: Share of the remaining (non-test) cases used for validation, when the
                dataset has no validation split.
            test_fraction: Share of all cases used for testing, when it has no test split.

        Raises:
            ConfigError: Unknown split name or fraction out of range.
            DataError: The split has no cases.
        """
        if name == "all":
            data = SplitData.concat(
                [self.splits[k] for k in (*SPLIT_NAMES, "all") if k in self.splits]
            )
        elif name in SPLIT_NAMES:
            data = self._resolve(seed, val_fraction, test_fraction)[name]
        else:
            raise ConfigError(
                f"unknown split '{name}' for dataset '{self.name}'"
                " (expected train, val, test or all)"
            )
        if len(data) == 0:
            raise DataError(f"split '{name}' of dataset '{self.name}' is empty")
        return data

    def split_sizes(
        self, seed: int = 0, val_fraction: float = 0.1, test_fraction: float = 0.2
    ) -> dict[str, int]:
        """Number of cases in train, val and test (0 allowed) for these split settings."""
        resolved = self._resolve(seed, val_fraction, test_fraction)
        return {k: len(resolved[k]) for k in SPLIT_NAMES}


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def load_classification_dataset(
    name_or_path: str | os.PathLike[str],
    data_dir: str | os.PathLike[str] | None = None,
    class_names: Sequence[str] | None = None,
) -> ClassificationDataset:
    """Load an image classification dataset by catalog name or path.

    A string equal to a catalog name is looked up in the catalog (use ``./name`` for a local
    folder of the same name); anything else is a path.

    Args:
        name_or_path: Catalog name (kind ``medmnist``), ``.npz`` file, ``.csv`` manifest, or folder
            with one subfolder per class.
        data_dir: Data directory for catalog names (:func:`meddx.data.catalog.resolve_data_dir`).
        class_names: Known class names in label order. Labels outside them are an error; for
            manifests, a label may be a class name or an integer index into these names; for
            folders, every class folder must be one of them. By default class names come from the
            catalog (MedMNIST), the sorted distinct labels (manifest) or the folder names.

    Raises:
        DatasetNotFoundError: Unknown catalog name, or the dataset is not in the data directory.
        ConfigError: The catalog entry is not an image classification dataset.
        InputFileError: The path or an image it lists is missing or unreadable.
        DataError: Invalid content (labels outside the classes, mixed channels, empty...).
    """
    names = list(class_names) if class_names is not None else None
    if isinstance(name_or_path, str) and name_or_path in catalog.CATALOG:
        return _load_catalog_dataset(name_or_path, data_dir, names)
    path = Path(name_or_path).expanduser()
    if not path.exists():
        text = str(name_or_path)
        looks_like_path = any(sep in text for sep in ("/", "\\")) or Path(text).suffix != ""
        if isinstance(name_or_path, str) and not looks_like_path:
            catalog.get_spec(text)  # raises DatasetNotFoundError with a suggestion
        raise InputFileError(path, "file not found")
    if path.is_dir():
        return _load_folder(path, names)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _load_npz_path(path, names)
    if suffix == ".csv":
        return _load_manifest(path, names)
    raise InputFileError(
        path,
        f"unsupported dataset file type {suffix or '(no suffix)'} (expected a MedMNIST .npz file,"
        " a .csv manifest with path,label columns, or a folder with one subfolder per class)",
    )


# --------------------------------------------------------------------------------------------
# MedMNIST .npz
# --------------------------------------------------------------------------------------------


def _load_catalog_dataset(
    name: str, data_dir: str | os.PathLike[str] | None, class_names: list[str] | None
) -> ClassificationDataset:
    spec = catalog.get_spec(name)
    if spec.kind != "medmnist" or spec.task != "classification":
        raise ConfigError(
            f"dataset '{name}' is a {spec.kind} dataset for {spec.task}, not an image"
            " classification dataset (MedMNIST .npz, manifest or class folders)"
        )
    folder = catalog.locate(name, data_dir)
    remote = spec.files[0]
    path = folder / remote.name
    digest = sha256_file(path)
    if remote.sha256 and digest != remote.sha256:
        raise DataError(
            f"{path}: sha256 {digest} does not match the catalog ({remote.sha256}); the file is"
            f" damaged or was replaced. Run `meddx datasets fetch {name}` to restore a verified"
            " copy."
        )
    names = class_names or list(spec.class_names or ())
    return _read_npz(
        path,
        name=name,
        kind="medmnist",
        class_names=names or None,
        spatial_dims=spec.extra.get("spatial_dims"),
        files={remote.name: digest},
    )


def _load_npz_path(path: Path, class_names: list[str] | None) -> ClassificationDataset:
    spatial_dims = None
    if class_names is None:
        # A MedMNIST file used by path still gets its real class names.
        for spec in catalog.CATALOG.values():
            if spec.kind == "medmnist" and spec.files and spec.files[0].name == path.name:
                class_names = list(spec.class_names or ()) or None
                spatial_dims = spec.extra.get("spatial_dims")
                break
    return _read_npz(
        path,
        name=path.stem,
        kind="npz",
        class_names=class_names,
        spatial_dims=spatial_dims,
        files={path.name: sha256_file(path)},
    )


def _npz_images(path: Path, key: str, raw: np.ndarray, spatial_dims: int | None) -> np.ndarray:
    """(N, ...) array -> (N, C, *spatial) float32, in the file's own units.

    Values are not rescaled: a PNG of the same picture reads as 0..255 too, and the bundle's
    preprocessing normalises both the same way.
    """
    if raw.ndim == 3:
        block = raw[:, np.newaxis]  # (N, H, W) gray
    elif raw.ndim == 4 and spatial_dims != 3 and raw.shape[-1] in (1, 3):
        block = np.moveaxis(raw, -1, 1)  # (N, H, W, C)
    elif raw.ndim == 4:
        block = raw[:, np.newaxis]  # (N, D, H, W) volume
    elif raw.ndim == 5 and raw.shape[-1] <= 4:
        block = np.moveaxis(raw, -1, 1)  # (N, D, H, W, C)
    else:
        raise DataError(f"{path}: {key} has shape {raw.shape}, which is not an image stack")
    if raw.size == 0:
        raise DataError(f"{path}: {key} is empty")
    out = np.ascontiguousarray(block, dtype=np.float32)
    if raw.dtype.kind == "f" and not np.isfinite(out).all():
        raise DataError(f"{path}: {key} contains NaN or infinite values")
    return out


def _npz_labels(path: Path, key: str, raw: np.ndarray) -> np.ndarray:
    labels = raw
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise DataError(
            f"{path}: {key} has shape {raw.shape}; only single-label classification is supported"
            " (multi-label (N, K) labels are not)"
        )
    if not np.issubdtype(labels.dtype, np.number):
        raise DataError(f"{path}: {key} has non-numeric dtype {labels.dtype}")
    as_int = labels.astype(np.int64)
    if not np.array_equal(as_int, labels):
        bad = int(np.flatnonzero(as_int != labels)[0])
        raise DataError(f"{path}: {key}[{bad}] = {labels[bad]!r} is not an integer class index")
    return as_int


def _infer_npz_classes(path: Path, blocks: dict[str, tuple[np.ndarray, np.ndarray]]) -> list[str]:
    """Class names "0".."K-1" for an .npz without known classes.

    Labels must then be consecutive: a value beyond a gap (a 7 among 0/1 labels) is far more
    likely a corrupt label than six classes without a single example.
    """
    present = set()
    for _, labels in blocks.values():
        present.update(int(v) for v in np.unique(labels))
    top = max(present)
    absent = sorted(set(range(top + 1)) - present)
    if absent:
        split, labels = next(
            (k, lbl) for k, (_, lbl) in blocks.items() if len(lbl) and int(lbl.max()) == top
        )
        i = int(np.flatnonzero(labels == top)[0])
        raise DataError(
            f"{path}: {split}_labels[{i}] = {top}, but classes {absent} never occur; labels must be"
            " consecutive class indices 0..K-1 (pass class names to declare classes without"
            " examples)"
        )
    return [str(i) for i in range(top + 1)]


def _read_npz(
    path: Path,
    *,
    name: str,
    kind: str,
    class_names: list[str] | None,
    spatial_dims: int | None,
    files: dict[str, str],
) -> ClassificationDataset:
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise InputFileError(path, f"not a readable .npz file ({exc})") from exc
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise InputFileError(path, "holds a single array, not a .npz archive of named arrays")
    blocks: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    with archive:
        keys = set(archive.files)
        for split in SPLIT_NAMES:
            img_key, lbl_key = f"{split}_images", f"{split}_labels"
            if img_key not in keys and lbl_key not in keys:
                continue
            if img_key not in keys or lbl_key not in keys:
                missing = img_key if img_key not in keys else lbl_key
                raise DataError(
                    f"{path}: has {lbl_key if missing == img_key else img_key} but no {missing}"
                )
            try:
                raw_images, raw_labels = archive[img_key], archive[lbl_key]
            except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
                raise InputFileError(path, f"cannot read {img_key}/{lbl_key} ({exc})") from exc
            images = _npz_images(path, img_key, raw_images, spatial_dims)
            labels = _npz_labels(path, lbl_key, raw_labels)
            if len(images) != len(labels):
                raise DataError(f"{path}: {len(images)} {img_key} but {len(labels)} {lbl_key}")
            blocks[split] = (images, labels)
    if not blocks:
        raise DataError(
            f"{path}: no train_images/train_labels (or val_/test_) arrays; found {sorted(keys)}"
        )

    shapes = {split: block.shape[1:] for split, (block, _) in blocks.items()}
    first_split, first_shape = next(iter(shapes.items()))
    for split, shape in shapes.items():
        if shape[0] != first_shape[0] or len(shape) != len(first_shape):
            raise DataError(
                f"{path}: {split}_images has {shape[0]} channels x {len(shape) - 1}D but"
                f" {first_split}_images has {first_shape[0]} channels x {len(first_shape) - 1}D"
            )

    if class_names is None:
        class_names = _infer_npz_classes(path, blocks)
    for split, (_, labels) in blocks.items():
        bad = np.flatnonzero((labels < 0) | (labels >= len(class_names)))
        if bad.size:
            i = int(bad[0])
            raise DataError(
                f"{path}: {split}_labels[{i}] = {int(labels[i])} is outside the"
                f" {len(class_names)} classes {class_names}"
            )

    splits = {
        split: SplitData(
            images=list(block),  # views into one contiguous block: compact, no copies
            labels=labels,
            sources=[f"{path.name}:{split}[{i}]" for i in range(len(labels))],
        )
        for split, (block, labels) in blocks.items()
    }
    return ClassificationDataset(
        name=name,
        class_names=list(class_names),
        spatial_dims=len(first_shape) - 1,
        in_channels=int(first_shape[0]),
        splits=splits,
        provenance=_provenance(name, kind, path, files, splits),
    )


# --------------------------------------------------------------------------------------------
# Manifest and class folders
# --------------------------------------------------------------------------------------------


def _provenance(
    name: str,
    kind: str,
    source: Path,
    files: dict[str, str],
    splits: dict[str, SplitData],
    **extra: Any,
) -> dict[str, Any]:
    return {
        "dataset": name,
        "kind": kind,
        "source": str(source),
        "files": dict(sorted(files.items())),
        "split_sizes": {k: len(v) for k, v in splits.items()},
        **extra,
    }


def _fingerprint(base: Path, paths: Sequence[Path]) -> tuple[dict[str, str], dict[str, Any]]:
    """Per-file SHA-256 plus one digest over (relpath, size, sha256) of a set of image files.

    Above :data:`MAX_HASHED_FILES` files only (relpath, size) enter the digest (fast loading).
    """
    hash_each = len(paths) <= MAX_HASHED_FILES
    files: dict[str, str] = {}
    lines: list[str] = []
    for path in paths:
        try:
            rel = path.relative_to(base).as_posix()
        except ValueError:
            rel = path.as_posix()
        size = path.stat().st_size
        if hash_each:
            files[rel] = sha256_file(path)
            lines.append(f"{rel}\t{size}\t{files[rel]}")
        else:
            lines.append(f"{rel}\t{size}")
    digest = hashlib.sha256("\n".join(sorted(lines)).encode("utf-8")).hexdigest()
    method = "relpath+size+sha256" if hash_each else "relpath+size"
    return files, {"content_sha256": digest, "content_hash_method": method, "n_files": len(paths)}


def _check_consistent(images: Sequence[np.ndarray], sources: Sequence[str]) -> tuple[int, int]:
    """All images must share channels and spatial dims; return (spatial_dims, channels)."""
    ref = images[0]
    for image, source in zip(images, sources, strict=True):
        if image.ndim != ref.ndim or image.shape[0] != ref.shape[0]:
            raise DataError(
                f"{source}: has {image.shape[0]} channel(s) and {image.ndim - 1} spatial dims, but"
                f" {sources[0]} has {ref.shape[0]} channel(s) and {ref.ndim - 1}; all images in a"
                " dataset must have the same number of channels and dimensions"
            )
    return ref.ndim - 1, int(ref.shape[0])


def _build(
    name: str,
    kind: str,
    source: Path,
    class_names: list[str],
    records: dict[str, list[tuple[Path, int]]],
    base: Path,
    extra_files: dict[str, str],
) -> ClassificationDataset:
    """Read the images of (path, label) records per split and assemble the dataset."""
    splits: dict[str, SplitData] = {}
    all_images: list[np.ndarray] = []
    all_sources: list[str] = []
    for split, items in records.items():
        images = [read_image(path).array for path, _ in items]
        sources = [str(path) for path, _ in items]
        splits[split] = SplitData(images, np.array([lbl for _, lbl in items], np.int64), sources)
        all_images.extend(images)
        all_sources.extend(sources)
    if not all_images:
        raise DataError(f"{source}: the dataset has no images")
    spatial_dims, channels = _check_consistent(all_images, all_sources)
    image_paths = [p for items in records.values() for p, _ in items]
    files, fingerprint = _fingerprint(base, image_paths)
    return ClassificationDataset(
        name=name,
        class_names=class_names,
        spatial_dims=spatial_dims,
        in_channels=channels,
        splits=splits,
        provenance=_provenance(name, kind, source, {**extra_files, **files}, splits, **fingerprint),
    )


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _label_index(value: str, class_names: list[str], where: str) -> int:
    if value in class_names:
        return class_names.index(value)
    if _is_int(value) and 0 <= int(value) < len(class_names):
        return int(value)
    raise DataError(f"{where}: label {value!r} is not one of the classes {class_names}")


def _load_manifest(path: Path, class_names: list[str] | None) -> ClassificationDataset:
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            fields = [f.strip().lower() for f in (reader.fieldnames or [])]
            rows = [
                (
                    reader.line_num,
                    {k.strip().lower(): (v or "").strip() for k, v in row.items() if k},
                )
                for row in reader
            ]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputFileError(path, f"not a readable CSV manifest ({exc})") from exc
    missing = [c for c in ("path", "label") if c not in fields]
    if missing:
        raise DataError(
            f"{path}: manifest needs columns path,label (optional split); missing"
            f" {', '.join(missing)}"
            f" (found: {', '.join(fields) or 'no header'})"
        )
    if not rows:
        raise DataError(f"{path}: manifest has no rows")
    has_split = "split" in fields
    base = path.parent

    parsed: list[tuple[str, Path, str]] = []
    for line, row in rows:
        where = f"{path}, line {line}"
        if not row.get("path"):
            raise DataError(f"{where}: empty path")
        if not row.get("label"):
            raise DataError(f"{where}: empty label")
        split = "all"
        if has_split:
            split = _SPLIT_ALIASES.get(row.get("split", "").lower(), "")
            if not split:
                raise DataError(f"{where}: split {row.get('split')!r} is not train, val or test")
        image_path = Path(row["path"]).expanduser()
        if not image_path.is_absolute():
            image_path = base / image_path
        if not image_path.is_file():
            raise InputFileError(image_path, f"file not found (listed in {path}, line {line})")
        parsed.append((split, image_path, row["label"]))

    raw_labels = [label for _, _, label in parsed]
    if class_names is None:
        distinct = set(raw_labels)
        if all(_is_int(v) for v in distinct):
            class_names = [str(v) for v in sorted({int(v) for v in distinct})]
            raw_labels = [str(int(v)) for v in raw_labels]  # "01" and "1" are the same class
        else:
            class_names = sorted(distinct)
    records: dict[str, list[tuple[Path, int]]] = {}
    for (line, _), (split, image_path, _), value in zip(rows, parsed, raw_labels, strict=True):
        index = _label_index(value, class_names, f"{path}, line {line} ({image_path.name})")
        records.setdefault(split, []).append((image_path, index))
    ordered = {s: records[s] for s in (*SPLIT_NAMES, "all") if s in records}
    return _build(
        path.stem, "manifest", path, class_names, ordered, base, {path.name: sha256_file(path)}
    )


def _image_files(folder: Path) -> list[Path]:
    """Readable image files under ``folder`` (recursive, sorted, hidden files skipped)."""
    found: list[Path] = []
    skipped = 0
    for path in sorted(folder.rglob("*")):
        rel_parts = path.relative_to(folder).parts
        if any(part.startswith(".") for part in rel_parts) or not path.is_file():
            continue
        if detect_format(path) is None:
            skipped += 1
            continue
        found.append(path)
    if skipped:
        log.info("%s: skipped %d file(s) that are not images", folder, skipped)
    return found


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _load_folder(root: Path, class_names: list[str] | None) -> ClassificationDataset:
    subdirs = _subfolders(root)
    if not subdirs:
        raise DataError(
            f"{root}: no class subfolders; expected one subfolder per class (e.g. {root}/normal/,"
            f" {root}/pneumonia/), optionally inside train/, val/ and test/"
        )
    split_dirs = [d for d in subdirs if d.name.lower() in _SPLIT_ALIASES]
    if split_dirs and len(split_dirs) != len(subdirs):
        others = [d.name for d in subdirs if d not in split_dirs]
        raise DataError(
            f"{root}: mixes split folders ({', '.join(d.name for d in split_dirs)}) with other"
            f" folders ({', '.join(others)}); use either class folders or train/val/test folders"
            " holding class folders"
        )
    layout: dict[str, list[Path]] = {}
    if split_dirs:
        for split_dir in split_dirs:
            split = _SPLIT_ALIASES[split_dir.name.lower()]
            if split in layout:
                raise DataError(f"{root}: more than one folder for split '{split}'")
            layout[split] = _subfolders(split_dir)
            if not layout[split]:
                raise DataError(f"{split_dir}: no class subfolders")
    else:
        layout["all"] = subdirs

    found = sorted({d.name for dirs in layout.values() for d in dirs})
    if class_names is None:
        class_names = found
    else:
        unknown = [n for n in found if n not in class_names]
        if unknown:
            raise DataError(
                f"{root}: class folder(s) {unknown} are not among the classes {class_names}"
            )

    records: dict[str, list[tuple[Path, int]]] = {}
    for split in (*SPLIT_NAMES, "all"):
        if split not in layout:
            continue
        items: list[tuple[Path, int]] = []
        for class_dir in layout[split]:
            files = _image_files(class_dir)
            if not files:
                raise DataError(f"{class_dir}: class folder contains no images")
            index = class_names.index(class_dir.name)
            items.extend((path, index) for path in files)
        records[split] = items
    return _build(root.name, "folder", root, list(class_names), records, root, {})
