"""Upload and review write with Core statements (no ORM flush): still all or nothing, and the
answers built from the values written equal what is read back from the database.

The failures are injected at the last write of each action (the audit events) and at the commit
itself, after every other row of the action was written in the transaction.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from meddx.safeguards import audit
from meddx.workstation.db.models import (
    AuditEvent,
    Feedback,
    Patient,
    Prediction,
    Study,
    StudyFile,
)

TABLES = (Study, StudyFile, Patient, Prediction, Feedback, AuditEvent)


class InjectedError(RuntimeError):
    pass


def counts(station) -> dict[str, int]:
    with station.client.app.state.sessions() as session:
        return {model.__tablename__: session.scalar(select(func.count()).select_from(model))
                for model in TABLES}


def stored_dirs(station) -> list:
    folder = station.settings.storage_dir / "studies"
    return sorted(folder.iterdir()) if folder.exists() else []


def _fail(*_args, **_kwargs):
    raise InjectedError("injected failure")


def _other_label(study: dict) -> str:
    prediction = study["predictions"][0]
    return next(c for c in prediction["model"]["class_names"] if c != prediction["decision"])


def check_all_or_nothing(station, case_png, monkeypatch) -> None:
    """Failed uploads and reviews leave no row (and no stored file); good ones still work."""
    before, folders = counts(station), stored_dirs(station)
    for target, name in ((audit, "write"), (Session, "commit")):
        with monkeypatch.context() as patch:
            patch.setattr(target, name, _fail)
            with pytest.raises(InjectedError):
                station.upload(case_png, mrn="MRN-FAIL", explain="false")
        assert counts(station) == before, f"upload failing at {name}"
        assert stored_dirs(station) == folders, f"upload failing at {name}: files removed"

    study = station.upload(case_png, mrn="MRN-FAIL", explain="false").json()
    before = counts(station)
    prediction = study["predictions"][0]["id"]
    for target, name in ((audit, "write"), (Session, "commit")):
        with monkeypatch.context() as patch:
            patch.setattr(target, name, _fail)
            with pytest.raises(InjectedError):
                station.client.post(f"/api/studies/{study['id']}/feedback",
                                    headers=station.headers["clinician"],
                                    json={"prediction_id": prediction, "agrees": False,
                                          "corrected_label": _other_label(study)})
        assert counts(station) == before, f"review failing at {name}"
        with station.client.app.state.sessions() as session:
            row = session.get(Study, study["id"])
            assert (row.status, row.disagreements) == ("predicted", 0), \
                f"review failing at {name}: the study's columns unchanged"
    station.review(study, _other_label(study))
    with station.client.app.state.sessions() as session:
        row = session.get(Study, study["id"])
        assert (row.status, row.disagreements) == ("reviewed", 1)


def test_failed_writes_leave_nothing(workstation, case_png, monkeypatch):
    check_all_or_nothing(workstation, case_png, monkeypatch)


def test_answers_equal_what_was_stored(workstation, case_png):
    headers = workstation.headers["clinician"]
    first = workstation.upload(case_png, mrn="MRN-1", patient_name="Ann Example",
                               description="first", explain="false")
    again = workstation.upload(case_png, mrn="MRN-1", description="same patient")
    assert first.status_code == again.status_code == 201, (first.text, again.text)
    for answer in (first, again):
        uploaded = answer.json()
        read_back = workstation.client.get(f"/api/studies/{uploaded['id']}", headers=headers)
        assert read_back.json() == uploaded
    assert first.json()["patient"] == again.json()["patient"], "found by record number"
    assert again.json()["predictions"][0]["has_heat_map"], "explanation artifacts are listed"

    study = first.json()
    review = workstation.client.post(
        f"/api/studies/{study['id']}/feedback", headers=headers,
        json={"prediction_id": study["predictions"][0]["id"], "agrees": False,
              "corrected_label": _other_label(study), "comment": "checked"})
    assert review.status_code == 201, review.text
    listed = workstation.client.get(f"/api/studies/{study['id']}/feedback", headers=headers)
    assert listed.json() == [review.json()]

    with workstation.client.app.state.sessions() as session:
        events = session.execute(select(AuditEvent.action, AuditEvent.username,
                                        AuditEvent.detail)
                                 .where(AuditEvent.target_id == str(study["id"]))
                                 .order_by(AuditEvent.id)).all()
    assert [(action, user) for action, user, _ in events] == [
        ("study_upload", "clinician1"), ("prediction", "clinician1"),
        ("study_view", "clinician1"), ("feedback", "clinician1")]
    assert events[1].detail["prediction_id"] == study["predictions"][0]["id"]


def test_reviews_of_the_wrong_study_or_prediction(workstation, case_png):
    headers = workstation.headers["clinician"]
    one, two = (workstation.upload(case_png, explain="false").json() for _ in range(2))
    wrong = workstation.client.post(
        f"/api/studies/{one['id']}/feedback", headers=headers,
        json={"prediction_id": two["predictions"][0]["id"], "agrees": True})
    assert wrong.status_code == 400
    assert wrong.json()["detail"] == (f"prediction_id: {two['predictions'][0]['id']} is not a "
                                      f"prediction of study {one['id']}")
    missing = workstation.client.post(
        "/api/studies/999999/feedback", headers=headers,
        json={"prediction_id": one["predictions"][0]["id"], "agrees": True})
    assert missing.status_code == 404 and missing.json()["detail"] == "no study 999999"
    assert workstation.client.get("/api/feedback", headers=headers).json() == []
