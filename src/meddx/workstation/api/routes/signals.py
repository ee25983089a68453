"""ECG signals of studies, a window at a time, for the strip viewer."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status

from meddx.errors import MeddxError
from meddx.workstation.api.deps import Reader, SessionDep, SettingsDep
from meddx.workstation.services import registry, signals, studies

router = APIRouter(prefix="/api/studies", tags=["studies"])


@router.get("/{study_id}/signal")
def signal_window(study_id: int, user: Reader, session: SessionDep, settings: SettingsDep,
                  start: Annotated[float, Query(ge=0, description="seconds from the start")] = 0,
                  seconds: Annotated[float, Query(gt=0, le=signals.MAX_WINDOW_S)] = 10,
                  lead: Annotated[str, Query(max_length=20)] = "") -> dict[str, Any]:
    """Filtered samples of one lead of the study's WFDB record (default: the first lead), or
    the whole series of a series study (``kind: "series"``; ``start``/``seconds`` do not apply)."""
    study = studies.get_study(session, study_id)
    if study is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no study {study_id}")
    if study.kind == "series":
        return _series(study, settings)
    header = next((f for f in study.files if registry.suffix_of(f.original_name) == ".hea"),
                  None)
    if header is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            f"study {study_id} has no WFDB record (.hea) or series to show")
    try:
        return signals.signal_window(settings.storage_dir / header.stored_path, start, seconds,
                                     lead)
    except MeddxError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(error)) from error


def _series(study, settings) -> dict[str, Any]:
    """The series of the study's latest prediction, at the length its model reads."""
    prediction = study.predictions[-1] if study.predictions else None
    length = (prediction.outputs or {}).get("length") if prediction is not None else None
    if not study.files or not length:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            f"study {study.id} has no analysed series to show")
    try:
        primary = studies.primary_file(list(study.files), prediction.model)
        return signals.series_values(settings.storage_dir / primary.stored_path, int(length))
    except MeddxError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(error)) from error
