"""`meddx users create` and `meddx serve`: no default passwords, clear errors, demo accounts."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from meddx.workstation.core.config import Settings
from meddx.workstation.server import ensure_demo_users
from meddx.workstation.services.users import authenticate
from tests.cli_helpers import meddx_cli


def test_users_create(tmp_path):
    env = {"MEDDX_WORKSTATION_DIR": str(tmp_path), "MEDDX_DATABASE_URL": None}
    meddx_cli("users", "create", "dr.house", "--role", "clinician", "--password-stdin",
              env=env, stdin="Vicodin-and-puzzles\n", check=True)
    weak = meddx_cli("users", "create", "dr.who", "--role", "clinician", "--password-stdin",
                     env=env, stdin="short\n")
    assert weak.returncode == 2 and "password: must have at least 10" in weak.stderr
    again = meddx_cli("users", "create", "dr.house", "--role", "admin", "--password-stdin",
                      env=env, stdin="Another-long-password\n")
    assert again.returncode == 2 and "already exists" in again.stderr
    role = meddx_cli("users", "create", "eve", "--role", "superuser", "--password-stdin",
                     env=env, stdin="Another-long-password\n")
    assert role.returncode == 2 and "must be one of clinician, researcher, admin" in role.stderr
    engine = create_engine(f"sqlite:///{tmp_path / 'workstation.db'}")
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT username, role, password_hash FROM users")).all()
    engine.dispose()
    assert [(r[0], r[1]) for r in rows] == [("dr.house", "clinician")]
    assert rows[0][2].startswith("$argon2id$")


def test_serve_refuses_to_start_without_a_key(tmp_path):
    env = {"MEDDX_WORKSTATION_DIR": str(tmp_path), "MEDDX_SECRET_KEY": None,
           "MEDDX_SECRET_KEY_FILE": None, "MEDDX_DEMO": None, "MEDDX_DATABASE_URL": None}
    result = meddx_cli("serve", "--port", "1", env=env)
    assert result.returncode == 2
    assert "MEDDX_SECRET_KEY" in result.stderr and "Traceback" not in result.stderr


def test_demo_users_only_in_demo_mode(tmp_path):
    import pytest

    with pytest.raises(ValueError, match="demo mode"):
        ensure_demo_users(Settings(data_root=tmp_path))
    settings = Settings(data_root=tmp_path, demo=True)
    first = ensure_demo_users(settings)
    assert set(first) == {"clinician", "researcher", "admin"}
    second = ensure_demo_users(settings)
    assert first["admin"] != second["admin"], "fresh passwords at every demo start"
    from meddx.workstation.db.session import make_engine, make_sessionmaker

    engine = make_engine(settings.db_url)
    with make_sessionmaker(engine)() as session:
        assert authenticate(session, "admin", second["admin"]) is not None
        assert authenticate(session, "admin", first["admin"]) is None
    engine.dispose()


def test_demo_serves_the_demo_bundles_with_printed_credentials(tmp_path, ws_bundle):
    """What `make demo` ends with: the server up on SQLite, URL and working passwords printed."""
    import re
    import shutil
    import subprocess
    import sys
    import time

    import httpx

    from tests.workstation.conftest import free_port

    out = tmp_path / "demo"
    shutil.copytree(ws_bundle, out / "blobs28")
    port = free_port()
    code = ("from pathlib import Path; from meddx.workstation.demo import serve_demo;"
            f"serve_demo(Path({str(out)!r}), port={port},"
            " print_fn=lambda *a: print(*a, flush=True))")
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Ctrl-C" in line:
                break
        text_out = "".join(lines)
        assert f"http://127.0.0.1:{port}/" in text_out, text_out
        passwords = dict(re.findall(r"user (\w+)\s+password (\w+)", text_out))
        assert set(passwords) == {"clinician", "researcher", "admin"}
        url = f"http://127.0.0.1:{port}"
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{url}/api/health", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.3)
        answer = httpx.post(f"{url}/api/auth/token", timeout=30,
                            data={"username": "admin", "password": passwords["admin"]})
        assert answer.status_code == 200, answer.text
        token = answer.json()["access_token"]
        models = httpx.get(f"{url}/api/models", headers={"Authorization": f"Bearer {token}"},
                           timeout=30).json()
        assert [m["name"] for m in models] == ["blobs28"]
        assert (out / "workstation" / "workstation.db").exists()
        assert (out / "workstation" / "secret.key").stat().st_mode & 0o077 == 0
    finally:
        process.terminate()
        process.wait(timeout=60)
