"""Reviews of findings: agree / disagree, corrected label, comment."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from meddx.workstation.api.deps import ClientDep, Clinician, Reader, SessionDep
from meddx.workstation.api.responses import json_response
from meddx.workstation.api.schemas import FeedbackCreate, FeedbackPublic
from meddx.workstation.db.models import Feedback
from meddx.workstation.services import feedback as feedback_service

router = APIRouter(prefix="/api", tags=["feedback"])


def public(entry: Feedback) -> FeedbackPublic:
    return FeedbackPublic(id=entry.id, study_id=entry.study_id,
                          prediction_id=entry.prediction_id, agrees=entry.agrees,
                          corrected_label=entry.corrected_label, comment=entry.comment,
                          reviewer=entry.user.username, created_at=entry.created_at)


@router.post("/studies/{study_id}/feedback", response_model=FeedbackPublic,
             status_code=status.HTTP_201_CREATED)
def submit(study_id: int, body: FeedbackCreate, user: Clinician, session: SessionDep,
           client: ClientDep) -> Response:
    """Review a finding; stored and committed before the answer is sent."""
    entry = feedback_service.add_feedback(session, user, study_id, body.prediction_id,
                                          body.agrees, body.corrected_label, body.comment, client)
    session.commit()  # in this thread, before the answer: acknowledged means committed
    return json_response(public(entry), status.HTTP_201_CREATED)


@router.get("/studies/{study_id}/feedback", response_model=list[FeedbackPublic])
def of_study(study_id: int, user: Reader, session: SessionDep) -> list[FeedbackPublic]:
    return [public(e) for e in feedback_service.list_feedback(session, study_id)]


@router.get("/feedback", response_model=list[FeedbackPublic])
def recent(user: Reader, session: SessionDep,
           limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[FeedbackPublic]:
    """The newest reviews across all studies."""
    return [public(e) for e in feedback_service.list_feedback(session, limit=limit)]
