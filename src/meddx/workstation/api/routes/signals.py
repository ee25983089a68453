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
    """Filtered samples of one lead of the study's WFDB record (default: the first lead)."""
    study = studies.get_study(session, study_id)
    if study is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no study {study_id}")
    header = next((f for f in study.files if registry.suffix_of(f.original_name) == ".hea"),
                  None)
    if header is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            f"study {study_id} has no WFDB record (.hea) to show")
    try:
        return signals.signal_window(settings.storage_dir / header.stored_path, start, seconds,
                                     lead)
    except MeddxError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(error)) from error
