"""Segmentation datasets: image/label-map pairs in 3D (NIfTI, DICOM series) and 2D (PNG).

:func:`load_segmentation_dataset` turns any of these into one :class:`SegmentationDataset`:

- a catalog name of kind ``msd`` (``"msd-task04-hippocampus"``);
- a Medical Segmentation Decathlon folder: ``imagesTr/`` and ``labelsTr/`` holding files of the
  same name; its ``dataset.json`` (label names, modality, the training list) is used when
  present, and everything is inferred from the files when it is absent;
- a ``.csv`` manifest with columns ``image,label`` (paths relative to the CSV; an image may be a
  NIfTI file, a DICOM series folder, or a PNG), or a folder holding exactly one such manifest;
- a folder of 2D pairs: ``images/`` and ``masks/`` (or ``labels/``) with matching file stems.

Every case is checked when it is read: image and label must have the same spatial shape and (for
volumes) the same affine; dtypes may differ (an MSD image may be ``uint8`` and its label
``float32``). A case with a missing label file, label values outside the classes, a 4D image where
a 3D one is expected, NaN/inf voxels or an empty volume is a *bad case*: by default it is reported
(logged, and listed in the dataset's ``skipped`` and provenance) and skipped; with
``on_error="stop"`` the first one stops loading with an error naming it. Cases are never dropped
silently.

Label values are class indices: label ``i`` means ``class_names[i]``, 0 is background. Names come
from ``dataset.json`` or the catalog; otherwise they are the label values themselves (``"1"``,
``"2"``...).
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from meddx.data import catalog
from meddx.data.datasets import SPLIT_NAMES, _fingerprint
from meddx.data.images import IMAGE_SUFFIXES, Image, read_image
from meddx.data.loading import check_on_error
from meddx.errors import ConfigError, DataError, InputFileError

__all__ = [
    "SegmentationCase",
    "SegmentationDataset",
    "SegmentationSplit",
    "can_read",
    "load_segmentation_dataset",
    "read_volume",
]

log = logging.getLogger(__name__)

_MASK_DIRS = ("masks", "labels", "mask", "label")
# Tolerance of the image/label affine comparison (mm): rounding in headers, not real shifts.
_AFFINE_ATOL = 1e-3


# --------------------------------------------------------------------------------------------
# Data containers
# --------------------------------------------------------------------------------------------


@dataclass
class SegmentationCase:
    """One image with its label map, in the stored voxel grid.

    Attributes:
        image: ``float32`` ``(C, *spatial)``.
        label: integer label map ``(*spatial)`` (``uint8``), or None for an unlabelled case.
        spacing: voxel size (mm) per spatial axis, in array order.
        affine: 4x4 voxel-to-world matrix (identity-like for PNG).
        source: path of the image file (or DICOM folder); names the case in every message.
        label_source: path of the label file, or ``""``.
    """

    image: np.ndarray
    label: np.ndarray | None
    spacing: tuple[float, ...]
    affine: np.ndarray
    source: str
    label_source: str = ""

    @property
    def case_id(self) -> str:
        """The file name without its image suffix (``hippocampus_001``)."""
        name = Path(self.source).name
        for suffix in (".nii.gz", ".nii", ".png", ".dcm", ".npy"):
            if name.lower().endswith(suffix):
                return name[: -len(suffix)]
        return name


@dataclass
class SegmentationSplit:
    """The cases of one split (``labels`` and ``sources`` as every split offers)."""

    cases: list[SegmentationCase]

    def __len__(self) -> int:
        return len(self.cases)

    @property
    def images(self) -> list[np.ndarray]:
        return [case.image for case in self.cases]

    @property
    def labels(self) -> list[np.ndarray | None]:
        return [case.label for case in self.cases]

    @property
    def sources(self) -> list[str]:
        return [case.source for case in self.cases]

    def subset(self, indices: Sequence[int]) -> SegmentationSplit:
        return SegmentationSplit([self.cases[int(i)] for i in indices])


@dataclass
class SegmentationDataset:
    """A segmentation dataset: labelled cases plus what is known about them.

    Attributes:
        name: catalog name or folder/file stem.
        class_names: label names by value, ``class_names[0]`` the background.
        spatial_dims: 2 or 3.
        in_channels: image channels (MRI sequences, RGB...).
        cases: every readable case, sorted by source.
        provenance: ``{"dataset", "kind", "source", "files", "content_sha256", "skipped"...}``.
        modality: ``"CT"``, ``"MRI"``, ... or ``"unknown"`` (chooses the normalisation).
        skipped: the bad cases that were reported and left out: ``{"case", "problem"}``.
        names_inferred: True when label names were not given (they are the label values).
        splits: explicit splits (cross-validation folds, :meth:`with_splits`); when None,
            :meth:`split` draws a seeded random train/val/test split of ``cases``.
    """

    name: str
    class_names: list[str]
    spatial_dims: int
    in_channels: int
    cases: list[SegmentationCase]
    provenance: dict[str, Any]
    modality: str = "unknown"
    skipped: list[dict[str, str]] = field(default_factory=list)
    names_inferred: bool = False
    splits: dict[str, SegmentationSplit] | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def _indices(self, seed: int, val_fraction: float, test_fraction: float
                 ) -> dict[str, list[int]]:
        for label, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"{label} must be in [0, 1), not {value}")
        order = np.random.default_rng(seed).permutation(len(self.cases))
        # Test first, then validation from the rest: the test set does not depend on val_fraction.
        n_test = int(round(len(order) * test_fraction))
        n_val = int(round((len(order) - n_test) * val_fraction))
        if len(order) >= 3:
            n_val = max(n_val, 1) if val_fraction > 0 else 0
        return {"test": sorted(order[:n_test].tolist()),
                "val": sorted(order[n_test:n_test + n_val].tolist()),
                "train": sorted(order[n_test + n_val:].tolist())}

    def split(self, name: str, seed: int = 0, val_fraction: float = 0.1,
              test_fraction: float = 0.2) -> SegmentationSplit:
        """The cases of ``"train"``, ``"val"``, ``"test"`` or ``"all"`` (seeded random split).

        Raises:
            ConfigError: unknown split name or fraction out of range.
            DataError: the split has no cases.
        """
        if name == "all":
            chosen = list(range(len(self.cases)))
        elif name in SPLIT_NAMES and self.splits is not None:
            part = self.splits.get(name, SegmentationSplit([]))
            if not len(part):
                raise DataError(f"split '{name}' of dataset '{self.name}' is empty")
            return part
        elif name in SPLIT_NAMES:
            chosen = self._indices(seed, val_fraction, test_fraction)[name]
        else:
            raise ConfigError(f"unknown split '{name}' for dataset '{self.name}' "
                              "(expected train, val, test or all)")
        if not chosen:
            raise DataError(f"split '{name}' of dataset '{self.name}' is empty")
        return SegmentationSplit([self.cases[i] for i in chosen])

    def split_sizes(self, seed: int = 0, val_fraction: float = 0.1,
                    test_fraction: float = 0.2) -> dict[str, int]:
        """Number of cases in train, val and test for these split settings."""
        if self.splits is not None:
            return {k: len(self.splits.get(k, ())) for k in SPLIT_NAMES}
        return {k: len(v) for k, v in self._indices(seed, val_fraction, test_fraction).items()}

    def with_splits(self, splits: dict[str, Sequence[int]], name: str | None = None
                    ) -> SegmentationDataset:
        """The same cases with explicit train/val/test indices (e.g. one cross-validation fold)."""
        unknown = set(splits) - set(SPLIT_NAMES)
        if unknown:
            raise ConfigError(f"unknown split name(s) {sorted(unknown)}")
        everything = SegmentationSplit(self.cases)
        return replace(self, name=name or self.name,
                       splits={k: everything.subset(list(v)) for k, v in splits.items()})

    def adopt_class_names(self, names: Sequence[str]) -> None:
        """Take a model's label names when this dataset's were only inferred from the values.

        Raises:
            DataError: a label value has no name in ``names``.
        """
        if not self.names_inferred:
            return
        if len(self.class_names) > len(names):
            raise DataError(f"{self.name}: label values up to {len(self.class_names) - 1} but the "
                            f"model knows only {len(names)} classes {list(names)}")
        self.class_names = list(names)
        self.names_inferred = False


# --------------------------------------------------------------------------------------------
# Reading volumes
# --------------------------------------------------------------------------------------------


def read_volume(path: str | os.PathLike[str], spatial_dims: int | None = None) -> Image:
    """Read an image for segmentation: a file (NIfTI, PNG, DICOM...) or a DICOM series folder.

    A DICOM series folder is read by :func:`meddx.data.dicom.series.read_series` (slices ordered
    along the normal, NIfTI/RAS affine, array ``(1, columns, rows, slices)``, as NIfTI
    converters write). The result always has a spacing and a 4x4 affine (from the header, else
    unit spacing).
    """
    path = Path(path)
    if path.is_dir():
        from meddx.data.dicom.series import read_series

        image = read_series(path)
    else:
        image = read_image(path, spatial_dims)
    dims = image.array.ndim - 1
    if image.spacing is None or len(image.spacing) != dims:
        image.spacing = (1.0,) * dims
    if image.affine is None:
        affine = np.eye(4)
        for axis, size in enumerate(image.spacing):
            affine[axis, axis] = size
        image.affine = affine
    return image


def _label_map(image: Image, path: str) -> np.ndarray:
    """A label file's content as an integer map ``(*spatial)``."""
    array = image.array
    if array.shape[0] == 3 and image.meta.get("format") == "pillow" and (
            np.array_equal(array[0], array[1]) and np.array_equal(array[0], array[2])):
        array = array[:1]  # a grey mask saved as RGB
    if array.shape[0] != 1:
        raise InputFileError(path, f"label map has {array.shape[0]} channels/volumes "
                                   f"(shape {tuple(array.shape)}); expected a single label map")
    values = array[0]
    if not np.array_equal(values, np.round(values)):
        raise InputFileError(path, "label map holds non-integer values; expected class indices")
    if values.min() < 0:
        raise InputFileError(path, f"label map holds negative value {int(values.min())}")
    if values.max() > 255:
        raise InputFileError(path, f"label value {int(values.max())} is too large for a label "
                                   "map (expected class indices 0..255)")
    return values.astype(np.uint8)


