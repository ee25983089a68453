"""A real Orthanc: DIMSE (echo, store, find, get, move) and DICOMweb (QIDO, WADO, STOW)."""

from __future__ import annotations

import threading

import pydicom
import pytest

from meddx.pacs.dicomweb import DicomWebClient
from meddx.pacs.dimse import DicomNode, DimseClient
from meddx.pacs.errors import PacsError
from meddx.pacs.listener import DicomListener
from meddx.pacs.orthanc import free_port
from meddx.pacs.retry import RetryPolicy, with_retries

FAST = RetryPolicy(attempts=2, first_delay=0.05)


def _dimse(orthanc) -> DimseClient:
    return DimseClient(DicomNode("127.0.0.1", orthanc.dicom_port, orthanc.aet), "MEDDX")


def _files(samples):
    return sorted((samples / "series-77654033").rglob("*")) + [samples / "CT_small.dcm",
                                                                samples / "JPEG2000.dcm"]


def test_dimse_echo_store_find_get(clean_orthanc, samples, tmp_path):
    client = _dimse(clean_orthanc)
    assert client.echo() == 0
    files = [p for p in _files(samples) if p.is_file()]
    result = client.store(files)
    assert len(result.stored) == len(files) and not result.failed  # JPEG 2000 included
    studies = client.find("STUDY")
    expected = {str(pydicom.dcmread(p).StudyInstanceUID) for p in files}
    assert {str(s.StudyInstanceUID) for s in studies} == expected
    ct = client.find("SERIES", Modality="CT")
    assert {s.Modality for s in ct} == {"CT"}
    study = str(pydicom.dcmread(samples / "series-77654033" / "CT2" / "17106").StudyInstanceUID)
    got = client.get(tmp_path / "get", study)
    uids = {str(pydicom.dcmread(p).SOPInstanceUID) for p in got}
    assert uids == {str(pydicom.dcmread(p).SOPInstanceUID) for p in files
                    if str(pydicom.dcmread(p).StudyInstanceUID) == study}


def test_c_move_to_our_listener(clean_orthanc, samples, tmp_path, listener_port):
    client = _dimse(clean_orthanc)
    client.store([p for p in (samples / "series-77654033" / "CT2").iterdir()])
    study = str(pydicom.dcmread(samples / "series-77654033" / "CT2" / "17106").StudyInstanceUID)
    series = str(pydicom.dcmread(samples / "series-77654033" / "CT2" / "17106")
                 .SeriesInstanceUID)
    done = threading.Event()
    with DicomListener(tmp_path / "spool", None, port=listener_port, idle_seconds=0.3,
                       on_done=lambda folder, status: done.set()) as listener:
        moved = client.move("MEDDX", study, series)
        assert done.wait(30)
        assert moved == 4 and listener.received == 4
    received = list((tmp_path / "spool" / study / series).glob("*.dcm"))
    assert len(received) == 4
    with pytest.raises(PacsError, match="C-MOVE"):
        client.move("NOBODY", study, series)  # a destination Orthanc does not know


def test_dicomweb_qido_wado_stow(clean_orthanc, samples, tmp_path):
    web = DicomWebClient(clean_orthanc.dicomweb_url)
    stored = web.store([samples / "MR_small.dcm", samples / "CT_small.dcm"])
    assert len(stored) == 2
    studies = web.search_studies()
    assert len(studies) == 2
    mr = pydicom.dcmread(samples / "MR_small.dcm")
    found = web.search_series(Modality="MR")
    assert [s["0020000E"]["Value"][0] for s in found] == [mr.SeriesInstanceUID]
    files = web.download_series(mr.StudyInstanceUID, mr.SeriesInstanceUID, tmp_path / "wado")
    back = pydicom.dcmread(files[0])
    assert back.SOPInstanceUID == mr.SOPInstanceUID
    assert (back.pixel_array == mr.pixel_array).all()
    assert len(web.search_instances(mr.StudyInstanceUID, mr.SeriesInstanceUID)) == 1


def test_error_answers_are_clear_and_not_retried(clean_orthanc):
    calls = []
    web = DicomWebClient(clean_orthanc.dicomweb_url, retry=FAST)
    original = web._client.retrieve_series
    web._client.retrieve_series = lambda *a, **k: (calls.append(1), original(*a, **k))[1]
    with pytest.raises(PacsError, match="HTTP 404") as info:
        web.retrieve_series("1.2.3.4", "1.2.3.5")
    assert not info.value.retryable and len(calls) == 1


def test_pacs_down_retries_then_fails(tmp_path):
    port = free_port()  # nothing listens here
    client = DimseClient(DicomNode("127.0.0.1", port, "ORTHANC"), retry=FAST, timeout=2)
    with pytest.raises(PacsError, match=r"cannot connect .*gave up after 2 attempts"):
        client.echo()
    web = DicomWebClient(f"http://127.0.0.1:{port}/dicom-web", retry=FAST, timeout=2)
    with pytest.raises(PacsError, match="cannot connect"):
        web.search_studies()


def test_retry_backs_off_and_stops_on_permanent_errors():
    slept, attempts = [], []

    def flaky():
        attempts.append(1)
        if len(attempts) < 3:
            raise PacsError("busy")
        return "ok"

    policy = RetryPolicy(attempts=4, first_delay=1.0, factor=2.0, max_delay=8.0)
    assert with_retries(flaky, "test", policy, sleep=slept.append) == "ok"
    assert len(slept) == 2 and 0.8 <= slept[0] <= 1.2 and 1.6 <= slept[1] <= 2.4
    assert policy.delays() == [1.0, 2.0, 4.0]

    def refused():
        attempts.append(1)
        raise PacsError("bad request", retryable=False)

    attempts.clear()
    with pytest.raises(PacsError, match="bad request"):
        with_retries(refused, "test", policy, sleep=slept.append)
    assert len(attempts) == 1


def test_cli_echo_query_and_listen(clean_orthanc, samples, tmp_path, listener_port):
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    meddx = [sys.executable, "-m", "meddx", "dicom"]
    echo = subprocess.run([*meddx, "echo", "127.0.0.1", str(clean_orthanc.dicom_port)],
                          capture_output=True, text=True, timeout=300)
    assert echo.returncode == 0 and "success" in echo.stdout, echo.stderr
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"rules": []}))  # store only
    listener = subprocess.Popen([*meddx, "listen", "--rules", str(rules), "--spool",
                                 str(tmp_path / "spool"), "--port", str(listener_port),
                                 "--idle", "0.5"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        client = DimseClient(DicomNode("127.0.0.1", listener_port, "MEDDX"),
                             retry=RetryPolicy(attempts=40, first_delay=0.5, factor=1.0))
        client.store([samples / "CT_small.dcm"])  # retried until the listener is up
        status_files = []
        deadline = time.monotonic() + 30
        while not status_files and time.monotonic() < deadline:
            status_files = [p for p in (tmp_path / "spool").glob("*/*/.meddx-status.json")
                            if json.loads(p.read_text()).get("state") == "stored"]
            time.sleep(0.2)
        assert status_files, "the listener did not store the series"
    finally:
        listener.send_signal(signal.SIGTERM)  # what a service manager sends; stops cleanly
        try:
            _, err = listener.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            listener.kill()  # never leave a listener behind
            raise
    assert listener.returncode == 0, err
    assert len(list((tmp_path / "spool").glob("*/*/*.dcm"))) == 1
    down = subprocess.run([*meddx, "echo", "127.0.0.1", str(free_port())],
                          capture_output=True, text=True, timeout=300)
    assert down.returncode == 2 and "cannot connect" in down.stderr
    assert "Traceback" not in down.stderr
