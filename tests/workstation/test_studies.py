"""Studies through the API: formats, viewer images, heat maps, worklist sorts and filters."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from tests.workstation.conftest import png_bytes


def test_upload_view_and_explanations(workstation, case_png):
    study = workstation.upload(case_png, description="follow-up").json()
    assert study["status"] == "predicted" and study["kind"] == "image"
    prediction = study["predictions"][0]
    assert set(prediction["outputs"]["probabilities"]) == {"0", "1"}
    assert prediction["decision"] in {"0", "1"} and 0 <= prediction["uncertainty"] <= 1
    assert prediction["has_heat_map"] and prediction["has_explanation_figure"]
    assert "/" not in str(prediction["outputs"]), "no server paths reach the browser"
    assert study["viewer"]["slices"] == 1 and study["viewer"]["width"] == 28
    reader = workstation.headers["researcher"]
    image = workstation.client.get(f"/api/studies/{study['id']}/image/0.png", headers=reader)
    assert Image.open(io.BytesIO(image.content)).size == (28, 28)
    assert workstation.client.get(f"/api/studies/{study['id']}/image/1.png",
                                  headers=reader).status_code == 404
    heat = workstation.client.get(f"/api/predictions/{prediction['id']}/heatmap/0.png",
                                  headers=reader)
    relevance = np.asarray(Image.open(io.BytesIO(heat.content)))
    assert relevance.shape == (28, 28) and relevance.max() == 255, "normalised relevance"
    figure = workstation.client.get(f"/api/predictions/{prediction['id']}/explanation.png",
                                    headers=reader)
    assert Image.open(io.BytesIO(figure.content)).size[0] > 100

    again = workstation.client.post(f"/api/studies/{study['id']}/predictions",
                                    headers=workstation.headers["clinician"])
    assert again.status_code == 201
    assert again.json()["outputs"]["probabilities"] == prediction["outputs"]["probabilities"]
    detail = workstation.client.get(f"/api/studies/{study['id']}", headers=reader).json()
    assert len(detail["predictions"]) == 2


def test_dicom_and_nifti_uploads(workstation, shared_data, tmp_path):
    dicom = (shared_data / "dicom-samples" / "CT_small.dcm").read_bytes()
    study = workstation.upload(dicom, name="CT_small.dcm").json()
    assert study["predictions"][0]["decision"] in {"0", "1"}
    assert study["viewer"]["min"] < 0, "CT values stay in Hounsfield units for window/level"

    import nibabel as nib

    volume = np.random.default_rng(0).normal(size=(20, 20, 6)).astype(np.float32)
    path = tmp_path / "volume.nii.gz"
    nib.save(nib.Nifti1Image(volume, np.eye(4)), path)
    answer = workstation.upload(path.read_bytes(), name="volume.nii.gz")
    assert answer.status_code == 422, "a 3D volume for a 2D model is refused"
    assert "volume.nii.gz" in answer.json()["detail"]


def test_worklist_sorts_and_filters(workstation, blobs28):
    images = np.load(blobs28)["test_images"]
    ids = [workstation.upload(png_bytes(images[i]), name=f"c{i}.png", explain="false",
                              description=f"case {i}").json()["id"] for i in range(4)]
    reader = workstation.headers["researcher"]

    def listed(**params):
        answer = workstation.client.get("/api/studies", headers=reader, params=params)
        assert answer.status_code == 200, answer.text
        return answer.json()

    assert [s["id"] for s in listed()] == ids[::-1], "newest first"
    assert [s["id"] for s in listed(sort="oldest")] == ids
    by_uncertainty = listed(sort="uncertainty")
    values = [s["latest_uncertainty"] for s in by_uncertainty]
    assert values == sorted(values, reverse=True)

    target = workstation.client.get(f"/api/studies/{ids[1]}", headers=reader).json()
    prediction = target["predictions"][0]
    other = "1" if prediction["decision"] == "0" else "0"
    workstation.client.post(f"/api/studies/{ids[1]}/feedback",
                            headers=workstation.headers["clinician"],
                            json={"prediction_id": prediction["id"], "agrees": False,
                                  "corrected_label": other})
    assert listed(sort="disagreement")[0]["id"] == ids[1]
    assert [s["id"] for s in listed(status="reviewed")] == [ids[1]]
    assert {s["id"] for s in listed(status="predicted")} == set(ids) - {ids[1]}
    assert [s["id"] for s in listed(q="case 2")] == [ids[2]]
    decided = prediction["decision"]
    assert all(s["latest_decision"] == decided for s in listed(decision=decided))
    assert workstation.client.get("/api/studies", headers=reader,
                                  params={"sort": "random"}).status_code == 422


def test_models_page_data(workstation):
    reader = workstation.headers["researcher"]
    models = workstation.client.get("/api/models", headers=reader).json()
    assert len(models) == 1 and models[0]["active"]
    detail = workstation.client.get(f"/api/models/{models[0]['id']}", headers=reader).json()
    assert "Intended use" in detail["model_card"]
    assert {"roc.png", "confusion_matrix.png", "reliability.png"} <= set(detail["report_files"])
    assert detail["metrics"]["test"]["auc"] >= 0
    plot = workstation.client.get(f"/api/models/{models[0]['id']}/report/roc.png",
                                  headers=reader)
    assert plot.headers["content-type"] == "image/png"
    for name in ("..%2Fmeddx-bundle.json", "weights.pt", "report.html"):
        assert workstation.client.get(f"/api/models/{models[0]['id']}/report/{name}",
                                      headers=reader).status_code == 404
    info = workstation.client.get("/api/info", headers=reader).json()
    assert ".png" in info["accepted"] and info["max_upload_mb"] == 1.0
