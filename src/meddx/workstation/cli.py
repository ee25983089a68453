"""Workstation commands: ``meddx serve``, ``meddx users create``, ``meddx feedback export``.

Registered on the main ``meddx`` app by :mod:`meddx.cli.main`; heavy imports (FastAPI,
SQLAlchemy, torch) happen inside the commands so that ``meddx --help`` stays fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

out = Console()

users_app = typer.Typer(no_args_is_help=True, help="Workstation user accounts.")
feedback_app = typer.Typer(no_args_is_help=True, help="Clinician feedback.")

DataRoot = Annotated[Path | None, typer.Option(
    "--data-root", help="Workstation folder (default: $MEDDX_WORKSTATION_DIR or "
                        "runs/workstation).")]
DatabaseUrl = Annotated[str | None, typer.Option(
    "--database-url", help="SQLAlchemy URL (default: $MEDDX_DATABASE_URL, else SQLite in the "
                           "workstation folder).")]


def _settings(data_root: Path | None, database_url: str | None, **overrides):
    from meddx.workstation.core.config import settings_from_env

    return settings_from_env(data_root=data_root, database_url=database_url, **overrides)


def serve(
    bundle: Annotated[list[Path] | None, typer.Option(
        "--bundle", "-b", help="Model bundle to register (repeatable; also $MEDDX_BUNDLES).")]
        = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    data_root: DataRoot = None,
    database_url: DatabaseUrl = None,
    max_upload_mb: Annotated[float | None, typer.Option(
        help="Upload size limit in MB (default: $MEDDX_MAX_UPLOAD_MB or 50).")] = None,
    demo: Annotated[bool, typer.Option(
        "--demo", help="Demo mode: create demo users with fresh printed passwords.")] = False,
    generate_key: Annotated[bool, typer.Option(
        "--generate-key", help="Print a new MEDDX_SECRET_KEY and exit.")] = False,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
    workers: Annotated[int | None, typer.Option(
        min=1, help="Server processes (default: $MEDDX_WORKERS or 1); each loads the models "
                    "once; they share the database.")] = None,
):
    """Run the clinician workstation (web UI + API) until interrupted."""
    if generate_key:
        from meddx.safeguards.encryption import generate_key as new_key

        out.print(new_key())
        return
    from meddx.workstation.server import ensure_demo_users
    from meddx.workstation.server import serve as run_server

    overrides = {"max_upload_mb": max_upload_mb}
    if demo:
        overrides["demo"] = True
    settings = _settings(data_root, database_url, **overrides)
    if bundle:
        settings = settings.model_copy(update={"bundles": (*settings.bundles, *bundle)})
    if settings.demo:
        settings.cipher()  # creates the demo key file before anything is stored
        for username, password in ensure_demo_users(settings).items():
            out.print(f"demo user [bold]{username}[/] password [bold]{password}[/]")
    out.print(f"meddx workstation: http://{host}:{port}/  (Ctrl-C stops it)")
    run_server(settings, host=host, port=port, log_level=log_level,
               workers=workers or settings.workers)


@users_app.command("create")
def users_create(
    username: Annotated[str, typer.Argument(help="New user's name.")],
    role: Annotated[str, typer.Option(help="clinician, researcher or admin.")],
    full_name: Annotated[str, typer.Option(help="Shown in the UI.")] = "",
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Read the password from standard input (for scripts).")]
        = False,
    data_root: DataRoot = None,
    database_url: DatabaseUrl = None,
):
    """Create a workstation user (asks for the password; there is no default)."""
    from meddx.workstation.db.session import make_engine, make_sessionmaker, transaction, upgrade
    from meddx.workstation.services import users

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    settings = _settings(data_root, database_url)
    engine = make_engine(settings.db_url)
    try:
        upgrade(engine)
        with transaction(make_sessionmaker(engine)) as session:
            user = users.create_user(session, username, password, role, full_name)
            from meddx.safeguards import audit

            audit.record(session, "user_create", username="cli", target_type="user",
                         target_id=user.username, detail={"role": role})
    finally:
        engine.dispose()
    out.print(f"user {username} ({role}) created")


@feedback_app.command("export")
def feedback_export(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Dataset folder to write.")],
    corrected_only: Annotated[bool, typer.Option(
        help="Only cases where the clinician disagreed (default: every reviewed case).")]
        = False,
    model: Annotated[str | None, typer.Option(help="Only reviews of this model name.")] = None,
    data_root: DataRoot = None,
    database_url: DatabaseUrl = None,
):
    """Write reviewed cases as a dataset that `meddx train` reads: manifest.csv (path,label) for
    images, a UCR file for series, a WFDB folder for ECG records, records.csv for clinical
    records; cases.json says what the labels mean."""
    from meddx.workstation.db.session import make_engine, make_sessionmaker, transaction, upgrade
    from meddx.workstation.services.feedback import export_dataset

    settings = _settings(data_root, database_url)
    engine = make_engine(settings.db_url)
    try:
        upgrade(engine)
        with transaction(make_sessionmaker(engine)) as session:
            summary = export_dataset(session, settings.storage_dir, out_dir,
                                     corrected_only=corrected_only, model_name=model)
    finally:
        engine.dispose()
    out.print(f"{summary['n']} cases ({summary['corrected']} corrected), classes "
              f"{summary['class_names']}: {summary['dataset']} ({summary['format']})")
    if summary["skipped"]:
        out.print(f"{summary['skipped']} reviewed case(s) left out: see cases.json (skipped)")
    out.print(f"labels: {summary['label_note']}", markup=False)
    for note in summary["notes"]:
        out.print(f"note: {note}", markup=False)
    out.print(f"train on them: meddx train --dataset {summary['dataset']} --out BUNDLE")
