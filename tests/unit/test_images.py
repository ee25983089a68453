"""Tests for meddx.data.images.read_image with synthetic files."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image as PILImage
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from meddx.data.images import IMAGE_SUFFIXES, Image, detect_format, read_image
from meddx.errors import InputFileError

# --------------------------------------------------------------------------------------------
# Pillow formats
# --------------------------------------------------------------------------------------------


def _gradient(h: int = 6, w: int = 8) -> np.ndarray:
    return (np.arange(h * w, dtype=np.uint8).reshape(h, w) * 5).astype(np.uint8)


def test_png_gray(tmp_path):
    data = _gradient()
    path = tmp_path / "g.png"
    PILImage.fromarray(data).save(path)
    image = read_image(path)
    assert isinstance(image, Image)
    assert image.array.dtype == np.float32
    assert image.array.shape == (1, 6, 8)
    np.testing.assert_array_equal(image.array[0], data)
    assert image.spatial_dims == 2 and image.channels == 1
    assert image.spacing is None and image.affine is None
    assert image.source == str(path)
    assert image.meta["format"] == "pillow"


def test_png_16bit_gray_keeps_range(tmp_path):
    data = (np.arange(20, dtype=np.uint16).reshape(4, 5) * 3000).astype(np.uint16)
    path = tmp_path / "g16.png"
    PILImage.fromarray(data).save(path)
    image = read_image(path)
    assert image.array.shape == (1, 4, 5)
    assert image.array.max() == float(data.max())


def test_png_rgb_is_channel_first(tmp_path):
    data = np.zeros((4, 5, 3), np.uint8)
    data[..., 0] = 200  # red
    data[1, 2] = (1, 2, 3)
    path = tmp_path / "rgb.png"
    PILImage.fromarray(data).save(path)
    array = read_image(path).array
    assert array.shape == (3, 4, 5)
    assert array[0, 0, 0] == 200 and array[1, 0, 0] == 0
    assert tuple(array[:, 1, 2]) == (1, 2, 3)


@pytest.mark.parametrize(
    "mode,channels",
    [("RGBA", 3), ("LA", 1), ("P", 3), ("1", 1), ("I;16", 1), ("CMYK", 3)],
)
def test_pillow_modes(tmp_path, mode, channels):
    base = PILImage.fromarray(np.stack([_gradient()] * 3, axis=-1))
    converted = base.convert(mode) if mode != "I;16" else base.convert("L").convert("I;16")
    suffix = ".tif" if mode == "CMYK" else ".png"  # PNG cannot store CMYK
    path = tmp_path / f"img{suffix}"
    converted.save(path)
    array = read_image(path).array
    assert array.shape == (channels, 6, 8)
    assert array.dtype == np.float32


def test_rgba_drops_alpha(tmp_path):
    data = np.zeros((3, 3, 4), np.uint8)
    data[..., :3] = 100
    data[..., 3] = 7
    path = tmp_path / "a.png"
    PILImage.fromarray(data, mode="RGBA").save(path)
    array = read_image(path).array
    assert array.shape == (3, 3, 3)
    assert np.all(array == 100)


@pytest.mark.parametrize("suffix", [".jpg", ".jpeg", ".bmp", ".tif", ".tiff"])
def test_other_pillow_formats(tmp_path, suffix):
    data = np.full((8, 8, 3), 128, np.uint8)
    path = tmp_path / f"x{suffix}"
    PILImage.fromarray(data).save(path)
    array = read_image(path).array
    assert array.shape == (3, 8, 8)
    assert abs(float(array.mean()) - 128) < 3  # JPEG is lossy


def test_truncated_png(tmp_path):
    path = tmp_path / "t.png"
    PILImage.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8)).save(path)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputFileError, match="not a readable PNG/JPEG image") as info:
        read_image(path)
    assert info.value.path == str(path)


def test_text_file_renamed_png(tmp_path):
    path = tmp_path / "fake.png"
    path.write_text("this is not an image\n")
    with pytest.raises(InputFileError) as info:
        read_image(path)
    assert info.value.problem == "not a readable PNG/JPEG image (cannot identify image file)"


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(InputFileError) as info:
        read_image(tmp_path / "nope.png")
    assert info.value.problem == "file not found"
    with pytest.raises(InputFileError, match="is a directory"):
        read_image(tmp_path)


def test_unsupported_suffix(tmp_path):
    path = tmp_path / "scan.xyz"
    path.write_text("hello")
    with pytest.raises(InputFileError) as info:
        read_image(path)
    assert (
        info.value.problem
        == "unsupported file type .xyz (expected PNG, JPEG, DICOM, NIfTI or .npy)"
    )
    plain = tmp_path / "noext"
    plain.write_text("hello")
    with pytest.raises(InputFileError, match=r"unsupported file type \(no suffix\)"):
        read_image(plain)


def test_content_sniffing_without_suffix(tmp_path):
    path = tmp_path / "png_without_suffix"
    PILImage.fromarray(_gradient()).save(path, format="PNG")
    assert detect_format(path) == "pillow"
    assert read_image(path).array.shape == (1, 6, 8)


def test_suffix_table():
    assert {".png", ".jpg", ".dcm", ".nii", ".nii.gz", ".npy"} <= IMAGE_SUFFIXES


# --------------------------------------------------------------------------------------------
# DICOM
# --------------------------------------------------------------------------------------------


def _dicom(
    path: Path,
    pixels: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    slope: float | None = None,
    intercept: float | None = None,
    spacing: tuple[float, float] | None = (0.5, 0.75),
    thickness: float | None = None,
    with_pixels: bool = True,
) -> Path:
    """Write an uncompressed DICOM file (preamble + file meta) with pydicom."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CT"
    ds.PatientName = "Secret^Patient"
    ds.PatientID = "12345"
    rgb = pixels.shape[-1] == 3 and photometric == "RGB"
    frames = pixels.shape[0] if pixels.ndim == (4 if rgb else 3) else 1
    ds.Rows, ds.Columns = pixels.shape[-3:-1] if rgb else pixels.shape[-2:]
    ds.SamplesPerPixel = 3 if rgb else 1
    ds.PhotometricInterpretation = photometric
    if rgb:
        ds.PlanarConfiguration = 0
    if frames > 1:
        ds.NumberOfFrames = frames
    bits = pixels.dtype.itemsize * 8
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 1 if pixels.dtype.kind == "i" else 0
    if spacing is not None:
        ds.PixelSpacing = list(spacing)
    if thickness is not None:
        ds.SliceThickness = thickness
    if slope is not None:
        ds.RescaleSlope = slope
        ds.RescaleIntercept = intercept or 0
    if with_pixels:
        ds.PixelData = pixels.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def test_dicom_rescale_and_spacing(tmp_path):
    stored = np.arange(12, dtype=np.uint16).reshape(3, 4)
    path = _dicom(tmp_path / "ct.dcm", stored, slope=2.0, intercept=-1024.0)
    image = read_image(path)
    assert image.array.shape == (1, 3, 4)
    np.testing.assert_allclose(image.array[0], stored * 2.0 - 1024.0)
    assert image.spacing == (0.5, 0.75)
    assert image.meta["modality"] == "CT"
    # No patient identifiers leak into metadata.
    assert "Secret" not in repr(image.meta) and "12345" not in repr(image.meta)


