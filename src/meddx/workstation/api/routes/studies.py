"""Studies: the worklist, upload (+ first prediction), detail, images, re-runs, identities."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, HTTPException, Query, Response, UploadFile, status

from meddx.errors import MeddxError
from meddx.safeguards import audit
from meddx.workstation.api.deps import (
    CipherDep,
    ClientDep,
    Clinician,
    PredictorsDep,
    Reader,
    SessionDep,
    SettingsDep,
)
from meddx.workstation.api.responses import json_response
from meddx.workstation.api.schemas import (
    FilePublic,
    ModelSummary,
    PatientIdentity,
    PredictionPublic,
    StudyDetail,
    StudySummary,
)
from meddx.workstation.core.config import Settings
from meddx.workstation.db.models import Prediction, Study
from meddx.workstation.services import patients, registry, rendering, studies

router = APIRouter(prefix="/api/studies", tags=["studies"])

Sort = Literal["newest", "oldest", "disagreement", "uncertainty"]


def summary(study: Study) -> StudySummary:
    return StudySummary(id=study.id, patient=study.patient.pseudonym if study.patient else None,
                        kind=study.kind, status=study.status, description=study.description,
                        created_at=study.created_at, latest_decision=study.latest_decision,
                        latest_uncertainty=study.latest_uncertainty,
                        disagreements=study.disagreements)


def prediction_public(prediction: Prediction) -> PredictionPublic:
    explanation = prediction.explanation or {}
    return PredictionPublic(
        id=prediction.id, model=ModelSummary.model_validate(prediction.model),
        outputs=prediction.outputs, decision=prediction.decision,
        probability=prediction.probability, uncertainty=prediction.uncertainty,
        has_heat_map="explanation_map" in explanation,
        has_explanation_figure="explanation" in explanation, artifacts=sorted(explanation),
        latency_ms=prediction.latency_ms,
        created_at=prediction.created_at)


def _image_file(study: Study, settings: Settings) -> Path | None:
    for item in study.files:
        if registry.suffix_of(item.original_name) in rendering_suffixes():
            return settings.storage_dir / item.stored_path
    return None


def rendering_suffixes() -> tuple[str, ...]:
    return registry.TASK_INPUTS["image-classification"]


def _get(session, study_id: int) -> Study:
    study = studies.get_study(session, study_id)
    if study is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no study {study_id}")
    return study


@router.get("", response_model=list[StudySummary])
def worklist(user: Reader, session: SessionDep,
             status_filter: Annotated[str | None, Query(alias="status", max_length=20)] = None,
             kind: Annotated[str | None, Query(max_length=20)] = None,
             decision: Annotated[str | None, Query(max_length=200)] = None,
             q: Annotated[str | None, Query(max_length=100)] = None,
             sort: Sort = "newest",
             limit: Annotated[int, Query(ge=1, le=500)] = 50,
             offset: Annotated[int, Query(ge=0)] = 0) -> list[StudySummary]:
    """Studies, newest first by default; sort by disagreement or by model uncertainty."""
    return [summary(s) for s in studies.worklist(session, status=status_filter, kind=kind,
                                                   decision=decision, query=q, sort=sort,
                                                   limit=limit, offset=offset)]


@router.post("", response_model=StudyDetail, status_code=status.HTTP_201_CREATED)
def upload(user: Clinician, session: SessionDep, settings: SettingsDep, cipher: CipherDep,
           predictors: PredictorsDep, client: ClientDep,
           files: Annotated[list[UploadFile], File(description="The study's file(s)")],
           model_id: Annotated[int | None, Form()] = None,
           description: Annotated[str, Form(max_length=2000)] = "",
           mrn: Annotated[str, Form(max_length=200)] = "",
           patient_name: Annotated[str, Form(max_length=400)] = "",
           birth_date: Annotated[str, Form(max_length=40)] = "",
           explain: Annotated[bool, Form()] = True) -> Response:
    """Upload a study and run the matching model on it: all stored, or nothing (4xx)."""
    new = studies.NewStudy(files=[studies.Upload(f.filename or "", f.file) for f in files],
                           model_id=model_id, description=description, mrn=mrn,
                           patient_name=patient_name, birth_date=birth_date,
                           explain=explain and settings.explain)
    # Committed by create_study in this thread (see api/deps.py), or nothing is kept.
    study = studies.create_study(session, settings, cipher, predictors, user, new, client)
    return json_response(detail(study, settings), status.HTTP_201_CREATED)


def detail(study: Study, settings: Settings) -> StudyDetail:
    viewer = None
    image = _image_file(study, settings)
    if image is not None:
        try:
            viewer = rendering.describe(image)
        except (MeddxError, ValueError, OSError):
            viewer = None
    return StudyDetail(**summary(study).model_dump(),
                       files=[FilePublic.model_validate(f) for f in study.files],
                       predictions=[prediction_public(p) for p in study.predictions],
                       viewer=viewer)


@router.get("/{study_id}", response_model=StudyDetail)
def get_study(study_id: int, user: Reader, session: SessionDep, settings: SettingsDep,
              client: ClientDep) -> Response:
    study = _get(session, study_id)
    audit.record(session, "study_view", user, target_type="study", target_id=study.id,
                 client=client)
    session.commit()
    return json_response(detail(study, settings))


@router.get("/{study_id}/patient", response_model=PatientIdentity)
def patient_identity(study_id: int, user: Clinician, session: SessionDep, cipher: CipherDep,
                     client: ClientDep) -> PatientIdentity:
    """The decrypted identifying fields (clinicians and admins; every view is audited)."""
    study = _get(session, study_id)
    if study.patient is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"study {study_id} has no patient")
    audit.record(session, "patient_view", user, target_type="patient",
                 target_id=study.patient.pseudonym, client=client)
    return PatientIdentity(pseudonym=study.patient.pseudonym,
                           **patients.identifying_fields(study.patient, cipher))


@router.get("/{study_id}/image/{index}.png", response_class=Response,
            responses={200: {"content": {"image/png": {}}}})
def image_slice(study_id: int, index: int, user: Reader, session: SessionDep,
                settings: SettingsDep) -> Response:
    """Slice ``index`` of the study's image, 8-bit between the image's min and max."""
    study = _get(session, study_id)
    image = _image_file(study, settings)
    png = rendering.slice_png(image, index) if image is not None else None
    if png is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"study {study_id} has no slice {index}")
    return Response(png, media_type="image/png")


@router.post("/{study_id}/predictions", response_model=PredictionPublic,
             status_code=status.HTTP_201_CREATED)
def rerun(study_id: int, user: Clinician, session: SessionDep, settings: SettingsDep,
          predictors: PredictorsDep, client: ClientDep,
          model_id: Annotated[int | None, Query()] = None) -> PredictionPublic:
    """Run a model on the study again: by default the one used before if still active, else
    the newest active model of the study's kind (409 when none fits)."""
    study = _get(session, study_id)
    model = registry.model_for_study(session, study, model_id)
    prediction = studies.run_prediction(session, settings, predictors, user, study, model,
                                        settings.explain, client)
    session.commit()
    return prediction_public(prediction)