def _read_case(image_path: Path, label_path: Path | None, spatial_dims: int,
               in_channels: int | None, num_classes: int | None,
               binary_255: bool = False) -> SegmentationCase:
    """Read and check one case; raises a MeddxError naming the file on any problem."""
    if label_path is None or not label_path.exists():
        shown = label_path if label_path is not None else "(none given)"
        raise InputFileError(image_path, f"missing label file {shown}")
    image = read_volume(image_path, spatial_dims if image_path.is_file() else None)
    if image.array.ndim - 1 != spatial_dims:
        raise InputFileError(image_path, f"is {image.array.ndim - 1}D but the dataset is "
                                         f"{spatial_dims}D")
    if in_channels is not None and image.array.shape[0] != in_channels:
        kind = f"{image.array.ndim}D ({image.array.shape[0]} volumes)" if spatial_dims == 3 \
            else f"{image.array.shape[0]}-channel"
        raise InputFileError(image_path, f"is {kind} but {spatial_dims}D images with "
                                         f"{in_channels} channel(s) are expected")
    if float(image.array.max()) == float(image.array.min()):
        raise InputFileError(image_path, f"empty volume: every voxel is {image.array.min():g}")
    label_image = read_volume(label_path, spatial_dims if label_path.is_file() else None)
    labels = _label_map(label_image, str(label_path))
    if binary_255:
        labels = (labels > 0).astype(np.uint8)
    if labels.shape != image.array.shape[1:]:
        raise InputFileError(label_path, f"label shape {labels.shape} differs from the image "
                                         f"shape {image.array.shape[1:]} of {image_path}")
    if not np.allclose(label_image.affine, image.affine, atol=_AFFINE_ATOL, rtol=1e-4):
        raise InputFileError(label_path, "label affine differs from the image affine of "
                                         f"{image_path}:\n{np.round(label_image.affine, 4)}\nvs\n"
                                         f"{np.round(image.affine, 4)}")
    if num_classes is not None and int(labels.max()) >= num_classes:
        raise InputFileError(label_path, f"label value {int(labels.max())} is outside the "
                                         f"{num_classes} classes (0..{num_classes - 1})")
    return SegmentationCase(image=image.array, label=labels, spacing=tuple(image.spacing),
                            affine=np.asarray(image.affine, dtype=np.float64),
                            source=str(image_path), label_source=str(label_path))


