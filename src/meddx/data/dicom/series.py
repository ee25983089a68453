"""DICOM series -> one oriented volume (and back), with inconsistent series refused.

A series folder holds one file per slice (CT, MR) or one multi-frame file (enhanced CT/MR, RT
Dose). :func:`read_series` groups the files by SeriesInstanceUID, checks that they form one
regular volume, orders the slices by their position along the slice normal (never by file name or
InstanceNumber), applies each slice's rescale slope/intercept, and returns an
:class:`~meddx.data.images.Image` whose

- ``array`` is ``float32`` ``(1, columns, rows, slices)``: voxel ``(i, j, k)`` is column ``i``,
  row ``j`` of the ``k``-th slice, the layout NIfTI converters (dcm2niix) write;
- ``affine`` maps ``(i, j, k, 1)`` to RAS millimetres (NIfTI convention: DICOM's LPS with x and y
  negated), so a mask saved with it overlays the series in any NIfTI viewer;
- ``spacing`` is ``(column spacing, row spacing, slice step)`` in mm.

Refused with the reason (:class:`~meddx.errors.InputFileError` naming the folder): no DICOM
files, several series, mixed orientations, different slice sizes or pixel spacings, duplicate
positions, gaps in the slice spacing (missing slices), slices without geometry.

:func:`write_series` is the inverse (volume + affine -> a folder of single-frame slices), used by
the tests' round trip and the PACS benchmark.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import warnings
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from meddx.data.dicom.codecs import decode_pixels
from meddx.data.images import Image, read_image
from meddx.errors import InputFileError
from meddx.fileio import write_atomically

__all__ = [
    "LPS_TO_RAS",
    "save_dataset",
    "SeriesFiles",
    "SliceHeader",
    "read_dataset",
    "read_series",
    "scan_folder",
    "write_series",
]

log = logging.getLogger(__name__)

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
"""DICOM patient coordinates (LPS) -> NIfTI world coordinates (RAS); its own inverse."""

# Tolerances: orientation cosines and positions in DICOM headers are rounded to a few digits.
_ORIENTATION_TOL = 1e-3
_SPACING_REL_TOL = 0.05  # a slice gap 5% off the median step means a missing or extra slice


def read_dataset(path: str | os.PathLike[str], headers_only: bool = False):
    """Read one DICOM file with a clear error for anything that is not DICOM.

    Raises:
        InputFileError: not DICOM (no preamble and no DICOM elements), unreadable, truncated.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, stop_before_pixels=headers_only, force=True)
    except (InvalidDicomError, OSError, EOFError, ValueError, KeyError, TypeError,
            AttributeError) as exc:
        raise InputFileError(path, f"not a readable DICOM file ({exc})") from exc
    # A forced read of a text or PNG file yields garbage elements, not an error; real DICOM has
    # elements in the patient/study/series/image groups.
    if not any(tag.group in (0x0008, 0x0010, 0x0020, 0x0028) for tag in ds.keys()):  # noqa: SIM118
        raise InputFileError(path, "not a DICOM file (no DICOM header found)")
    return ds


def save_dataset(ds: Any, target: str | os.PathLike[str], enforce: bool = True) -> Path:
    """Write ``ds`` as a DICOM file atomically (temporary sibling, then rename); returns it.

    Args:
        enforce: write a conformant file (preamble + file meta); False for datasets read
            without file meta whose transfer syntax is unknown.
    """
    return write_atomically(Path(target),
                            lambda tmp: ds.save_as(tmp, enforce_file_format=enforce))


