"""The feedback loop: reviewed cases -> `meddx feedback export` -> a dataset `meddx train` reads."""

from __future__ import annotations

import csv
import json

import numpy as np

import meddx
from tests.cli_helpers import meddx_cli
from tests.workstation.conftest import png_bytes


def test_export_then_train(workstation, blobs28, tmp_path, export_feedback):
    images = np.load(blobs28)
    headers = workstation.headers["clinician"]
    truth = {}
    for i in range(16):
        study = workstation.upload(png_bytes(images["train_images"][i]), name=f"case{i}.png",
                                   explain="false").json()
        label = str(int(images["train_labels"][i, 0]))
        prediction = study["predictions"][0]
        agrees = prediction["decision"] == label
        body = {"prediction_id": prediction["id"], "agrees": agrees,
                "corrected_label": None if agrees else label, "comment": f"case {i}"}
        answer = workstation.client.post(f"/api/studies/{study['id']}/feedback",
                                         headers=headers, json=body)
        assert answer.status_code == 201, answer.text
        truth[study["id"]] = label
    # A later review supersedes an earlier one.
    first = min(truth)
    flipped = "1" if truth[first] == "0" else "0"
    study = workstation.client.get(f"/api/studies/{first}", headers=headers).json()
    workstation.client.post(f"/api/studies/{first}/feedback", headers=headers, json={
        "prediction_id": study["predictions"][0]["id"],
        "agrees": study["predictions"][0]["decision"] == flipped,
        "corrected_label": None if study["predictions"][0]["decision"] == flipped else flipped})
    truth[first] = flipped

    out = tmp_path / "feedback-dataset"
    result = export_feedback(workstation, out, check=True)
    assert "16 cases" in result.stdout

    with (out / "manifest.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 16
    cases = json.loads((out / "cases.json").read_text())
    assert cases["class_names"] == ["0", "1"]
    for row, case in zip(rows, cases["cases"], strict=True):
        assert (out / row["path"]).is_file()
        assert row["label"] == truth[case["study_id"]] == case["label"]
        assert case["patient"].startswith("P-") and case["reviewer"] == "clinician1"
    assert "Grace" not in (out / "cases.json").read_text()

    dataset = meddx.load_dataset(out / "manifest.csv")
    assert dataset.class_names == ["0", "1"]
    bundle = meddx.train(out / "manifest.csv", tmp_path / "retrained", epochs=1, amp="off",
                         progress=False, plan={"batch_size": 8})
    assert bundle.metadata["provenance"]["split_sizes"]["train"] > 0

    corrected = export_feedback(workstation, tmp_path / "corrected", "--corrected-only")
    n_corrected = sum(not case["agrees"] for case in cases["cases"])
    if n_corrected:
        assert corrected.returncode == 0, corrected.stderr
        assert f"{n_corrected} cases ({n_corrected} corrected)" in corrected.stdout
    else:
        assert corrected.returncode == 2 and "no reviewed cases" in corrected.stderr


def test_export_without_reviews_is_a_clear_error(tmp_path):
    env = {"MEDDX_WORKSTATION_DIR": str(tmp_path / "empty"), "MEDDX_DATABASE_URL": None}
    result = meddx_cli("feedback", "export", "--out", tmp_path / "x", env=env)
    assert result.returncode == 2
    assert "no reviewed cases" in result.stderr and "Traceback" not in result.stderr
