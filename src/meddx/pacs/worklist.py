"""Received DICOM studies in the clinician workstation's worklist, with their results.

:class:`WorkstationWorklist` writes through the workstation's own models and services (the same
database, the encrypted patient fields of :mod:`~meddx.workstation.services.patients`, the model
registry, the audit trail): a received series becomes a Study with its files, the routed model
becomes a registered ModelVersion, and the result a Prediction whose artifacts (mask, overlay,
DICOM results) are served like an upload's. Its files must lie under the workstation's storage
folder, so the listener spools into ``<storage>/dicom`` when a worklist is attached.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

__all__ = ["WorkstationWorklist"]

log = logging.getLogger(__name__)

LISTENER_NAME = "dicom-listener"


def _iso_date(value: str) -> str:
    value = (value or "").strip()
    if len(value) == 8 and value.isdigit():
        return f"{value[:4]}-{value[4:6]}-{value[6:]}"
    return ""


class WorkstationWorklist:
    """Adds received series (and their results) to the workstation database.

    Args:
        settings: the workstation settings (:func:`meddx.workstation.core.config.
            settings_from_env` reads the same environment as ``meddx serve``).
    """

    def __init__(self, settings):
        from meddx.workstation.db.session import make_engine, make_sessionmaker, upgrade

        self.settings = settings
        self.engine = make_engine(settings.db_url)
        upgrade(self.engine)  # idempotent: the same migrations `meddx serve` runs
        self.sessions = make_sessionmaker(self.engine)
        self.cipher = settings.cipher()

    @property
    def storage_dir(self) -> Path:
        return self.settings.storage_dir

    def record(self, *, files: list[Path], header: dict[str, Any], kind: str,
               bundle: Path | None, result: dict[str, Any] | None, error: str | None,
               calling_aet: str = "", latency_ms: float = 0.0) -> int:
        """Create the study (patient, files, prediction if any); returns its id.

        ``header`` holds the DICOM identifying and descriptive fields (PatientID, PatientName,
        PatientBirthDate, Modality, SeriesDescription); identifying ones are stored encrypted.
        """
        from meddx.safeguards import audit
        from meddx.workstation.db.models import Prediction, Study, StudyFile
        from meddx.workstation.db.session import transaction
        from meddx.workstation.services import patients, registry
        from meddx.workstation.services.studies import _extract_artifacts

        storage = self.storage_dir.resolve()
        with transaction(self.sessions) as session:
            patient = patients.find_or_create(
                session, self.cipher, str(header.get("PatientID", "") or ""),
                str(header.get("PatientName", "") or ""),
                _iso_date(str(header.get("PatientBirthDate", "") or "")))
            what = " ".join(str(header.get(k, "") or "") for k in
                            ("Modality", "SeriesDescription")).strip()
            source = f" from {calling_aet}" if calling_aet else ""
            description = f"DICOM {what} ({len(files)} instance(s){source})"
            status = "failed" if error else ("predicted" if result else "new")
            study = Study(patient_id=patient.id, kind=kind, status=status,
                          description=description[:500], disagreements=0)
            session.add(study)
            session.flush()
            for path in files:
                session.add(StudyFile(
                    study_id=study.id, original_name=path.name[:255],
                    stored_path=str(path.resolve().relative_to(storage)),
                    media_type="application/dicom", size_bytes=path.stat().st_size,
                    sha256=_sha256(path)))
            audit.record(session, "study_upload", username=LISTENER_NAME, target_type="study",
                         target_id=study.id,
                         detail={"source": "dicom", "calling_aet": calling_aet,
                                 "instances": len(files), "error": error or ""})
            if result is not None and bundle is not None:
                model = registry.register_bundle(session, bundle)
                artifacts: dict[str, str] = {}
                outputs = _extract_artifacts(result, storage, artifacts)
                outputs.pop("file", None)
                artifacts.pop("file", None)
                decision = str(outputs.get("decision", ""))
                probabilities = outputs.get("probabilities") or {}
                prediction = Prediction(
                    study_id=study.id, model_id=model.id, outputs=outputs, decision=decision,
                    probability=probabilities.get(decision),
                    uncertainty=outputs.get("uncertainty"), explanation=artifacts,
                    latency_ms=latency_ms)
                session.add(prediction)
                study.latest_decision = decision
                study.latest_uncertainty = outputs.get("uncertainty")
                session.flush()
                audit.record(session, "prediction", username=LISTENER_NAME,
                             target_type="study", target_id=study.id,
                             detail={"model": f"{model.name}@{model.version}",
                                     "decision": decision, "prediction_id": prediction.id})
            return study.id


def _sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
