"""DICOMweb with dicomweb-client: QIDO-RS search, WADO-RS retrieve, STOW-RS store.

Each call is retried with back-off when the server is unreachable or answers 5xx / 429;
4xx answers (bad query, unknown study, refused object) fail at once. All failures end in a
:class:`~meddx.pacs.errors.PacsError` naming the URL, the operation and the HTTP status.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from meddx.data.dicom.series import save_dataset
from meddx.pacs.errors import PacsError
from meddx.pacs.retry import RetryPolicy, with_retries

__all__ = ["DicomWebClient"]

T = TypeVar("T")


class DicomWebClient:
    """A DICOMweb service (e.g. Orthanc's ``/dicom-web``).

    Args:
        url: the DICOMweb root.
        auth: ``(user, password)`` for HTTP basic authentication, or None.
        retry: the retry policy; ``timeout`` in seconds per request.
    """

    def __init__(self, url: str, auth: tuple[str, str] | None = None,
                 retry: RetryPolicy | None = None, timeout: float = 60.0):
        import requests
        from dicomweb_client.api import DICOMwebClient

        self.url = url.rstrip("/")
        self.retry = retry or RetryPolicy()
        session = requests.Session()
        if auth is not None:
            session.auth = auth
        self._session = session
        self._client = DICOMwebClient(url=self.url, session=session, timeout=timeout)
        # Retries are ours (RetryPolicy, also for refused connections); the client's own would
        # multiply them.
        self._client.set_http_retry_params(retry=False)

    def _call(self, what: str, call: Callable[[], T]) -> T:
        import requests

        def attempt():
            try:
                return call()
            except requests.HTTPError as error:
                code = error.response.status_code if error.response is not None else 0
                text = error.response.text[:200] if error.response is not None else ""
                raise PacsError(f"{self.url}: {what} answered HTTP {code} {text}".strip(),
                                retryable=code >= 500 or code == 429) from error
            except (requests.ConnectionError, requests.Timeout) as error:
                raise PacsError(f"{self.url}: {what}: cannot connect (PACS down or "
                                f"unreachable?): {type(error).__name__}") from error

        return with_retries(attempt, f"{what} on {self.url}", self.retry)

    # ---- QIDO-RS ----------------------------------------------------------------------------

    def search_studies(self, **filters: Any) -> list[dict]:
        """QIDO-RS studies matching ``filters`` (``PatientID="123"``); DICOM JSON."""
        return self._call("QIDO-RS studies", lambda: self._client.search_for_studies(
            search_filters=filters or None))

    def search_series(self, study_uid: str | None = None, **filters: Any) -> list[dict]:
        return self._call("QIDO-RS series", lambda: self._client.search_for_series(
            study_instance_uid=study_uid, search_filters=filters or None))

    def search_instances(self, study_uid: str | None = None, series_uid: str | None = None,
                         **filters: Any) -> list[dict]:
        return self._call("QIDO-RS instances", lambda: self._client.search_for_instances(
            study_instance_uid=study_uid, series_instance_uid=series_uid,
            search_filters=filters or None))

    # ---- WADO-RS ----------------------------------------------------------------------------

    def retrieve_series(self, study_uid: str, series_uid: str) -> list[Any]:
        """WADO-RS all instances of a series, as pydicom Datasets."""
        return self._call("WADO-RS series", lambda: self._client.retrieve_series(
            study_uid, series_uid))

    def retrieve_instance(self, study_uid: str, series_uid: str, sop_uid: str) -> Any:
        return self._call("WADO-RS instance", lambda: self._client.retrieve_instance(
            study_uid, series_uid, sop_uid))

    def download_series(self, study_uid: str, series_uid: str,
                        out_dir: str | os.PathLike[str]) -> list[Path]:
        """WADO-RS a series into ``out_dir`` (one file per instance, atomic writes)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for ds in self.retrieve_series(study_uid, series_uid):
            written.append(save_dataset(ds, out / f"{ds.SOPInstanceUID}.dcm"))
        return written

    # ---- STOW-RS ----------------------------------------------------------------------------

    def store(self, datasets: Iterable[Any]) -> list[str]:
        """STOW-RS datasets (or file paths); returns the stored SOP Instance UIDs.

        Raises:
            PacsError: the server refused some instance (the message names the count).
        """
        from pydicom import dcmread

        items = [ds if hasattr(ds, "SOPInstanceUID") else dcmread(ds) for ds in datasets]
        if not items:
            return []
        answer = self._call("STOW-RS", lambda: self._client.store_instances(items))
        failed = answer.get("00081198", {}).get("Value", []) if answer else []
        if failed:
            raise PacsError(f"{self.url}: STOW-RS refused {len(failed)} of {len(items)} "
                            "instance(s)", retryable=False)
        return [str(ds.SOPInstanceUID) for ds in items]
