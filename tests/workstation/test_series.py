"""Fixed-length ECG series in the workstation: upload, prediction + saliency, the series for the
viewer, bad files refused, feedback, and `meddx feedback export` -> a UCR dataset `meddx train`
reads (the retrained model keeps the class names).

A tiny series bundle is trained once per session on synthetic UCR series (a bump early = class
"1", late = class "2"; seconds on a CPU). The real ECG200 series go through the browser test.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import meddx
from meddx.data.ecg import read_ucr
from tests.ecg_helpers import write_ucr
from tests.workstation.conftest import build_workstation, close_workstation

LENGTH = 64


@pytest.fixture(scope="session")
def toy_series(tmp_path_factory):
    folder = tmp_path_factory.mktemp("series-data") / "Bumps"
    folder.mkdir()
    write_ucr(folder / "Bumps_TRAIN.txt", 48, length=LENGTH, seed=0)
    test = write_ucr(folder / "Bumps_TEST.txt", 16, length=LENGTH, seed=1)
    return folder, test


@pytest.fixture(scope="session")
def series_bundle(tmp_path_factory, toy_series):
    out = tmp_path_factory.mktemp("series-bundle") / "bumps"
    meddx.train(str(toy_series[0]), out, epochs=2, amp="off", progress=False, num_threads=1,
                plan={"arch": "resnet", "network_options": {"widths": [8, 8, 8]}})
    return out


@pytest.fixture
def station(tmp_path, series_bundle):
    workstation = build_workstation(tmp_path / "ws", series_bundle)
    yield workstation
    close_workstation(workstation)


def _row(values) -> bytes:
    return (",".join(f"{v:.6g}" for v in values) + "\n").encode()


def test_series_model_takes_series_files(station, toy_series):
    series, labels = read_ucr(toy_series[1])
    info = station.client.get("/api/info", headers=station.headers["clinician"]).json()
    assert {".csv", ".tsv", ".txt"} <= set(info["accepted"])

    answer = station.upload(_row(series[0]), name="beat-0.csv", mrn="MRN-7")
    assert answer.status_code == 201, answer.text
    study = answer.json()
    assert study["kind"] == "series"
    prediction = study["predictions"][0]
    result = prediction["outputs"]["predictions"][0]
    assert prediction["decision"] == result["decision"] in ("1", "2")
    assert prediction["probability"] == pytest.approx(result["probabilities"][result["decision"]])
    assert 0 <= prediction["uncertainty"] <= 1
    assert sum(result["probabilities"].values()) == pytest.approx(1, abs=1e-4)
    assert len(result["saliency"]) == LENGTH and max(result["saliency"]) == pytest.approx(1)
    assert prediction["outputs"]["layout"] == "row" and "explanation" in prediction["artifacts"]
    figure = station.client.get(f"/api/predictions/{prediction['id']}/explanation.png",
                                headers=station.headers["researcher"])
    assert figure.status_code == 200 and figure.content[:4] == b"\x89PNG"

    # The viewer's series: the uploaded values, read the way the model read them.
    shown = station.client.get(f"/api/studies/{study['id']}/signal",
                               headers=station.headers["researcher"]).json()
    assert shown["kind"] == "series" and shown["length"] == LENGTH
    np.testing.assert_allclose(shown["samples"], series[0], rtol=1e-4, atol=1e-5)

    # A column of numbers (.txt), a tab-separated row (.tsv) and a UCR line with its label.
    column = station.upload("\n".join(f"{v:.6g}" for v in series[1]).encode(), name="b1.txt")
    tabbed = station.upload(("\t".join(f"{v:.6g}" for v in series[1]) + "\n").encode(),
                            name="b1.tsv")
    labelled = station.upload(_row([labels[1], *series[1]]), name="b1-ucr.csv")
    results = [a.json()["predictions"][0]["outputs"] for a in (column, tabbed, labelled)]
    assert [r["layout"] for r in results] == ["column", "row", "ucr"]
    probabilities = {json.dumps(r["predictions"][0]["probabilities"]) for r in results}
    assert len(probabilities) == 1  # the same series, however it is laid out
    assert results[2]["predictions"][0]["reference"] == str(int(labels[1]))

    worklist = station.client.get("/api/studies?kind=series",
                                  headers=station.headers["clinician"]).json()
    assert len(worklist) == 4


BAD_SERIES = {
    "short.csv": (_row(np.zeros(50) + np.arange(50)), "line 1: 50 values; this model classifies "
                  f"series of {LENGTH} values"),
    "long-column.txt": ("\n".join(str(i) for i in range(200)).encode(),
                        f"200 values in one column; this model classifies series of {LENGTH}"),
    "words.csv": (b"0.1,0.2,abc\n", "line 1: non-numeric value 'abc' (value 3)"),
    "gap.csv": (_row(range(LENGTH)).replace(b",5,", b",,"), "line 1: empty cell (value 6)"),
    "nan.csv": (_row([*range(LENGTH - 1), float("nan")]), "line 1: value is not a finite number"),
    "blank.txt": (b"\n  \n\n", "no values in the file"),
    "empty.csv": (b"", "the file is empty"),
    "two.csv": (_row(range(LENGTH)) * 2, "holds 2 series; give at most 1 per file"),
    "ragged.txt": (_row(range(LENGTH)) + _row(range(LENGTH + 1)),
                   f"line 2: {LENGTH + 1} values, but line 1 has {LENGTH}"),
    "binary.csv": (b"\x00\x01\x02", "binary data"),
}


def test_bad_series_are_refused_and_nothing_is_stored(station):
    for name, (content, problem) in BAD_SERIES.items():
        answer = station.upload(content, name=name, mrn="MRN-BAD")
        assert answer.status_code in (400, 422), (name, answer.status_code, answer.text)
        detail = answer.json()["detail"]
        assert detail.startswith(f"{name}: ") and problem in detail, (name, detail)
    headers = station.headers["clinician"]
    assert station.client.get("/api/studies", headers=headers).json() == []
    studies_dir = station.settings.storage_dir / "studies"
    assert not studies_dir.exists() or not any(studies_dir.iterdir())


def test_series_signal_route_roles(station, toy_series):
    series, _ = read_ucr(toy_series[1])
    study = station.upload(_row(series[2]), name="beat.csv", explain="false").json()
    path = f"/api/studies/{study['id']}/signal"
    assert station.client.get(path).status_code == 401
    for role in ("clinician", "researcher", "admin"):
        answer = station.client.get(path, headers=station.headers[role])
        assert answer.status_code == 200 and len(answer.json()["samples"]) == LENGTH, role
    # Without explanations the prediction has no saliency; the series is still shown.
    assert "saliency" not in study["predictions"][0]["outputs"]["predictions"][0]


def test_series_feedback_export_trains_directly(station, toy_series, series_bundle, tmp_path,
                                                export_feedback):
    series, labels = read_ucr(toy_series[1])
    headers = station.headers["clinician"]
    truth = {}
    for i in range(len(series)):
        study = station.upload(_row(series[i]), name=f"beat-{i}.csv", explain="false").json()
        label = str(int(labels[i]))
        prediction = study["predictions"][0]
        agrees = prediction["decision"] == label
        answer = station.client.post(f"/api/studies/{study['id']}/feedback", headers=headers,
                                     json={"prediction_id": prediction["id"], "agrees": agrees,
                                           "corrected_label": None if agrees else label})
        assert answer.status_code == 201, answer.text
        truth[study["id"]] = (label, series[i])

    out = tmp_path / "series-feedback"
    result = export_feedback(station, out, check=True)
    printed = " ".join(result.stdout.split())  # the console wraps long lines
    assert f"{len(series)} cases" in printed and f"{out} (ucr)" in printed
    assert "the label value of the clinician's finding" in printed

    exported, values = read_ucr(out / "series_TRAIN.txt")
    cases = json.loads((out / "cases.json").read_text())
    assert cases["format"] == "ucr" and cases["skipped"] == []
    assert json.loads((out / "classes.json").read_text()) == {
        "class_names": ["1", "2"], "label_values": [1.0, 2.0]}
    for case in cases["cases"]:
        label, original = truth[case["study_id"]]
        row = case["line"] - 1
        assert case["label"] == label and values[row] == float(label)
        np.testing.assert_allclose(exported[row], original, rtol=1e-5, atol=1e-6)

    dataset = meddx.load_dataset(out)
    assert dataset.class_names == ["1", "2"] and dataset.length == LENGTH
    bundle = meddx.train(out, tmp_path / "retrained", epochs=1, amp="off", progress=False,
                         num_threads=1, plan={"arch": "resnet",
                                              "network_options": {"widths": [8, 8, 8]}})
    assert bundle.metadata["task"] == "ecg-series-classification"
    assert bundle.metadata["plan"]["class_names"] == ["1", "2"]
    assert bundle.metadata["provenance"]["split_sizes"]["train"] > 0
    # The retrained bundle takes the same uploads.
    again = meddx.predict(tmp_path / "retrained", [toy_series[1]])[0]
    assert again["series"] == len(series)
