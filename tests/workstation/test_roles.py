"""The full role x endpoint matrix: every API route, every role, plus anonymous callers."""

from __future__ import annotations

import itertools

import pytest

from meddx.workstation.db.models import User
from meddx.workstation.db.session import transaction
from meddx.workstation.services import users
from tests.workstation.conftest import ROLES, build_workstation, close_workstation

PUBLIC = {"anonymous", *ROLES}
ANY = set(ROLES)
READ = {"clinician", "researcher", "admin"}
CLINICAL = {"clinician", "admin"}
ADMIN = {"admin"}

# (method, path template) -> roles allowed. A new route fails test_matrix_covers_every_route
# until it is added here with its intended roles.
MATRIX = {
    ("POST", "/api/auth/token"): PUBLIC,
    ("POST", "/api/auth/logout"): ANY,
    ("GET", "/api/auth/me"): ANY,
    ("GET", "/api/users"): ADMIN,
    ("POST", "/api/users"): ADMIN,
    ("PATCH", "/api/users/{username}"): ADMIN,
    ("GET", "/api/studies"): READ,
    ("POST", "/api/studies"): CLINICAL,
    ("GET", "/api/studies/{study_id}"): READ,
    ("GET", "/api/studies/{study_id}/patient"): CLINICAL,
    ("GET", "/api/studies/{study_id}/image/{index}.png"): READ,
    ("GET", "/api/studies/{study_id}/signal"): READ,
    ("POST", "/api/studies/{study_id}/predictions"): CLINICAL,
    ("GET", "/api/predictions/{prediction_id}/heatmap/{index}.png"): READ,
    ("GET", "/api/predictions/{prediction_id}/explanation.png"): READ,
    ("GET", "/api/predictions/{prediction_id}/artifacts/{key}.png"): READ,
    ("GET", "/api/predictions/{prediction_id}/labels/{key}/{index}.png"): READ,
    ("POST", "/api/studies/{study_id}/feedback"): CLINICAL,
    ("GET", "/api/studies/{study_id}/feedback"): READ,
    ("GET", "/api/feedback"): READ,
    ("GET", "/api/models"): READ,
    ("GET", "/api/models/{model_id}"): READ,
    ("GET", "/api/models/{model_id}/report/{name}"): READ,
    ("GET", "/api/audit"): ADMIN,
    ("GET", "/api/health"): PUBLIC,
    ("GET", "/api/info"): READ,
}
# Routes whose seeded target does not apply (the study is an image, not an ECG record): allowed
# roles get past the role check to a 404 that names what is missing.
NOT_APPLICABLE = {("GET", "/api/studies/{study_id}/signal"): "has no WFDB record"}


def test_matrix_covers_every_route(workstation):
    routes = {(method.upper(), path)
              for path, operations in workstation.client.app.openapi()["paths"].items()
              for method in operations}
    assert routes == set(MATRIX), routes ^ set(MATRIX)


@pytest.fixture(scope="module")
def matrix_station(tmp_path_factory, ws_bundle):
    station = build_workstation(tmp_path_factory.mktemp("matrix"), ws_bundle)
    yield station
    close_workstation(station)


@pytest.fixture(scope="module")
def seeded(matrix_station, case_png):
    """A workstation with one analysed study, and a caller with a fresh token per call."""
    workstation = matrix_station
    answer = workstation.upload(case_png, mrn="MRN-1", patient_name="Ada Lovelace")
    assert answer.status_code == 201, answer.text
    study = answer.json()
    counter = itertools.count()
    app = workstation.client.app

    def headers(role: str) -> dict[str, str]:
        if role == "anonymous":
            return {}
        with transaction(app.state.sessions) as session:
            user = session.query(User).filter_by(username=f"{role}1").one()
            token, _ = users.issue_token(session, user, 60)
        return {"Authorization": f"Bearer {token}"}

    def call(method: str, template: str, role: str):
        n = next(counter)
        values = {"study_id": study["id"], "prediction_id": study["predictions"][0]["id"],
                  "model_id": study["predictions"][0]["model"]["id"], "index": 0,
                  "username": "researcher1", "key": "explanation",
                  "name": "roc.png"}
        if "labels" in template:
            values["key"] = "explanation_map"
        path = template.format(**values)
        kwargs = {}
        if (method, template) == ("POST", "/api/auth/token"):
            kwargs["data"] = {"username": "clinician1", "password": "correct-horse-battery"}
        elif (method, template) == ("POST", "/api/users"):
            kwargs["json"] = {"username": f"made-by-{role}-{n}", "password": "another-long-pass",
                              "role": "researcher"}
        elif (method, template) == ("PATCH", "/api/users/{username}"):
            kwargs["json"] = {"active": True}
        elif (method, template) == ("POST", "/api/studies"):
            kwargs["files"] = {"files": ("case.png", case_png, "image/png")}
            kwargs["data"] = {"explain": "false"}
        elif (method, template) == ("POST", "/api/studies/{study_id}/feedback"):
            kwargs["json"] = {"prediction_id": values["prediction_id"], "agrees": True}
        return workstation.client.request(method, path, headers=headers(role), **kwargs)

    return call


@pytest.mark.parametrize(("method", "template"), sorted(MATRIX))
def test_role_matrix(seeded, method, template):
    for role in ("anonymous", *ROLES):
        answer = seeded(method, template, role)
        allowed = MATRIX[(method, template)]
        if role in allowed and (method, template) in NOT_APPLICABLE:
            assert answer.status_code == 404, (role, answer.status_code, answer.text)
            assert NOT_APPLICABLE[(method, template)] in answer.json()["detail"]
        elif role in allowed:
            assert answer.status_code < 300, (role, answer.status_code, answer.text)
        elif role == "anonymous":
            assert answer.status_code == 401, (role, answer.status_code, answer.text)
            assert answer.headers.get("www-authenticate") == "Bearer"
        else:
            assert answer.status_code == 403, (role, answer.status_code, answer.text)
            assert "may not" in answer.json()["detail"]
