"""One bad case in a folder is reported and skipped, or stops the run when asked (API and CLI)."""

from __future__ import annotations

import nibabel as nib
import pytest

from meddx.data.loading import load_dataset
from meddx.errors import ConfigError, DataError, InputFileError
from tests.cli_helpers import assert_clear_error, meddx_cli
from tests.ecg_helpers import write_record
from tests.seg_synthetic import AFFINE, sphere_cube_case, write_msd


@pytest.fixture
def msd_with_bad_case(tmp_path):
    root = write_msd(tmp_path / "msd", n=2, with_json=False)
    image, label = sphere_cube_case(seed=3)
    nib.save(nib.Nifti1Image(image, AFFINE), str(root / "imagesTr/zz.nii.gz"))
    nib.save(nib.Nifti1Image(label[:, :-1], AFFINE), str(root / "labelsTr/zz.nii.gz"))
    return root


def test_segmentation_folder_skips_or_stops(msd_with_bad_case):
    data = load_dataset(msd_with_bad_case)
    assert len(data.cases) == 2
    assert [s["case"].split("/")[-1] for s in data.skipped] == ["zz.nii.gz"]
    with pytest.raises(InputFileError, match="zz.nii.gz.*differs from the image shape"):
        load_dataset(msd_with_bad_case, on_error="stop")


def test_wfdb_folder_skips_or_stops(tmp_path):
    for index in range(3):
        write_record(tmp_path, str(940 + index), seed=index, duration_s=20)
    (tmp_path / "941.dat").unlink()
    assert [r.name for r in load_dataset(tmp_path).records] == ["940", "942"]
    with pytest.raises(InputFileError, match="record 941: signal file not found"):
        load_dataset(tmp_path, on_error="stop")
    (tmp_path / "942.hea").unlink()
    with pytest.raises(DataError, match="record 942: header file"):
        load_dataset(tmp_path, on_error="stop")


def test_unknown_mode_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="on_error must be one of"):
        load_dataset(tmp_path, on_error="ignore")


def test_cli_stop_on_bad_case(msd_with_bad_case, tmp_path):
    result = meddx_cli("train", "--dataset", msd_with_bad_case, "--out", tmp_path / "bundle",
                       "--stop-on-bad-case", "--no-progress")
    assert_clear_error(result, "zz.nii.gz", "differs from the image shape")
    assert not (tmp_path / "bundle").exists()
