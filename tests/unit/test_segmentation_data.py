"""Segmentation dataset readers: MSD folders, manifests, 2D pairs, DICOM series, bad cases."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from PIL import Image as PILImage

from meddx.data.loading import load_dataset
from meddx.data.segmentation import (
    SegmentationDataset,
    can_read,
    load_segmentation_dataset,
    read_volume,
)
from meddx.errors import InputFileError
from tests.seg_synthetic import AFFINE, sphere_cube_case, write_msd


def test_msd_folder_with_dataset_json(tmp_path):
    root = write_msd(tmp_path / "msd", n=6)
    data = load_dataset(root)
    assert isinstance(data, SegmentationDataset)
    assert data.class_names == ["background", "sphere", "cube"]
    assert data.modality == "MRI" and data.spatial_dims == 3 and data.in_channels == 1
    assert len(data.cases) == 6 and data.skipped == []
    case = data.cases[0]
    assert case.image.shape == (1, 20, 20, 16) and case.label.dtype == np.uint8
    np.testing.assert_allclose(case.affine, AFFINE)
    assert case.spacing == pytest.approx((1.0, 1.2, 1.5))  # column norms of the affine
    sizes = data.split_sizes(seed=0)
    assert sum(sizes.values()) == 6 and all(sizes.values())
    # Same seed, same split; splits do not overlap.
    train, test = data.split("train").sources, data.split("test").sources
    assert not set(train) & set(test) and data.split("train").sources == train
    assert len(data.provenance["files"]) == 12


def test_msd_folder_without_dataset_json_infers_everything(tmp_path):
    root = write_msd(tmp_path / "msd", n=4, with_json=False)
    data = load_segmentation_dataset(root)
    assert data.class_names == ["background", "1", "2"] and data.names_inferred
    data.adopt_class_names(["background", "sphere", "cube"])
    assert data.class_names == ["background", "sphere", "cube"]


def test_image_and_label_dtypes_may_differ(tmp_path):
    root = write_msd(tmp_path / "msd", n=3, with_json=False)
    image, label = sphere_cube_case(seed=7)
    nib.save(nib.Nifti1Image(image.astype(np.uint8), AFFINE), str(root / "imagesTr/u.nii.gz"))
    nib.save(nib.Nifti1Image(label.astype(np.float32), AFFINE), str(root / "labelsTr/u.nii.gz"))
    data = load_segmentation_dataset(root)
    assert len(data.cases) == 4 and not data.skipped


def _bad_cases(root):
    image, label = sphere_cube_case(seed=9)
    save = lambda array, path, affine=AFFINE: nib.save(nib.Nifti1Image(array, affine),  # noqa: E731
                                                      str(root / path))
    save(image, "imagesTr/shape.nii.gz")
    save(label[:-2], "labelsTr/shape.nii.gz")
    save(image, "imagesTr/affine.nii.gz")
    shifted = AFFINE.copy()
    shifted[0, 3] += 5
    save(label, "labelsTr/affine.nii.gz", shifted)
    save(image, "imagesTr/nolabel.nii.gz")
    save(image, "imagesTr/outside.nii.gz")
    save(np.where(label == 2, 7, label).astype(np.uint8), "labelsTr/outside.nii.gz")
    save(np.stack([image, image], -1), "imagesTr/fourd.nii.gz")
    save(label, "labelsTr/fourd.nii.gz")
    nan = image.copy()
    nan[3, 3, 3] = np.nan
    save(nan, "imagesTr/nan.nii.gz")
    save(label, "labelsTr/nan.nii.gz")
    save(np.zeros_like(image), "imagesTr/empty.nii.gz")
    save(label, "labelsTr/empty.nii.gz")


def test_bad_cases_are_reported_and_skipped(tmp_path, caplog):
    root = write_msd(tmp_path / "msd", n=3)
    meta = json.loads((root / "dataset.json").read_text())
    del meta["training"]  # pair by file name, so the bad files below are found
    (root / "dataset.json").write_text(json.dumps(meta))
    _bad_cases(root)
    data = load_segmentation_dataset(root)
    assert len(data.cases) == 3
    problems = {s["case"].split("/")[-1]: s["problem"] for s in data.skipped}
    assert set(problems) == {"shape.nii.gz", "affine.nii.gz", "nolabel.nii.gz",
                             "outside.nii.gz", "fourd.nii.gz", "nan.nii.gz", "empty.nii.gz"}
    assert "differs from the image shape" in problems["shape.nii.gz"]
    assert "affine differs" in problems["affine.nii.gz"]
    assert "missing label file" in problems["nolabel.nii.gz"]
    assert "outside the 3 classes" in problems["outside.nii.gz"]
    assert "channel" in problems["fourd.nii.gz"]
    assert "NaN" in problems["nan.nii.gz"]
    assert "empty volume" in problems["empty.nii.gz"]
    assert data.provenance["skipped_cases"] == data.skipped
    assert "skipping bad case" in caplog.text


def test_bad_case_stops_the_run_on_request(tmp_path):
    root = write_msd(tmp_path / "msd", n=2, with_json=False)
    image, label = sphere_cube_case(seed=3)
    nib.save(nib.Nifti1Image(image, AFFINE), str(root / "imagesTr/zz.nii.gz"))
    nib.save(nib.Nifti1Image(label[:, :-1], AFFINE), str(root / "labelsTr/zz.nii.gz"))
    with pytest.raises(InputFileError, match="zz.nii.gz.*differs from the image shape"):
        load_segmentation_dataset(root, on_error="stop")


def test_csv_manifest_of_nifti_files(tmp_path):
    root = write_msd(tmp_path / "msd", n=3, with_json=False)
    manifest = tmp_path / "msd" / "cases.csv"
    rows = [f"imagesTr/case_{i:03d}.nii.gz,labelsTr/case_{i:03d}.nii.gz" for i in range(3)]
    manifest.write_text("image,label\n" + "\n".join(rows) + "\n")
    assert can_read(manifest)
    data = load_dataset(manifest)
    assert isinstance(data, SegmentationDataset) and len(data.cases) == 3
    assert data.provenance["kind"] == "manifest"
    assert data.provenance["source"] == str(root / "cases.csv")


def test_png_image_mask_pairs_with_0_255_masks(tmp_path):
    root = tmp_path / "pairs"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        mask = np.zeros((32, 32), np.uint8)
        mask[8 + i:20 + i, 6:18] = 255
        image = (rng.normal(80, 10, (32, 32)) + (mask > 0) * 90).clip(0, 255).astype(np.uint8)
        PILImage.fromarray(image).save(root / "images" / f"img{i}.png")
        PILImage.fromarray(mask).save(root / "masks" / f"img{i}.png")
    assert can_read(root)
    data = load_dataset(root)
    assert data.spatial_dims == 2 and data.class_names == ["background", "1"]
    assert data.cases[0].label.max() == 1 and data.cases[0].image.shape == (1, 32, 32)


def _write_dicom_series(folder, volume, spacing_rc=(0.8, 0.7), thickness=2.5,
                        origin=(-10.0, 20.0, 5.0)):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True)
    series = generate_uid()
    order = [2, 0, 3, 1][: volume.shape[0]] if volume.shape[0] == 4 else range(volume.shape[0])
    for k in order:  # files not in slice order: the reader must sort by position
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.SeriesInstanceUID, ds.Modality = series, "CT"
        ds.Rows, ds.Columns = volume.shape[1:]
        ds.PixelSpacing = list(spacing_rc)
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [origin[0], origin[1], origin[2] + k * thickness]
        ds.SliceThickness = thickness
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1000
        ds.PixelData = volume[k].astype(np.int16).tobytes()
        ds.save_as(folder / f"slice_{k}.dcm", enforce_file_format=True)


def test_dicom_series_volume_and_affine(tmp_path):
    volume = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)  # (slices, rows, cols)
    _write_dicom_series(tmp_path / "series", volume)
    image = read_volume(tmp_path / "series")
    assert image.array.shape == (1, 6, 5, 4)  # (columns, rows, slices)
    assert image.array[0, 2, 3, 1] == volume[1, 3, 2] - 1000
    expected = np.array([[-0.7, 0, 0, 10.0], [0, -0.8, 0, -20.0], [0, 0, 2.5, 5.0],
                         [0, 0, 0, 1]])
    np.testing.assert_allclose(image.affine, expected, atol=1e-6)
    assert image.spacing == pytest.approx((0.7, 0.8, 2.5))


def test_not_a_segmentation_folder(tmp_path):
    (tmp_path / "x").mkdir()
    assert not can_read(tmp_path / "x")
    with pytest.raises(InputFileError, match="not a segmentation dataset"):
        load_segmentation_dataset(tmp_path / "x")
