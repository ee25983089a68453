"""Clinical records in the feedback loop, and which model a re-run picks.

* `meddx feedback export` of reviewed clinical-record studies writes ``records.csv`` (the model's
  feature columns + its target column coded as its schema reads it) and the model's schema
  beside it, so `meddx train` retrains on the clinicians' labels directly. A review labels the
  record its finding is of (the first one of the uploaded table): the other records of a
  multi-record study are counted, never given its label.
* Re-running a model on a study without naming one picks a model of the study's kind: a series
  model and a clinical-record model both take ``.csv``.
"""

from __future__ import annotations

import csv
import json

import pytest

import meddx
from meddx.data.ecg import read_ucr
from meddx.data.tabular import TabularSchema, load_tabular_dataset, parse_frame, target_cell
from meddx.errors import ConfigError
from meddx.learn.pipeline import train_model
from meddx.workstation.db.models import ModelVersion
from meddx.workstation.db.session import transaction
from meddx.workstation.services.feedback import export_dataset
from tests.unit.test_tabular_task import FAST, PLAN, synthetic_records
from tests.workstation.conftest import build_workstation, close_workstation
from tests.workstation.test_series import _row, series_bundle, toy_series  # noqa: F401

FEATURES = ["age", "glucose", "smoker", "cp"]


@pytest.fixture(scope="module")
def record_bundle(tmp_path_factory):
    folder = tmp_path_factory.mktemp("records")
    data = load_tabular_dataset(synthetic_records(folder / "records.csv"))
    return train_model(data, folder / "bundle", config=FAST, plan=PLAN, progress=False).path


def _new_records(path, n, seed):
    """Rows of new patients as {column: cell} (the synthetic outcome is the truth)."""
    with synthetic_records(path, n=n, seed=seed).open(newline="") as fh:
        return list(csv.DictReader(fh))


def _table(records, with_name=True) -> bytes:
    """An upload as a hospital exports it: an identifying column first, columns reordered."""
    columns = (["patient_name"] if with_name else []) + ["cp", "smoker", "glucose", "age"]
    lines = [",".join(columns)]
    for i, record in enumerate(records):
        cells = {**record, "patient_name": f"Jane Doe {i}"}
        lines.append(",".join(cells[c] for c in columns))
    return ("\n".join(lines) + "\n").encode()


