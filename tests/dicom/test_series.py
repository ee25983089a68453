"""Reading DICOM: real sample files, series -> oriented volumes, round trips, bad series."""

from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pydicom
import pytest

from meddx.data.dicom.codecs import check_decodable
from meddx.data.dicom.series import read_series, scan_folder, write_series
from meddx.data.dicom.windowing import WINDOW_PRESETS, Window, apply_window, get_window
from meddx.data.images import read_image
from meddx.errors import ConfigError, InputFileError
from tests.seg_synthetic import AFFINE, sphere_cube_case

# ---- real files ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "MR_small_bigendian.dcm",
                                  "MR_small_implicit.dcm", "JPEG2000.dcm",
                                  "examples_overlay.dcm", "liver_1frame.dcm"])
def test_single_frame_samples_decode(samples, name):
    image = read_series(samples / name)
    ds = pydicom.dcmread(samples / name)
    assert image.array.shape[-2:] == (ds.Rows, ds.Columns)
    assert np.isfinite(image.array).all() and image.array.std() > 0


def test_transfer_syntax_variants_give_the_same_pixels(samples):
    explicit = read_image(samples / "MR_small.dcm").array
    for name in ("MR_small_bigendian.dcm", "MR_small_implicit.dcm"):
        np.testing.assert_array_equal(read_image(samples / name).array, explicit)


def test_ct_rescale_gives_hounsfield_units(samples):
    ds = pydicom.dcmread(samples / "CT_small.dcm")
    image = read_series(samples / "CT_small.dcm")
    stored = ds.pixel_array.astype(np.float64)
    expected = stored * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_allclose(image.array[0], expected)


def test_multiframe_jpeg_baseline_ultrasound_decodes(samples):
    image = read_series(samples / "examples_ybr_color.dcm")
    assert image.array.shape == (3, 30, 240, 320)  # RGB channels, 30 frames, no geometry
    assert image.affine is None


def test_rtdose_multiframe_becomes_an_oriented_volume(samples):
    ds = pydicom.dcmread(samples / "rtdose.dcm")
    image = read_series(samples / "rtdose.dcm")
    assert image.array.shape == (1, ds.Columns, ds.Rows, int(ds.NumberOfFrames))
    # The affine puts voxel (0, 0, 0) at ImagePositionPatient (LPS -> RAS) and steps along
    # the frame offsets.
    origin = np.array([float(v) for v in ds.ImagePositionPatient]) * [-1, -1, 1]
    np.testing.assert_allclose(image.affine[:3, 3], origin, atol=1e-4)
    offsets = np.array([float(v) for v in ds.GridFrameOffsetVector])
    assert image.spacing[2] == pytest.approx(abs(offsets[1] - offsets[0]))
    expected = ds.pixel_array[0].astype(np.float64).T * float(ds.DoseGridScaling)
    first = int(np.argmin(offsets))
    np.testing.assert_allclose(image.array[0, :, :, 0],
                               ds.pixel_array[first].T * float(ds.DoseGridScaling), rtol=1e-5)
    assert expected.shape == image.array.shape[1:3]


def test_real_folder_with_several_series_is_refused_naming_them(samples):
    with pytest.raises(InputFileError) as info:
        read_series(samples / "series-77654033")
    assert "holds 4 series" in info.value.problem and "Routine Brain" in info.value.problem


def test_real_ct_series_with_a_gap_is_refused(samples):
    with pytest.raises(InputFileError, match="uneven slice spacing"):
        read_series(samples / "series-77654033" / "CT2")


def test_choosing_one_series_of_a_folder(samples, tmp_path):
    found = scan_folder(samples / "series-77654033")
    ct = next(uid for uid, headers in found.series.items() if headers[0].modality == "CT")
    # Three of the four slices are evenly spaced: a regular series once the outlier is gone.
    headers = sorted(found.series[ct], key=lambda h: float(h.position[2]))
    folder = tmp_path / "ct"
    folder.mkdir()
    steps = np.diff([float(h.position[2]) for h in headers])
    keep = headers[1:] if abs(steps[0] - np.median(steps)) > 0.1 else headers[:-1]
    for header in keep:
        shutil.copy(header.path, folder / header.path.name)
    image = read_series(folder)
    assert image.array.shape == (1, 16, 16, len(keep))
    assert image.meta["modality"] == "CT" and image.meta["slices"] == len(keep)


def test_compressed_syntax_without_decoder_names_file_and_syntax(samples, tmp_path):
    from pydicom.uid import MPEG2MPML

    ds = pydicom.dcmread(samples / "CT_small.dcm")
    ds.file_meta.TransferSyntaxUID = MPEG2MPML
    with pytest.raises(InputFileError) as info:
        check_decodable(ds, tmp_path / "video.dcm")
    assert "video.dcm" in str(info.value) and "MPEG2" in info.value.problem


def test_jpeg2000_decoder_is_available(samples):
    check_decodable(pydicom.dcmread(samples / "JPEG2000.dcm"), samples / "JPEG2000.dcm")


# ---- series built from volumes: round trips ---------------------------------------------------


def test_hippocampus_round_trip_keeps_volume_and_affine(hippocampus, tmp_path):
    for case in ("hippocampus_001", "hippocampus_003"):
        nifti = nib.load(str(hippocampus / "imagesTr" / f"{case}.nii.gz"))
        volume = np.asarray(nifti.get_fdata())
        write_series(volume, nifti.affine, tmp_path / case, series_description=case)
        # Files named in reverse would not matter: order comes from the positions.
        image = read_series(tmp_path / case)
        # Integer images come back exactly; float ones within the int16 storage step.
        step = np.ptp(volume) / 65000 if not np.allclose(volume, np.round(volume)) else 1e-6
        np.testing.assert_allclose(image.array[0], volume, atol=step)
        np.testing.assert_allclose(image.affine, nifti.affine, atol=1e-5)
        assert image.spacing == pytest.approx(nifti.header.get_zooms()[:3])
        # The hook in read_image: a folder is a series.
        via_reader = read_image(tmp_path / case, spatial_dims=3)
        np.testing.assert_array_equal(via_reader.array, image.array)


