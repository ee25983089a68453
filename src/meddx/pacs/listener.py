"""``meddx dicom listen``: receive studies by C-STORE, analyse complete series, send results.

Flow for every instance a modality or PACS sends:

1. the C-STORE handler writes it to ``<spool>/<StudyUID>/<SeriesUID>/<SOPUID>.dcm`` (atomic
   write) *before* answering success, so an acknowledged instance is on disk;
2. a series is complete when no instance arrived for ``idle_seconds``; it is then routed
   (:mod:`~meddx.pacs.routing`: modality, body part, series description -> bundle);
3. the bundle's predictor (:func:`meddx.decision.predictors.load_model`) runs on the series folder
   (3D models) or on each image (2D models);
4. the results are written as DICOM (SEG for masks, a TID 1500 SR, secondary captures with the
   overlay burned in) into ``<SeriesUID>.results/`` beside the series, then sent to the
   configured PACS (C-STORE or STOW-RS, with retries);
5. the series is added to the workstation worklist when one is attached.

Each series has a status file (``.meddx-status.json``: received, processing, done, stored,
failed + the error). Nothing received is ever deleted: when inference or sending fails the study
stays in the spool with status ``failed`` and :func:`process_pending` (``meddx dicom retry``,
and every listener start) tries again.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from meddx.data.dicom.series import read_dataset, read_series, save_dataset, scan_folder
from meddx.errors import MeddxError
from meddx.fileio import write_bytes, write_json
from meddx.pacs.dimse import DicomNode, DimseClient
from meddx.pacs.errors import PacsError
from meddx.pacs.routing import RoutingRules

__all__ = ["DicomListener", "ResultSender", "SeriesProcessor", "process_pending"]

log = logging.getLogger(__name__)

STATUS_FILE = ".meddx-status.json"
RESULTS_SUFFIX = ".results"
_UID = re.compile(r"^[0-9][0-9.]{0,63}$")


def _safe_uid(value: Any, fallback: str) -> str:
    """A UID usable as a folder name (UIDs are digits and dots; anything else is refused)."""
    text = str(value or "").strip()
    return text if _UID.match(text) and ".." not in text else fallback


def _write_json(path: Path, data: dict[str, Any]) -> None:
    write_json(data, path, default=str)


def results_dir(series_dir: Path) -> Path:
    """Where a series' results go: beside it, so the series folder holds only what was sent."""
    return Path(series_dir).with_name(Path(series_dir).name + RESULTS_SUFFIX)


