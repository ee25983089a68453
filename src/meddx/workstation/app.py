"""The application factory: ``create_app(settings)`` -> a ready FastAPI app.

Building the app migrates the database to the newest schema, registers the configured bundles and
loads nothing else; routers, the static UI and protective middleware are attached here, and
nothing is built at import time.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from meddx import __version__
from meddx.errors import InputFileError, MeddxError
from meddx.safeguards import audit
from meddx.workstation.api.routes import (
    audit as audit_routes,
)
from meddx.workstation.api.routes import (
    auth,
    docs,
    feedback,
    models,
    predictions,
    signals,
    studies,
    system,
    users,
)
from meddx.workstation.core.config import Settings, get_settings
from meddx.workstation.core.security import BodySizeLimitMiddleware, SecurityHeadersMiddleware
from meddx.workstation.db.session import make_engine, make_sessionmaker, transaction, upgrade
from meddx.workstation.services import registry
from meddx.workstation.services.login_limit import DatabaseLoginRateLimiter
from meddx.workstation.services.users import UserExistsError

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"


def _error_status(error: MeddxError) -> int:
    if isinstance(error, UserExistsError):
        return 409
    if isinstance(error, InputFileError):
        return 422
    return getattr(error, "status_code", 400)


def register_bundles(sessions, bundles) -> list[str]:
    """Register each bundle folder (one transaction each; a broken one is logged, not fatal)."""
    registered = []
    for path in bundles:
        try:
            with transaction(sessions) as session:
                model = registry.register_bundle(session, path)
                audit.record(session, "model_register", username="system",
                             target_type="model", target_id=f"{model.name}@{model.version}",
                             detail={"path": str(path)})
                registered.append(f"{model.name}@{model.version}")
        except MeddxError as error:
            log.error("model bundle not registered: %s", error)
    return registered


def prepare_database(settings: Settings) -> list[str]:
    """Migrate the database and register the configured bundles (once per server start).

    Returns:
        ``name@version`` of each registered bundle.
    """
    engine = make_engine(settings.db_url)
    try:
        upgrade(engine)
        return register_bundles(make_sessionmaker(engine), settings.bundles)
    finally:
        engine.dispose()


def create_app(settings: Settings | None = None, prepare: bool = True) -> FastAPI:
    """The workstation app for ``settings`` (default: from the environment).

    Args:
        prepare: migrate the database and register the bundles first; ``meddx serve
            --workers N`` does that once in the parent and builds its workers without it.

    Raises:
        ConfigError: no encryption key outside demo mode, or a bad database URL.
    """
    settings = settings or get_settings()
    cipher = settings.cipher()
    engine = make_engine(settings.db_url)
    if prepare:
        upgrade(engine)
    sessions = make_sessionmaker(engine)
    settings.storage_dir.mkdir(parents=True, exist_ok=True)

    app = FastAPI(title="meddx clinician workstation", version=__version__,
                  description="AI findings with explanations, review and feedback, audit trail.",
                  openapi_url="/api/openapi.json", docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = sessions
    app.state.cipher = cipher
    app.state.predictors = registry.PredictorCache()
    app.state.login_limiter = DatabaseLoginRateLimiter(settings.login_max_failures,
                                                       settings.login_window_s)
    app.state.registered = register_bundles(sessions, settings.bundles) if prepare else []

    @app.exception_handler(MeddxError)
    async def meddx_error(_request: Request, error: MeddxError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=_error_status(error))

    for module in (auth, users, studies, signals, predictions, feedback, models, audit_routes,
                   system, docs):
        app.include_router(module.router)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> FileResponse:
        return FileResponse(STATIC_DIR / "favicon.png", media_type="image/png")

    app.add_middleware(BodySizeLimitMiddleware, limit=settings.max_upload_bytes)
    app.add_middleware(SecurityHeadersMiddleware)
    return app