def test_oblique_flipped_series_round_trip(tmp_path):
    image, _ = sphere_cube_case((16, 14, 12))
    values = image * 0.731 - 40.0  # non-integer: stored with slope/intercept
    paths = write_series(values, AFFINE, tmp_path / "s", modality="CT")
    for number, path in enumerate(reversed(paths)):  # shuffle the names
        path.rename(path.with_name(f"x{number:03d}"))
    read = read_series(tmp_path / "s")
    np.testing.assert_allclose(read.array[0], values, atol=0.01)
    np.testing.assert_allclose(read.affine, AFFINE, atol=1e-6)


def _slices(tmp_path, name="s"):
    image, _ = sphere_cube_case((12, 12, 12))
    return write_series(image, np.eye(4), tmp_path / name)


def test_mixed_orientation_is_refused(tmp_path):
    paths = _slices(tmp_path)
    ds = pydicom.dcmread(paths[2])
    ds.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
    ds.save_as(paths[2])
    with pytest.raises(InputFileError, match="different orientations"):
        read_series(tmp_path / "s")


def test_different_sizes_are_refused(tmp_path):
    paths = _slices(tmp_path)
    ds = pydicom.dcmread(paths[1])
    ds.Rows, ds.Columns = 5, 20
    ds.save_as(paths[1])
    with pytest.raises(InputFileError, match="different sizes"):
        read_series(tmp_path / "s")


def test_missing_slice_is_refused(tmp_path):
    paths = _slices(tmp_path)
    paths[3].unlink()
    with pytest.raises(InputFileError, match="uneven slice spacing"):
        read_series(tmp_path / "s")


def test_duplicate_positions_are_refused(tmp_path):
    paths = _slices(tmp_path)
    ds = pydicom.dcmread(paths[2])
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.save_as(tmp_path / "s" / "copy.dcm")
    with pytest.raises(InputFileError, match="same position"):
        read_series(tmp_path / "s")


def test_two_series_in_one_folder_are_refused_and_selectable(tmp_path):
    _slices(tmp_path, "s")
    image, _ = sphere_cube_case((12, 12, 12))
    write_series(image, np.eye(4), tmp_path / "s" / "other")
    with pytest.raises(InputFileError, match="holds 2 series"):
        read_series(tmp_path / "s")
    uid = pydicom.dcmread(next((tmp_path / "s" / "other").iterdir())).SeriesInstanceUID
    assert read_series(tmp_path / "s", series_uid=uid).array.shape == (1, 12, 12, 12)


def test_non_dicom_and_pixel_less_files(tmp_path):
    paths = _slices(tmp_path)
    (tmp_path / "s" / "notes.txt").write_text("not an image")
    assert read_series(tmp_path / "s").array.shape[-1] == len(paths)  # skipped, not fatal
    empty = tmp_path / "only-text"
    empty.mkdir()
    (empty / "a.txt").write_text("hello")
    with pytest.raises(InputFileError, match="no DICOM images"):
        read_series(empty)
    ds = pydicom.dcmread(paths[0])
    del ds.PixelData
    ds.save_as(tmp_path / "nopixels.dcm")
    with pytest.raises(InputFileError, match="no pixel data"):
        read_image(tmp_path / "nopixels.dcm")
    (tmp_path / "fake.dcm").write_bytes(b"\x00" * 200 + b"garbage")
    with pytest.raises(InputFileError):
        read_series(tmp_path / "fake.dcm")


# ---- windows ---------------------------------------------------------------------------------


def test_window_presets():
    assert set(WINDOW_PRESETS) >= {"brain", "lung", "bone", "soft_tissue", "liver", "mediastinum"}
    hu = np.array([-1000.0, 0.0, 40.0, 80.0, 3000.0])
    brain = apply_window(hu, "brain")  # level 40, width 80: 0..80 HU span black..white
    assert brain[0] == 0.0 and brain[-1] == 1.0 and 0.45 < brain[2] < 0.55
    lung = apply_window(hu, "lung")
    assert 0.0 < lung[0] < 0.5 and lung[-1] == 1.0
    assert get_window((40, 80)) == Window(40, 80) == get_window("Brain")
    with pytest.raises(ConfigError, match="unknown preset"):
        get_window("kidney-ish")


# ---- prediction on a series folder -----------------------------------------------------------


def test_classifier_predicts_a_dicom_series_folder(tmp_path):
    """``predict_file`` takes a series folder (read_image -> read_series) like any volume."""
    import meddx
    from meddx.decision.predictors import load_model
    from tests.conftest import write_npz

    npz = write_npz(tmp_path / "blobs3d.npz", spatial=(12, 12, 12), sizes=(32, 8, 8))
    bundle = meddx.train(npz, tmp_path / "bundle", epochs=1, amp="off", progress=False,
                         plan={"batch_size": 16})
    volume = np.load(npz)["test_images"][0].astype(np.float32)
    write_series(volume, np.diag([0.8, 0.8, 1.2, 1.0]), tmp_path / "series", modality="CT")
    predictor = load_model(bundle.path)
    result = predictor.predict_file(tmp_path / "series")
    expected = predictor.predict_proba([volume[None]])[0]
    assert result["decision"] in predictor.class_names
    np.testing.assert_allclose(list(result["probabilities"].values()), expected, atol=1e-5)