# --------------------------------------------------------------------------------------------
# Layouts
# --------------------------------------------------------------------------------------------


def _is_image_file(path: Path) -> bool:
    name = path.name.lower()
    return path.is_file() and not name.startswith(".") and (
        name.endswith(".nii.gz") or Path(name).suffix in IMAGE_SUFFIXES)


def _manifest_in(folder: Path) -> Path | None:
    found = [p for p in sorted(folder.glob("*.csv")) if _is_seg_manifest(p)]
    return found[0] if len(found) == 1 else None


def _is_seg_manifest(path: Path) -> bool:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError):
        return False
    columns = {h.strip().lower() for h in header}
    return {"image", "label"} <= columns


def _mask_dir(folder: Path) -> Path | None:
    for name in _MASK_DIRS:
        if (folder / name).is_dir():
            return folder / name
    return None


def can_read(path: str | os.PathLike[str]) -> bool:
    """True for an MSD folder, a 2D images/masks folder or an ``image,label`` manifest."""
    path = Path(path)
    if path.is_file():
        return path.suffix.lower() == ".csv" and _is_seg_manifest(path)
    if not path.is_dir():
        return False
    if (path / "imagesTr").is_dir() and (path / "labelsTr").is_dir():
        return True
    if (path / "images").is_dir() and _mask_dir(path) is not None:
        return True
    return _manifest_in(path) is not None


