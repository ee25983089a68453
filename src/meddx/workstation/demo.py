"""The workstation part of ``meddx demo``: serve every demo bundle with demo accounts.

Every folder under the demo output that is a bundle (the PneumoniaMNIST model, and whatever
other tasks' demos trained beside it) is registered; the server runs on SQLite in
``<demo out>/workstation`` with demo mode on, which creates the demo users and prints their
fresh passwords.
"""

from __future__ import annotations

from pathlib import Path

from meddx.decision.bundle import METADATA_FILE


def demo_bundles(out: Path) -> list[Path]:
    """Bundle folders directly under the demo output folder."""
    return sorted(p for p in Path(out).iterdir() if (p / METADATA_FILE).is_file())


def serve_demo(out: Path, host: str = "127.0.0.1", port: int = 8000, print_fn=print) -> None:
    """Start the workstation on the demo bundles and print the URL and credentials."""
    from meddx.workstation.core.config import Settings
    from meddx.workstation.server import ensure_demo_users, serve

    bundles = demo_bundles(out)
    settings = Settings(data_root=Path(out) / "workstation", bundles=tuple(bundles), demo=True)
    settings.cipher()
    credentials = ensure_demo_users(settings)
    print_fn("")
    print_fn(f"clinician workstation: http://{host}:{port}/")
    print_fn(f"models: {', '.join(b.name for b in bundles)}")
    for username, password in credentials.items():
        print_fn(f"  user {username:<10}  password {password}")
    print_fn(f"sample image to upload: {Path(out) / 'sample-test-image.png'}")
    print_fn("Ctrl-C stops the server.")
    serve(settings, host=host, port=port)
