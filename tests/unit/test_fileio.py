"""Atomic writes and figures: whole files or none, readable like any new file, no pyplot."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from meddx.figures import new_figure, save_figure
from meddx.fileio import staged_folder, write_atomically, write_json


def test_write_atomically_keeps_the_suffix_for_writers_that_read_it(tmp_path):
    import nibabel as nib

    target = tmp_path / "out" / "mask.nii.gz"
    seen = []

    def write(tmp):
        seen.append(tmp)
        nib.save(nib.Nifti1Image(np.ones((2, 2, 2), np.uint8), np.eye(4)), str(tmp))

    assert write_atomically(target, write) == target
    assert seen[0].name.endswith("-mask.nii.gz") and seen[0].name.startswith(".tmp-")
    assert nib.load(str(target)).get_fdata().sum() == 8
    assert [p.name for p in target.parent.iterdir()] == ["mask.nii.gz"]


def test_a_failed_write_leaves_what_was_there_and_no_temporary(tmp_path):
    target = write_json({"version": 1}, tmp_path / "result.json")

    def half_write(tmp):
        tmp.write_text('{"version": 2, "trunc')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(target, half_write)
    assert json.loads(target.read_text()) == {"version": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_write_json_refuses_nan_unless_given_a_default(tmp_path):
    with pytest.raises(ValueError):
        write_json({"auc": float("nan")}, tmp_path / "a.json")
    assert not (tmp_path / "a.json").exists()
    write_json({"auc": float("nan")}, tmp_path / "b.json", default=str)
    assert "NaN" in (tmp_path / "b.json").read_text()


def test_saved_figures_are_readable_like_any_new_file(tmp_path):
    # mkstemp's 0600 once made the ECG strip plots unreadable to a web server of another user.
    previous = os.umask(0o022)
    try:
        figure = new_figure(3, 2)
        figure.add_subplot().plot([0, 1], [1, 0])
        path = save_figure(figure, tmp_path / "plot.png")
    finally:
        os.umask(previous)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_mode & 0o777 == 0o644


def test_staged_folder_replaces_the_old_folder_only_on_success(tmp_path):
    out = tmp_path / "bundle"
    with staged_folder(out) as staging:
        (staging / "weights.pt").write_text("first")
    with pytest.raises(RuntimeError), staged_folder(out) as staging:
        (staging / "weights.pt").write_text("second, half")
        raise RuntimeError("training crashed")
    assert (out / "weights.pt").read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]


def test_importing_the_plotting_modules_leaves_the_users_backend_alone():
    # A notebook's backend once became Agg on importing meddx.decision.explain.
    code = ("import matplotlib; matplotlib.use('svg'); "
            "import meddx.decision.ecg_predict, meddx.decision.explain, "
            "meddx.learn.evaluation.report, meddx.learn.evaluation.segmentation_report; "
            "print(matplotlib.get_backend())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "svg"


def test_a_truncated_nifti_leaves_no_scrubbed_half_file(tmp_path):
    import nibabel as nib

    from meddx.data.metadata_scrub import scrub_nifti
    from meddx.errors import InputFileError

    source = tmp_path / "scan.nii"
    nib.save(nib.Nifti1Image(np.ones((8, 8, 8), np.float32), np.eye(4)), str(source))
    source.write_bytes(source.read_bytes()[:-100])  # the data block cut short
    target = tmp_path / "out" / "scan.nii"
    with pytest.raises(InputFileError, match="truncated"):
        scrub_nifti(source, target)
    assert list(target.parent.iterdir()) == []
    whole = tmp_path / "whole.nii.gz"
    nib.save(nib.Nifti1Image(np.arange(512, dtype=np.float32).reshape(8, 8, 8), np.eye(4)),
             str(whole))
    scrub_nifti(whole, tmp_path / "out" / "whole.nii.gz")
    assert nib.load(str(tmp_path / "out" / "whole.nii.gz")).get_fdata().sum() == sum(range(512))
