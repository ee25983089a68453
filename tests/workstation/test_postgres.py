"""The workstation on a real PostgreSQL server (Debian's ``postgresql``), started for the tests.

A throw-away cluster is created with ``initdb`` in a temporary folder and started with ``pg_ctl``
on 127.0.0.1 (as the ``postgres`` user when the tests run as root, because PostgreSQL refuses to
run as root). Skipped, with the reason, only when the PostgreSQL binaries are not installed.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.workstation.conftest import build_workstation, close_workstation, free_port
from tests.workstation.test_core_writes import check_all_or_nothing
from tests.workstation.test_migrations import check_round_trip


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _as_postgres_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


@pytest.fixture(scope="module")
def postgres_server():
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not installed: apt-get install "
                    "postgresql (make system-deps)")
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server")
    root = Path(tempfile.mkdtemp(prefix="meddx-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        os.chown(root, owner.pw_uid, owner.pw_gid)
    port = free_port()
    subprocess.run(_as_postgres_user([initdb, "-D", str(data), "-U", "meddx", "--auth=trust",
                                      "-E", "UTF8", "--no-locale"]),
                   check=True, capture_output=True, timeout=180)
    subprocess.run(_as_postgres_user([pg_ctl, "-D", str(data), "-l", str(data / "server.log"),
                                      "-o", f"-h 127.0.0.1 -p {port} -k {data}", "-w", "-t", "60",
                                      "start"]),
                   check=True, capture_output=True, timeout=120)
    try:
        yield f"postgresql+psycopg://meddx@127.0.0.1:{port}"
    finally:
        # A throw-away cluster: no shutdown checkpoint needed.
        subprocess.run(_as_postgres_user([pg_ctl, "-D", str(data), "-m", "immediate", "-w",
                                          "stop"]), capture_output=True, timeout=120)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_db(postgres_server, request):
    import psycopg

    name = "meddx_" + request.node.name.lower().replace("[", "_").replace("]", "")[:40]
    dsn = postgres_server.replace("postgresql+psycopg", "postgresql") + "/postgres"
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        connection.execute(f'CREATE DATABASE "{name}"')
    yield f"{postgres_server}/{name}"


def test_postgres_migrations(postgres_db):
    check_round_trip(postgres_db)


def test_postgres_workflow(postgres_db, tmp_path, ws_bundle, case_png):
    station = build_workstation(tmp_path / "ws", ws_bundle, database_url=postgres_db)
    try:
        assert station.client.app.state.engine.dialect.name == "postgresql"
        studies = [station.upload(case_png, mrn=f"MRN-{i % 2}", explain="false").json()
                   for i in range(3)]
        assert studies[0]["patient"] == studies[2]["patient"] != studies[1]["patient"]
        target = studies[1]
        answer = station.client.post(
            f"/api/studies/{target['id']}/feedback", headers=station.headers["clinician"],
            json={"prediction_id": target["predictions"][0]["id"], "agrees": False,
                  "corrected_label": "1" if target["latest_decision"] == "0" else "0",
                  "comment": "O'Brien's sign; DROP TABLE feedback;"})
        assert answer.status_code == 201, answer.text
        by_disagreement = station.client.get(
            "/api/studies", params={"sort": "disagreement"},
            headers=station.headers["researcher"]).json()
        assert by_disagreement[0]["id"] == target["id"]
        newest = station.client.get("/api/studies", headers=station.headers["researcher"]).json()
        assert [s["id"] for s in newest] == sorted((s["id"] for s in studies), reverse=True)
        # A failed upload rolls back on PostgreSQL too.
        assert station.upload(b"garbage", name="x.png").status_code == 422
        assert len(station.client.get("/api/studies",
                                      headers=station.headers["admin"]).json()) == 3
        events = station.client.get("/api/audit", params={"action": "feedback"},
                                    headers=station.headers["admin"]).json()
        assert len(events) == 1 and events[0]["username"] == "clinician1"
    finally:
        close_workstation(station)


def test_postgres_failed_writes_leave_nothing(postgres_db, tmp_path, ws_bundle, case_png,
                                              monkeypatch):
    station = build_workstation(tmp_path / "ws", ws_bundle, database_url=postgres_db)
    try:
        check_all_or_nothing(station, case_png, monkeypatch)
    finally:
        close_workstation(station)
