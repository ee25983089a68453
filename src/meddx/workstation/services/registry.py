"""The model registry: bundles registered as versioned models, and their loaded predictors.

A model's version is the content hash of its bundle (weights + metadata), so re-registering an
unchanged bundle is a no-op and a retrained bundle at the same path becomes a new version.
Predictors come from :func:`meddx.decision.predictors.load_model`, loaded once per version and used
under a lock (explanations register hooks on the network, which is not safe across threads).
"""

from __future__ import annotations

import hashlib
import inspect
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from meddx.decision.bundle import METADATA_FILE, WEIGHTS_FILE, load_bundle
from meddx.decision.predictors import load_model, predictor_class
from meddx.errors import BundleError, MeddxError
from meddx.workstation.db.models import ModelVersion, Study

# Inputs each task takes, and the kind of study they make. A predictor class may declare its own
# ``input_suffixes`` / ``study_kind`` attributes, which win (new tasks need no edit here).
TASK_INPUTS: dict[str, tuple[str, ...]] = {
    "image-classification": (".png", ".jpg", ".jpeg", ".dcm", ".dicom", ".nii", ".nii.gz"),
    "image-segmentation": (".nii", ".nii.gz", ".dcm"),
    "segmentation": (".nii", ".nii.gz", ".dcm"),
    "ecg-classification": (".hea", ".dat", ".atr", ".csv"),
    "ecg": (".hea", ".dat", ".atr", ".csv"),
    "tabular-classification": (".csv",),
    "records": (".csv",),
    "text-classification": (".txt",),
    "text": (".txt",),
}
TASK_KINDS: dict[str, str] = {
    "image-classification": "image", "image-segmentation": "volume", "segmentation": "volume",
    "ecg-classification": "ecg", "ecg": "ecg", "tabular-classification": "record",
    "records": "record", "text-classification": "text", "text": "text",
}


def suffix_of(name: str) -> str:
    lower = name.lower()
    return ".nii.gz" if lower.endswith(".nii.gz") else Path(lower).suffix


def task_inputs(task: str) -> tuple[str, ...]:
    predictor = predictor_class(task)
    return tuple(getattr(predictor, "input_suffixes", None) or TASK_INPUTS.get(task, ()))


def task_kind(task: str, suffix: str) -> str:
    predictor = predictor_class(task)
    kind = getattr(predictor, "study_kind", None) or TASK_KINDS.get(task, "image")
    if kind == "image" and suffix in (".nii", ".nii.gz"):
        return "volume"
    return kind


def bundle_version(path: Path) -> str:
    """Short content hash of the bundle's metadata and weights."""
    digest = hashlib.sha256()
    for name in (METADATA_FILE, WEIGHTS_FILE):
        file = path / name
        if file.exists():
            with file.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()[:12]


def register_bundle(session: Session, path: str | Path) -> ModelVersion:
    """Register a bundle folder (idempotent); older versions of the same name become inactive.

    Raises:
        BundleError: not a readable bundle.
    """
    bundle = load_bundle(path)
    version = bundle_version(bundle.path)
    existing = session.scalar(select(ModelVersion).where(ModelVersion.name == bundle.name,
                                                         ModelVersion.version == version))
    if existing is not None:
        existing.active = True
        existing.bundle_path = str(Path(path).resolve())
        return existing
    for older in session.scalars(select(ModelVersion).where(ModelVersion.name == bundle.name)):
        older.active = False
    meta = bundle.metadata
    model = ModelVersion(name=bundle.name, version=version, task=bundle.task,
                         bundle_path=str(Path(path).resolve()),
                         class_names=list(meta.get("class_names") or
                                          meta.get("plan", {}).get("class_names", [])),
                         threshold=bundle.threshold, metrics=meta.get("metrics", {}),
                         model_card=bundle.model_card,
                         dataset=str(meta.get("provenance", {}).get("dataset", "")), active=True)
    session.add(model)
    session.flush()
    return model


def list_models(session: Session, active_only: bool = False) -> list[ModelVersion]:
    query = select(ModelVersion).order_by(ModelVersion.name, ModelVersion.registered_at.desc())
    if active_only:
        query = query.where(ModelVersion.active.is_(True))
    return list(session.scalars(query))


def model_for_upload(session: Session, suffix: str, model_id: int | None) -> ModelVersion | None:
    """The model to run on an upload: the one asked for, else the newest active one taking it.

    Raises:
        ModelChoiceError (409): no model asked for, and active models of different kinds take
            the suffix (a series and a clinical-record model both take ``.csv``): the newest one
            could misread the file, so the uploader must choose.
    """
    if model_id is not None:
        return session.get(ModelVersion, model_id)
    takers = sorted((m for m in list_models(session, active_only=True)
                     if suffix in task_inputs(m.task)),
                    key=lambda m: m.registered_at, reverse=True)
    kinds = {task_kind(m.task, suffix) for m in takers}
    if len(kinds) > 1:
        listed = "; ".join(f"{m.id}: {m.name}@{m.version} ({task_kind(m.task, suffix)})"
                           for m in takers)
        raise ModelChoiceError(f"model_id: models of {len(kinds)} kinds take {suffix} files "
                               f"({listed}); choose one")
    return takers[0] if takers else None