def _msd_pairs(root: Path) -> tuple[list[tuple[Path, Path | None]], dict[str, Any]]:
    """(image, label) pairs of an MSD folder and its ``dataset.json`` (or ``{}``)."""
    meta: dict[str, Any] = {}
    meta_path = root / "dataset.json"
    if meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise InputFileError(meta_path, f"not valid JSON ({error})") from error
    if meta.get("training"):
        pairs = []
        for entry in meta["training"]:
            try:
                image, label = root / entry["image"], root / entry["label"]
            except (KeyError, TypeError) as error:
                raise InputFileError(meta_path, f"training entry {entry!r} needs image and "
                                                "label") from error
            # MSD archives list "./imagesTr/x.nii.gz"; Path normalises the "./".
            pairs.append((image, label))
        return pairs, meta
    images = sorted(p for p in (root / "imagesTr").iterdir() if _is_image_file(p))
    return [(p, root / "labelsTr" / p.name) for p in images], meta


def _names_from_meta(meta: dict[str, Any]) -> list[str] | None:
    labels = meta.get("labels")
    if not isinstance(labels, dict) or not labels:
        return None
    try:
        by_value = {int(k): str(v) for k, v in labels.items()}
    except ValueError:
        # Newer (nnU-Net v2) files map name -> value.
        by_value = {int(v): str(k) for k, v in labels.items()}
    return [by_value.get(i, str(i)) for i in range(max(by_value) + 1)]


def _modality_from_meta(meta: dict[str, Any]) -> str:
    modality = meta.get("modality") or meta.get("channel_names") or {}
    values = list(modality.values()) if isinstance(modality, dict) else []
    return str(values[0]) if values else "unknown"


def _manifest_pairs(path: Path) -> list[tuple[Path, Path | None]]:
    pairs = []
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        fields = {name.strip().lower(): name for name in reader.fieldnames or []}
        for line, row in enumerate(reader, start=2):
            image = (row.get(fields["image"]) or "").strip()
            label = (row.get(fields["label"]) or "").strip()
            if not image:
                raise InputFileError(path, f"line {line}: empty image column")
            pairs.append((path.parent / image, path.parent / label if label else None))
    if not pairs:
        raise DataError(f"{path}: the manifest lists no cases")
    return pairs


def _png_pairs(root: Path) -> list[tuple[Path, Path | None]]:
    masks = _mask_dir(root)
    by_stem = {}
    for mask in sorted(p for p in masks.iterdir() if _is_image_file(p)):
        stem = mask.name.split(".")[0]
        by_stem[stem] = mask
        by_stem.setdefault(stem.removesuffix("_mask"), mask)
    images = sorted(p for p in (root / "images").iterdir() if _is_image_file(p))
    return [(p, by_stem.get(p.name.split(".")[0])) for p in images]


