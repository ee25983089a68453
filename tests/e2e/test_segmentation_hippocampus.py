"""A short segmentation run on the real MSD Task04 Hippocampus cases (needs MEDDX_DATA_DIR).

The point is the real files end to end (reader, plan, trainer, bundle, evaluation, prediction in
the input's grid), not accuracy: the model trains for a few steps on a handful of cases.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

import meddx
from meddx.data.loading import load_dataset
from meddx.data.segmentation import SegmentationDataset
from meddx.learn.tasks.segmentation import make_plan

pytestmark = pytest.mark.e2e
NAME = "msd-task04-hippocampus"


_CACHE: dict = {}


@pytest.fixture
def hippocampus(shared_data):
    # Read the 202 cases once per session (shared_data is function-scoped).
    if "data" not in _CACHE:
        _CACHE["data"] = load_dataset(NAME, shared_data)
    return _CACHE["data"]


def test_reader_and_plan_on_the_real_cases(hippocampus):
    data = hippocampus
    assert isinstance(data, SegmentationDataset)
    assert len(data.cases) == 202 and data.skipped == []
    assert data.class_names == ["background", "anterior", "posterior"]
    assert data.split_sizes(seed=0) == {"test": 40, "val": 16, "train": 146}
    assert all(case.label.max() <= 2 for case in data.cases)
    assert {case.image.dtype for case in data.cases} == {np.dtype("float32")}
    plan, prints = make_plan(data, data.split("train"))
    assert prints["spacing"]["median"] == [1.0, 1.0, 1.0]
    # nnU-Net's own plan for this task uses 40 x 56 x 40 patches.
    assert plan.patch_size == [40, 56, 40]


def test_short_training_evaluation_and_prediction(hippocampus, tmp_path):
    small = hippocampus.with_splits({"train": range(0, 8), "val": range(8, 10),
                                     "test": range(10, 12)}, name=NAME)
    bundle = meddx.train(small, tmp_path / "hippo", epochs=1, patience=0, progress=False,
                         amp="off", plan={"base_filters": 8, "batches_per_epoch": 3,
                                          "tta_flips": [[]]})
    meta = bundle.metadata
    assert meta["provenance"]["split_sizes"] == {"train": 8, "val": 2, "test": 2}
    test = meta["metrics"]["test"]
    assert set(test["dice"]) == {"anterior", "posterior", "mean"}
    assert test["n"] == 2 and len(test["cases"]) == 2

    case = small.cases[10]
    out = tmp_path / "pred"
    result = meddx.predict(tmp_path / "hippo", [case.source], out_dir=out, overlay=True)[0]
    source = nib.load(case.source)
    mask = nib.load(result["mask"])
    assert mask.shape == source.shape
    np.testing.assert_allclose(mask.affine, source.affine)
    assert set(result["labels"]) == {"anterior", "posterior"}
    assert (out / "hippocampus_023_overlay.png").exists() or result["overlay"]
