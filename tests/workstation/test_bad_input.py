"""Bad input gets a clear 4xx, leaves nothing stored half-way, and the server keeps serving."""

from __future__ import annotations

import io

import numpy as np
import pytest
from sqlalchemy import func, select, text

from meddx.workstation.db.models import AuditEvent, Feedback, Patient, Study, StudyFile
from meddx.workstation.services.storage import (
    UploadError,
    UploadTooLargeError,
    check_filename,
    save_upload,
)
from tests.workstation.conftest import build_workstation, close_workstation


@pytest.fixture(scope="module")
def shared_station(tmp_path_factory, ws_bundle):
    station = build_workstation(tmp_path_factory.mktemp("bad-input"), ws_bundle)
    yield station
    close_workstation(station)


def counts(station) -> dict[str, int]:
    with station.client.app.state.sessions() as session:
        return {model.__tablename__: session.scalar(select(func.count()).select_from(model))
                for model in (Study, StudyFile, Patient, Feedback)}


def stored_dirs(station) -> list:
    folder = station.settings.storage_dir / "studies"
    return sorted(folder.iterdir()) if folder.exists() else []


def still_serving(station, case_png) -> None:
    assert station.client.get("/api/health").status_code == 200
    answer = station.upload(case_png, explain="false")
    assert answer.status_code == 201, answer.text


@pytest.mark.parametrize(("name", "content", "status", "message"), [
    ("notes.exe", b"MZ\x90\x00binary", 415, "no registered model takes .exe"),
    ("report.txt", b"a text report", 415, "no registered model takes .txt"),
    ("noise.png", bytes(range(256)) * 8, 422, "noise.png: not a readable PNG/JPEG image"),
    ("truncated.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, 422, "case"),
    ("empty.png", b"", 422, "empty"),
    ("fake.dcm", b"\x89PNG\r\n\x1a\n" + b"\x00" * 300, 422, "fake.dcm: not a readable DICOM"),
    ("../../etc/passwd.png", b"\x89PNG", 400, "plain file name"),
    ("..\\..\\boot.png", b"\x89PNG", 400, "plain file name"),
    ("/etc/cron.d/x.png", b"\x89PNG", 400, "plain file name"),
    (".hidden.png", b"\x89PNG", 400, "must not start with '.'"),
])
def test_bad_files_are_refused_and_nothing_is_kept(shared_station, case_png, name, content,
                                                    status, message):
    workstation = shared_station
    before, folders = counts(workstation), stored_dirs(workstation)
    answer = workstation.upload(content, name=name)
    assert answer.status_code == status, answer.text
    detail = answer.json()["detail"]
    if message != "case":
        assert message in detail
    else:
        assert "truncated.png" in detail
    assert counts(workstation) == before
    assert stored_dirs(workstation) == folders
    still_serving(workstation, case_png)


def test_oversized_upload_is_refused_before_it_is_read(workstation, case_png):
    big = b"\x89PNG\r\n\x1a\n" + b"\x00" * (2 * 1024 * 1024)  # limit in the fixture: 1 MB
    answer = workstation.upload(big, name="huge.png")
    assert answer.status_code == 413
    assert "MEDDX_MAX_UPLOAD_MB" in answer.json()["detail"]
    assert counts(workstation)["studies"] == 0 and stored_dirs(workstation) == []
    still_serving(workstation, case_png)


@pytest.mark.parametrize(("name", "problem"), [
    ("bad\x07name.png", "control characters"), ("a/../b.png", "plain file name"),
    ("", "empty"), ("x" * 300 + ".png", "longer than 200"), ("..", "plain file name")])
def test_file_names_are_checked(name, problem):
    with pytest.raises(UploadError, match=problem):
        check_filename(name)


def test_stream_limit_stops_at_the_limit(tmp_path):
    with pytest.raises(UploadTooLargeError, match="upload limit"):
        save_upload(io.BytesIO(b"x" * 5000), "big.png", tmp_path, limit_bytes=4096)


def test_markup_in_text_fields_is_refused(workstation, case_png):
    answer = workstation.upload(case_png, description="<script>alert(1)</script>")
    assert answer.status_code == 422
    assert answer.json()["detail"] == "description: HTML or script markup is not allowed"
    answer = workstation.upload(case_png, patient_name='<img src=x onerror="alert(1)">')
    assert answer.status_code == 422 and "patient_name" in answer.json()["detail"]
    answer = workstation.upload(case_png, birth_date="1990-13-45")
    assert answer.status_code == 400 and "birth_date" in answer.json()["detail"]
    assert counts(workstation)["studies"] == 0 and stored_dirs(workstation) == []

    study = workstation.upload(case_png).json()
    prediction = study["predictions"][0]["id"]
    url = f"/api/studies/{study['id']}/feedback"
    headers = workstation.headers["clinician"]
    bad = workstation.client.post(url, headers=headers, json={
        "prediction_id": prediction, "agrees": True,
        "comment": "<a href='javascript:alert(1)'>x</a>"})
    assert bad.status_code == 422 and "comment" in bad.json()["detail"]


def test_sql_in_text_is_stored_as_text(workstation, case_png):
    """Bound parameters everywhere: SQL in a comment is data, and every table survives."""
    study = workstation.upload(case_png, description="x'); DROP TABLE studies; --").json()
    comment = "Robert'); DROP TABLE feedback; -- and 1=1 OR 'a'='a"
    answer = workstation.client.post(
        f"/api/studies/{study['id']}/feedback", headers=workstation.headers["clinician"],
        json={"prediction_id": study["predictions"][0]["id"], "agrees": True, "comment": comment})
    assert answer.status_code == 201
    with workstation.client.app.state.sessions() as session:
        assert session.scalar(select(Feedback.comment)) == comment
        assert session.scalar(select(Study.description)) == "x'); DROP TABLE studies; --"
        tables = session.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))
        assert {"studies", "feedback"} <= {row[0] for row in tables}
    found = workstation.client.get("/api/studies", headers=workstation.headers["researcher"],
                                   params={"q": "' OR 1=1 --"})
    assert found.status_code == 200 and found.json() == []