def test_dicom_signed_pixels(tmp_path):
    stored = np.array([[-1000, 0], [50, 3000]], dtype=np.int16)
    image = read_image(_dicom(tmp_path / "s.dcm", stored))
    np.testing.assert_array_equal(image.array[0], stored)


def test_dicom_monochrome1_is_inverted(tmp_path):
    stored = np.array([[0, 10], [20, 30]], dtype=np.uint16)
    image = read_image(_dicom(tmp_path / "cr.dcm", stored, photometric="MONOCHROME1"))
    np.testing.assert_array_equal(image.array[0], 30 - stored)


def test_dicom_multiframe_is_3d(tmp_path):
    stored = np.arange(2 * 3 * 4, dtype=np.uint16).reshape(2, 3, 4)
    image = read_image(_dicom(tmp_path / "mf.dcm", stored, thickness=2.5))
    assert image.array.shape == (1, 2, 3, 4)
    assert image.spatial_dims == 3
    assert image.spacing == (2.5, 0.5, 0.75)
    with pytest.raises(InputFileError, match="is a 3D image .* but a 2D image was expected"):
        read_image(tmp_path / "mf.dcm", spatial_dims=2)


def test_dicom_rgb(tmp_path):
    pixels = np.zeros((3, 4, 3), np.uint8)
    pixels[..., 1] = 9
    image = read_image(_dicom(tmp_path / "rgb.dcm", pixels, photometric="RGB", spacing=None))
    assert image.array.shape == (3, 3, 4)
    assert np.all(image.array[1] == 9) and np.all(image.array[0] == 0)
    assert image.spacing is None


