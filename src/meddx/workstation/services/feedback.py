"""Clinician feedback on findings, and its export as a training dataset."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, desc, func, select, update
from sqlalchemy.orm import Session, selectinload

from meddx.errors import ConfigError, MeddxError
from meddx.fileio import staged_folder
from meddx.safeguards import audit
from meddx.workstation.db.models import (
    Feedback,
    ModelVersion,
    Prediction,
    Study,
    User,
    utcnow,
)
from meddx.workstation.db.session import insert_rows
from meddx.workstation.services import feedback_export
from meddx.workstation.services.storage import UploadError
from meddx.workstation.services.text import TextFieldError, clean_text

CASES = "cases.json"


# The review path's statements, built once (building one costs about as much as running it).
_STUDIES, _PREDICTIONS, _MODELS = Study.__table__, Prediction.__table__, ModelVersion.__table__
# The study, and the prediction (of this study) with its model's classes: all a review checks.
_REVIEWED = (
    select(_STUDIES.c.id, _PREDICTIONS.c.id.label("prediction"), _PREDICTIONS.c.decision,
           _MODELS.c.class_names)
    .select_from(_STUDIES)
    .outerjoin(_PREDICTIONS, (_PREDICTIONS.c.id == bindparam("prediction"))
               & (_PREDICTIONS.c.study_id == _STUDIES.c.id))
    .outerjoin(_MODELS, _MODELS.c.id == _PREDICTIONS.c.model_id)
    .where(_STUDIES.c.id == bindparam("study")))
_AGREED = (update(_STUDIES).where(_STUDIES.c.id == bindparam("study"))
           .values(status="reviewed"))
_DISAGREED = (update(_STUDIES).where(_STUDIES.c.id == bindparam("study"))
              .values(status="reviewed", disagreements=_STUDIES.c.disagreements + 1))


class NotFoundError(MeddxError):
    """A review of a study that does not exist (404)."""

    status_code = 404


def add_feedback(session: Session, user: User, study_id: int, prediction_id: int, agrees: bool,
                 corrected_label: str | None, comment: str, client: str = "") -> Feedback:
    """Store a review of one prediction of a study and update the study's worklist columns.

    Written by Core statements in the session's transaction (the caller commits); nothing is
    loaded into the session.

    Returns:
        The review as written (a transient object with its reviewer, not in the session).

    Raises:
        NotFoundError (404): no study ``study_id``.
        TextFieldError / UploadError (4xx): wrong prediction, label outside the model's classes,
            a disagreement without a corrected label, or a bad comment.
    """
    # One read for all the checks: the study, and the prediction (of this study) with its
    # model's classes, which check the corrected label.
    row = session.execute(_REVIEWED, {"study": study_id, "prediction": prediction_id}).first()
    if row is None:
        raise NotFoundError(f"no study {study_id}")
    if row.prediction is None:
        raise UploadError(f"prediction_id: {prediction_id} is not a prediction of study "
                          f"{study_id}")
    classes = list(row.class_names)
    label = clean_text(corrected_label, "corrected_label", 200) or None
    if label is not None and label not in classes:
        raise TextFieldError(f"corrected_label: {label!r} is not one of the model's classes "
                             f"{classes}")
    if not agrees and label is None:
        raise TextFieldError("corrected_label: required when you disagree with the finding")
    if agrees and label is not None and label != row.decision:
        raise TextFieldError(f"corrected_label: {label!r} contradicts agreeing with "
                             f"{row.decision!r}")
    entry = Feedback(prediction_id=prediction_id, study_id=study_id, user_id=user.id,
                     agrees=agrees, corrected_label=label,
                     comment=clean_text(comment, "comment", 2000, multiline=True),
                     created_at=utcnow())
    # Counted in SQL (disagreements + 1) rather than read-modify-write: two reviews of one
    # study committing at the same time both count, on SQLite and on PostgreSQL.
    session.execute(_AGREED if agrees else _DISAGREED, {"study": study_id})
    insert_rows(session, entry)
    entry.user = user
    audit.write(session, audit.values(
        "feedback", user, target_type="study", target_id=study_id,
        detail={"prediction_id": prediction_id, "agrees": agrees, "label": label},
        client=client))
    return entry


def list_feedback(session: Session, study_id: int | None = None,
                  limit: int = 200) -> list[Feedback]:
    query = select(Feedback).options(selectinload(Feedback.user)).order_by(desc(Feedback.id))
    if study_id is not None:
        query = query.where(Feedback.study_id == study_id)
    return list(session.scalars(query.limit(limit)))


def _latest_reviews(session: Session, model_name: str | None) -> list[Feedback]:
    """The newest review of each study (older reviews were superseded)."""
    newest = (select(func.max(Feedback.id)).group_by(Feedback.study_id)).scalar_subquery()
    query = (select(Feedback).where(Feedback.id.in_(newest))
             .options(selectinload(Feedback.prediction).selectinload(Prediction.model),
                      selectinload(Feedback.user)).order_by(Feedback.study_id))
    reviews = list(session.scalars(query))
    if model_name:
        reviews = [r for r in reviews if r.prediction.model.name == model_name]
    return reviews


def export_dataset(session: Session, storage_dir: Path, out: Path, *,
                   corrected_only: bool = False, model_name: str | None = None,
                   user: User | None = None) -> dict[str, Any]:
    """Write reviewed cases as a dataset ``meddx train`` reads, plus ``cases.json``
    (pseudonymous provenance, the cases left out and what the labels mean). Written atomically.

    The format follows the kind of study (see :mod:`.feedback_export`): a manifest (path,label)
    beside the files for images, a UCR file for series, a WFDB folder for ECG records, a table
    of the reviewed records (model's columns + target) for clinical records. The label
    is the clinician's: the corrected label on disagreement, the confirmed decision on agreement
    (``corrected_only`` keeps only the disagreements).

    Returns:
        ``dataset`` (what to give ``meddx train``), ``format``, ``n``, ``corrected``,
        ``skipped``, ``class_names``, ``label_note``, ``notes`` (what was not exported and why).

    Raises:
        ConfigError: nothing to export, reviews of models with different classes or of
            different kinds of study mixed, or cases the format cannot hold.
    """
    reviews = [r for r in _latest_reviews(session, model_name)
               if not (corrected_only and r.agrees)]
    if not reviews:
        raise ConfigError("feedback export: no reviewed cases"
                          + (f" for model {model_name!r}" if model_name else ""))
    class_sets = {tuple(r.prediction.model.class_names) for r in reviews}
    if len(class_sets) > 1:
        raise ConfigError("feedback export: the reviews are of models with different classes "
                          f"({sorted(class_sets)}); choose one with --model")
    kinds = {session.get(Study, r.study_id).kind for r in reviews}
    if len(kinds) > 1:
        raise ConfigError(f"feedback export: the reviews are of different kinds of study "
                          f"({sorted(kinds)}), which train as different datasets; choose one "
                          "model with --model")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with staged_folder(out) as staging:
        export = feedback_export.exporter(kinds.pop())(session, storage_dir, staging, reviews)
        exported = {case["study_id"] for case in export.cases}
        summary = {"exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
                   "format": export.format, "labels": export.label_note,
                   "class_names": list(next(iter(class_sets))), "n": len(export.cases),
                   "corrected": sum(not r.agrees for r in reviews if r.study_id in exported),
                   "notes": export.notes, "cases": export.cases, "skipped": export.skipped}
        (staging / CASES).write_text(json.dumps(summary, indent=2))
        dataset = out / export.dataset.relative_to(staging)
    audit.record(session, "feedback_export", user, username="cli" if user is None else "",
                 target_type="dataset", target_id=out.name,
                 detail={"n": summary["n"], "out": str(out), "format": export.format})
    return {"dataset": str(dataset), "format": export.format, "n": summary["n"],
            "corrected": summary["corrected"], "skipped": len(export.skipped),
            "class_names": summary["class_names"], "label_note": export.label_note,
            "notes": export.notes}