def test_record_feedback_export_trains_directly(record_bundle, tmp_path, export_feedback):
    records = _new_records(tmp_path / "visits.csv", 22, seed=7)
    singles, table = records[:19], records[19:]
    assert {r["outcome"] for r in singles} == {"0", "1"}
    station = build_workstation(tmp_path / "ws", record_bundle)
    try:
        truth = {}
        for i, record in enumerate(singles):
            answer = station.upload(_table([record]), name=f"visit-{i}.csv", explain="false")
            assert answer.status_code == 201, answer.text
            study = answer.json()
            assert study["kind"] == "record"
            station.review(study, record["outcome"])
            truth[study["id"]] = record
        # One upload of three records: its finding (and so its review) is the first record's.
        study = station.upload(_table(table), name="clinic-day.csv", explain="false").json()
        assert len(study["predictions"][0]["outputs"]["predictions"]) == 3
        station.review(study, table[0]["outcome"])
        truth[study["id"]] = table[0]
        multi = study["id"]
        out = tmp_path / "record-feedback"
        result = export_feedback(station, out)
    finally:
        close_workstation(station)
    assert result.returncode == 0, result.stdout + result.stderr
    printed = " ".join(result.stdout.split())
    assert "20 cases" in printed and "(record-table)" in printed
    assert "note: 2 further record(s) of multi-record studies were not exported" in printed
    assert "outcome=1 is '1'" in printed

    with (out / "records.csv").open(newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    # The model's columns in its order, then its target: the identifying column stays behind.
    assert reader.fieldnames == [*FEATURES, "outcome"]
    assert "Jane Doe" not in (out / "records.csv").read_text()
    cases = json.loads((out / "cases.json").read_text())
    assert cases["n"] == len(rows) == 20 and cases["format"] == "record-table"
    for case in cases["cases"]:
        record = truth[case["study_id"]]
        row = rows[case["row"] - 1]
        assert row == {c: record[c] for c in [*FEATURES, "outcome"]}, "cells as uploaded"
        assert case["label"] == case["target"] == record["outcome"]
        assert case["line"] == 2 and case["patient"].startswith("P-")
        expected = (3, 2) if case["study_id"] == multi else (1, 0)
        assert (case["records_in_study"], case["records_not_exported"]) == expected
    assert cases["notes"] and "first record" in cases["notes"][0]
    schema = json.loads((out / "records.csv.schema.json").read_text())
    assert schema["target"] == "outcome" and [c["name"] for c in schema["columns"]] == FEATURES

    dataset = meddx.load_dataset(out / "records.csv")
    bundle = meddx.load_bundle(record_bundle)
    assert dataset.class_names == bundle.metadata["class_names"] == ["0", "1"]
    assert dataset.schema.columns == TabularSchema.from_dict(bundle.metadata["schema"]).columns
    assert sorted(dataset.split("all").labels.tolist()) == sorted(
        int(r["outcome"]) for r in truth.values())
    retrained = meddx.train(out / "records.csv", tmp_path / "retrained", epochs=2, amp="off",
                            progress=False, plan={"max_rounds": 20, "background_size": 4})
    assert retrained.metadata["task"] == "tabular-classification"
    assert retrained.metadata["class_names"] == ["0", "1"]
    assert retrained.metadata["provenance"]["split_sizes"]["train"] > 0


@pytest.mark.parametrize("rule", ["num > 0", "num >= 2", "num < 1.5", "num == 3", "num != 3"])
def test_target_cell_reads_back_as_its_class(rule):
    schema = TabularSchema(columns=[], target="num", class_names=["negative", "positive"],
                           binarise=rule)
    cells = [target_cell(schema, k) for k in (0, 1)]
    _, labels, _ = parse_frame(["num"], [[c] for c in cells], schema, "t.csv")
    assert labels.tolist() == [0, 1]


def test_target_cell_of_class_values():
    schema = TabularSchema(columns=[], target="dx", class_names=["healthy", "sick"],
                           class_values=[["no"], ["yes", "y"]])
    assert [target_cell(schema, k) for k in (0, 1)] == ["no", "yes"]
    with pytest.raises(ConfigError, match="class 2"):
        target_cell(schema, 2)


def test_rerun_picks_a_model_of_the_study_kind(record_bundle, series_bundle,  # noqa: F811
                                               toy_series, tmp_path):  # noqa: F811
    station = build_workstation(tmp_path / "ws", record_bundle,
                                bundles=(record_bundle, series_bundle))
    clinician = station.headers["clinician"]
    try:
        models = {m["task"]: m for m in station.client.get("/api/models",
                                                           headers=clinician).json()}
        tabular, series = models["tabular-classification"], models["ecg-series-classification"]
        # Both take .csv: the upload names its model, the re-run must find it again.
        record = _new_records(tmp_path / "one.csv", 1, seed=3)
        study_r = station.upload(_table(record, with_name=False), name="visit.csv",
                                 explain="false", model_id=str(tabular["id"])).json()
        values, _ = read_ucr(toy_series[1])
        study_s = station.upload(_row(values[0]), name="beat.csv", explain="false",
                                 model_id=str(series["id"])).json()
        assert (study_r["kind"], study_s["kind"]) == ("record", "series")
        # Without a model named, the newest model taking .csv could misread the file: refused,
        # with the models to choose from, and nothing stored.
        before = len(station.client.get("/api/studies", headers=clinician).json())
        unnamed = station.upload(_row(values[0]), name="beat.csv", explain="false")
        assert unnamed.status_code == 409, unnamed.text
        assert "choose one" in unnamed.json()["detail"]
        assert all(f"{m['id']}: " in unnamed.json()["detail"] for m in (tabular, series))
        after = len(station.client.get("/api/studies", headers=clinician).json())
        assert after == before
        for study, model in ((study_r, tabular), (study_s, series)):
            again = station.client.post(f"/api/studies/{study['id']}/predictions",
                                        headers=clinician)
            assert again.status_code == 201, again.text
            assert again.json()["model"]["id"] == model["id"]

        # A model of another kind, asked for by id: refused with the reason.
        wrong = station.client.post(f"/api/studies/{study_r['id']}/predictions",
                                    headers=clinician, params={"model_id": series["id"]})
        assert wrong.status_code == 409
        assert "makes series studies" in wrong.json()["detail"]
        assert "record study" in wrong.json()["detail"]
        unknown = station.client.post(f"/api/studies/{study_r['id']}/predictions",
                                      headers=clinician, params={"model_id": 999})
        assert unknown.status_code == 404 and "no model 999" in unknown.json()["detail"]

        # The record model retired: the series model (newest, takes .csv) is not a substitute.
        with transaction(station.client.app.state.sessions) as session:
            session.get(ModelVersion, tabular["id"]).active = False
        none = station.client.post(f"/api/studies/{study_r['id']}/predictions",
                                   headers=clinician)
        assert none.status_code == 409, none.text
        assert "no active model makes record studies" in none.json()["detail"]
        detail = station.client.get(f"/api/studies/{study_r['id']}", headers=clinician).json()
        assert len(detail["predictions"]) == 2, "the refused re-run stored nothing"
    finally:
        close_workstation(station)


def test_heart_disease_export_keeps_the_model_schema(shared_data, tmp_path):
    """Real records (UCI heart disease, VA): headerless rows with the target graded 0-4, a
    binarised target (``num > 0``) and coded categories (cp, thal) the file alone cannot tell
    from numbers: the export reads back with the model's schema and classes."""
    folder = shared_data / "uci-heart-disease-va-switzerland"
    if not folder.is_dir():
        pytest.skip(f"{folder} is missing")
    bundle = meddx.train("heart-disease-va-switzerland", tmp_path / "bundle",
                         data_dir=shared_data, epochs=2, amp="off", progress=False,
                         plan={"max_rounds": 30, "background_size": 8})
    classes = bundle.metadata["class_names"]
    lines = (folder / "processed.va.data").read_text().splitlines()[:16]
    station = build_workstation(tmp_path / "ws", bundle.path)
    try:
        for i, line in enumerate(lines):  # as uploaded: the graded target is in the row
            study = station.upload((line + "\n").encode(), name=f"va-{i}.csv", explain="false")
            assert study.status_code == 201, study.text
            station.review(study.json(), classes[int(float(line.rsplit(",", 1)[1]) > 0)])
        with transaction(station.client.app.state.sessions) as session:
            summary = export_dataset(session, station.settings.storage_dir, tmp_path / "out")
    finally:
        close_workstation(station)
    assert summary["n"] == 16 and "num=1 is 'disease'" in summary["label_note"]
    with (tmp_path / "out" / "records.csv").open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0][-1] == "num"
    for line, row in zip(lines, rows[1:], strict=True):
        cells = line.split(",")
        assert row[:-1] == cells[:-1], "measurements as uploaded, missing markers included"
        assert row[-1] == str(int(float(cells[-1]) > 0)), "the grade coded as its class"
    data = meddx.load_dataset(tmp_path / "out" / "records.csv")
    assert data.class_names == classes
    kinds = {c.name: c.kind for c in data.schema.columns}
    assert kinds["cp"] == kinds["thal"] == "categorical", "the model's schema, not a guess"
