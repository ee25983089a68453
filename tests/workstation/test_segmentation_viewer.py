"""A segmentation bundle in the workstation: NIfTI upload, mask artifact, mask slices for the
viewer's overlay (scrolled with the image slices)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import meddx

seg_synthetic = pytest.importorskip("tests.seg_synthetic")
PLAN = {"patch_size": [16, 16, 16], "base_filters": 8, "batch_size": 4, "batches_per_epoch": 4,
        "augment": {"affine_prob": 0.0, "elastic_prob": 0.0}}


@pytest.fixture(scope="module")
def seg_bundle(tmp_path_factory):
    folder = tmp_path_factory.mktemp("seg")
    data = seg_synthetic.write_msd(folder / "spheres", n=8)
    meddx.train(str(data), folder / "bundle", plan=PLAN, epochs=2, lr=1e-2, patience=0,
                progress=False, amp="off")
    return folder / "bundle", data


def test_segmentation_study(tmp_path, seg_bundle):
    from tests.workstation.conftest import build_workstation, close_workstation

    bundle, data = seg_bundle
    station = build_workstation(tmp_path / "ws", bundle)
    try:
        case = sorted((data / "imagesTr").glob("*.nii.gz"))[0]
        study = station.upload(case.read_bytes(), name=case.name)
        assert study.status_code == 201, study.text
        body = study.json()
        assert body["kind"] == "volume"
        prediction = body["predictions"][0]
        assert "mask" in prediction["artifacts"]
        assert prediction["outputs"]["mask"] == "artifact:mask"
        assert set(prediction["outputs"]["labels"]) >= {"sphere", "cube"}
        slices = body["viewer"]["slices"]
        assert slices == 16
        reader = station.headers["researcher"]
        labels = set()
        for index in range(slices):
            answer = station.client.get(
                f"/api/predictions/{prediction['id']}/labels/mask/{index}.png", headers=reader)
            assert answer.status_code == 200
            plane = np.asarray(Image.open(io.BytesIO(answer.content)))
            assert plane.shape == (body["viewer"]["height"], body["viewer"]["width"])
            labels |= set(np.unique(plane).tolist())
        assert labels <= {0, 1, 2} and len(labels) > 1
        image = station.client.get(f"/api/studies/{body['id']}/image/{slices - 1}.png",
                                   headers=reader)
        assert image.status_code == 200
    finally:
        close_workstation(station)
