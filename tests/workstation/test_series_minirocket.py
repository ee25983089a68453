"""A MiniRocket series bundle in the workstation: an uploaded series gets its class, its
probabilities and an occlusion saliency (the viewer names the method it was given).

The bundle is trained on synthetic UCR series (a bump early = class "1", late = class "2") in
about a second.
"""

from __future__ import annotations

import pytest

import meddx
from meddx.data.ecg import read_ucr
from tests.ecg_helpers import write_ucr_folder
from tests.workstation.conftest import build_workstation, close_workstation

LENGTH = 64


@pytest.fixture(scope="module")
def bumps(tmp_path_factory):
    folder, test = write_ucr_folder(tmp_path_factory.mktemp("rocket-series"), 48, 16, LENGTH)
    bundle = folder.parent / "bundle"
    meddx.train(str(folder), bundle, plan={"model": "minirocket"}, epochs=1, amp="off",
                progress=False, num_threads=1)
    return bundle, test


@pytest.fixture
def station(tmp_path, bumps):
    workstation = build_workstation(tmp_path / "ws", bumps[0])
    yield workstation
    close_workstation(workstation)


def test_minirocket_bundle_predicts_and_explains_uploads(station, bumps):
    series, _ = read_ucr(bumps[1])
    row = (",".join(f"{v:.6g}" for v in series[0]) + "\n").encode()
    answer = station.upload(row, name="beat-0.csv", mrn="MRN-11")
    assert answer.status_code == 201, answer.text
    prediction = answer.json()["predictions"][0]
    outputs = prediction["outputs"]
    result = outputs["predictions"][0]
    assert prediction["decision"] == result["decision"] == "1"  # the first series: a bump early
    assert sum(result["probabilities"].values()) == pytest.approx(1, abs=1e-4)
    assert outputs["explanation_method"].startswith("occlusion")
    assert len(result["saliency"]) == LENGTH and max(result["saliency"]) == pytest.approx(1)
    # The bump of class "1" is near 30% of the series: the saliency peaks on it.
    assert abs(result["saliency"].index(1.0) - 0.3 * LENGTH) <= 10
    figure = station.client.get(f"/api/predictions/{prediction['id']}/explanation.png",
                                headers=station.headers["researcher"])
    assert figure.status_code == 200 and figure.content[:4] == b"\x89PNG"
