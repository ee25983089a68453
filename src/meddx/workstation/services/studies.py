"""Studies: upload (files + patient + first prediction, one transaction), worklist, detail."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import Select, desc, or_, select
from sqlalchemy.orm import Session, selectinload

from meddx.errors import BundleError, InputFileError, MeddxError
from meddx.safeguards import audit
from meddx.safeguards.encryption import FieldCipher
from meddx.workstation.core.config import Settings
from meddx.workstation.db.models import (
    ModelVersion,
    Patient,
    Prediction,
    Study,
    StudyFile,
    User,
    utcnow,
)
from meddx.workstation.db.session import insert_rows
from meddx.workstation.services import patients, registry, storage
from meddx.workstation.services.text import clean_text

log = logging.getLogger(__name__)

SORTS = ("newest", "oldest", "disagreement", "uncertainty")


@dataclass
class Upload:
    """One uploaded file: its client-side name and a readable stream."""

    name: str
    stream: BinaryIO


@dataclass
class NewStudy:
    files: list[Upload]
    model_id: int | None = None
    description: str = ""
    mrn: str = ""
    patient_name: str = ""
    birth_date: str = ""
    explain: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def primary_file(files: list, model: ModelVersion):
    """The file the model reads (of StudyFile rows, or of just stored uploads)."""
    accepted = registry.task_inputs(model.task)
    # A WFDB record is read through its header, which names the signal files beside it.
    for preferred in (".hea", *accepted):
        for item in files:
            if registry.suffix_of(item.original_name) == preferred:
                return item
    return files[0]


def create_study(session: Session, settings: Settings, cipher: FieldCipher,
                 cache: registry.PredictorCache, user: User, new: NewStudy,
                 client: str = "") -> Study:
    """Store the files, the patient and the study, and run the model: all or nothing.

    Commits the session's transaction; on any error before the commit is done, the stored files
    are removed and nothing is left in the database (the caller's session rolls back).

    Returns:
        The study as written, with its patient, files and prediction: transient objects, built
        from the values written rather than loaded back.

    Raises:
        UploadError subclasses (4xx): bad name, type, size, content or text field.
    """
    if not new.files:
        raise storage.UploadError("files: no file uploaded")
    if len(new.files) > 16:
        raise storage.UploadError("files: at most 16 files per study")
    description = clean_text(new.description, "description", 500)
    mrn = clean_text(new.mrn, "mrn", 64)
    name = clean_text(new.patient_name, "patient_name", 200)
    birth_date = clean_text(new.birth_date, "birth_date", 10)
    if birth_date and not _is_date(birth_date):
        raise storage.UploadError("birth_date: use YYYY-MM-DD")
    for upload in new.files:
        storage.check_filename(upload.name)
    suffixes = [registry.suffix_of(upload.name) for upload in new.files]
    model = registry.model_for_upload(session, suffixes[0], new.model_id)
    if model is None and new.model_id is not None:
        raise storage.UploadError(f"model_id: no model {new.model_id}")
    if model is None or not any(s in registry.task_inputs(model.task) for s in suffixes):
        offered = ", ".join(sorted(registry.accepted_suffixes(session))) or "nothing"
        what = suffixes[0] or "files without a suffix"
        raise storage.UnsupportedFileTypeError(
            f"{new.files[0].name}: no registered model takes {what}; accepted: {offered}")
    folder = storage.new_study_dir(settings.storage_dir)
    try:
        stored = [storage.save_upload(u.stream, u.name, folder, settings.max_upload_bytes)
                  for u in new.files]
        if sum(s.size_bytes for s in stored) > settings.max_upload_bytes:
            raise storage.UploadTooLargeError(
                f"files: together larger than the upload limit of {settings.max_upload_mb} MB")
        # The model runs before the first write: on SQLite a write transaction holds the
        # database's only write lock until it commits, and every other upload, review and
        # audited view would wait for the prediction too (the p95 tail under load).
        primary = primary_file(stored, model)
        run = predict(settings, cache, model, primary.path, primary.original_name, 1,
                      new.explain)
        # Written with Core INSERTs (no unit-of-work flush, nothing loaded into the session),
        # back to back: the write lock is taken at the first INSERT and held until the commit.
        kind = registry.task_kind(model.task, suffixes[0])
        values = prediction_values(settings, run)
        patient_id, pseudonym = patients.find_or_insert(session, cipher, mrn, name, birth_date)
        study = Study(patient_id=patient_id, kind=kind, status="predicted",
                      description=description, uploaded_by_id=user.id, created_at=utcnow(),
                      latest_decision=values["decision"],
                      latest_uncertainty=values["uncertainty"], disagreements=0)
        insert_rows(session, study)
        files = [StudyFile(study_id=study.id, original_name=item.original_name,
                           stored_path=str(item.path.relative_to(settings.storage_dir)),
                           media_type=item.media_type, size_bytes=item.size_bytes,
                           sha256=item.sha256) for item in stored]
        insert_rows(session, *files)
        prediction = Prediction(study_id=study.id, model_id=model.id, requested_by_id=user.id,
                                created_at=utcnow(), **values)
        insert_rows(session, prediction)
        audit.write(session,
                    audit.values("study_upload", user, target_type="study", target_id=study.id,
                                 detail={"files": [s.original_name for s in stored],
                                         "bytes": sum(s.size_bytes for s in stored)},
                                 client=client),
                    _prediction_event(user, study.id, model, prediction, client))
        # The answer's copy of what was written (never added to the session): a transient
        # Patient with its pseudonym only, the files, and the prediction with its model.
        study.patient = Patient(id=patient_id, pseudonym=pseudonym)
        study.files = files
        prediction.model = model
        study.predictions = [prediction]
        session.commit()  # in this thread, before the answer: acknowledged means committed
    except BaseException:
        storage.remove_dir(folder)
        raise
    return study


def _is_date(text: str) -> bool:
    from datetime import date

    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10


@dataclass
class PredictionRun:
    """A model's answer on a stored file, not yet in the database."""

    result: dict[str, Any]
    latency_ms: float


def predict(settings: Settings, cache: registry.PredictorCache, model: ModelVersion, path: Path,
            original_name: str, number: int, explain: bool = True) -> PredictionRun:
    """Run ``model`` on a stored file (no database access: call it outside write transactions).

    Raises:
        CorruptFileError: the model cannot read the file.
    """
    explain_to = path.parent / "explanations" / f"prediction-{number}-{model.version}.png"
    start = time.perf_counter()
    try:
        result = cache.predict_file(model, path, explain_to if explain else None,
                                    explain_to.parent)
    except InputFileError as error:
        raise storage.CorruptFileError(f"{original_name}: {error.problem}") from error
    except BundleError:
        raise
    except MeddxError as error:
        raise storage.CorruptFileError(f"{original_name}: {error}") from error
    except (ValueError, RuntimeError, OSError) as error:
        # Readers and networks raise these for inputs of the wrong shape or broken content.
        log.warning("prediction failed on %s: %s", path, error)
        raise storage.CorruptFileError(
            f"{original_name}: the model cannot use this file ({error})") from error
    return PredictionRun(result, round((time.perf_counter() - start) * 1000, 2))


def prediction_values(settings: Settings, run: PredictionRun) -> dict[str, Any]:
    """The prediction columns of a run (outputs, decision, artifacts...), without the keys."""
    artifacts: dict[str, str] = {}
    outputs = _extract_artifacts(run.result, settings.storage_dir.resolve(), artifacts)
    outputs.pop("file", None)
    artifacts.pop("file", None)
    # Multi-record predictors (tables) answer per record; the first one heads the worklist.
    headline = outputs if "decision" in outputs else (outputs.get("predictions") or [{}])[0]
    decision = str(headline.get("decision", ""))
    probabilities = headline.get("probabilities") or {}
    return {"outputs": outputs, "decision": decision,
            "probability": probabilities.get(decision),
            "uncertainty": headline.get("uncertainty"), "explanation": artifacts,
            "latency_ms": run.latency_ms}


def new_prediction(settings: Settings, user: User, study: Study, model: ModelVersion,
                   run: PredictionRun) -> Prediction:
    """The prediction row of a run, attached to ``study`` (written by the caller's flush)."""
    prediction = Prediction(study=study, model=model, requested_by_id=user.id,
                            **prediction_values(settings, run))
    study.status = "predicted" if study.status in ("new", "failed") else study.status
    study.latest_decision = prediction.decision
    study.latest_uncertainty = prediction.uncertainty
    return prediction


def _prediction_event(user: User, study_id: int, model: ModelVersion, prediction: Prediction,
                      client: str) -> dict[str, Any]:
    return audit.values("prediction", user, target_type="study", target_id=study_id,
                        detail={"model": f"{model.name}@{model.version}",
                                "decision": prediction.decision,
                                "prediction_id": prediction.id}, client=client)


def audit_prediction(session: Session, user: User, study: Study, model: ModelVersion,
                     prediction: Prediction, client: str = "") -> None:
    audit.write(session, _prediction_event(user, study.id, model, prediction, client))


def run_prediction(session: Session, settings: Settings, cache: registry.PredictorCache,
                   user: User, study: Study, model: ModelVersion, explain: bool = True,
                   client: str = "") -> Prediction:
    """Run ``model`` on the study's primary file and store the prediction (caller commits).

    Raises:
        CorruptFileError: the model cannot read the file.
    """
    files = list(study.files)
    if not files:
        raise storage.UploadError(f"study {study.id}: has no files")
    primary = primary_file(files, model)
    run = predict(settings, cache, model, settings.storage_dir / primary.stored_path,
                  primary.original_name, len(study.predictions) + 1, explain)
    prediction = new_prediction(settings, user, study, model, run)
    session.add(prediction)
    session.flush()
    audit_prediction(session, user, study, model, prediction, client)
    return prediction


def _extract_artifacts(value: Any, storage: Path, artifacts: dict[str, str],
                       key: str = "") -> Any:
    """A copy of a predictor's output with every file it wrote replaced by an artifact key.

    Paths are stored relative to the storage folder (``artifacts[key]``); the outputs keep
    ``"artifact:<key>"`` so that server paths never reach the browser.
    """
    if isinstance(value, dict):
        return {k: _extract_artifacts(v, storage, artifacts, f"{key}.{k}" if key else str(k))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_extract_artifacts(v, storage, artifacts, f"{key}.{i}")
                for i, v in enumerate(value)]
    if isinstance(value, str) and value.startswith("/"):
        path = Path(value).resolve()
        if path.is_file() and path.is_relative_to(storage):
            artifacts[key] = str(path.relative_to(storage))
            return f"artifact:{key}"
    return value


def worklist_query(status: str | None = None, kind: str | None = None,
                   decision: str | None = None, query: str | None = None,
                   sort: str = "newest") -> Select:
    statement = select(Study).options(selectinload(Study.patient))
    if status:
        statement = statement.where(Study.status == status)
    if kind:
        statement = statement.where(Study.kind == kind)
    if decision:
        statement = statement.where(Study.latest_decision == decision)
    if query:
        pattern = f"%{query.strip()}%"
        statement = statement.join(Patient, isouter=True).where(
            or_(Patient.pseudonym.ilike(pattern), Study.description.ilike(pattern)))
    order = {
        "newest": (desc(Study.created_at), desc(Study.id)),
        "oldest": (Study.created_at, Study.id),
        "disagreement": (desc(Study.disagreements), desc(Study.created_at), desc(Study.id)),
        "uncertainty": (Study.latest_uncertainty.is_(None), desc(Study.latest_uncertainty),
                        desc(Study.id)),
    }[sort]
    return statement.order_by(*order)


def worklist(session: Session, *, status: str | None = None, kind: str | None = None,
             decision: str | None = None, query: str | None = None, sort: str = "newest",
             limit: int = 50, offset: int = 0) -> list[Study]:
    """Studies for the worklist, filtered and sorted (see :data:`SORTS`)."""
    statement = worklist_query(status, kind, decision, query, sort).limit(limit).offset(offset)
    return list(session.scalars(statement))


def get_study(session: Session, study_id: int) -> Study | None:
    return session.scalar(select(Study).where(Study.id == study_id).options(
        selectinload(Study.files), selectinload(Study.patient),
        selectinload(Study.predictions).selectinload(Prediction.model)))


def get_prediction(session: Session, prediction_id: int) -> Prediction | None:
    return session.get(Prediction, prediction_id)
