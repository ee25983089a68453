"""`meddx feedback export` of reviewed ECG records: a WFDB folder `meddx train` reads, whose beat
labels are the reference annotations uploaded with each record (never the model's own beats),
with the model's beats beside them and the record-level review in cases.json.

A tiny beat bundle is trained on synthetic annotated records (tests/ecg_helpers.py); clinicians
upload other synthetic records, with and without their annotation file, and review them.
"""

from __future__ import annotations

import datetime
import json

import numpy as np
import pytest
import wfdb

import meddx
from meddx.data.ecg import read_wfdb_record
from tests.ecg_helpers import write_folder, write_record
from tests.workstation.conftest import build_workstation, close_workstation


@pytest.fixture(scope="module")
def beat_bundle(tmp_path_factory):
    root = tmp_path_factory.mktemp("ecg-export")
    folder = write_folder(root / "train", n_records=3, duration_s=20)
    out = root / "bundle"
    meddx.train(str(folder), out, plan={"model": "cnn", "epoch_size": 256, "batch_size": 64},
                epochs=1, patience=0, amp="off", progress=False, num_threads=1)
    return out


@pytest.fixture
def station(tmp_path, beat_bundle):
    workstation = build_workstation(tmp_path / "ws", beat_bundle, max_upload_mb=4.0)
    yield workstation
    close_workstation(workstation)


def _upload_record(station, stem, suffixes=("hea", "dat", "atr")):
    files = [("files", (f"{stem.name}.{s}", stem.with_suffix(f".{s}").read_bytes(),
                        "application/octet-stream")) for s in suffixes]
    answer = station.client.post("/api/studies", headers=station.headers["clinician"],
                                 files=files, data={"explain": "false"})
    assert answer.status_code == 201, answer.text
    return answer.json()


def _review(station, study, agrees, label=None):
    prediction = study["predictions"][0]
    answer = station.client.post(f"/api/studies/{study['id']}/feedback",
                                 headers=station.headers["clinician"],
                                 json={"prediction_id": prediction["id"], "agrees": agrees,
                                       "corrected_label": label})
    assert answer.status_code == 201, answer.text


def test_ecg_records_export_as_wfdb_with_reference_beats(station, tmp_path, export_feedback):
    stems = [write_record(tmp_path / "cases", str(950 + i), seed=50 + i, duration_s=20)
             for i in range(3)]
    header = stems[0].with_suffix(".hea")
    header.write_text(header.read_text() + "# 69 M\n# Digoxin, Quinidine\n")  # as MIT-BIH's
    recorded = wfdb.rdheader(str(stems[0]))
    recorded.base_time, recorded.base_date = datetime.time(10, 21), datetime.date(1979, 3, 2)
    recorded.wrheader(write_dir=str(stems[0].parent))
    # A rhythm label (kept: it labels the record) and a free-text note (dropped: it may name
    # someone) on the reference annotations.
    reference = wfdb.rdann(str(stems[0]), "atr")
    notes = [""] * len(reference.sample)
    notes[0], notes[1] = "(AFIB", "seen by Dr Smithfield"
    wfdb.wrann(stems[0].name, "atr", reference.sample, reference.symbol, aux_note=notes,
               fs=reference.fs, write_dir=str(stems[0].parent))
    annotated = [_upload_record(station, stem) for stem in stems[:2]]
    # The same record name twice (two uploads of "950") must not collide in the export.
    again = _upload_record(station, stems[0])
    bare = _upload_record(station, stems[2], ("hea", "dat"))
    assert annotated[0]["kind"] == "ecg"
    _review(station, annotated[0], False, "V")
    _review(station, annotated[1], True)
    _review(station, again, True)
    _review(station, bare, True)

    out = tmp_path / "ecg-feedback"
    result = export_feedback(station, out, check=True)
    printed = " ".join(result.stdout.split())
    assert "3 cases (1 corrected)" in printed and "(wfdb)" in printed
    assert "1 reviewed case(s) left out" in printed
    assert "beat labels are each record's reference annotations" in printed

    cases = json.loads((out / "cases.json").read_text())
    assert cases["format"] == "wfdb" and "not applied to single beats" in cases["labels"]
    names = {case["record"] for case in cases["cases"]}
    # Renamed after the study: an uploaded record name may be the patient's.
    assert names == {f"s{annotated[0]['id']}", f"s{annotated[1]['id']}", f"s{again['id']}"}
    assert not any("95" in p.name for p in out.iterdir())
    corrected = next(c for c in cases["cases"] if c["study_id"] == annotated[0]["id"])
    assert corrected["record_finding"] == "V" and corrected["agrees"] is False
    assert corrected["beat_labels"] == "reference annotations (.atr)"
    assert [s["study_id"] for s in cases["skipped"]] == [bare["id"]]
    assert "no reference beat annotations" in cases["skipped"][0]["reason"]

    # The beat labels are the uploaded reference annotations, sample for sample.
    exported = read_wfdb_record(out / corrected["record"], require_annotations=True)
    original = read_wfdb_record(stems[0], require_annotations=True)
    np.testing.assert_array_equal(exported.beat_samples, original.beat_samples)
    assert exported.beat_symbols == original.beat_symbols
    np.testing.assert_allclose(exported.signal, original.signal)
    exported_header = (out / f"{corrected['record']}.hea").read_text()
    assert "Digoxin" not in exported_header and "69 M" not in exported_header
    assert "1979" not in exported_header and "10:21" not in exported_header
    exported_notes = wfdb.rdann(str(out / corrected["record"]), "atr").aux_note
    assert exported_notes[0].rstrip("\x00") == "(AFIB" and not exported_notes[1].strip("\x00")
    assert not any(b"Smithfield" in path.read_bytes() for path in out.rglob("*")
                   if path.is_file())
    assert corrected["annotation_notes_removed"] == 1
    predicted = read_wfdb_record(out / corrected["record"], annotation="pred")
    assert set(predicted.beat_symbols) <= {"N", "S", "V", "F", "Q"}
    assert len(predicted.beat_symbols) == len(
        annotated[0]["predictions"][0]["outputs"]["beat_table"]["class"])

    dataset = meddx.load_dataset(out, on_error="stop")
    assert sorted(r.name for r in dataset.records) == sorted(names)
    assert dataset.class_names == ["N", "S", "V", "F", "Q"]


def test_ecg_export_without_reference_beats_is_refused(station, tmp_path, export_feedback):
    stem = write_record(tmp_path / "cases", "970", seed=70, duration_s=20)
    _review(station, _upload_record(station, stem, ("hea", "dat")), False, "V")
    result = export_feedback(station, tmp_path / "x")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    message = " ".join(result.stderr.split())
    assert "none of the 1 reviewed ECG record(s) has reference beat annotations" in message
    assert not (tmp_path / "x").exists()
