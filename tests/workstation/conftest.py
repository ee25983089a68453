"""Fixtures of the workstation tests: a small trained bundle, an app per test, users per role."""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select

import meddx
from meddx.safeguards.encryption import generate_key
from meddx.safeguards.passwords import hash_password
from meddx.workstation.app import create_app
from meddx.workstation.core.config import Settings
from meddx.workstation.db.models import User
from meddx.workstation.db.session import transaction
from meddx.workstation.services import users
from tests.cli_helpers import CliResult, meddx_cli
from tests.conftest import write_npz

ROLES = ("clinician", "researcher", "admin")
PASSWORD = "correct-horse-battery"


@pytest.fixture(scope="session")
def blobs28(tmp_path_factory) -> Path:
    """Synthetic 28x28 two-class images in MedMNIST's .npz layout."""
    return write_npz(tmp_path_factory.mktemp("data") / "blobs28.npz", spatial=(28, 28),
                     sizes=(96, 32, 32))


@pytest.fixture(scope="session")
def ws_bundle(tmp_path_factory, blobs28) -> Path:
    """A real bundle, trained for a few epochs on the synthetic images (seconds on a CPU)."""
    out = tmp_path_factory.mktemp("bundles") / "blobs28"
    meddx.train(blobs28, out, epochs=3, lr=3e-3, amp="off", progress=False,
                plan={"batch_size": 32})
    return out


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="session")
def case_png(blobs28) -> bytes:
    """One test image of the synthetic set, as a clinician's PNG upload."""
    return png_bytes(np.load(blobs28)["test_images"][0])


def make_settings(root: Path, bundle: Path | None, **overrides) -> Settings:
    values = {"data_root": root, "secret_key": generate_key(),
              "bundles": (bundle,) if bundle else (), "max_upload_mb": 1.0,
              "explain": True}
    values.update(overrides)
    return Settings(**values)


@dataclass
class Workstation:
    client: TestClient
    settings: Settings
    headers: dict[str, dict[str, str]] = field(default_factory=dict)

    def upload(self, content: bytes, name: str = "case.png", role: str = "clinician",
               **form) -> object:
        return self.client.post("/api/studies", headers=self.headers[role],
                                files={"files": (name, content, "application/octet-stream")},
                                data=form)

    def review(self, study: dict, label: str, role: str = "clinician") -> dict:
        """A clinician's review of the study's first finding saying the truth is ``label``
        (agreeing when the model said so, else correcting it)."""
        prediction = study["predictions"][0]
        agrees = prediction["decision"] == label
        answer = self.client.post(f"/api/studies/{study['id']}/feedback",
                                  headers=self.headers[role],
                                  json={"prediction_id": prediction["id"], "agrees": agrees,
                                        "corrected_label": None if agrees else label})
        assert answer.status_code == 201, answer.text
        return answer.json()


@functools.lru_cache(maxsize=1)
def password_hash() -> str:
    """One Argon2 hash of the test password, reused: hashing costs ~0.1 s and 64 MB each."""
    return hash_password(PASSWORD)


def add_users(app, roles=ROLES) -> None:
    with transaction(app.state.sessions) as session:
        for role in roles:
            session.add(User(username=f"{role}1", full_name=f"Test {role}", role=role,
                             password_hash=password_hash(), active=True))


def login(client: TestClient, username: str, password: str = PASSWORD):
    return client.post("/api/auth/token", data={"username": username, "password": password})


def build_workstation(root: Path, bundle: Path, **overrides) -> Workstation:
    """An app on a fresh SQLite database with one signed-in user per role."""
    settings = make_settings(root, bundle, **overrides)
    app = create_app(settings)
    add_users(app)
    client = TestClient(app)
    station = Workstation(client, settings)
    # Tokens issued directly (sign-in itself is tested in test_accounts and the browser tests).
    with transaction(app.state.sessions) as session:
        for role in ROLES:
            user = session.scalar(select(User).where(User.username == f"{role}1"))
            token, _ = users.issue_token(session, user, 60)
            station.headers[role] = {"Authorization": f"Bearer {token}"}
    return station


def close_workstation(station: Workstation) -> None:
    station.client.close()
    station.client.app.state.engine.dispose()


@pytest.fixture
def workstation(tmp_path, ws_bundle) -> Workstation:
    station = build_workstation(tmp_path / "ws", ws_bundle)
    yield station
    close_workstation(station)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LiveServer:
    url: str
    root: Path
    env: dict[str, str]
    process: object

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except Exception:
            self.process.kill()
            self.process.wait(timeout=20)


def start_server(root: Path, bundle: Path, users_to_create=ROLES, port: int | None = None,
                 extra_env: dict[str, str] | None = None) -> LiveServer:
    """``meddx serve`` in a subprocess on 127.0.0.1 (a real uvicorn server), with users."""
    import os
    import subprocess
    import sys
    import time

    import httpx

    port = port or free_port()
    env = {**os.environ, "MEDDX_WORKSTATION_DIR": str(root), "MEDDX_SECRET_KEY": generate_key(),
           "MEDDX_BUNDLES": str(bundle), **(extra_env or {})}
    env.pop("MEDDX_DATABASE_URL", None) if "MEDDX_DATABASE_URL" not in (extra_env or {}) else None
    for role in users_to_create:
        subprocess.run([sys.executable, "-m", "meddx", "users", "create", f"{role}1", "--role",
                        role, "--password-stdin"], input=PASSWORD + "\n", env=env, check=True,
                       capture_output=True, text=True, timeout=120)
    process = subprocess.Popen([sys.executable, "-m", "meddx", "serve", "--port", str(port)],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {process.stdout.read().decode()}")
        try:
            if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                return LiveServer(url, root, env, process)
        except httpx.TransportError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError("server did not start within 120 s")


@pytest.fixture
def live_server(tmp_path, ws_bundle):
    server = start_server(tmp_path / "ws", ws_bundle)
    yield server
    server.stop()


@pytest.fixture
def export_feedback():
    """``meddx feedback export --out OUT [options]`` of a workstation's reviews, from the CLI
    (its folder and SQLite database, as on the server)."""

    def invoke(station: Workstation, out: Path, *options, check: bool = False) -> CliResult:
        env = {"MEDDX_WORKSTATION_DIR": str(station.settings.data_root),
               "MEDDX_DATABASE_URL": None}
        return meddx_cli("feedback", "export", "--out", out, *options, env=env, check=check)

    return invoke