def test_feedback_rules(workstation, case_png):
    first = workstation.upload(case_png).json()
    second = workstation.upload(case_png).json()
    url = f"/api/studies/{first['id']}/feedback"
    headers = workstation.headers["clinician"]
    prediction = first["predictions"][0]
    cases = [
        ({"prediction_id": prediction["id"], "agrees": False}, 422, "required when you disagree"),
        ({"prediction_id": prediction["id"], "agrees": False, "corrected_label": "pneumonia"},
         422, "not one of the model's classes"),
        ({"prediction_id": second["predictions"][0]["id"], "agrees": True}, 400,
         f"is not a prediction of study {first['id']}"),
        ({"prediction_id": prediction["id"], "agrees": "maybe"}, 422, "agrees"),
    ]
    for body, status, message in cases:
        answer = workstation.client.post(url, headers=headers, json=body)
        assert answer.status_code == status, answer.text
        assert message in str(answer.json()["detail"])
    assert counts(workstation)["feedback"] == 0
    assert workstation.client.post("/api/studies/999/feedback", headers=headers,
                                   json={"prediction_id": 1, "agrees": True}).status_code == 404


def test_corrupt_content_behind_a_valid_header(workstation, case_png):
    """Magic bytes of a PNG with a broken body: the reader fails, nothing is stored."""
    broken = case_png[:60] + np.random.default_rng(0).bytes(200)
    answer = workstation.upload(broken, name="broken.png")
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith("broken.png:")
    assert counts(workstation)["studies"] == 0 and stored_dirs(workstation) == []
    with workstation.client.app.state.sessions() as session:
        actions = session.scalars(select(AuditEvent.action)).all()
    assert "study_upload" not in actions, "the audit event rolled back with the upload"
    still_serving(workstation, case_png)
