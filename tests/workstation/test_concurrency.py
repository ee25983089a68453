"""Concurrency: SQLite settings, predictions outside the write lock, limits shared by workers."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from meddx.safeguards import audit
from meddx.workstation.app import create_app
from meddx.workstation.db.models import AuditEvent, ModelVersion, Study
from meddx.workstation.db.session import make_engine, transaction, upgrade
from meddx.workstation.services.login_limit import DatabaseLoginRateLimiter
from tests.workstation.conftest import (
    PASSWORD,
    build_workstation,
    close_workstation,
    login,
    start_server,
)


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'ws.db'}")
    try:
        with engine.connect() as connection:
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert connection.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL
            assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 30000
            assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
    finally:
        engine.dispose()


def test_prediction_runs_outside_the_write_lock(workstation, case_png):
    """While the model runs on an upload, another connection can write (no lock is held)."""
    database = workstation.settings.data_root / "workstation.db"
    predictors = workstation.client.app.state.predictors
    original = predictors.predict_file
    writes: list[str] = []

    def predict_and_write_meanwhile(*args, **kwargs):
        # A second writer with no patience: "database is locked" if the upload held the lock.
        other = sqlite3.connect(database, timeout=0.2)
        try:
            other.execute("INSERT INTO audit_events (at, username, action, target_type, "
                          "target_id, detail, client) VALUES (?, 'probe', 'study_view', '', '', "
                          "'{}', '')", (datetime.now(UTC).isoformat(sep=" "),))
            other.commit()
            writes.append("ok")
        except sqlite3.OperationalError as error:
            writes.append(str(error))
        finally:
            other.close()
        return original(*args, **kwargs)

    predictors.predict_file = predict_and_write_meanwhile
    answer = workstation.upload(case_png, explain="false")
    assert answer.status_code == 201, answer.text
    assert writes == ["ok"]
    body = answer.json()
    assert body["files"][0]["original_name"] == "case.png" and body["patient"]
    assert body["predictions"][0]["model"]["name"]


def test_disagreements_are_counted_per_review(workstation, case_png):
    study = workstation.upload(case_png, explain="false").json()
    prediction = study["predictions"][0]
    classes = workstation.client.get(f"/api/models/{prediction['model']['id']}",
                                     headers=workstation.headers["clinician"]).json()
    other = next(c for c in classes["class_names"] if c != prediction["decision"])
    for agrees in (False, True, False):
        answer = workstation.client.post(
            f"/api/studies/{study['id']}/feedback", headers=workstation.headers["clinician"],
            json={"prediction_id": prediction["id"], "agrees": agrees,
                  "corrected_label": None if agrees else other, "comment": ""})
        assert answer.status_code == 201, answer.text
        assert answer.json()["reviewer"] == "clinician1"
    listed = workstation.client.get("/api/studies", headers=workstation.headers["clinician"])
    assert [s["disagreements"] for s in listed.json() if s["id"] == study["id"]] == [2]


def test_login_limit_is_shared_by_apps_on_one_database(tmp_path, ws_bundle):
    """Two apps on one database (what ``--workers 2`` runs): failures on one count on the other."""
    first = build_workstation(tmp_path / "ws", ws_bundle)
    second = TestClient(create_app(first.settings, prepare=False))
    try:
        for _ in range(5):
            assert login(first.client, "clinician1", "wrong-password-1").status_code == 401
        answer = login(second, "clinician1")
        assert answer.status_code == 429, "the other worker must refuse too"
        assert int(answer.headers["retry-after"]) > 0
    finally:
        second.close()
        second.app.state.engine.dispose()
        close_workstation(first)


def test_login_limit_window_and_success(tmp_path, ws_bundle):
    station = build_workstation(tmp_path / "ws", ws_bundle)
    sessions = station.client.app.state.sessions
    try:
        with transaction(sessions) as session:
            for _ in range(2):
                audit.record(session, "login_failed", username="Alice", client="10.0.0.1")
        now = [datetime.now(UTC)]
        limiter = DatabaseLoginRateLimiter(max_failures=2, window_s=10, clock=lambda: now[0])
        with transaction(sessions) as session:
            wait = limiter.retry_after(session, "alice", "10.0.0.2")
            assert 0 < wait <= 10, "per user name, case-insensitive"
            assert limiter.retry_after(session, "bob", "10.0.0.1") > 0, "per client address"
            assert limiter.retry_after(session, "bob", "10.0.0.2") == 0
        now[0] += timedelta(seconds=11)
        with transaction(sessions) as session:
            assert limiter.retry_after(session, "alice", "10.0.0.1") == 0, "window moved on"
        now[0] -= timedelta(seconds=11)
        with transaction(sessions) as session:
            audit.record(session, "login", username="alice")
        with transaction(sessions) as session:
            assert limiter.retry_after(session, "alice", "10.0.0.2") == 0, "success clears"
            assert limiter.retry_after(session, "carol", "10.0.0.1") > 0, "not the address"
    finally:
        close_workstation(station)


def test_app_without_prepare_does_not_migrate(tmp_path, ws_bundle):
    from tests.workstation.conftest import make_settings

    settings = make_settings(tmp_path / "ws", ws_bundle)
    engine = make_engine(settings.db_url)
    upgrade(engine)
    engine.dispose()
    app = create_app(settings, prepare=False)
    try:
        with app.state.sessions() as session:
            assert session.scalar(select(func.count(ModelVersion.id))) == 0
    finally:
        app.state.engine.dispose()


def _children(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_serve_with_two_workers(tmp_path, ws_bundle, case_png):
    """``meddx serve`` with MEDDX_WORKERS=2: two processes, one migration and registration,
    uploads and reviews on either worker, one login limit for both."""
    server = start_server(tmp_path / "ws", ws_bundle, users_to_create=("clinician",),
                          extra_env={"MEDDX_WORKERS": "2", "MEDDX_LOGIN_MAX_FAILURES": "3"})
    try:
        workers = [p for p in _children(server.process.pid)
                   if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]
        assert len(workers) >= 2, "uvicorn starts one process per worker"
        with httpx.Client(base_url=server.url, timeout=60) as http:
            token = http.post("/api/auth/token", data={"username": "clinician1",
                                                       "password": PASSWORD}).json()
            headers = {"Authorization": f"Bearer {token['access_token']}"}

            def review(k: int, errors: list) -> None:
                with httpx.Client(base_url=server.url, timeout=60) as own:
                    study = own.post("/api/studies", headers=headers, data={"explain": "false"},
                                     files={"files": (f"c{k}.png", case_png, "image/png")})
                    if study.status_code != 201:
                        errors.append(study.text)
                        return
                    body = study.json()
                    answer = own.post(f"/api/studies/{body['id']}/feedback", headers=headers,
                                      json={"prediction_id": body["predictions"][0]["id"],
                                            "agrees": True, "comment": f"k{k}"})
                    if answer.status_code != 201:
                        errors.append(answer.text)

            errors: list[str] = []
            clients = [threading.Thread(target=review, args=(k, errors)) for k in range(4)]
            for client in clients:
                client.start()
            for client in clients:
                client.join(timeout=120)
            assert errors == []
            for _ in range(3):
                assert http.post("/api/auth/token", data={
                    "username": "clinician1", "password": "wrong-password-1"}).status_code == 401
            # New connections: whichever worker answers, the limit holds.
            for _ in range(4):
                with httpx.Client(base_url=server.url, timeout=60) as fresh:
                    assert fresh.post("/api/auth/token", data={
                        "username": "clinician1", "password": PASSWORD}).status_code == 429
    finally:
        server.stop()
    engine = make_engine(f"sqlite:///{tmp_path / 'ws' / 'workstation.db'}")
    try:
        with engine.connect() as connection:
            assert connection.execute(select(func.count(ModelVersion.id))).scalar() == 1
            registrations = connection.execute(select(func.count(AuditEvent.id)).where(
                AuditEvent.action == "model_register")).scalar()
            assert registrations == 1, "bundles are registered once, not once per worker"
            assert connection.execute(select(func.count(Study.id))).scalar() == 4
    finally:
        engine.dispose()