def _spatial_dims_of(path: Path) -> int:
    """3 for NIfTI/DICOM-series cases, 2 for PNG/JPEG."""
    if path.is_dir():
        return 3
    name = path.name.lower()
    return 2 if Path(name).suffix in (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff") else 3


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def load_segmentation_dataset(name_or_path: str | os.PathLike[str],
                              data_dir: str | os.PathLike[str] | None = None,
                              on_error: str = "skip") -> SegmentationDataset:
    """Load a segmentation dataset by catalog name (kind ``msd``) or path.

    Args:
        name_or_path: catalog name, MSD folder, ``image,label`` manifest (or a folder holding
            one), or a folder with ``images/`` and ``masks/``.
        data_dir: data directory for catalog names.
        on_error: ``"skip"`` reports a bad case and goes on; ``"stop"`` raises on the first.

    Raises:
        DatasetNotFoundError: unknown catalog name or dataset files missing.
        InputFileError / DataError: a bad case with ``on_error="stop"``, or no readable case.
    """
    check_on_error(on_error)
    class_names: list[str] | None = None
    kind, name, spatial_dims = "folder", None, None
    if isinstance(name_or_path, str) and name_or_path in catalog.CATALOG:
        spec = catalog.get_spec(name_or_path)
        if spec.kind != "msd":
            raise ConfigError(f"dataset '{name_or_path}' is a {spec.kind} dataset, not a "
                              "segmentation (msd) dataset")
        root = catalog.locate(name_or_path, data_dir)
        class_names = list(spec.class_names or ()) or None
        kind, name = "msd", name_or_path
        spatial_dims = int(spec.extra.get("spatial_dims", 3))
    else:
        root = Path(name_or_path).expanduser()
        if not root.exists():
            raise InputFileError(root, "file not found")
    meta: dict[str, Any] = {}
    binary_255 = False
    if root.is_dir() and (root / "imagesTr").is_dir():
        pairs, meta = _msd_pairs(root)
        kind = "msd"
    elif root.is_file() or (_manifest_in(root) is not None and not (root / "images").is_dir()):
        manifest = root if root.is_file() else _manifest_in(root)
        if not _is_seg_manifest(manifest):
            raise InputFileError(manifest, "not a segmentation manifest (needs image,label "
                                           "columns)")
        pairs, kind = _manifest_pairs(manifest), "manifest"
    elif (root / "images").is_dir() and _mask_dir(root) is not None:
        pairs, kind = _png_pairs(root), "image-mask-folder"
    else:
        raise InputFileError(root, "not a segmentation dataset (expected imagesTr/ + labelsTr/, "
                                   "images/ + masks/, or a CSV manifest with image,label "
                                   "columns)")
    if not pairs:
        raise DataError(f"{root}: no image files found")
    class_names = _names_from_meta(meta) or class_names
    spatial_dims = spatial_dims or _spatial_dims_of(pairs[0][0])
    if spatial_dims == 2 and class_names is None:
        binary_255 = _masks_are_0_255([label for _, label in pairs if label is not None])
    in_channels = len(meta["modality"]) if isinstance(meta.get("modality"), dict) else None

    cases: list[SegmentationCase] = []
    skipped: list[dict[str, str]] = []
    for image_path, label_path in pairs:
        try:
            case = _read_case(image_path, label_path, spatial_dims, in_channels,
                              len(class_names) if class_names else None, binary_255)
        except (InputFileError, DataError) as error:
            if on_error == "stop":
                raise
            log.warning("skipping bad case %s: %s", image_path.name, error)
            skipped.append({"case": str(image_path), "problem": str(error)})
            continue
        if in_channels is None:
            in_channels = int(case.image.shape[0])
        cases.append(case)
    if not cases:
        raise DataError(f"{root}: none of the {len(pairs)} cases could be read; first problem: "
                        f"{skipped[0]['problem'] if skipped else 'none'}")
    names_inferred = class_names is None
    if class_names is None:
        top = max(int(case.label.max()) for case in cases)
        class_names = ["background"] + [str(v) for v in range(1, max(top, 1) + 1)]
    files = [Path(c.source) for c in cases if Path(c.source).is_file()]
    files += [Path(c.label_source) for c in cases]
    hashes, digest = _fingerprint(root if root.is_dir() else root.parent, files)
    provenance = {"dataset": name or root.stem, "kind": kind, "source": str(root),
                  "files": dict(sorted(hashes.items())), **digest,
                  "cases": len(cases), "skipped_cases": skipped}
    if skipped:
        log.warning("%d of %d cases were skipped as bad (listed in the provenance)", len(skipped),
                    len(pairs))
    return SegmentationDataset(
        name=name or root.stem, class_names=class_names, spatial_dims=spatial_dims,
        in_channels=in_channels or 1, cases=cases, provenance=provenance,
        modality=_modality_from_meta(meta),
        skipped=skipped, names_inferred=names_inferred)


def _masks_are_0_255(paths: Sequence[Path]) -> bool:
    """2D masks saved as 0/255 (the usual binary PNG) mean background/foreground."""
    for path in paths[:20]:
        try:
            values = np.unique(read_image(path, 2).array)
        except InputFileError:
            continue
        if not set(values.tolist()) <= {0.0, 255.0} or 255.0 not in values:
            return False
    return bool(paths)