def read_status(series_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((Path(series_dir) / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return {}


class ResultSender:
    """Sends result objects to a PACS by C-STORE (``node``) or STOW-RS (``dicomweb_url``)."""

    def __init__(self, node: DicomNode | None = None, dicomweb_url: str | None = None,
                 calling_aet: str = "MEDDX", retry=None,
                 auth: tuple[str, str] | None = None):
        if (node is None) == (dicomweb_url is None):
            raise ValueError("give exactly one of node (DIMSE) or dicomweb_url (STOW-RS)")
        self.node, self.dicomweb_url = node, dicomweb_url
        self.calling_aet, self.retry, self.auth = calling_aet, retry, auth

    def __str__(self) -> str:
        return str(self.node) if self.node is not None else str(self.dicomweb_url)

    def send(self, files: Sequence[Path]) -> list[str]:
        """Send the files; returns the stored SOP Instance UIDs.

        Raises:
            PacsError: the PACS is down (after the retries) or refused objects.
        """
        if self.node is not None:
            result = DimseClient(self.node, self.calling_aet, retry=self.retry).store(files)
            if result.failed:
                raise PacsError(f"{self.node}: {len(result.failed)} result object(s) refused: "
                                f"{result.failed[0][1]}", retryable=False)
            return result.stored
        from meddx.pacs.dicomweb import DicomWebClient

        return DicomWebClient(self.dicomweb_url, auth=self.auth, retry=self.retry).store(files)


class _PredictorCache:
    """One loaded predictor per bundle folder, each used under its own lock."""

    def __init__(self):
        self._loaded: dict[Path, tuple[Any, threading.Lock]] = {}
        self._lock = threading.Lock()

    def get(self, bundle: Path) -> tuple[Any, threading.Lock]:
        from meddx.decision.predictors import load_model

        key = Path(bundle).resolve()
        with self._lock:
            if key not in self._loaded:
                self._loaded[key] = (load_model(key), threading.Lock())
            return self._loaded[key]


def _spatial_dims(predictor: Any) -> int:
    for owner in ("spec", "plan"):
        dims = getattr(getattr(predictor, owner, None), "spatial_dims", None)
        if dims:
            return int(dims)
    return 2


def _bundle_version(bundle: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    for name in ("meddx-bundle.json", "weights.pt"):
        path = Path(bundle) / name
        if path.exists():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


@dataclass
class SeriesProcessor:
    """Routes one received series, runs its model, writes and sends the DICOM results.

    Args:
        rules: the routing rules.
        sender: where results go (None: written to disk only).
        worklist: a :class:`~meddx.pacs.worklist.WorkstationWorklist`, or None.
    """

    rules: RoutingRules
    sender: ResultSender | None = None
    worklist: Any = None
    _cache: _PredictorCache = field(default_factory=_PredictorCache)

    def process(self, series_dir: Path, calling_aet: str = "") -> dict[str, Any]:
        """Process a series folder; never raises for expected failures (they go in the status).

        Returns:
            The status written to ``.meddx-status.json``.
        """
        series_dir = Path(series_dir)
        status = read_status(series_dir)
        status.update({"state": "processing", "attempts": int(status.get("attempts", 0)) + 1,
                       "started": time.time()})
        calling_aet = calling_aet or status.get("calling_aet", "")
        _write_json(series_dir / STATUS_FILE, status)
        files: list[Path] = []
        header: dict[str, Any] = {}
        bundle = None
        result = None
        kind = "image"
        latency_ms = 0.0
        try:
            found = scan_folder(series_dir, recursive=False)
            files = [h.path for headers in found.series.values() for h in headers]
            if not files:
                raise MeddxError(f"{series_dir}: no DICOM image received in this series")
            first = read_dataset(files[0], headers_only=True)
            header = {k: str(first.get(k, "") or "") for k in (
                "PatientID", "PatientName", "PatientBirthDate", "Modality", "BodyPartExamined",
                "SeriesDescription", "StudyInstanceUID", "SeriesInstanceUID")}
            route = self.rules.route(header["Modality"], header["BodyPartExamined"],
                                     header["SeriesDescription"])
            status["route"] = route[0] if route else None
            if route is None:
                status.update({"state": "stored", "error": None,
                               "note": "no routing rule matches: stored only"})
            else:
                bundle = route[1]
                start = time.perf_counter()
                result, outputs, kind = self._analyse(series_dir, files, bundle)
                latency_ms = round((time.perf_counter() - start) * 1000, 2)
                status["result"] = {k: v for k, v in result.items() if k != "predictions"}
                status["outputs"] = [str(p.relative_to(series_dir.parent)) for p in outputs]
                if self.sender is not None:
                    status["sent"] = self.sender.send(outputs)
                    status["sent_to"] = str(self.sender)
                status.update({"state": "done", "error": None})
        except MeddxError as error:  # InputFileError, BundleError, PacsError...
            log.error("series %s failed: %s", series_dir, error)
            status.update({"state": "failed", "error": str(error)})
        except Exception as error:  # noqa: BLE001 - a bug must not lose the study; it is kept
            log.exception("series %s failed", series_dir)
            status.update({"state": "failed", "error": f"{type(error).__name__}: {error}"})
        status["finished"] = time.time()
        if self.worklist is not None and files and not status.get("worklist_study"):
            try:
                status["worklist_study"] = self.worklist.record(
                    files=files, header=header, kind=kind, bundle=bundle, result=result,
                    error=status.get("error"), calling_aet=calling_aet, latency_ms=latency_ms)
            except Exception as error:  # noqa: BLE001 - the spool keeps the study regardless
                log.exception("series %s: not added to the worklist", series_dir)
                status["worklist_error"] = f"{type(error).__name__}: {error}"
        _write_json(series_dir / STATUS_FILE, status)
        return status

    def _analyse(self, series_dir: Path, files: list[Path], bundle: Path
                 ) -> tuple[dict[str, Any], list[Path], str]:
        """Run the model, build the DICOM results; returns (result, result files, kind)."""
        import pydicom

        from meddx.pacs.results import (
            AlgorithmInfo,
            build_measurement_report,
            build_secondary_capture,
            burn_overlay,
        )

        predictor, lock = self._cache.get(bundle)
        out_dir = results_dir(series_dir)
        out_dir.mkdir(exist_ok=True)
        algorithm = AlgorithmInfo(str(getattr(predictor, "name", Path(bundle).name)),
                                  _bundle_version(Path(bundle)))
        dims = _spatial_dims(predictor)
        task = getattr(predictor, "task", "") or \
            getattr(predictor, "metadata", {}).get("task", "")
        options = {}
        if "out_dir" in inspect.signature(predictor.predict_file).parameters:
            options["out_dir"] = out_dir
        objects: list[Any] = []
        if dims == 3:
            image = read_series(series_dir)
            sources = [pydicom.dcmread(p) for p in image.meta["instances"]]
            with lock:
                result = predictor.predict_file(series_dir, explain_to=out_dir / "overlay.png",
                                                **options)
            volume = image.array[0]
            kind = "volume"
            if "labels" in result and result.get("mask"):
                objects += self._segmentation_objects(result, image, sources, predictor,
                                                      algorithm)
            else:
                heat = np.load(result["explanation_map"]) if result.get("explanation_map") \
                    else None
                k = volume.shape[2] // 2
                heat_slice = None
                if heat is not None and heat.ndim == 3:
                    hk = int(np.argmax(heat.reshape(-1, heat.shape[2]).sum(0)))
                    k = min(volume.shape[2] - 1, int(round(hk * volume.shape[2] / heat.shape[2])))
                    heat_slice = heat[:, :, hk].T
                objects.append(build_measurement_report(sources, algorithm,
                                                        classification=result))
                caption = _caption(algorithm, result)
                objects.append(build_secondary_capture(
                    sources[k], burn_overlay(volume[:, :, k].T, heat=heat_slice,
                                             caption=caption), algorithm))
        else:
            kind = "image"
            results = []
            sources = []
            for index, path in enumerate(files):
                with lock:
                    one = predictor.predict_file(
                        path, explain_to=out_dir / f"overlay-{index}.png", **options)
                results.append(one)
                sources.append(pydicom.dcmread(path))
            result = dict(results[0])
            if len(results) > 1:
                result["predictions"] = results
            if task == "image-classification" or "decision" in result:
                for index, (one, source) in enumerate(zip(results, sources, strict=True)):
                    objects.append(build_measurement_report([source], algorithm,
                                                            classification=one))
                    heat = np.load(one["explanation_map"]) if one.get("explanation_map") \
                        else None
                    from meddx.data.images import read_image

                    grey = read_image(files[index], spatial_dims=2).array[0]
                    objects.append(build_secondary_capture(
                        source, burn_overlay(grey, heat=heat, caption=_caption(algorithm, one)),
                        algorithm, instance_number=index + 1))
        written = []
        for index, ds in enumerate(objects):
            modality = str(getattr(ds, "Modality", "OT"))
            written.append(save_dataset(
                ds, out_dir / f"{index:02d}-{modality}-{ds.SOPInstanceUID}.dcm"))
        result = dict(result)
        result["dicom_results"] = [str(p) for p in written]
        return result, written, kind

    @staticmethod
    def _segmentation_objects(result, image, sources, predictor, algorithm) -> list[Any]:
        import nibabel as nib

        from meddx.pacs.results import (
            build_measurement_report,
            build_secondary_capture,
            build_segmentation,
            burn_overlay,
        )

        mask = np.asarray(nib.load(result["mask"]).dataobj).astype(np.uint8)
        volume = image.array[0]
        if mask.shape != volume.shape:
            raise MeddxError(f"{result['mask']}: mask shape {mask.shape} does not match the "
                             f"series volume {volume.shape}")
        names = list(getattr(predictor, "class_names", []))
        seg = build_segmentation(sources, mask, names, algorithm)
        volumes = {name: info["volume_ml"] for name, info in result["labels"].items()}
        objects = [seg] if seg is not None else []
        objects.append(build_measurement_report(sources, algorithm, volumes_ml=volumes,
                                                segmentation=seg, class_names=names))
        k = int(np.argmax((mask > 0).sum(axis=(0, 1))))
        caption = f"meddx {algorithm.name}: AI segmentation, not for primary diagnosis\n" + \
            ", ".join(f"{n} {v:.2f} mL" for n, v in volumes.items())
        objects.append(build_secondary_capture(
            sources[k], burn_overlay(volume[:, :, k].T, mask=mask[:, :, k].T, caption=caption),
            algorithm))
        return objects


def _caption(algorithm, result: dict[str, Any]) -> str:
    decision = result.get("decision", "")
    probability = (result.get("probabilities") or {}).get(decision)
    text = f"meddx {algorithm.name}: {decision}"
    if probability is not None:
        text += f" (p={probability:.2f})"
    return text + "\nAI result, not for primary diagnosis"


def process_pending(spool: str | os.PathLike[str], processor: SeriesProcessor,
                    include_failed: bool = True) -> list[dict[str, Any]]:
    """Process every series of the spool that is not done (after a crash, or to retry)."""
    done = []
    for status_file in sorted(Path(spool).glob(f"*/*/{STATUS_FILE}")):
        state = read_status(status_file.parent).get("state")
        if state in ("received", "processing") or (include_failed and state == "failed"):
            done.append(processor.process(status_file.parent))
    return done


@dataclass
class _SeriesState:
    folder: Path
    calling_aet: str
    last: float
    count: int = 0


class DicomListener:
    """A C-STORE SCP that spools studies and hands complete series to a processor.

    Args:
        spool: where received instances are stored (never deleted by meddx).
        processor: what to do with a complete series (None: store only).
        aet / host / port: our AE title and address.
        idle_seconds: a series is complete after this long without a new instance.
        on_done: called with each series' final status (tests, benchmark).
    """

    def __init__(self, spool: str | os.PathLike[str], processor: SeriesProcessor | None = None,
                 aet: str = "MEDDX", host: str = "127.0.0.1", port: int = 11112,
                 idle_seconds: float = 5.0,
                 on_done: Callable[[Path, dict[str, Any]], None] | None = None):
        self.spool = Path(spool)
        self.processor = processor
        self.aet, self.host, self.port = aet, host, port
        self.idle_seconds = idle_seconds
        self.on_done = on_done
        self._series: dict[Path, _SeriesState] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server = None
        self._thread: threading.Thread | None = None
        self.received = 0

    # ---- C-STORE ----------------------------------------------------------------------------

    def _on_store(self, event) -> int:
        try:
            ds = event.dataset
            study = _safe_uid(ds.get("StudyInstanceUID"), "unknown-study")
            series = _safe_uid(ds.get("SeriesInstanceUID"), "unknown-series")
            sop = _safe_uid(ds.get("SOPInstanceUID"), f"instance-{time.time_ns()}")
            folder = self.spool / study / series
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / f"{sop}.dcm"
            write_bytes(event.encoded_dataset(include_meta=True), target)
        except Exception:  # noqa: BLE001 - answer "out of resources", never crash the server
            log.exception("C-STORE: cannot store the instance")
            return 0xA700
        calling = str(event.assoc.requestor.ae_title).strip()
        with self._lock:
            state = self._series.get(folder)
            if state is None:
                state = self._series[folder] = _SeriesState(folder, calling, time.monotonic())
                status = read_status(folder)
                status.update({"state": "received", "calling_aet": calling,
                               "received_at": time.time()})
                _write_json(folder / STATUS_FILE, status)
            state.last = time.monotonic()
            state.count += 1
            self.received += 1
        return 0x0000

    # ---- lifecycle --------------------------------------------------------------------------

    def start(self, resume: bool = True) -> DicomListener:
        """Start the C-STORE server and the series watcher (non-blocking).

        Args:
            resume: first process the series left unfinished in the spool (a crash, a PACS
                that was down).

        Raises:
            PacsError: the port cannot be opened.
        """
        from pynetdicom import AE, AllStoragePresentationContexts, evt
        from pynetdicom.sop_class import Verification

        self.spool.mkdir(parents=True, exist_ok=True)
        ae = AE(ae_title=self.aet)
        syntaxes = _all_transfer_syntaxes()
        for context in AllStoragePresentationContexts:
            ae.add_supported_context(context.abstract_syntax, syntaxes)
        ae.add_supported_context(Verification)
        ae.maximum_pdu_size = 0
        try:
            self._server = ae.start_server((self.host, self.port), block=False,
                                           evt_handlers=[(evt.EVT_C_STORE, self._on_store)])
        except OSError as error:
            raise PacsError(f"cannot listen on {self.host}:{self.port} ({error.strerror})",
                            retryable=False) from error
        if resume and self.processor is not None:
            for status in process_pending(self.spool, self.processor, include_failed=False):
                log.info("resumed series: %s", status.get("state"))
        self._thread = threading.Thread(target=self._watch, name="meddx-series-watcher",
                                        daemon=True)
        self._thread.start()
        log.info("listening as %s on %s:%d, spool %s", self.aet, self.host, self.port,
                 self.spool)
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.2):
            now = time.monotonic()
            with self._lock:
                ready = [s for s in self._series.values() if now - s.last >= self.idle_seconds]
                for state in ready:
                    del self._series[state.folder]
            for state in ready:
                self._complete(state)

    def _complete(self, state: _SeriesState) -> None:
        log.info("series complete: %s (%d instance(s))", state.folder, state.count)
        if self.processor is None:
            status = read_status(state.folder)
            status.update({"state": "stored", "error": None})
            _write_json(state.folder / STATUS_FILE, status)
        else:
            status = self.processor.process(state.folder, state.calling_aet)
        if self.on_done is not None:
            self.on_done(state.folder, status)

    def stop(self) -> None:
        """Stop receiving; series still waiting for completion are processed first."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        with self._lock:
            left = list(self._series.values())
            self._series.clear()
        for state in left:
            self._complete(state)
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def serve_forever(self) -> None:
        """Block until Ctrl-C or SIGTERM, then stop cleanly (pending series are processed).

        Explicit handlers: a process started in the background may inherit an ignored SIGINT,
        and a service manager stops with SIGTERM.
        """
        import signal

        def request_stop(signum, frame):
            self._stop.set()

        previous = {}
        if threading.current_thread() is threading.main_thread():  # handlers: main thread only
            previous = {sig: signal.signal(sig, request_stop)
                        for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            while not self._stop.wait(1.0):
                pass
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.stop()

    def __enter__(self) -> DicomListener:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _all_transfer_syntaxes() -> list[str]:
    """Uncompressed and every compressed syntax pydicom knows: store whatever is sent."""
    from pydicom import uid

    names = ("ImplicitVRLittleEndian", "ExplicitVRLittleEndian", "ExplicitVRBigEndian",
             "DeflatedExplicitVRLittleEndian", "JPEGBaseline8Bit", "JPEGExtended12Bit",
             "JPEGLossless", "JPEGLosslessSV1", "JPEGLSLossless", "JPEGLSNearLossless",
             "JPEG2000Lossless", "JPEG2000", "RLELossless", "HTJ2KLossless",
             "HTJ2KLosslessRPCL", "HTJ2K")
    return [getattr(uid, name) for name in names if hasattr(uid, name)]
