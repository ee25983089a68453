"""`meddx feedback export` of reviewed symptom texts: texts.csv (text,label), the table the text
reader reads, so `meddx train` retrains on the clinicians' labels directly."""

from __future__ import annotations

import csv
import json

import meddx
from meddx.data.text import load_text_dataset
from meddx.learn.pipeline import train_model
from tests.unit.test_text import FAST, SYMPTOMS, TINY, write_texts
from tests.workstation.conftest import build_workstation, close_workstation


def test_text_feedback_export_trains_directly(tmp_path, export_feedback):
    data = load_text_dataset(write_texts(tmp_path / "texts.csv"))
    bundle = tmp_path / "text-bundle"
    train_model(data, bundle, config=FAST, plan=TINY, progress=False)
    station = build_workstation(tmp_path / "ws", bundle)
    try:
        truth = {}
        for label, texts in SYMPTOMS.items():
            for i, text in enumerate(texts):
                note = f"{text},\nsince Monday" if i == 0 else text  # commas, line breaks
                study = station.upload(note.encode(), name=f"{label}-{i}.txt",
                                       explain="false").json()
                station.review(study, label)
                truth[study["id"]] = (label, note)
        out = tmp_path / "text-feedback"
        result = export_feedback(station, out)
    finally:
        close_workstation(station)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "9 cases" in result.stdout and "(text-table)" in " ".join(result.stdout.split())

    with (out / "texts.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    cases = json.loads((out / "cases.json").read_text())
    assert "-0.txt" not in json.dumps(cases), "uploaded file names are not exported"
    for case in cases["cases"]:
        label, note = truth[case["study_id"]]
        assert rows[case["row"] - 1] == {"text": note, "label": label}
    dataset = meddx.load_dataset(out / "texts.csv")
    assert sorted(dataset.class_names) == sorted(SYMPTOMS)
    retrained = meddx.train(out / "texts.csv", tmp_path / "retrained", epochs=1, amp="off",
                            progress=False, plan=TINY)
    assert retrained.metadata["task"] == "text-classification"
