"""Explanation artifacts of predictions: the raw heat map (for overlays) and the figure."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response, status
from fastapi.responses import FileResponse

from meddx.workstation.api.deps import Reader, SessionDep, SettingsDep
from meddx.workstation.services import rendering, studies

router = APIRouter(prefix="/api/predictions", tags=["predictions"])


def _artifact(session, settings, prediction_id: int, key: str):
    prediction = studies.get_prediction(session, prediction_id)
    relative = (prediction.explanation or {}).get(key) if prediction else None
    if relative is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            f"prediction {prediction_id} has no artifact {key!r}")
    return settings.storage_dir / relative


@router.get("/{prediction_id}/heatmap/{index}.png", response_class=Response,
            responses={200: {"content": {"image/png": {}}}})
def heat_map(prediction_id: int, index: int, user: Reader, session: SessionDep,
             settings: SettingsDep) -> Response:
    """Relevance in [0, 1] as 8-bit grey (the viewer colours it and sets the opacity)."""
    png = rendering.heat_map_png(_artifact(session, settings, prediction_id, "explanation_map"),
                                 index)
    if png is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no heat-map slice {index}")
    return Response(png, media_type="image/png")


@router.get("/{prediction_id}/explanation.png", response_class=FileResponse,
            responses={200: {"content": {"image/png": {}}}})
def explanation_figure(prediction_id: int, user: Reader, session: SessionDep,
                       settings: SettingsDep) -> FileResponse:
    """The explanation figure written by the predictor (image, heat map, colour bar)."""
    return FileResponse(_artifact(session, settings, prediction_id, "explanation"),
                        media_type="image/png")


@router.get("/{prediction_id}/artifacts/{key}.png", response_class=FileResponse,
            responses={200: {"content": {"image/png": {}}}})
def artifact_png(prediction_id: int, key: str, user: Reader, session: SessionDep,
                 settings: SettingsDep) -> FileResponse:
    """A PNG the predictor wrote (``"artifact:<key>"`` in the outputs), e.g. a SHAP plot."""
    path = _artifact(session, settings, prediction_id, key)
    if path.suffix != ".png":
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"artifact {key!r} is not a PNG")
    return FileResponse(path, media_type="image/png")


@router.get("/{prediction_id}/labels/{key}/{index}.png", response_class=Response,
            responses={200: {"content": {"image/png": {}}}})
def label_slice(prediction_id: int, key: str, index: int, user: Reader, session: SessionDep,
                settings: SettingsDep) -> Response:
    """Slice ``index`` of a label-map artifact (segmentation mask), labels as grey values."""
    png = rendering.label_slice_png(_artifact(session, settings, prediction_id, key), index)
    if png is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no slice {index} of {key!r}")
    return Response(png, media_type="image/png")
