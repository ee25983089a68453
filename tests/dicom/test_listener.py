"""The listener: receive, route, analyse, send results to Orthanc, list in the worklist."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from meddx.data.dicom.series import write_series
from meddx.decision.predictors import load_model
from meddx.errors import ConfigError
from meddx.pacs.dicomweb import DicomWebClient
from meddx.pacs.dimse import DicomNode, DimseClient
from meddx.pacs.listener import (
    STATUS_FILE,
    DicomListener,
    ResultSender,
    SeriesProcessor,
    process_pending,
    read_status,
)
from meddx.pacs.orthanc import free_port
from meddx.pacs.retry import RetryPolicy
from meddx.pacs.routing import load_rules, rules_from_dict
from tests.conftest import make_blobs
from tests.dicom.conftest import sphere_volume
from tests.seg_synthetic import AFFINE

FAST = RetryPolicy(attempts=2, first_delay=0.05)


def _rules(tmp_path: Path, bundle: Path, modality="MR", description="sphere") -> object:
    return rules_from_dict({"rules": [{"name": "test", "modality": modality,
                                       "series_description": description,
                                       "bundle": str(bundle)}]}, tmp_path, "test rules")


def _workstation(tmp_path):
    from meddx.pacs.worklist import WorkstationWorklist
    from meddx.safeguards.encryption import generate_key
    from meddx.workstation.core.config import Settings

    return WorkstationWorklist(Settings(data_root=tmp_path / "ws", secret_key=generate_key()))


def _run_listener(spool, processor, port, send):
    """Start a listener, call ``send()``, wait for the series, return its status."""
    done, statuses = threading.Event(), []

    def on_done(folder, status):
        statuses.append(status)
        done.set()

    with DicomListener(spool, processor, port=port, idle_seconds=0.5, on_done=on_done):
        send()
        assert done.wait(180), "the series was not processed"
    return statuses[0]


def test_volume_from_orthanc_to_results_in_orthanc_and_worklist(
        clean_orthanc, seg_bundle, tmp_path, listener_port):
    image, _ = sphere_volume(seed=3)
    files = write_series(image, AFFINE, tmp_path / "series", patient_name="Doe^Jane",
                         patient_id="MRN-77", series_description="sphere study")
    pacs = DimseClient(DicomNode("127.0.0.1", clean_orthanc.dicom_port, clean_orthanc.aet))
    pacs.store(files)
    source = pydicom.dcmread(files[0])
    worklist = _workstation(tmp_path)
    processor = SeriesProcessor(_rules(tmp_path, seg_bundle),
                                sender=ResultSender(node=pacs.peer, retry=FAST),
                                worklist=worklist)
    spool = worklist.storage_dir / "dicom"
    # The PACS pushes the study to us by C-MOVE, as a routing rule in a real PACS would.
    status = _run_listener(spool, processor, listener_port, lambda: pacs.move(
        "MEDDX", source.StudyInstanceUID, source.SeriesInstanceUID))
    assert status["state"] == "done", status.get("error")
    assert status["route"] == "test" and len(status["sent"]) == 3

    # The results are in Orthanc, in the source's study, and reference the source series.
    web = DicomWebClient(clean_orthanc.dicomweb_url)
    series = {s["00080060"]["Value"][0]: s["0020000E"]["Value"][0]
              for s in web.search_series(source.StudyInstanceUID)}
    assert set(series) == {"MR", "SEG", "SR", "OT"}
    seg = hd.seg.Segmentation.from_dataset(
        web.retrieve_series(source.StudyInstanceUID, series["SEG"])[0])
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == source.SeriesInstanceUID
    # The SEG holds exactly the model's mask (the predictor run again on the same series).
    from meddx.data.dicom.series import read_series

    volume = read_series(tmp_path / "series")
    expected = load_model(seg_bundle).segment(volume.array, volume.spacing)
    labels = seg.get_volume(combine_segments=True, relabel=False).array
    assert 0 < int((labels > 0).sum()) == int((expected > 0).sum())
    sr = web.retrieve_series(source.StudyInstanceUID, series["SR"])[0]
    assert sr.SOPClassUID == pydicom.uid.Comprehensive3DSRStorage
    volumes = {name: info["volume_ml"] for name, info in status["result"]["labels"].items()}
    report = hd.sr.Comprehensive3DSR.from_dataset(sr)
    measured = sorted(round(g.get_measurements()[0].value, 4)
                      for g in report.content.get_volumetric_roi_measurement_groups())
    assert measured == sorted(round(v, 4) for v in volumes.values() if v > 0)

    # The received study is in the workstation worklist, with its prediction and files.
    from meddx.workstation.db.session import transaction
    from meddx.workstation.services import patients, studies

    with transaction(worklist.sessions) as session:
        listed = studies.worklist(session)
        assert len(listed) == 1
        study = studies.get_study(session, listed[0].id)
        assert study.status == "predicted" and study.kind == "volume"
        assert len(study.files) == len(files) and "sphere study" in study.description
        assert study.predictions[0].outputs["labels"]
        fields = patients.identifying_fields(study.patient, worklist.cipher)
        assert fields["mrn"] == "MRN-77" and fields["name"] == "Doe^Jane"
        assert study.patient.name_enc != "Doe^Jane"  # encrypted at rest


def _dicom_image(folder: Path, description: str) -> list[Path]:
    images, _ = make_blobs(1, (28, 28), seed=5)
    pixels = (images[0][0] - images[0][0].min()) * 80
    return write_series(np.round(pixels)[:, :, None], np.eye(4), folder,
                        series_description=description)


def test_image_classifier_over_stow_rs(clean_orthanc, cls_bundle, tmp_path, listener_port):
    files = _dicom_image(tmp_path / "img", "chest blob")
    processor = SeriesProcessor(_rules(tmp_path, cls_bundle, description="chest"),
                                sender=ResultSender(dicomweb_url=clean_orthanc.dicomweb_url,
                                                    retry=FAST))
    status = _run_listener(tmp_path / "spool", processor, listener_port, lambda: DimseClient(
        DicomNode("127.0.0.1", listener_port, "MEDDX")).store(files))
    assert status["state"] == "done", status.get("error")
    expected = load_model(cls_bundle).predict_file(files[0])
    assert status["result"]["decision"] == expected["decision"]
    source = pydicom.dcmread(files[0])
    web = DicomWebClient(clean_orthanc.dicomweb_url)
    modalities = sorted(s["00080060"]["Value"][0] for s in web.search_series())
    assert modalities == ["OT", "SR"]  # the source was only sent to us, results went to PACS
    sr_uid = next(s["0020000E"]["Value"][0] for s in web.search_series()
                  if s["00080060"]["Value"][0] == "SR")
    report = hd.sr.Comprehensive3DSR.from_dataset(
        web.retrieve_series(source.StudyInstanceUID, sr_uid)[0])
    group = report.content.get_image_measurement_groups()[0]
    assert group.get_qualitative_evaluations()[0].value.meaning == expected["decision"]


def test_failures_keep_the_study_and_retry_succeeds(seg_bundle, orthanc, tmp_path,
                                                    listener_port):
    image, _ = sphere_volume(seed=4)
    files = write_series(image, AFFINE, tmp_path / "series", series_description="sphere")
    spool = tmp_path / "spool"
    # 1. The routed bundle is broken: the study is kept, marked failed, with the reason.
    broken = SeriesProcessor(_rules(tmp_path, tmp_path / "no-such-bundle"))
    status = _run_listener(spool, broken, listener_port, lambda: DimseClient(
        DicomNode("127.0.0.1", listener_port, "MEDDX")).store(files))
    assert status["state"] == "failed" and "no-such-bundle" in status["error"]
    series_dir = next(p.parent for p in spool.glob(f"*/*/{STATUS_FILE}"))
    assert len(list(series_dir.glob("*.dcm"))) == len(files)
    # 2. The PACS for the results is down: analysed, results kept on disk, still failed.
    down = ResultSender(node=DicomNode("127.0.0.1", free_port(), "ORTHANC"), retry=FAST)
    status = process_pending(spool, SeriesProcessor(_rules(tmp_path, seg_bundle),
                                                     sender=down))[0]
    assert status["state"] == "failed" and "cannot connect" in status["error"]
    assert len(list(series_dir.with_name(series_dir.name + ".results").glob("*.dcm"))) == 3
    # 3. Retry with the PACS up: done, and the results are in Orthanc.
    up = ResultSender(node=DicomNode("127.0.0.1", orthanc.dicom_port, orthanc.aet))
    status = process_pending(spool, SeriesProcessor(_rules(tmp_path, seg_bundle), sender=up))[0]
    assert status["state"] == "done" and status["attempts"] == 3
    assert read_status(series_dir)["state"] == "done"
    assert process_pending(spool, SeriesProcessor(_rules(tmp_path, seg_bundle))) == []


def test_unrouted_series_is_stored_only(tmp_path, listener_port):
    files = _dicom_image(tmp_path / "img", "knee")
    processor = SeriesProcessor(rules_from_dict({"rules": []}, tmp_path, "empty"))
    status = _run_listener(tmp_path / "spool", processor, listener_port, lambda: DimseClient(
        DicomNode("127.0.0.1", listener_port, "MEDDX")).store(files))
    assert status["state"] == "stored" and status["route"] is None


def test_routing_rules_files(tmp_path):
    (tmp_path / "rules.yaml").write_text(
        "rules:\n  - name: brain\n    modality: [mr, ct]\n    body_part: BRAIN\n"
        "    series_description: '(?i)t1'\n    bundle: bundles/brain\n"
        "default: bundles/any\n")
    rules = load_rules(tmp_path / "rules.yaml")
    assert rules.route("MR", "brain", "Ax T1 MPRAGE") == ("brain", tmp_path / "bundles/brain")
    assert rules.route("MR", "BRAIN", "T2 flair") == ("default", tmp_path / "bundles/any")
    (tmp_path / "rules.json").write_text(json.dumps({"rules": [{"bundle": "/b"}]}))
    assert load_rules(tmp_path / "rules.json").route("XA") == ("rule 1", Path("/b"))
    for text, message in (("{", "not valid JSON"),
                          (json.dumps({"rules": [{"modality": "MR"}]}), "'bundle' is required"),
                          (json.dumps({"rules": [{"bundle": "b", "series_description": "("}]}),
                           "not a valid regular expression"),
                          (json.dumps({"rulez": []}), "unknown key")):
        (tmp_path / "bad.json").write_text(text)
        with pytest.raises(ConfigError, match=message):
            load_rules(tmp_path / "bad.json")
    with pytest.raises(ConfigError, match="cannot read"):
        load_rules(tmp_path / "missing.json")