def test_dicom_without_pixel_data(tmp_path):
    path = _dicom(tmp_path / "sr.dcm", np.zeros((2, 2), np.uint16), with_pixels=False)
    with pytest.raises(InputFileError) as info:
        read_image(path)
    assert info.value.problem == "DICOM file has no pixel data"


def test_dicom_detected_by_content(tmp_path):
    stored = np.ones((2, 2), np.uint16)
    no_suffix = _dicom(tmp_path / "1.2.840.123", stored)  # PACS exports often look like this
    no_suffix_plain = no_suffix.rename(tmp_path / "IM0001")
    assert detect_format(no_suffix_plain) == "dicom"
    assert read_image(no_suffix_plain).array.shape == (1, 2, 2)
    misnamed = _dicom(tmp_path / "actually_dicom.png", stored)
    assert read_image(misnamed).meta["format"] == "dicom"


def test_dicom_without_preamble(tmp_path):
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.Modality = "CT"
    ds.Rows, ds.Columns = 2, 3
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = np.arange(6, dtype=np.uint16).tobytes()
    path = tmp_path / "raw.dcm"
    pydicom.dcmwrite(path, ds, implicit_vr=True, little_endian=True)
    np.testing.assert_array_equal(read_image(path).array[0], np.arange(6).reshape(2, 3))


def test_garbage_dcm(tmp_path):
    path = tmp_path / "junk.dcm"
    path.write_text("definitely not DICOM, just some text in a file\n")
    with pytest.raises(InputFileError, match="not a readable DICOM file"):
        read_image(path)


# --------------------------------------------------------------------------------------------
# NIfTI
# --------------------------------------------------------------------------------------------


def _nifti(path: Path, data: np.ndarray, zooms: tuple[float, ...] = (1.5, 2.0, 3.0)) -> np.ndarray:
    affine = np.diag([*zooms[:3], 1.0]) if len(zooms) >= 3 else np.eye(4)
    affine[:3, 3] = (10, 20, 30)
    img = nib.Nifti1Image(data, affine)
    img.header.set_zooms(zooms[: data.ndim])
    nib.save(img, str(path))
    return affine


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_nifti_3d_keeps_order_affine_and_spacing(tmp_path, suffix):
    data = np.random.default_rng(0).random((5, 6, 7)).astype(np.float32)
    path = tmp_path / f"vol{suffix}"
    affine = _nifti(path, data)
    image = read_image(path)
    assert image.array.shape == (1, 5, 6, 7)
    np.testing.assert_allclose(image.array[0], data)
    assert image.spacing == (1.5, 2.0, 3.0)
    np.testing.assert_allclose(image.affine, affine)
    assert image.spatial_dims == 3


def test_nifti_small_last_axis_is_channels(tmp_path):
    data = np.zeros((4, 5, 6, 2), np.float32)
    data[..., 1] = 1
    path = tmp_path / "mc.nii.gz"
    _nifti(path, data, zooms=(1.0, 1.0, 1.0, 1.0))
    image = read_image(path)
    assert image.array.shape == (2, 4, 5, 6)
    assert image.array[1].min() == 1 and image.array[0].max() == 0