class ModelChoiceError(MeddxError):
    """No registered model fits a study (or the one asked for does not); ``status_code`` is the
    HTTP answer."""

    status_code = 409


class UnknownModelError(ModelChoiceError):
    status_code = 404


def study_kind_of(model: ModelVersion, suffixes: list[str]) -> str | None:
    """The kind of study ``model`` makes of files with these suffixes (None: it takes none)."""
    taken = [s for s in suffixes if s in task_inputs(model.task)]
    return task_kind(model.task, taken[0]) if taken else None


def model_for_study(session: Session, study: Study, model_id: int | None = None) -> ModelVersion:
    """The model to run again on a stored study: one that makes studies of the study's kind.

    Models share suffixes (a series model and a clinical-record model both take ``.csv``; a
    series and a text model ``.txt``), so the suffix alone can pick a model that misreads the
    file. Without ``model_id`` the choice is: the model of the study's latest prediction if it
    is still active, else the newest active version of that model, else the newest active model
    of the study's kind that takes its files.

    Raises:
        ModelChoiceError: ``model_id`` is unknown (404) or of another kind of study (409), or no
            active model fits the study (409).
    """
    suffixes = [suffix_of(f.original_name) for f in study.files]
    if model_id is not None:
        model = session.get(ModelVersion, model_id)
        if model is None:
            raise UnknownModelError(f"model_id: no model {model_id}")
        kind = study_kind_of(model, suffixes)
        if kind != study.kind:
            raise ModelChoiceError(
                f"model_id: {model.name}@{model.version} ({model.task}) "
                + (f"makes {kind} studies" if kind else "takes none of the study's files")
                + f"; study {study.id} is a {study.kind} study")
        return model
    previous = study.predictions[-1].model if study.predictions else None  # ordered by id
    if previous is not None and previous.active and \
            study_kind_of(previous, suffixes) == study.kind:
        return previous
    candidates = [m for m in list_models(session, active_only=True)
                  if study_kind_of(m, suffixes) == study.kind]
    if not candidates:
        active = ", ".join(f"{m.name} ({m.task})" for m in list_models(session, True)) or "none"
        raise ModelChoiceError(f"study {study.id}: no active model makes {study.kind} studies "
                               f"of {', '.join(dict.fromkeys(suffixes))} files (active models: "
                               f"{active}); register one or choose one with model_id")
    same_name = previous.name if previous is not None else None
    return max(candidates, key=lambda m: (m.name == same_name, m.registered_at, m.id))


def accepted_suffixes(session: Session) -> dict[str, list[str]]:
    """Suffix -> names of the active models that take it (what the upload form offers)."""
    accepted: dict[str, list[str]] = {}
    for model in list_models(session, active_only=True):
        for suffix in task_inputs(model.task):
            accepted.setdefault(suffix, []).append(model.name)
    return accepted


@dataclass
class _Loaded:
    predictor: Any
    lock: threading.Lock
    takes_out_dir: bool = False
    options: dict[str, Any] = field(default_factory=dict)


class PredictorCache:
    """Loaded predictors by model id (one per registered version), each with its lock."""

    def __init__(self):
        self._loaded: dict[int, _Loaded] = {}
        self._lock = threading.Lock()

    def get(self, model: ModelVersion) -> _Loaded:
        with self._lock:
            loaded = self._loaded.get(model.id)
            if loaded is None:
                try:
                    predictor = load_model(model.bundle_path)
                except BundleError:
                    raise
                # What predict_file takes is read once, not on every upload.
                parameters = inspect.signature(predictor.predict_file).parameters
                loaded = self._loaded[model.id] = _Loaded(
                    predictor, threading.Lock(), takes_out_dir="out_dir" in parameters,
                    # A study is one series: its review labels that series (a file of many
                    # is refused).
                    options={"max_series": 1} if "max_series" in parameters else {})
            return loaded

    def predict_file(self, model: ModelVersion, path: Path, explain_to: Path | None,
                     out_dir: Path) -> dict[str, Any]:
        """``predict_file`` of the model's predictor, one call at a time per model."""
        loaded = self.get(model)
        options = dict(loaded.options)
        if loaded.takes_out_dir:
            # Predictors that write outputs (masks) put them with the study's artifacts.
            options["out_dir"] = out_dir
        with loaded.lock:
            return loaded.predictor.predict_file(path, explain_to=explain_to, **options)
