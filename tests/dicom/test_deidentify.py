"""De-identification: every Basic-Profile attribute found in the real samples, options, log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from pydicom.datadict import keyword_for_tag

from meddx.data.dicom.annex_e import EDITION, load_table
from meddx.data.dicom.deidentify import (
    DeidentificationOptions,
    Deidentifier,
    _resolve_compound,
    deidentify_path,
)
from meddx.errors import ConfigError, InputFileError

KEY = "test-key-1"

# Independent spot checks of Table E.1-1 (PS3.15 2026d), as printed in the standard.
STANDARD_ROWS = {
    0x00100010: "Z", 0x00100020: "Z/D", 0x00100030: "Z", 0x00100040: "Z", 0x00101010: "X",
    0x00080050: "Z", 0x00080020: "Z", 0x00080030: "Z", 0x00080080: "X/Z/D", 0x00080090: "Z",
    0x0008103E: "X", 0x00081030: "X", 0x00081070: "X/Z/D", 0x00081010: "X/Z/D",
    0x0020000D: "U", 0x0020000E: "U", 0x00080018: "U", 0x00200052: "U", 0x00181000: "X/Z/D",
    0x00081140: "X/Z/U*", 0x00082112: "X/Z/U*", 0x00102160: "X", 0x00180010: "Z/D",
}


def _files(samples: Path) -> list[Path]:
    return sorted(p for p in samples.rglob("*") if p.is_file() and p.name != "README.md")


@pytest.fixture
def deidentified(samples, tmp_path):
    out = tmp_path / "out"
    report = deidentify_path(samples, out, DeidentificationOptions(key=KEY))
    return samples, out, report


def _output_for(deid: Deidentifier, out: Path, original) -> Path:
    return (out / deid.new_uid(original.StudyInstanceUID) / deid.new_uid(
        original.SeriesInstanceUID) / f"{deid.new_uid(original.SOPInstanceUID)}.dcm")


def test_table_is_complete_and_matches_the_standard():
    exact, repeating, private = load_table()
    assert EDITION == "2026d"
    assert len(exact) + len(repeating) + 1 >= 650  # the whole table, not a handful of tags
    for tag, basic in STANDARD_ROWS.items():
        assert exact[tag].basic == basic, keyword_for_tag(tag)
    assert {rule.tag for rule in repeating} == {"50xxxxxx", "60xx3000", "60xx4000"}
    assert private.basic == "X"
    assert exact[0x00101010].options == {"chars": "K"}  # Patient's Age
    assert exact[0x00080020].options == {"dates": "K"}  # Study Date: full K / modified C


def test_every_basic_profile_attribute_in_the_samples(deidentified):
    samples, out, report = deidentified
    deid = Deidentifier(DeidentificationOptions(key=KEY))  # same key: same mapping
    checked: dict[str, str] = {}
    for path in _files(samples):
        original = pydicom.dcmread(path, force=True)
        if "SOPInstanceUID" not in original:
            continue
        result = pydicom.dcmread(_output_for(deid, out, original))
        for element in original:
            rule = deid.rule_for(element.tag)
            if rule is None:
                continue
            action = deid.action_for(rule)
            tag = element.tag
            name = element.keyword or f"({tag.group:04X},{tag.element:04X})"
            if action == "X":
                assert tag not in result, f"{path.name}: {name} should be removed"
            elif action == "Z":
                assert tag in result and result[tag].is_empty, f"{path.name}: {name} not empty"
            elif action == "D":
                assert tag in result, f"{path.name}: {name} should hold a dummy"
                if element.VR != "SQ" and not element.is_empty:
                    assert result[tag].value != element.value, f"{path.name}: {name} unchanged"
            elif action == "U":
                assert result[tag].value == deid.new_uid(element.value) != element.value
            elif action == "U*":
                for item_in, item_out in zip(element.value, result[tag].value, strict=True):
                    if "ReferencedSOPInstanceUID" in item_in:
                        assert item_out.ReferencedSOPInstanceUID == deid.new_uid(
                            item_in.ReferencedSOPInstanceUID)
            elif action == "K":
                assert result[tag].value == element.value
            checked[name] = action
        # Private attributes are gone at every depth.
        assert not [e for e in result.iterall() if e.tag.group % 2 == 1], path.name
        assert result.PatientIdentityRemoved == "YES"
        codes = [item.CodeValue for item in result.DeidentificationMethodCodeSequence]
        assert codes == ["113100"]
        assert result.LongitudinalTemporalInformationModified == "REMOVED"
        assert result.file_meta.MediaStorageSOPInstanceUID == result.SOPInstanceUID
    # What the samples contain: identity, dates, institution, device, UIDs, private blocks.
    for name in ("PatientName", "PatientID", "PatientBirthDate", "StudyDate", "AccessionNumber",
                 "InstitutionName", "ReferringPhysicianName", "SOPInstanceUID",
                 "StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID",
                 "StationName", "OperatorsName", "PatientAge", "SeriesDescription",
                 "(6000,3000)"):
        assert name in checked, f"{name} not found in the samples"
    assert checked["PatientName"] == "Z" and checked["PatientID"] == "D"
    assert checked["StudyDescription"] == "X" and checked["InstitutionName"] == "D"
    assert len(checked) >= 40
    # 16 DICOM files; the README beside them is skipped, identified by its hash only.
    assert report["summary"]["files"] == 16 and report["summary"]["skipped"] == 1


def test_uids_stay_consistent_across_a_study(deidentified):
    samples, out, _ = deidentified
    deid = Deidentifier(DeidentificationOptions(key=KEY))
    study_files = sorted((samples / "series-77654033").rglob("*"))
    originals = [pydicom.dcmread(p) for p in study_files if p.is_file()]
    outputs = [pydicom.dcmread(_output_for(deid, out, ds)) for ds in originals]
    assert len({ds.StudyInstanceUID for ds in outputs}) == len(
        {ds.StudyInstanceUID for ds in originals})
    assert len({ds.SeriesInstanceUID for ds in outputs}) == len(
        {ds.SeriesInstanceUID for ds in originals})
    assert len({ds.PatientID for ds in outputs}) == 1  # pseudonym keeps the patient linked
    assert outputs[0].PatientID.startswith("ANON-")
    # The SEG's references to its source series are remapped with the same map.
    seg = pydicom.dcmread(samples / "liver_1frame.dcm")
    seg_out = pydicom.dcmread(_output_for(deid, out, seg))
    ref_in = seg.ReferencedSeriesSequence[0]
    ref_out = seg_out.ReferencedSeriesSequence[0]
    assert ref_out.SeriesInstanceUID == deid.new_uid(ref_in.SeriesInstanceUID)
    assert ref_out.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == deid.new_uid(
        ref_in.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID)


def test_log_lists_actions_but_never_values(deidentified):
    samples, out, report = deidentified
    text = (out / "deidentification-log.json").read_text()
    log = json.loads(text)
    assert log["summary"]["actions"]["X"] > 0 and log["files"][0]["changes"]
    change = log["files"][0]["changes"][0]
    assert set(change) >= {"tag", "keyword", "action"}
    secrets = set()
    for path in _files(samples):
        ds = pydicom.dcmread(path, force=True)
        for keyword in ("PatientName", "PatientID", "InstitutionName", "OperatorsName",
                        "ReferringPhysicianName", "StudyInstanceUID"):
            value = str(ds.get(keyword, "") or "")
            if len(value) >= 4:
                secrets.add(value)
    assert secrets and not [s for s in secrets if s in text]
    assert not [s for s in ("series-77654033", "CT_small") if s in text]  # nor file names


def test_dates_options(samples, tmp_path):
    source = samples / "CT_small.dcm"
    original = pydicom.dcmread(source)
    deid = Deidentifier(DeidentificationOptions(key=KEY, dates="shift"))
    shifted, _ = deid.deidentify_dataset(pydicom.dcmread(source))
    from datetime import date, timedelta

    offset = deid.date_offset(original.PatientID)
    assert offset != 0 and abs(offset) <= 365
    expected = date(int(original.StudyDate[:4]), int(original.StudyDate[4:6]),
                    int(original.StudyDate[6:])) + timedelta(days=offset)
    assert shifted.StudyDate == expected.strftime("%Y%m%d")
    assert shifted.StudyTime == original.StudyTime  # times of day are kept
    assert shifted.LongitudinalTemporalInformationModified == "MODIFIED"
    assert [i.CodeValue for i in shifted.DeidentificationMethodCodeSequence] == [
        "113100", "113107"]
    kept, _ = Deidentifier(DeidentificationOptions(key=KEY, dates="keep")).deidentify_dataset(
        pydicom.dcmread(source))
    assert kept.StudyDate == original.StudyDate and not kept.PatientName
    removed, _ = Deidentifier(DeidentificationOptions(key=KEY)).deidentify_dataset(
        pydicom.dcmread(source))
    assert not removed.StudyDate and not removed.get("AcquisitionDate")


def test_retain_patient_characteristics(samples):
    source = samples / "CT_small.dcm"
    original = pydicom.dcmread(source)
    options = DeidentificationOptions(key=KEY, retain_patient_characteristics=True)
    ds, _ = Deidentifier(options).deidentify_dataset(pydicom.dcmread(source))
    for keyword in ("PatientSex", "PatientAge", "PatientWeight"):
        if keyword in original:
            assert ds[keyword].value == original[keyword].value
    assert not ds.PatientName and "113108" in [
        i.CodeValue for i in ds.DeidentificationMethodCodeSequence]


def test_same_key_same_output_other_key_other_uids(samples):
    source = samples / "MR_small.dcm"
    a, _ = Deidentifier(DeidentificationOptions(key="a")).deidentify_dataset(
        pydicom.dcmread(source))
    b, _ = Deidentifier(DeidentificationOptions(key="a")).deidentify_dataset(
        pydicom.dcmread(source))
    c, _ = Deidentifier(DeidentificationOptions(key="b")).deidentify_dataset(
        pydicom.dcmread(source))
    assert a.SOPInstanceUID == b.SOPInstanceUID != c.SOPInstanceUID
    assert a.SOPInstanceUID.startswith("2.25.") and len(a.SOPInstanceUID) <= 64
    assert a.PatientID == b.PatientID != c.PatientID


def test_compound_actions_resolve_to_valid_choices():
    assert _resolve_compound("X/Z") == "Z"
    assert _resolve_compound("X/D") == "D"
    assert _resolve_compound("Z/D") == "D"
    assert _resolve_compound("X/Z/D") == "D"
    assert _resolve_compound("X/Z/U*") == "U*"
    assert _resolve_compound("X") == "X"


def test_bad_input(tmp_path):
    with pytest.raises(InputFileError, match="not found"):
        deidentify_path(tmp_path / "missing", tmp_path / "out")
    folder = tmp_path / "text"
    folder.mkdir()
    (folder / "a.txt").write_text("no dicom here")
    with pytest.raises(InputFileError, match="no DICOM file"):
        deidentify_path(folder, tmp_path / "out")
    with pytest.raises(ConfigError, match="inside the input"):
        deidentify_path(folder, folder / "out")
    with pytest.raises(ConfigError, match="dates"):
        DeidentificationOptions(dates="blur")


def test_cli(samples, tmp_path):
    env = {**os.environ, "MEDDX_DEID_KEY": KEY}
    result = subprocess.run([sys.executable, "-m", "meddx", "dicom", "deidentify",
                             str(samples / "series-77654033"), str(tmp_path / "out"),
                             "--dates", "shift", "--retain-patient-characteristics"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "de-identified 7 file(s)" in result.stdout
    log = json.loads((tmp_path / "out" / "deidentification-log.json").read_text())
    assert "Retain Patient Characteristics Option" in log["options"]
    bad = subprocess.run([sys.executable, "-m", "meddx", "dicom", "deidentify",
                          str(tmp_path / "nope"), str(tmp_path / "o2")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 2 and "not found" in bad.stderr and "Traceback" not in bad.stderr
