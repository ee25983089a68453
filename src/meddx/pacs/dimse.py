"""DIMSE with pynetdicom: C-ECHO, C-FIND, C-MOVE, C-GET and C-STORE against a PACS.

Every operation opens one association (retried with back-off when the PACS is down or refuses
it), checks each DIMSE status, and raises :class:`~meddx.pacs.errors.PacsError` naming the PACS,
the operation and the status it answered.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meddx.data.dicom.series import save_dataset
from meddx.pacs.errors import PacsError
from meddx.pacs.retry import RetryPolicy, with_retries

__all__ = ["DicomNode", "DimseClient", "StoreResult"]

log = logging.getLogger(__name__)

_LEVEL_KEYS = {
    "PATIENT": ("PatientID", "PatientName"),
    "STUDY": ("StudyInstanceUID", "StudyDate", "StudyDescription", "PatientID",
              "ModalitiesInStudy", "NumberOfStudyRelatedInstances", "AccessionNumber"),
    "SERIES": ("SeriesInstanceUID", "Modality", "SeriesDescription", "SeriesNumber",
               "BodyPartExamined", "NumberOfSeriesRelatedInstances"),
    "IMAGE": ("SOPInstanceUID", "SOPClassUID", "InstanceNumber"),
}


@dataclass(frozen=True)
class DicomNode:
    """A DICOM application entity on the network."""

    host: str
    port: int
    aet: str

    def __str__(self) -> str:
        return f"{self.aet}@{self.host}:{self.port}"


@dataclass
class StoreResult:
    """What a C-STORE of several instances gave: stored SOP Instance UIDs and failures."""

    stored: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (SOP Instance UID, reason)


def _status_text(status: Any) -> str:
    if status is None or "Status" not in status:
        return "no answer (association aborted or timed out)"
    code = int(status.Status)
    comment = str(status.get("ErrorComment", "") or "")
    return f"status 0x{code:04X}" + (f" ({comment})" if comment else "")


class DimseClient:
    """DIMSE service user towards one PACS.

    Args:
        peer: the PACS (host, port, called AE title).
        calling_aet: our AE title (the PACS must know it for C-MOVE / C-FIND permissions).
        retry: retry policy for association failures.
        timeout: seconds for the network, each association and each DIMSE answer.
    """

    def __init__(self, peer: DicomNode, calling_aet: str = "MEDDX",
                 retry: RetryPolicy | None = None, timeout: float = 30.0):
        self.peer = peer
        self.calling_aet = calling_aet
        self.retry = retry or RetryPolicy()
        self.timeout = timeout

    # ---- associations -----------------------------------------------------------------------

    def _ae(self):
        from pynetdicom import AE

        ae = AE(ae_title=self.calling_aet)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.timeout
        ae.connection_timeout = min(self.timeout, 10.0)
        return ae

    def _associate(self, what: str, ae, **kwargs):
        def attempt():
            assoc = ae.associate(self.peer.host, self.peer.port, ae_title=self.peer.aet,
                                 **kwargs)
            if assoc.is_established:
                return assoc
            if assoc.is_rejected:
                raise PacsError(f"{self.peer}: association for {what} rejected (is AE title "
                                f"{self.calling_aet!r} known to the PACS?)", retryable=False)
            raise PacsError(f"{self.peer}: cannot connect for {what} (PACS down or "
                            "unreachable?)")

        return with_retries(attempt, f"{what} on {self.peer}", self.retry)

    # ---- services ---------------------------------------------------------------------------

    def echo(self) -> int:
        """C-ECHO; returns the status (0x0000 = success).

        Raises:
            PacsError: no association, or a failure status.
        """
        from pynetdicom.sop_class import Verification

        ae = self._ae()
        ae.add_requested_context(Verification)
        assoc = self._associate("C-ECHO", ae)
        try:
            status = assoc.send_c_echo()
        finally:
            assoc.release()
        if status is None or int(status.get("Status", -1)) != 0:
            raise PacsError(f"{self.peer}: C-ECHO failed, {_status_text(status)}")
        return 0

    def find(self, level: str = "STUDY", **keys: Any) -> list[Any]:
        """C-FIND in the Study Root model; ``keys`` are matching keys (``PatientID="123"``).

        The usual return keys of the level are requested too. Returns the matching identifiers
        (pydicom Datasets).

        Raises:
            PacsError: no association, or a failure status.
        """
        from pydicom.dataset import Dataset
        from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

        level = level.upper()
        if level not in _LEVEL_KEYS or level == "PATIENT":
            raise PacsError(f"C-FIND level {level!r}: use STUDY, SERIES or IMAGE",
                            retryable=False)
        query = Dataset()
        query.QueryRetrieveLevel = level
        for keyword in _LEVEL_KEYS[level]:
            setattr(query, keyword, "")
        if level in ("SERIES", "IMAGE"):
            query.StudyInstanceUID = ""
        if level == "IMAGE":
            query.SeriesInstanceUID = ""
        for keyword, value in keys.items():
            setattr(query, keyword, value)
        ae = self._ae()
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
        assoc = self._associate("C-FIND", ae)
        matches = []
        try:
            for status, identifier in assoc.send_c_find(
                    query, StudyRootQueryRetrieveInformationModelFind):
                code = int(status.get("Status", -1)) if status else -1
                if code in (0xFF00, 0xFF01):
                    matches.append(identifier)
                elif code != 0:
                    raise PacsError(f"{self.peer}: C-FIND failed, {_status_text(status)}",
                                    retryable=code == -1)
        finally:
            assoc.release()
        return matches

    def store(self, items: Iterable[str | os.PathLike[str] | Any]) -> StoreResult:
        """C-STORE files or datasets, all over one association.

        Raises:
            PacsError: no association, or the PACS refused every instance.
        """
        from pydicom import dcmread

        datasets = [item if hasattr(item, "SOPClassUID") else dcmread(item) for item in items]
        if not datasets:
            return StoreResult()
        ae = self._ae()
        contexts: dict[str, set[str]] = {}
        for ds in datasets:
            syntax = str(getattr(ds.file_meta, "TransferSyntaxUID", "1.2.840.10008.1.2.1"))
            contexts.setdefault(str(ds.SOPClassUID), set()).add(syntax)
        # One context per (class, syntax): a PACS accepts one syntax per context, so offering
        # the compressed syntax and Explicit VR Little Endian separately lets it take either.
        for sop_class, syntaxes in contexts.items():
            for syntax in sorted(syntaxes | {"1.2.840.10008.1.2.1"}):
                ae.add_requested_context(sop_class, syntax)
        if len(ae.requested_contexts) > 128:
            raise PacsError(f"C-STORE of {len(contexts)} SOP classes: more than 128 presentation "
                            "contexts; send them in smaller groups", retryable=False)
        assoc = self._associate("C-STORE", ae)
        result = StoreResult()
        try:
            for ds in datasets:
                try:
                    status = assoc.send_c_store(ds)
                except ValueError:
                    # The PACS refused the compressed syntax: send it decompressed.
                    try:
                        ds.decompress()
                        status = assoc.send_c_store(ds)
                    except (ValueError, RuntimeError, NotImplementedError) as error:
                        result.failed.append((str(ds.SOPInstanceUID), str(error)))
                        continue
                except RuntimeError as error:
                    result.failed.append((str(ds.SOPInstanceUID), str(error)))
                    continue
                code = int(status.get("Status", -1)) if status else -1
                if code in (0x0000, 0xB000, 0xB007, 0xB006):  # success or warning
                    result.stored.append(str(ds.SOPInstanceUID))
                else:
                    result.failed.append((str(ds.SOPInstanceUID), _status_text(status)))
        finally:
            if assoc.is_established:
                assoc.release()
        if result.failed and not result.stored:
            raise PacsError(f"{self.peer}: C-STORE refused all {len(result.failed)} "
                            f"instance(s): {result.failed[0][1]}",
                            retryable="no answer" in result.failed[0][1])
        return result

    def move(self, destination_aet: str, study_uid: str, series_uid: str | None = None) -> int:
        """C-MOVE a study (or one series) to ``destination_aet``; returns instances moved.

        The destination must be known to the PACS (Orthanc: ``DicomModalities``) and listening.

        Raises:
            PacsError: no association, unknown destination, or failed sub-operations.
        """
        from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelMove

        identifier = self._retrieve_identifier(study_uid, series_uid)
        ae = self._ae()
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
        assoc = self._associate("C-MOVE", ae)
        completed = failed = 0
        last = None
        try:
            for status, _ in assoc.send_c_move(identifier, destination_aet,
                                               StudyRootQueryRetrieveInformationModelMove):
                last = status
                if status and "NumberOfCompletedSuboperations" in status:
                    completed = int(status.NumberOfCompletedSuboperations or 0)
                    failed = int(status.get("NumberOfFailedSuboperations", 0) or 0)
        finally:
            assoc.release()
        code = int(last.get("Status", -1)) if last else -1
        if code not in (0x0000, 0xB000):
            raise PacsError(f"{self.peer}: C-MOVE to {destination_aet} failed, "
                            f"{_status_text(last)}", retryable=code == -1)
        if failed:
            raise PacsError(f"{self.peer}: C-MOVE to {destination_aet}: {failed} "
                            f"sub-operation(s) failed, {completed} completed", retryable=True)
        return completed

    def get(self, out_dir: str | os.PathLike[str], study_uid: str,
            series_uid: str | None = None,
            storage_classes: Sequence[str] | None = None) -> list[Path]:
        """C-GET a study (or series) into ``out_dir`` over the same association.

        Args:
            storage_classes: SOP classes to accept (default: the common image, SEG, SR and SC
                classes; an association proposes at most 128 contexts).

        Raises:
            PacsError: no association or a failure status.
        """
        from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
        from pynetdicom import build_role, evt
        from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        classes = list(storage_classes or _GET_CLASSES)
        ae = self._ae()
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
        for sop_class in classes:
            ae.add_requested_context(sop_class, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
        roles = [build_role(sop_class, scp_role=True) for sop_class in classes]
        written: list[Path] = []

        def on_store(event):
            ds = event.dataset
            ds.file_meta = event.file_meta
            written.append(save_dataset(ds, out / f"{ds.SOPInstanceUID}.dcm"))
            return 0x0000

        identifier = self._retrieve_identifier(study_uid, series_uid)
        assoc = self._associate("C-GET", ae, ext_neg=roles,
                                evt_handlers=[(evt.EVT_C_STORE, on_store)])
        last = None
        try:
            for status, _ in assoc.send_c_get(identifier,
                                              StudyRootQueryRetrieveInformationModelGet):
                last = status
        finally:
            assoc.release()
        code = int(last.get("Status", -1)) if last else -1
        if code not in (0x0000, 0xB000):
            raise PacsError(f"{self.peer}: C-GET failed, {_status_text(last)}",
                            retryable=code == -1)
        return written

    @staticmethod
    def _retrieve_identifier(study_uid: str, series_uid: str | None):
        from pydicom.dataset import Dataset

        identifier = Dataset()
        identifier.QueryRetrieveLevel = "SERIES" if series_uid else "STUDY"
        identifier.StudyInstanceUID = study_uid
        if series_uid:
            identifier.SeriesInstanceUID = series_uid
        return identifier


def _default_get_classes() -> list[str]:
    from pynetdicom import sop_class as sc

    names = ("CTImageStorage", "MRImageStorage", "ComputedRadiographyImageStorage",
             "DigitalXRayImageStorageForPresentation", "SecondaryCaptureImageStorage",
             "SegmentationStorage", "Comprehensive3DSRStorage", "ComprehensiveSRStorage",
             "EnhancedSRStorage", "BasicTextSRStorage", "EnhancedCTImageStorage",
             "EnhancedMRImageStorage", "UltrasoundImageStorage",
             "UltrasoundMultiFrameImageStorage", "NuclearMedicineImageStorage",
             "PositronEmissionTomographyImageStorage", "RTDoseStorage",
             "MultiFrameTrueColorSecondaryCaptureImageStorage",
             "MultiFrameGrayscaleWordSecondaryCaptureImageStorage",
             "DigitalMammographyXRayImageStorageForPresentation")
    return [getattr(sc, name) for name in names if hasattr(sc, name)]


_GET_CLASSES = _default_get_classes()
