"""The model registry: versions, metrics, model cards and report plots."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import FileResponse

from meddx.decision.bundle import REPORT_DIR
from meddx.workstation.api.deps import Reader, SessionDep
from meddx.workstation.api.schemas import ModelDetail, ModelSummary
from meddx.workstation.db.models import ModelVersion
from meddx.workstation.services import registry

router = APIRouter(prefix="/api/models", tags=["models"])

_PLOT = re.compile(r"^[A-Za-z0-9_-]+\.png$")


def _report_files(model: ModelVersion) -> list[str]:
    folder = Path(model.bundle_path) / REPORT_DIR
    return sorted(p.name for p in folder.glob("*.png")) if folder.is_dir() else []


def _get(session, model_id: int) -> ModelVersion:
    model = session.get(ModelVersion, model_id)
    if model is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no model {model_id}")
    return model


@router.get("", response_model=list[ModelSummary])
def list_models(user: Reader, session: SessionDep) -> list[ModelSummary]:
    return [ModelSummary.model_validate(m) for m in registry.list_models(session)]


@router.get("/{model_id}", response_model=ModelDetail)
def get_model(model_id: int, user: Reader, session: SessionDep) -> ModelDetail:
    model = _get(session, model_id)
    return ModelDetail(**ModelSummary.model_validate(model).model_dump(), metrics=model.metrics,
                       model_card=model.model_card, report_files=_report_files(model))


@router.get("/{model_id}/report/{name}", response_class=FileResponse,
            responses={200: {"content": {"image/png": {}}}})
def report_plot(model_id: int, name: str, user: Reader, session: SessionDep) -> FileResponse:
    """A plot of the model's evaluation report (only names listed in ``report_files``)."""
    model = _get(session, model_id)
    if not _PLOT.match(name) or name not in _report_files(model):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"model {model_id} has no plot {name!r}")
    return FileResponse(Path(model.bundle_path) / REPORT_DIR / name, media_type="image/png")