@dataclass
class SliceHeader:
    """What grouping and ordering need from one file, read without its pixel data."""

    path: Path
    series_uid: str
    sop_uid: str
    modality: str
    rows: int
    columns: int
    frames: int
    orientation: np.ndarray | None  # 6 direction cosines (row, column)
    position: np.ndarray | None  # ImagePositionPatient of the first frame
    pixel_spacing: tuple[float, float] | None  # (row spacing, column spacing)
    instance_number: int | None
    series_description: str = ""
    body_part: str = ""

    @classmethod
    def from_dataset(cls, path: Path, ds: Any) -> SliceHeader:
        orientation = _floats(ds.get("ImageOrientationPatient"), 6)
        position = _floats(ds.get("ImagePositionPatient"), 3)
        spacing = _floats(ds.get("PixelSpacing"), 2)
        if orientation is None or spacing is None:
            # Enhanced multi-frame objects keep geometry in the shared functional groups.
            shared = _first_item(ds, "SharedFunctionalGroupsSequence")
            if shared is not None:
                if orientation is None:
                    plane = _first_item(shared, "PlaneOrientationSequence")
                    orientation = _floats(plane.get("ImageOrientationPatient"), 6) \
                        if plane is not None else None
                if spacing is None:
                    measures = _first_item(shared, "PixelMeasuresSequence")
                    spacing = _floats(measures.get("PixelSpacing"), 2) \
                        if measures is not None else None
        number = ds.get("InstanceNumber")
        return cls(
            path=path, series_uid=str(ds.get("SeriesInstanceUID", "") or ""),
            sop_uid=str(ds.get("SOPInstanceUID", "") or ""),
            modality=str(ds.get("Modality", "") or ""),
            rows=int(ds.get("Rows", 0) or 0), columns=int(ds.get("Columns", 0) or 0),
            frames=int(ds.get("NumberOfFrames", 1) or 1), orientation=orientation,
            position=position,
            pixel_spacing=None if spacing is None else (float(spacing[0]), float(spacing[1])),
            instance_number=int(number) if number not in (None, "") else None,
            series_description=str(ds.get("SeriesDescription", "") or ""),
            body_part=str(ds.get("BodyPartExamined", "") or ""))


@dataclass
class SeriesFiles:
    """The DICOM files of one folder, grouped by series, and what was skipped."""

    series: dict[str, list[SliceHeader]] = field(default_factory=dict)
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def describe(self) -> str:
        parts = []
        for uid, headers in self.series.items():
            first = headers[0]
            text = f"{first.modality or '?'}"
            if first.series_description:
                text += f" {first.series_description!r}"
            parts.append(f"{text}: {len(headers)} file(s), SeriesInstanceUID {uid}")
        return "; ".join(parts)


