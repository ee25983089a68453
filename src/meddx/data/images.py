"""Read one medical image file into a channel-first float32 array.

:func:`read_image` is the single entry point for image files anywhere in meddx (datasets,
prediction, the workstation). It accepts PNG/JPEG/BMP/TIFF (Pillow), DICOM (pydicom), NIfTI
(nibabel) and NumPy ``.npy`` files, detects the format from the suffix *and* the content (DICOM's
``DICM`` preamble wins over any suffix, so suffix-less PACS exports work), and returns an
:class:`Image` whose ``array`` is ``float32`` with shape ``(C, *spatial)``.

Intensities are kept in their physical/stored units (DICOM after the modality rescale, e.g.
Hounsfield units; PNG 0..255): normalisation belongs to the task's preprocessing, which is saved in
the model bundle. Every failure raises :class:`~meddx.errors.InputFileError` naming the file and
the specific problem.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from meddx.errors import InputFileError

__all__ = [
    "IMAGE_SUFFIXES",
    "Image",
    "detect_format",
    "read_image",
]

log = logging.getLogger(__name__)

_PILLOW_SUFFIXES = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}
_SUFFIX_FORMATS: dict[str, str] = {
    **dict.fromkeys(_PILLOW_SUFFIXES, "pillow"),
    ".dcm": "dicom",
    ".dicom": "dicom",
    ".nii": "nifti",
    ".nii.gz": "nifti",
    ".npy": "numpy",
}
IMAGE_SUFFIXES: frozenset[str] = frozenset(_SUFFIX_FORMATS)
"""Suffixes :func:`read_image` accepts (files without a suffix are accepted when they are DICOM)."""

_EXPECTED = "expected PNG, JPEG, DICOM, NIfTI or .npy"
# Bytes enough to see DICOM's preamble (128 + "DICM") and NIfTI-1's magic at offset 344.
_HEAD_BYTES = 348


@dataclass
class Image:
    """An image as meddx uses it everywhere.

    Attributes:
        array: ``float32``, channel-first ``(C, *spatial)``: ``(C, H, W)`` for 2D, ``(C, D, H, W)``
            (or NIfTI's ``(C, X, Y, Z)``) for 3D.
        spacing: Physical size of a voxel along each spatial axis (mm), in array order, or None
            when the file does not say.
        affine: 4x4 voxel-to-world matrix (NIfTI), or None.
        source: Path of the file it was read from.
        meta: Format facts useful downstream (format, original dtype, DICOM modality...). Never
            holds patient identifiers.
    """

    array: np.ndarray
    spacing: tuple[float, ...] | None
    affine: np.ndarray | None
    source: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def spatial_dims(self) -> int:
        """Number of spatial dimensions (2 or 3)."""
        return self.array.ndim - 1

    @property
    def channels(self) -> int:
        """Number of channels (``array.shape[0]``)."""
        return int(self.array.shape[0])


def _suffix(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".nii.gz"):
        return ".nii.gz"
    return path.suffix.lower()


def _read_head(path: Path) -> bytes:
    try:
        with path.open("rb") as fh:
            return fh.read(_HEAD_BYTES)
    except PermissionError:
        raise InputFileError(path, "cannot read file (permission denied)") from None
    except OSError as exc:
        raise InputFileError(path, f"cannot read file ({exc.strerror or exc})") from exc


def _sniff(head: bytes) -> str | None:
    """Guess a format from magic bytes (for files whose suffix says nothing)."""
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    if head.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*", b"BM")):
        return "pillow"
    if head.startswith(b"\x93NUMPY"):
        return "numpy"
    if len(head) >= 348 and head[344:348] in (b"n+1\x00", b"ni1\x00"):
        return "nifti"
    return None


def detect_format(path: str | os.PathLike[str]) -> str | None:
    """Return the reader for a file: ``"pillow"``, ``"dicom"``, ``"nifti"``, ``"numpy"`` or None.

    Content wins over the suffix for DICOM (the ``DICM`` preamble), so a DICOM file named
    ``x.png`` or exported without a suffix is read as DICOM; otherwise the suffix decides, and
    magic bytes are used for files with no or an unknown suffix.

    Raises:
        InputFileError: The file does not exist, is a directory or cannot be read.
    """
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, "file not found")
    if path.is_dir():
        raise InputFileError(path, f"is a directory, not an image file ({_EXPECTED})")
    head = _read_head(path)
    sniffed = _sniff(head)
    if sniffed == "dicom":
        return "dicom"
    by_suffix = _SUFFIX_FORMATS.get(_suffix(path))
    return by_suffix or sniffed


def read_image(path: str | os.PathLike[str], spatial_dims: int | None = None) -> Image:
    """Read an image file.

    Args:
        path: PNG, JPEG, BMP, TIFF, DICOM (any suffix or none), NIfTI (``.nii``/``.nii.gz``) or
            ``.npy`` file.
        spatial_dims: Expected number of spatial dimensions (2 or 3), or None to infer. It
            disambiguates ``.npy`` arrays; a 3D image with a single slice is squeezed to 2D when
            2 is expected; otherwise a mismatch is an error.

    Returns:
        The :class:`Image` (``array`` float32, channel-first).

    Raises:
        InputFileError: The file is missing, of an unsupported type, unreadable, corrupt, empty,
            contains NaN/inf, or does not have ``spatial_dims`` dimensions.
    """
    if spatial_dims not in (None, 2, 3):
        raise ValueError(f"spatial_dims must be None, 2 or 3, not {spatial_dims!r}")
    path = Path(path)
    if path.is_dir():
        # A DICOM series folder: one oriented volume with its affine (meddx.data.dicom.series).
        from meddx.data.dicom.series import read_series

        image = read_series(path)
        image.array = _check_array(path, image.array)
        if spatial_dims is not None and image.spatial_dims != spatial_dims:
            image = _match_dims(path, image, spatial_dims)
        return image
    fmt = detect_format(path)
    if fmt is None:
        suffix = _suffix(path) or "(no suffix)"
        raise InputFileError(path, f"unsupported file type {suffix} ({_EXPECTED})")
    reader = {
        "pillow": _read_pillow,
        "dicom": _read_dicom,
        "nifti": _read_nifti,
        "numpy": _read_npy,
    }[fmt]
    image = reader(path, spatial_dims)
    image.array = _check_array(path, image.array)
    image.meta.setdefault("format", fmt)
    if spatial_dims is not None and image.spatial_dims != spatial_dims:
        image = _match_dims(path, image, spatial_dims)
    return image


# --------------------------------------------------------------------------------------------
# Helpers shared by the readers
# --------------------------------------------------------------------------------------------


def _check_array(path: Path, array: np.ndarray) -> np.ndarray:
    """Validate content and return a contiguous float32 array."""
    if array.size == 0:
        raise InputFileError(path, f"image is empty (zero size, shape {tuple(array.shape)})")
    out = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(out).all():
        raise InputFileError(path, "contains NaN or infinite values")
    return out


def _shape_text(array: np.ndarray) -> str:
    return "x".join(str(s) for s in array.shape)


def _match_dims(path: Path, image: Image, spatial_dims: int) -> Image:
    """Reconcile an image with the expected number of spatial dimensions."""
    array = image.array
    if spatial_dims == 2 and image.spatial_dims == 3:
        # A volume with one slice (a 2D NIfTI saved as X*Y*1, a single DICOM frame) is 2D.
        singleton = [axis for axis in (1, 2, 3) if array.shape[axis] == 1]
        if singleton:
            axis = singleton[-1]
            image.array = np.ascontiguousarray(np.squeeze(array, axis=axis))
            if image.spacing is not None:
                image.spacing = tuple(s for i, s in enumerate(image.spacing) if i != axis - 1)
            return image
    raise InputFileError(
        path,
        f"is a {image.spatial_dims}D image (channels x spatial = {_shape_text(array)}) but a"
        f" {spatial_dims}D image was expected",
    )


def _to_channel_first_2d(array: np.ndarray) -> np.ndarray:
    """(H, W) -> (1, H, W); (H, W, C) -> (C, H, W)."""
    if array.ndim == 2:
        return array[np.newaxis]
    return np.moveaxis(array, -1, 0)


# --------------------------------------------------------------------------------------------
# Pillow: PNG, JPEG, BMP, TIFF
# --------------------------------------------------------------------------------------------

_GRAY_MODES = {"L", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"}


def _read_pillow(path: Path, spatial_dims: int | None) -> Image:
    from PIL import Image as PILImage
    from PIL import ImageOps, UnidentifiedImageError

    kind = _PILLOW_SUFFIXES.get(_suffix(path), "PNG/JPEG")
    if kind in ("PNG", "JPEG"):
        kind = "PNG/JPEG"
    try:
        with PILImage.open(path) as opened:
            opened.load()  # decode now: truncated files fail here, not later
            n_frames = getattr(opened, "n_frames", 1)
            # Photographs (dermatology, fundus) carry their orientation in EXIF.
            pil = ImageOps.exif_transpose(opened)
            mode = pil.mode
            array = _pil_to_array(pil)
    except UnidentifiedImageError:
        raise InputFileError(
            path, f"not a readable {kind} image (cannot identify image file)"
        ) from None
    except PILImage.DecompressionBombError as exc:
        raise InputFileError(path, f"image is too large to read safely ({exc})") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Pillow reports truncated/corrupt data with several exception types.
        raise InputFileError(path, f"not a readable {kind} image ({exc})") from exc
    if n_frames > 1:
        log.warning("%s has %d frames; only the first is read", path, n_frames)
    return Image(
        array=array,
        spacing=None,
        affine=None,
        source=str(path),
        meta={"mode": mode, "dtype": str(array.dtype)},
    )


def _pil_to_array(pil: Any) -> np.ndarray:
    mode = pil.mode
    if mode == "1":
        pil = pil.convert("L")
    elif mode in ("LA", "La"):
        pil = pil.convert("L")  # drop alpha
    elif mode not in _GRAY_MODES and mode != "RGB":
        # RGBA/RGBa/RGBX (alpha dropped), palette P/PA, CMYK, YCbCr, LAB, HSV -> RGB.
        pil = pil.convert("RGB")
    return _to_channel_first_2d(np.asarray(pil))


# --------------------------------------------------------------------------------------------
# DICOM
# --------------------------------------------------------------------------------------------


def _first_number(ds: Any, *keywords: str) -> float | None:
    for keyword in keywords:
        value = ds.get(keyword)
        if value not in (None, ""):
            try:
                return float(value)
            except (TypeError, ValueError):
                continue
    return None


def _dicom_pixel_spacing(ds: Any) -> tuple[float, float] | None:
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = ds.get(keyword)
        if value is not None and len(value) == 2:
            return float(value[0]), float(value[1])
    # Enhanced multi-frame objects keep it in the shared functional groups.
    try:
        measures = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
        return float(measures.PixelSpacing[0]), float(measures.PixelSpacing[1])
    except (AttributeError, IndexError, KeyError, TypeError, ValueError):
        return None


def _dicom_frame_spacing(ds: Any) -> float | None:
    offsets = ds.get("GridFrameOffsetVector")  # RT Dose
    if offsets is not None and len(offsets) > 1:
        return abs(float(offsets[1]) - float(offsets[0])) or None
    return _first_number(ds, "SpacingBetweenSlices", "SliceThickness")


# Patient/study/series/image/pixel modules: a real DICOM object has elements in some of these.
_DICOM_CORE_GROUPS = frozenset({0x0008, 0x0010, 0x0018, 0x0020, 0x0028, 0x7FE0})


def _syntax_from_encoding(ds: Any) -> Any:
    """Give a file without file meta (no preamble) the transfer syntax it was read with.

    Such files can only be uncompressed; pydicom needs the syntax to decode their pixel data.
    """
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    implicit, little = getattr(ds, "original_encoding", (None, None))
    if implicit is None or little is None:
        return None
    syntax = (
        ImplicitVRLittleEndian
        if implicit
        else (ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
    )
    if getattr(ds, "file_meta", None) is None:
        ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    return syntax


def _read_dicom(path: Path, spatial_dims: int | None) -> Image:
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_rescale

    try:
        with warnings.catch_warnings():
            # Forced reads of odd files warn per element; the checks below report the problem.
            warnings.simplefilter("ignore")
            # force=True reads files without the 128-byte preamble (older exports).
            ds = pydicom.dcmread(path, force=True)
    except (InvalidDicomError, OSError, EOFError, ValueError, KeyError, TypeError) as exc:
        raise InputFileError(path, f"not a readable DICOM file ({exc})") from exc
    # keys() gives tags without decoding elements (garbage may not decode).
    if not any(tag.group in _DICOM_CORE_GROUPS for tag in ds.keys()):  # noqa: SIM118
        # A forced read of a non-DICOM file yields garbage elements instead of an error.
        raise InputFileError(path, "not a readable DICOM file (no DICOM header found)")
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise InputFileError(path, "DICOM file has no pixel data")
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is None:
        syntax = _syntax_from_encoding(ds)
    syntax_name = getattr(syntax, "name", None) or str(syntax or "unknown")
    try:
        pixels = ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - decoders raise anything; report it for this file
        raise InputFileError(
            path, f"cannot decode DICOM pixel data (transfer syntax {syntax_name}): {exc}"
        ) from exc

    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    photometric = str(ds.get("PhotometricInterpretation", "")).upper()
    if samples == 1:
        # Modality LUT / rescale slope+intercept: stored values -> physical units (HU...).
        array = np.asarray(apply_rescale(pixels, ds), dtype=np.float64)
        dose_scaling = _first_number(ds, "DoseGridScaling")
        if dose_scaling is not None:
            array = array * dose_scaling
        if photometric == "MONOCHROME1":
            # MONOCHROME1 shows low values as white; invert so that bright means high everywhere.
            array = array.max() + array.min() - array
        # (H, W) or (F, H, W)
        array = array[np.newaxis]
    else:
        # (H, W, S) or (F, H, W, S); pydicom converts YBR to RGB.
        array = np.moveaxis(np.asarray(pixels), -1, 0)

    in_plane = _dicom_pixel_spacing(ds)
    spacing: tuple[float, ...] | None = in_plane
    if in_plane is not None and array.ndim == 4:
        spacing = (_dicom_frame_spacing(ds) or 1.0, *in_plane)
    meta = {
        "modality": str(ds.get("Modality", "")),
        "photometric": photometric,
        "transfer_syntax": syntax_name,
        "frames": int(ds.get("NumberOfFrames", 1) or 1),
        "sop_class": str(getattr(ds.get("SOPClassUID"), "name", ds.get("SOPClassUID", ""))),
        "dtype": str(pixels.dtype),
    }
    return Image(array=array, spacing=spacing, affine=None, source=str(path), meta=meta)


# --------------------------------------------------------------------------------------------
# NIfTI
# --------------------------------------------------------------------------------------------

_MAX_NIFTI_CHANNELS = 4


def _read_nifti(path: Path, spatial_dims: int | None) -> Image:
    import nibabel as nib

    try:
        img = nib.load(str(path))
        data = np.asarray(img.get_fdata(dtype=np.float32))
        zooms = tuple(float(z) for z in img.header.get_zooms())
        affine = np.asarray(img.affine, dtype=np.float64)
        dtype = str(img.get_data_dtype())
    except Exception as exc:  # noqa: BLE001 - nibabel/gzip/zlib raise many types on bad files
        raise InputFileError(path, f"not a readable NIfTI file ({exc})") from exc

    if data.ndim == 5 and data.shape[3] == 1:
        # ITK writes vector images as X*Y*Z*1*C.
        data = data[:, :, :, 0, :]
    if data.ndim == 2:
        array = data[np.newaxis]
    elif data.ndim == 3:
        array = data[np.newaxis]  # keep nibabel's (X, Y, Z) order
    elif data.ndim == 4 and data.shape[3] <= _MAX_NIFTI_CHANNELS:
        array = np.moveaxis(data, -1, 0)  # few volumes = channels (e.g. multi-sequence MRI)
    elif data.ndim == 4:
        raise InputFileError(
            path,
            f"4D NIfTI with {data.shape[3]} volumes is not supported (at most"
            f" {_MAX_NIFTI_CHANNELS} channels in the last axis; time series are not images)",
        )
    else:
        raise InputFileError(path, f"NIfTI with {data.ndim} dimensions is not supported")
    n_spatial = array.ndim - 1
    spacing = zooms[:n_spatial] if len(zooms) >= n_spatial else None
    return Image(
        array=array, spacing=spacing, affine=affine, source=str(path), meta={"dtype": dtype}
    )


# --------------------------------------------------------------------------------------------
# NumPy .npy
# --------------------------------------------------------------------------------------------


def _npy_layout(path: Path, shape: tuple[int, ...], spatial_dims: int | None) -> str:
    """Decide how a 3-D array is laid out: 'first' / 'last' (2D with channels) or 'volume'."""
    if spatial_dims == 3:
        return "volume"
    if spatial_dims == 2:
        if shape[0] <= 4:
            return "first"
        if shape[-1] <= 4:
            return "last"
        raise InputFileError(
            path,
            f"cannot read array of shape {shape} as a 2D image (expected (C, H, W) or (H, W, C)"
            " with at most 4 channels)",
        )
    if shape[0] in (1, 3, 4):
        return "first"
    if shape[-1] in (1, 3, 4):
        return "last"
    return "volume"


def _read_npy(path: Path, spatial_dims: int | None) -> Image:
    try:
        data = np.load(path, allow_pickle=False)
    except ValueError as exc:
        # Object arrays need pickle, which could run code: refused.
        raise InputFileError(path, f"not a readable .npy image ({exc})") from exc
    except (OSError, EOFError) as exc:
        raise InputFileError(path, f"not a readable .npy file ({exc})") from exc
    if not isinstance(data, np.ndarray):
        raise InputFileError(path, "not a .npy array")
    if not (np.issubdtype(data.dtype, np.number) or data.dtype == np.bool_):
        raise InputFileError(path, f"array dtype {data.dtype} is not numeric")
    if np.iscomplexobj(data):
        raise InputFileError(path, "complex-valued arrays are not supported")
    if data.size == 0:
        raise InputFileError(path, f"image is empty (zero size, shape {tuple(data.shape)})")
    shape = tuple(int(s) for s in data.shape)
    if data.ndim == 2:
        array = data[np.newaxis]
    elif data.ndim == 3:
        layout = _npy_layout(path, shape, spatial_dims)
        if layout == "first":
            array = data
        elif layout == "last":
            array = np.moveaxis(data, -1, 0)
        else:
            array = data[np.newaxis]
    elif data.ndim == 4:
        array = data  # (C, D, H, W)
    else:
        raise InputFileError(
            path, f"array has {data.ndim} dimensions, shape {shape} (expected 2, 3 or 4)"
        )
    return Image(
        array=array, spacing=None, affine=None, source=str(path), meta={"dtype": str(data.dtype)}
    )