def test_nifti_time_series_rejected(tmp_path):
    path = tmp_path / "fmri.nii.gz"
    _nifti(path, np.zeros((3, 3, 3, 10), np.float32), zooms=(1.0, 1.0, 1.0, 2.0))
    with pytest.raises(InputFileError, match="4D NIfTI with 10 volumes"):
        read_image(path)


def test_nifti_single_slice_as_2d(tmp_path):
    path = tmp_path / "slice.nii.gz"
    _nifti(path, np.ones((4, 5, 1), np.int16))
    image = read_image(path, spatial_dims=2)
    assert image.array.shape == (1, 4, 5)
    assert image.spacing == (1.5, 2.0)


def test_nifti_2d(tmp_path):
    path = tmp_path / "flat.nii"
    _nifti(path, np.ones((4, 5), np.uint8), zooms=(0.5, 0.5))
    assert read_image(path).array.shape == (1, 4, 5)


def test_corrupt_nifti(tmp_path):
    path = tmp_path / "bad.nii.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(InputFileError, match="not a readable NIfTI file"):
        read_image(path)


# --------------------------------------------------------------------------------------------
# .npy
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape,hint,expected",
    [
        ((6, 7), None, (1, 6, 7)),
        ((3, 6, 7), None, (3, 6, 7)),  # channel-first 2D
        ((1, 6, 7), None, (1, 6, 7)),
        ((6, 7, 3), None, (3, 6, 7)),  # channel-last 2D
        ((6, 7, 4), None, (4, 6, 7)),
        ((10, 6, 7), None, (1, 10, 6, 7)),  # volume
        ((3, 6, 7), 3, (1, 3, 6, 7)),  # the hint wins
        ((2, 6, 7), 2, (2, 6, 7)),
        ((6, 7, 2), 2, (2, 6, 7)),
        ((2, 5, 6, 7), None, (2, 5, 6, 7)),  # channel-first 3D
        ((2, 5, 6, 7), 3, (2, 5, 6, 7)),
    ],
)
def test_npy_layout_rules(tmp_path, shape, hint, expected):
    path = tmp_path / "a.npy"
    np.save(path, np.zeros(shape, np.int16))
    image = read_image(path, spatial_dims=hint)
    assert image.array.shape == expected
    assert image.array.dtype == np.float32


def test_npy_channel_last_values(tmp_path):
    data = np.zeros((6, 5, 3), np.float64)
    data[..., 2] = 7
    path = tmp_path / "c.npy"
    np.save(path, data)
    array = read_image(path).array
    assert array.shape == (3, 6, 5)
    assert np.all(array[2] == 7) and np.all(array[:2] == 0)


def test_npy_ambiguous_shape_prefers_channel_first(tmp_path):
    # (4, 5, 3) could be 4 channels of 5x3 or a 4x5 RGB image: channel-first wins, as documented.
    path = tmp_path / "amb.npy"
    np.save(path, np.zeros((4, 5, 3)))
    assert read_image(path).array.shape == (4, 5, 3)


@pytest.mark.parametrize(
    "data,hint,problem",
    [
        (np.array([[0.0, np.nan]]), None, "contains NaN or infinite values"),
        (np.array([[0.0, np.inf]]), None, "contains NaN or infinite values"),
        (np.zeros((0, 5)), None, "image is empty"),
        (np.zeros(5), None, "array has 1 dimensions"),
        (np.zeros((10, 6, 7)), 2, "cannot read array of shape"),
        (np.zeros((6, 7)), 3, "is a 2D image"),
        (np.array([["a", "b"]]), None, "is not numeric"),
    ],
)
def test_npy_errors(tmp_path, data, hint, problem):
    path = tmp_path / "bad.npy"
    np.save(path, data)
    with pytest.raises(InputFileError, match=problem):
        read_image(path, spatial_dims=hint)


def test_npy_object_array_refused(tmp_path):
    path = tmp_path / "obj.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputFileError, match="not a readable .npy"):
        read_image(path)


def test_invalid_hint(tmp_path):
    with pytest.raises(ValueError):
        read_image(tmp_path / "x.png", spatial_dims=4)
