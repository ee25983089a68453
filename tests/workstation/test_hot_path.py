"""The upload + review path after its CPU work was cut: same answers, same checks, same schema.

Upload, study view and review return their JSON serialised in the handler (no second validation
by FastAPI); a bearer token and its user are read with one query. These tests pin what must not
have changed with that: the documented response models, the answers' content and headers, and
every reason a token is refused.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from meddx.workstation.api.schemas import FeedbackPublic, StudyDetail
from meddx.workstation.db.models import AuditEvent, AuthToken, Feedback, Study, User
from meddx.workstation.services import users


def _schema_of(openapi: dict, path: str, method: str, status: str) -> str:
    content = openapi["paths"][path][method]["responses"][status]["content"]
    return content["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]


def test_hot_routes_keep_their_documented_response_models(workstation):
    openapi = workstation.client.get("/api/openapi.json").json()
    assert _schema_of(openapi, "/api/studies", "post", "201") == "StudyDetail"
    assert _schema_of(openapi, "/api/studies/{study_id}", "get", "200") == "StudyDetail"
    assert _schema_of(openapi, "/api/studies/{study_id}/feedback", "post",
                      "201") == "FeedbackPublic"


def test_upload_view_and_review_answers(workstation, case_png):
    upload = workstation.upload(case_png, explain="false", description="hot path")
    assert upload.status_code == 201, upload.text
    assert upload.headers["content-type"] == "application/json"
    assert "content-security-policy" in upload.headers, "security headers on direct responses"
    study = StudyDetail.model_validate_json(upload.text)
    assert study.status == "predicted" and study.description == "hot path"
    assert study.created_at.tzinfo is not None, "times are sent as UTC"
    assert len(study.files) == 1 and study.files[0].original_name == "case.png"
    prediction = study.predictions[0]
    assert prediction.decision and prediction.model.class_names
    assert upload.json()["viewer"]["slices"] == 1

    viewed = workstation.client.get(f"/api/studies/{study.id}",
                                    headers=workstation.headers["researcher"])
    assert viewed.status_code == 200
    assert StudyDetail.model_validate_json(viewed.text).predictions[0].id == prediction.id

    classes = prediction.model.class_names
    other = next(c for c in classes if c != prediction.decision)
    review = workstation.client.post(
        f"/api/studies/{study.id}/feedback", headers=workstation.headers["clinician"],
        json={"prediction_id": prediction.id, "agrees": False, "corrected_label": other,
              "comment": "not convinced"})
    assert review.status_code == 201, review.text
    assert review.headers["content-type"] == "application/json"
    entry = FeedbackPublic.model_validate_json(review.text)
    assert (entry.study_id, entry.prediction_id, entry.corrected_label, entry.reviewer) == (
        study.id, prediction.id, other, "clinician1")

    with workstation.client.app.state.sessions() as session:
        row = session.get(Study, study.id)
        assert (row.status, row.disagreements) == ("reviewed", 1)
        assert session.get(Feedback, entry.id).comment == "not convinced"
        actions = session.scalars(select(AuditEvent.action).where(
            AuditEvent.target_id == str(study.id)).order_by(AuditEvent.id)).all()
    assert actions == ["study_upload", "prediction", "study_view", "feedback"]

    bad = workstation.client.post(
        f"/api/studies/{study.id}/feedback", headers=workstation.headers["clinician"],
        json={"prediction_id": prediction.id, "agrees": False, "corrected_label": "no-such"})
    assert bad.status_code == 422 and "corrected_label" in bad.json()["detail"]
    missing = workstation.client.post(
        "/api/studies/999999/feedback", headers=workstation.headers["clinician"],
        json={"prediction_id": prediction.id, "agrees": True})
    assert missing.status_code == 404


def test_every_reason_to_refuse_a_token(workstation):
    sessions = workstation.client.app.state.sessions
    headers = workstation.headers["clinician"]
    assert workstation.client.get("/api/auth/me", headers=headers).status_code == 200

    with sessions() as session, session.begin():
        user = session.scalar(select(User).where(User.username == "researcher1"))
        expired, _ = users.issue_token(session, user, 60)
        session.flush()
        session.execute(update(AuthToken).where(AuthToken.user_id == user.id).values(
            expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    answer = workstation.client.get("/api/auth/me",
                                    headers={"Authorization": f"Bearer {expired}"})
    assert answer.status_code == 401, "expired token"

    admin = workstation.headers["admin"]
    assert workstation.client.patch("/api/users/clinician1", headers=admin,
                                    json={"active": False}).status_code == 200
    assert workstation.client.get("/api/auth/me", headers=headers).status_code == 401, \
        "token of a deactivated user"
    assert workstation.client.patch("/api/users/clinician1", headers=admin,
                                    json={"active": True}).status_code == 200
    assert workstation.client.get("/api/auth/me", headers=headers).status_code == 200

    assert workstation.client.post("/api/auth/logout", headers=headers).status_code == 204
    assert workstation.client.get("/api/auth/me", headers=headers).status_code == 401, \
        "revoked token"
