"""`meddx feedback export` of reviewed DICOM images: each file goes through the project's DICOM
de-identification (PS3.15 Annex E Basic Profile, as `meddx dicom deidentify`) on the way out, so
the exported dataset holds no name, patient ID or birth date (in the headers or the file names)
while its pixels, and so `meddx train`, are unchanged."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import generate_uid

import meddx
from tests.unit.test_images import _dicom

IDENTIFIERS = {"PatientName": "Doe^Jane", "PatientID": "MRN-8675309",
               "PatientBirthDate": "19610704", "InstitutionName": "St Elsewhere Hospital",
               "AccessionNumber": "ACC-424242", "StudyDate": "20240315"}


def dicom_bytes(pixels: np.ndarray, folder: Path) -> bytes:
    """An uncompressed 8-bit DICOM of ``pixels`` with identifying header fields."""
    path = _dicom(folder / f"{generate_uid()}.dcm", pixels.astype(np.uint8), spacing=None)
    ds = pydicom.dcmread(path)
    for keyword, value in IDENTIFIERS.items():
        setattr(ds, keyword, value)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_dicom_export_is_deidentified_and_trains(workstation, blobs28, tmp_path,
                                                 export_feedback):
    images = np.load(blobs28)
    truth = {}
    for i in range(14):
        pixels = images["train_images"][i]
        answer = workstation.upload(dicom_bytes(pixels, tmp_path), name=f"Doe_Jane_{i}.dcm",
                                    explain="false")
        assert answer.status_code == 201, answer.text
        label = str(int(images["train_labels"][i, 0]))
        workstation.review(answer.json(), label)
        truth[answer.json()["id"]] = (label, pixels)

    out = tmp_path / "dicom-feedback"
    result = export_feedback(workstation, out, check=True)
    printed = " ".join(result.stdout.split())
    assert "14 cases" in printed and "note: 14 DICOM file(s) de-identified" in printed

    with (out / "manifest.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    cases = json.loads((out / "cases.json").read_text())
    exported = sorted(p for p in out.rglob("*") if p.is_file())
    for row, case in zip(rows, cases["cases"], strict=True):
        label, pixels = truth[case["study_id"]]
        assert row["label"] == label and row["path"].endswith("/image-1.dcm")
        raw = (out / row["path"]).read_bytes()
        ds = pydicom.dcmread(io.BytesIO(raw))
        # Basic Profile: name emptied, ID a keyed pseudonym, birth date and study date emptied,
        # institution a dummy, accession number emptied; the object says it was de-identified.
        assert not ds.PatientName and not ds.PatientBirthDate and not ds.StudyDate
        assert ds.PatientID.startswith("ANON-")
        assert ds.InstitutionName == "ANONYMIZED" and not ds.AccessionNumber
        assert ds.PatientIdentityRemoved == "YES"
        np.testing.assert_array_equal(ds.pixel_array, pixels)
    for path in exported:  # nowhere in the export: headers, logs, names
        content = path.read_bytes()
        for value in IDENTIFIERS.values():
            assert value.encode() not in content, f"{value} in {path.name}"
        assert "Doe" not in str(path.relative_to(out))
    log = json.loads((out / "deidentification-log.json").read_text())
    assert len(log["files"]) == 14 and "Basic Application Level" in log["profile"]
    actions = {c["keyword"]: c["action"] for c in log["files"][0]["changes"]}
    assert actions["PatientName"] == "Z" and actions["PatientID"] == "D"
    # One de-identification run: the same patient keeps one pseudonym across the export.
    ids = {pydicom.dcmread(out / row["path"]).PatientID for row in rows}
    assert len(ids) == 1

    dataset = meddx.load_dataset(out / "manifest.csv")
    assert dataset.class_names == ["0", "1"]
    bundle = meddx.train(out / "manifest.csv", tmp_path / "retrained", epochs=1, amp="off",
                         progress=False, plan={"batch_size": 8})
    assert bundle.metadata["provenance"]["split_sizes"]["train"] > 0