def _floats(value: Any, n: int) -> np.ndarray | None:
    if value is None:
        return None
    try:
        values = np.array([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return values if values.size == n and np.isfinite(values).all() else None


def _first_item(ds: Any, keyword: str):
    sequence = ds.get(keyword) if ds is not None else None
    return sequence[0] if sequence else None


def scan_folder(folder: str | os.PathLike[str], recursive: bool = True) -> SeriesFiles:
    """Group the DICOM files under ``folder`` by SeriesInstanceUID (headers only, fast).

    Files that are not DICOM, or DICOM without pixel data (DICOMDIR, SR, presentation
    states), are listed in ``skipped`` with the reason.
    """
    folder = Path(folder)
    files = sorted(p for p in (folder.rglob("*") if recursive else folder.iterdir())
                   if p.is_file() and not p.name.startswith("."))
    result = SeriesFiles()
    groups: dict[str, list[SliceHeader]] = defaultdict(list)
    for path in files:
        try:
            ds = read_dataset(path, headers_only=True)
        except InputFileError as error:
            result.skipped.append((path, error.problem))
            continue
        # stop_before_pixels drops the pixel element but keeps Rows/Columns of image objects.
        if not ds.get("Rows"):
            result.skipped.append((path, "DICOM without pixel data"))
            continue
        header = SliceHeader.from_dataset(path, ds)
        groups[header.series_uid].append(header)
    result.series = dict(groups)
    return result


def read_series(path: str | os.PathLike[str], series_uid: str | None = None) -> Image:
    """Read a DICOM series folder (or one multi-frame file) as one oriented volume.

    Args:
        path: a folder of slices (searched recursively), or a single DICOM file.
        series_uid: which series to read when the folder holds several.

    Returns:
        The volume (see the module docstring for the layout); a folder holding a single 2D
        image returns that image as :func:`~meddx.data.images.read_image` does.

    Raises:
        InputFileError: the folder holds no DICOM images, several series (without
            ``series_uid``), or an inconsistent series (the message says what differs).
    """
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, "file or folder not found")
    if path.is_file():
        ds = read_dataset(path)
        volume = _multiframe_volume(path, ds)
        image = volume if volume is not None else read_image(path)
        image.meta["instances"] = [str(path)]
        return image
    found = scan_folder(path)
    if not found.series:
        reasons = sorted({reason for _, reason in found.skipped})[:3]
        raise InputFileError(path, "is a directory with no DICOM images (expected an image file "
                                   f"or a folder of DICOM slices; {len(found.skipped)} file(s) "
                                   f"skipped: {'; '.join(reasons) or 'empty folder'})")
    if series_uid is None and len(found.series) > 1:
        raise InputFileError(path, f"holds {len(found.series)} series, expected one "
                                   f"({found.describe()}); put each series in its own folder or "
                                   "choose one by SeriesInstanceUID")
    if series_uid is not None and series_uid not in found.series:
        raise InputFileError(path, f"no series {series_uid} here ({found.describe()})")
    headers = found.series[series_uid or next(iter(found.series))]
    if found.skipped:
        log.info("%s: skipped %d non-image file(s)", path, len(found.skipped))
    if len(headers) == 1:
        return read_series(headers[0].path)
    image = _stack_slices(path, headers)
    image.meta.update(_series_meta(headers))
    return image


def _series_meta(headers: Sequence[SliceHeader]) -> dict[str, Any]:
    first = headers[0]
    return {"format": "dicom-series", "slices": len(headers), "modality": first.modality,
            "series_uid": first.series_uid, "series_description": first.series_description,
            "body_part": first.body_part}


def _check_geometry(folder: Path, headers: Sequence[SliceHeader]) -> tuple[np.ndarray, tuple]:
    """Orientation and pixel spacing shared by every slice, else a clear error."""
    lacking = [h.path.name for h in headers
               if h.orientation is None or h.position is None or h.pixel_spacing is None]
    if lacking:
        raise InputFileError(folder, f"{len(lacking)} slice(s) lack ImageOrientationPatient, "
                                     f"ImagePositionPatient or PixelSpacing (e.g. {lacking[0]}); "
                                     "cannot build a volume")
    multi = [h.path.name for h in headers if h.frames > 1]
    if multi:
        raise InputFileError(folder, f"mixes multi-frame files ({multi[0]}) with other files; "
                                     "expected one multi-frame file or single-frame slices")
    sizes = {(h.rows, h.columns) for h in headers}
    if len(sizes) > 1:
        raise InputFileError(folder, "slices have different sizes (rows x columns: "
                                     f"{', '.join(f'{r}x{c}' for r, c in sorted(sizes))})")
    reference = headers[0].orientation
    for h in headers[1:]:
        if np.abs(h.orientation - reference).max() > _ORIENTATION_TOL:
            raise InputFileError(folder, "slices have different orientations "
                                         f"(ImageOrientationPatient {_fmt(reference)} in "
                                         f"{headers[0].path.name}, {_fmt(h.orientation)} in "
                                         f"{h.path.name})")
    spacing = headers[0].pixel_spacing
    for h in headers[1:]:
        if not np.allclose(h.pixel_spacing, spacing, rtol=1e-3, atol=1e-4):
            raise InputFileError(folder, f"slices have different pixel spacings ({spacing} in "
                                         f"{headers[0].path.name}, {h.pixel_spacing} in "
                                         f"{h.path.name})")
    return reference, spacing


def _fmt(values: np.ndarray) -> str:
    return "[" + ", ".join(f"{v:g}" for v in values) + "]"


def _slice_order(folder: Path, positions: np.ndarray, normal: np.ndarray,
                 names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Sort by distance along the normal; refuse duplicates and uneven steps (gaps)."""
    distances = positions @ normal
    order = np.argsort(distances, kind="stable")
    steps = np.diff(distances[order])
    if len(steps) == 0:
        return order, normal
    duplicate = np.flatnonzero(steps < 1e-3)
    if duplicate.size:
        a, b = order[duplicate[0]], order[duplicate[0] + 1]
        raise InputFileError(folder, f"two slices at the same position "
                                     f"({distances[a]:.2f} mm along the normal: {names[a]} and "
                                     f"{names[b]}); several acquisitions or echoes in one series?")
    median = float(np.median(steps))
    off = np.flatnonzero(np.abs(steps - median) > _SPACING_REL_TOL * median)
    if off.size:
        i = off[0]
        a, b = order[i], order[i + 1]
        raise InputFileError(folder, f"uneven slice spacing: {steps[i]:.3f} mm between "
                                     f"{names[a]} and {names[b]} where the median step is "
                                     f"{median:.3f} mm (missing slices or mixed series)")
    # Positions should lie on the normal through the first slice; an oblique stack (gantry
    # tilt) has an in-plane shift, which the affine's third column then carries.
    return order, normal


def _rescaled(ds: Any, pixels: np.ndarray) -> np.ndarray:
    from pydicom.pixels import apply_rescale

    return np.asarray(apply_rescale(pixels, ds), dtype=np.float32)


def _stack_slices(folder: Path, headers: Sequence[SliceHeader]) -> Image:
    orientation, (row_spacing, col_spacing) = _check_geometry(folder, headers)
    row_cos, col_cos = orientation[:3], orientation[3:]
    normal = np.cross(row_cos, col_cos)
    positions = np.stack([h.position for h in headers])
    order, normal = _slice_order(folder, positions, normal, [h.path.name for h in headers])
    slices = []
    photometric = None
    for index in order:
        header = headers[index]
        ds = read_dataset(header.path)
        pixels = decode_pixels(ds, header.path)
        if pixels.ndim != 2:
            raise InputFileError(header.path, f"expected a single-frame grey-level slice, got "
                                              f"pixel array of shape {pixels.shape}")
        values = _rescaled(ds, pixels)  # slope/intercept may differ from slice to slice
        photometric = str(ds.get("PhotometricInterpretation", ""))
        slices.append(values.T)  # (rows, columns) -> (columns, rows)
    volume = np.stack(slices, axis=-1)[np.newaxis]
    if photometric == "MONOCHROME1":
        volume = volume.max() + volume.min() - volume
    first, last = positions[order[0]], positions[order[-1]]
    step = (last - first) / (len(order) - 1)
    affine = _affine(row_cos, col_cos, row_spacing, col_spacing, step, first)
    if not np.isfinite(volume).all():
        raise InputFileError(folder, "contains NaN or infinite values")
    return Image(array=np.ascontiguousarray(volume, dtype=np.float32),
                 spacing=(col_spacing, row_spacing, float(np.linalg.norm(step))),
                 affine=affine, source=str(folder),
                 meta={"photometric": photometric,
                       # slice k of the volume came from instances[k] (SEG frames need it)
                       "instances": [str(headers[i].path) for i in order]})


def _affine(row_cos, col_cos, row_spacing: float, col_spacing: float, step: np.ndarray,
            origin: np.ndarray) -> np.ndarray:
    lps = np.eye(4)
    lps[:3, 0] = np.asarray(row_cos) * col_spacing  # i walks along a row: column spacing
    lps[:3, 1] = np.asarray(col_cos) * row_spacing
    lps[:3, 2] = step
    lps[:3, 3] = origin
    return LPS_TO_RAS @ lps


def _multiframe_volume(path: Path, ds: Any) -> Image | None:
    """A volume from one multi-frame file with per-frame positions, else None."""
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames < 2 or int(ds.get("SamplesPerPixel", 1) or 1) != 1:
        return None
    header = SliceHeader.from_dataset(path, ds)
    if header.orientation is None or header.pixel_spacing is None:
        return None
    row_cos, col_cos = header.orientation[:3], header.orientation[3:]
    normal = np.cross(row_cos, col_cos)
    offsets = ds.get("GridFrameOffsetVector")
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if offsets is not None and header.position is not None and len(offsets) == frames:
        positions = np.stack([header.position + float(o) * normal for o in offsets])  # RT Dose
    elif per_frame is not None and len(per_frame) == frames:
        found = []
        for item in per_frame:
            plane = _first_item(item, "PlanePositionSequence")
            found.append(_floats(plane.get("ImagePositionPatient"), 3) if plane else None)
        if any(p is None for p in found):
            return None
        positions = np.stack(found)
    else:
        return None
    names = [f"frame {i + 1}" for i in range(frames)]
    order, normal = _slice_order(path, positions, normal, names)
    pixels = decode_pixels(ds, path)
    values = _rescaled(ds, pixels)
    scaling = ds.get("DoseGridScaling")
    if scaling not in (None, ""):
        values = values * float(scaling)
    volume = np.moveaxis(values[order], 0, -1)  # (F, rows, cols) -> (rows, cols, F)
    volume = np.swapaxes(volume, 0, 1)[np.newaxis]  # -> (1, cols, rows, F)
    step = (positions[order[-1]] - positions[order[0]]) / (frames - 1)
    row_spacing, col_spacing = header.pixel_spacing
    return Image(array=np.ascontiguousarray(volume, dtype=np.float32),
                 spacing=(col_spacing, row_spacing, float(np.linalg.norm(step))),
                 affine=_affine(row_cos, col_cos, row_spacing, col_spacing, step,
                                positions[order[0]]),
                 source=str(path),
                 meta={"format": "dicom-multiframe", "frames": frames,
                       "modality": header.modality, "series_uid": header.series_uid})


# --------------------------------------------------------------------------------------------
# Writing: volume -> series (tests, benchmark, format conversion)
# --------------------------------------------------------------------------------------------


def _storage_values(volume: np.ndarray) -> tuple[np.ndarray, float, float]:
    """int16 stored values with slope/intercept that reproduce ``volume`` (exactly if integer)."""
    finite = volume[np.isfinite(volume)]
    low, high = float(finite.min()), float(finite.max())
    integral = np.allclose(volume, np.round(volume))
    if integral and low >= -32768 and high <= 32767:
        return np.round(volume).astype(np.int16), 1.0, 0.0
    slope = (high - low) / 65000.0 or 1.0
    intercept = low + 32500.0 * slope  # stored 0 sits in the middle of the range
    stored = np.round((volume - intercept) / slope)
    return np.clip(stored, -32768, 32767).astype(np.int16), slope, intercept


def write_series(volume: np.ndarray, affine: np.ndarray, out_dir: str | os.PathLike[str], *,
                 modality: str = "MR", patient_name: str = "Anonymous^Test",
                 patient_id: str = "TEST0001", study_uid: str | None = None,
                 series_uid: str | None = None, frame_of_reference_uid: str | None = None,
                 series_description: str = "", body_part: str = "",
                 study_description: str = "") -> list[Path]:
    """Write a 3D volume ``(X, Y, Z)`` with a RAS ``affine`` as single-frame DICOM slices.

    The inverse of :func:`read_series`: reading the folder back gives the same array (up to the
    int16 storage precision for non-integer data) and the same affine. Files are named
    ``slice_0000.dcm``... and written atomically.

    Returns:
        The paths written, in slice order.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import (
        CTImageStorage,
        ExplicitVRLittleEndian,
        MRImageStorage,
        generate_uid,
    )

    volume = np.asarray(volume)
    if volume.ndim == 4 and volume.shape[0] == 1:
        volume = volume[0]
    if volume.ndim != 3:
        raise ValueError(f"write_series needs a 3D volume, got shape {volume.shape}")
    lps = LPS_TO_RAS @ np.asarray(affine, dtype=np.float64)
    col_spacing = float(np.linalg.norm(lps[:3, 0]))
    row_spacing = float(np.linalg.norm(lps[:3, 1]))
    row_cos, col_cos = lps[:3, 0] / col_spacing, lps[:3, 1] / row_spacing
    step = lps[:3, 2]
    normal = np.cross(row_cos, col_cos)
    thickness = float(abs(step @ normal)) or float(np.linalg.norm(step))
    stored, slope, intercept = _storage_values(volume.astype(np.float64))
    sop_class = CTImageStorage if modality == "CT" else MRImageStorage
    study_uid = study_uid or generate_uid()
    series_uid = series_uid or generate_uid()
    frame_uid = frame_of_reference_uid or generate_uid()
    now = _dt.datetime.now()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(volume.shape[2]):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = sop_class
        ds.SOPClassUID = sop_class
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.PatientName, ds.PatientID = patient_name, patient_id
        ds.PatientBirthDate, ds.PatientSex = "", ""
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = now.strftime("%Y%m%d")
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = now.strftime("%H%M%S")
        ds.AccessionNumber, ds.StudyID, ds.ReferringPhysicianName = "", "1", ""
        ds.StudyDescription, ds.SeriesDescription = study_description, series_description
        if body_part:
            ds.BodyPartExamined = body_part
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber = modality, 1, k + 1
        ds.Manufacturer = "meddx"
        ds.ImageType = ["DERIVED", "SECONDARY"]
        ds.PositionReferenceIndicator = ""
        ds.ImageOrientationPatient = [f"{v:.8g}" for v in (*row_cos, *col_cos)]
        ds.ImagePositionPatient = [f"{v:.8g}" for v in lps[:3, :] @ np.array([0, 0, k, 1])]
        ds.PixelSpacing = [f"{row_spacing:.8g}", f"{col_spacing:.8g}"]
        ds.SliceThickness = f"{thickness:.8g}"
        ds.SpacingBetweenSlices = f"{thickness:.8g}"
        ds.SliceLocation = f"{float(lps[:3, :] @ np.array([0, 0, k, 1]) @ normal):.8g}"
        if modality == "MR":
            ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions = "RM", "NONE", ""
            ds.MRAcquisitionType = "3D"
        elif modality == "CT":
            ds.KVP = ""
            ds.AcquisitionNumber = 1
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = int(volume.shape[1]), int(volume.shape[0])
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = f"{slope:.10g}", f"{intercept:.10g}"
        ds.RescaleType = "US"
        ds.PixelData = np.ascontiguousarray(stored[:, :, k].T).tobytes()
        paths.append(save_dataset(ds, out_dir / f"slice_{k:04d}.dcm"))
    return paths
