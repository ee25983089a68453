"""Accounts and safeguards: hashing, tokens, rate limit, encryption at rest, audit trail."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from meddx.errors import ConfigError
from meddx.safeguards.encryption import FieldCipher, generate_key
from meddx.safeguards.passwords import check_policy, hash_password, verify_password
from meddx.workstation.app import create_app
from meddx.workstation.db.models import AuditEvent, AuthToken, Patient, User
from meddx.workstation.services.users import UserExistsError, create_user
from tests.workstation.conftest import PASSWORD, login, make_settings


def test_passwords_are_argon2_hashes():
    stored = hash_password(PASSWORD)
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert verify_password(stored, PASSWORD)
    assert not verify_password(stored, PASSWORD + "x")
    assert not verify_password(None, PASSWORD)
    for weak, problem in (("short", "at least 10"), ("aaaaaaaaaaaa", "too few distinct"),
                          ("xalice-2024x", "user name")):
        with pytest.raises(ConfigError, match=problem):
            check_policy(weak, "alice")


def test_tokens_are_stored_as_digests_and_revoked(workstation):
    token = workstation.headers["clinician"]["Authorization"].split()[1]
    with workstation.client.app.state.sessions() as session:
        digests = session.scalars(select(AuthToken.token_hash)).all()
        hashes = session.scalars(select(User.password_hash)).all()
    assert token not in digests and len(digests) == 3
    assert all(h.startswith("$argon2id$") for h in hashes)
    me = workstation.client.get("/api/auth/me", headers=workstation.headers["clinician"])
    assert me.status_code == 200 and me.json()["role"] == "clinician"
    assert "password_hash" not in me.json()
    assert workstation.client.post("/api/auth/logout",
                                   headers=workstation.headers["clinician"]).status_code == 204
    assert workstation.client.get("/api/auth/me",
                                  headers=workstation.headers["clinician"]).status_code == 401
    bogus = {"Authorization": "Bearer not-a-token"}
    assert workstation.client.get("/api/studies", headers=bogus).status_code == 401


def test_login_is_rate_limited(workstation):
    for _ in range(5):
        assert login(workstation.client, "clinician1", "wrong-password-1").status_code == 401
    answer = login(workstation.client, "clinician1")
    assert answer.status_code == 429, "even the right password waits once the limit is hit"
    assert int(answer.headers["retry-after"]) > 0
    assert login(workstation.client, "researcher1").status_code == 429, "same client address"
    with workstation.client.app.state.sessions() as session:
        actions = session.scalars(select(AuditEvent.action)).all()
    assert actions.count("login_failed") == 5 and "login_throttled" in actions


def test_identifying_fields_are_encrypted_at_rest(workstation, case_png):
    first = workstation.upload(case_png, mrn="MRN-12345", patient_name="Grace Hopper",
                               birth_date="1906-12-09").json()
    second = workstation.upload(case_png, mrn=" mrn-12345 ").json()
    assert first["patient"] == second["patient"], "same record number, same pseudonym"
    assert first["patient"].startswith("P-") and "Grace" not in str(first)
    database = (workstation.settings.data_root / "workstation.db").read_bytes()
    assert b"Grace Hopper" not in database and b"MRN-12345" not in database
    with workstation.client.app.state.sessions() as session:
        patient = session.scalar(select(Patient))
        assert patient.name_enc and "Grace" not in patient.name_enc
    who = workstation.client.get(f"/api/studies/{first['id']}/patient",
                                 headers=workstation.headers["clinician"]).json()
    assert who == {"pseudonym": first["patient"], "mrn": "MRN-12345", "name": "Grace Hopper",
                   "birth_date": "1906-12-09"}
    assert workstation.client.get(f"/api/studies/{first['id']}/patient",
                                  headers=workstation.headers["researcher"]).status_code == 403
    with pytest.raises(ConfigError, match="not the one the data was written with"):
        FieldCipher(generate_key()).decrypt(patient.name_enc)


def test_no_key_outside_demo_mode_is_a_clear_error(tmp_path, ws_bundle):
    with pytest.raises(ConfigError, match="MEDDX_SECRET_KEY"):
        create_app(make_settings(tmp_path, ws_bundle, secret_key=None))
    with pytest.raises(ConfigError, match="not a valid key"):
        create_app(make_settings(tmp_path, ws_bundle, secret_key="too-short"))


def test_users_cannot_be_duplicated_or_weak(workstation):
    sessions = workstation.client.app.state.sessions
    with sessions() as session, session.begin(), pytest.raises(UserExistsError):
        create_user(session, "clinician1", PASSWORD, "clinician")
    admin = workstation.headers["admin"]
    answer = workstation.client.post("/api/users", headers=admin, json={
        "username": "clinician1", "password": PASSWORD, "role": "clinician"})
    assert answer.status_code == 409
    answer = workstation.client.post("/api/users", headers=admin, json={
        "username": "newbie", "password": "aaaaaaaaaaaa", "role": "clinician"})
    assert answer.status_code == 400 and "password" in answer.json()["detail"]
    answer = workstation.client.post("/api/users", headers=admin, json={
        "username": "x'; DROP TABLE users;--", "password": PASSWORD, "role": "admin"})
    assert answer.status_code == 422
    answer = workstation.client.patch("/api/users/admin1", headers=admin, json={"active": False})
    assert answer.status_code == 409


def test_sign_in_issues_a_working_token(workstation):
    answer = login(workstation.client, "admin1")
    assert answer.status_code == 200
    body = answer.json()
    assert body["token_type"] == "bearer" and body["role"] == "admin"
    me = workstation.client.get("/api/auth/me",
                                headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.json()["username"] == "admin1" and me.json()["last_login_at"]
    assert login(workstation.client, "nobody", PASSWORD).status_code == 401


def test_every_action_is_audited(workstation, case_png):
    assert login(workstation.client, "admin1").status_code == 200
    study = workstation.upload(case_png).json()
    workstation.client.get(f"/api/studies/{study['id']}", headers=workstation.headers["researcher"])
    workstation.client.post(f"/api/studies/{study['id']}/feedback",
                            headers=workstation.headers["clinician"],
                            json={"prediction_id": study["predictions"][0]["id"], "agrees": True})
    events = workstation.client.get("/api/audit", headers=workstation.headers["admin"]).json()
    seen = {(e["action"], e["username"]) for e in events}
    assert {("study_upload", "clinician1"), ("prediction", "clinician1"),
            ("study_view", "researcher1"), ("feedback", "clinician1"),
            ("login", "admin1"), ("model_register", "system")} <= seen
    only = workstation.client.get("/api/audit", params={"action": "feedback"},
                                  headers=workstation.headers["admin"]).json()
    assert [e["action"] for e in only] == ["feedback"]


def test_security_headers_and_no_cdn(workstation):
    page = workstation.client.get("/")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert page.headers["x-frame-options"] == "DENY"
    for asset in ("/", "/static/app.js", "/static/viewers.js", "/static/style.css"):
        body = workstation.client.get(asset).text
        assert "http://" not in body and "https://" not in body, asset
    docs = workstation.client.get("/docs")
    assert docs.status_code == 200 and "https://" not in docs.text, "Swagger UI from a CDN"
    assert "script-src 'self'" in docs.headers["content-security-policy"]
    assert workstation.client.get("/docs/assets/swagger-ui-bundle.js").status_code == 200
    assert workstation.client.get("/docs/assets/index.html").status_code == 404
    assert "/api/studies" in workstation.client.get("/api/openapi.json").json()["paths"]
