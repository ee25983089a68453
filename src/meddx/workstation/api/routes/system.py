"""Health (public) and what this server accepts (signed-in users)."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from meddx import __version__
from meddx.workstation.api.deps import Reader, SessionDep, SettingsDep
from meddx.workstation.api.schemas import ServerInfo
from meddx.workstation.services import registry

router = APIRouter(prefix="/api", tags=["system"])


@router.get("/health")
def health(session: SessionDep) -> dict[str, str]:
    """Liveness and database reachability (no sign-in: for load balancers and scripts)."""
    session.execute(text("SELECT 1"))
    return {"status": "ok"}


@router.get("/info", response_model=ServerInfo)
def info(user: Reader, session: SessionDep, settings: SettingsDep) -> ServerInfo:
    return ServerInfo(max_upload_mb=settings.max_upload_mb,
                      accepted=registry.accepted_suffixes(session), demo=settings.demo,
                      version=__version__)
