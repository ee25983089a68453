"""``meddx dicom ...``: de-identify, inspect series, talk to a PACS, run the listener.

A thin typer layer: every command parses its options and calls :mod:`meddx.data.dicom` or
:mod:`meddx.pacs`. Expected failures raise :class:`~meddx.errors.MeddxError` subclasses, which
``meddx`` prints as one line (exit status 2).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from meddx.errors import ConfigError

dicom_app = typer.Typer(no_args_is_help=True,
                        help="DICOM and PACS: de-identify, query, send, receive and analyse.")
out = Console()

Host = Annotated[str, typer.Argument(help="PACS host name or address.")]
Port = Annotated[int, typer.Argument(help="PACS DICOM port.")]
CalledAet = Annotated[str, typer.Option("--aet", help="The PACS's AE title.")]
CallingAet = Annotated[str, typer.Option("--calling-aet", help="Our AE title.")]
DicomWeb = Annotated[str | None, typer.Option(
    "--dicomweb", help="Use this DICOMweb root URL instead of DIMSE.")]


def _key(key: str | None, key_file: Path | None) -> str | None:
    if key and key_file:
        raise ConfigError("--key and --key-file: give one of them")
    if key_file is not None:
        try:
            return key_file.read_text().strip()
        except OSError as error:
            raise ConfigError(f"{key_file}: cannot read the key ({error.strerror})") from error
    return key or os.environ.get("MEDDX_DEID_KEY") or None


@dicom_app.command("deidentify")
def deidentify(
    source: Annotated[Path, typer.Argument(help="DICOM file or folder (searched recursively).")],
    out_dir: Annotated[Path, typer.Argument(help="Output folder: <study>/<series>/<sop>.dcm.")],
    key: Annotated[str | None, typer.Option(
        help="Secret making UIDs, pseudonyms and date shifts reproducible (else "
             "$MEDDX_DEID_KEY, else random).")] = None,
    key_file: Annotated[Path | None, typer.Option(help="File holding the key.")] = None,
    dates: Annotated[str, typer.Option(
        help="remove (Basic Profile), keep (full dates) or shift (per-patient offset).")
    ] = "remove",
    retain_patient_characteristics: Annotated[bool, typer.Option(
        help="Keep sex, age, size, weight... (Retain Patient Characteristics).")] = False,
    retain_device_identity: Annotated[bool, typer.Option(help="Keep device identity.")] = False,
    retain_institution_identity: Annotated[bool, typer.Option(
        help="Keep institution identity.")] = False,
    retain_uids: Annotated[bool, typer.Option(help="Keep the original UIDs.")] = False,
    log_path: Annotated[Path | None, typer.Option(
        "--log", help="JSON log (default OUT/deidentification-log.json).")] = None,
):
    """De-identify DICOM files: PS3.15 Annex E Basic Application Level Confidentiality Profile."""
    from meddx.data.dicom.deidentify import DeidentificationOptions, deidentify_path

    options = DeidentificationOptions(
        key=_key(key, key_file), dates=dates,
        retain_patient_characteristics=retain_patient_characteristics,
        retain_device_identity=retain_device_identity,
        retain_institution_identity=retain_institution_identity, retain_uids=retain_uids)
    report = deidentify_path(source, out_dir, options, progress=True, log_path=log_path)
    summary = report["summary"]
    out.print(f"de-identified {summary['files']} file(s) into {out_dir} "
              f"({summary['skipped']} skipped, {summary['uids_remapped']} UIDs remapped)")
    out.print(f"actions: {summary['actions']}")
    out.print(f"log: {report['log']}")
    warned = sum(1 for item in report["files"] if item["warnings"])
    if warned:
        out.print(f"[yellow]{warned} file(s) may have identifying text burned into the pixels "
                  "(see the log)")


@dicom_app.command("info")
def info(path: Annotated[Path, typer.Argument(help="A DICOM series folder or file.")],
         as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False):
    """Read a series as a volume: shape, spacing, orientation (inconsistent series are refused)."""
    from meddx.data.dicom.series import read_series

    image = read_series(path)
    data = {"shape": list(image.array.shape), "spacing_mm": image.spacing,
            "affine": None if image.affine is None else image.affine.round(4).tolist(),
            "range": [float(image.array.min()), float(image.array.max())],
            **{k: v for k, v in image.meta.items() if k != "instances"}}
    if as_json:
        out.print_json(json.dumps(data, default=str))
        return
    for key, value in data.items():
        out.print(f"{key}: {value}")


def _dimse(host: str, port: int, aet: str, calling_aet: str):
    from meddx.pacs.dimse import DicomNode, DimseClient

    return DimseClient(DicomNode(host, port, aet), calling_aet)


@dicom_app.command("echo")
def echo(host: Host, port: Port, aet: CalledAet = "ORTHANC", calling_aet: CallingAet = "MEDDX"):
    """C-ECHO a PACS (retries with back-off while it is down)."""
    _dimse(host, port, aet, calling_aet).echo()
    out.print(f"C-ECHO {aet}@{host}:{port}: success")


@dicom_app.command("query")
def query(
    host: Annotated[str, typer.Argument(help="PACS host (ignored with --dicomweb).")] = "",
    port: Annotated[int, typer.Argument(help="PACS DICOM port.")] = 0,
    keys: Annotated[list[str] | None, typer.Option(
        "--key", "-k", help="Matching key as Keyword=value (repeatable).")] = None,
    level: Annotated[str, typer.Option(help="STUDY, SERIES or IMAGE.")] = "STUDY",
    aet: CalledAet = "ORTHANC", calling_aet: CallingAet = "MEDDX", dicomweb: DicomWeb = None,
):
    """Find studies / series / instances: C-FIND, or QIDO-RS with --dicomweb."""
    filters = {}
    for item in keys or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--key {item!r}: use Keyword=value")
        filters[name] = value
    if dicomweb:
        from meddx.pacs.dicomweb import DicomWebClient

        client = DicomWebClient(dicomweb)
        search = {"STUDY": client.search_studies, "SERIES": client.search_series,
                  "IMAGE": client.search_instances}.get(level.upper())
        if search is None:
            raise ConfigError(f"--level {level!r}: use STUDY, SERIES or IMAGE")
        out.print_json(json.dumps(search(**filters)))
        return
    matches = _dimse(host, port, aet, calling_aet).find(level, **filters)
    table = Table(title=f"C-FIND {level.upper()} on {aet}@{host}:{port}: {len(matches)}")
    columns = sorted({elem.keyword for ds in matches for elem in ds
                      if elem.keyword not in ("QueryRetrieveLevel", "RetrieveAETitle",
                                              "SpecificCharacterSet")})
    for column in columns:
        table.add_column(column)
    for ds in matches:
        table.add_row(*[str(ds.get(column, "")) for column in columns])
    out.print(table)


@dicom_app.command("send")
def send(
    files: Annotated[list[Path], typer.Argument(help="DICOM files or folders to send.")],
    host: Annotated[str, typer.Option(help="PACS host.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="PACS DICOM port.")] = 4242,
    aet: CalledAet = "ORTHANC", calling_aet: CallingAet = "MEDDX", dicomweb: DicomWeb = None,
):
    """Send DICOM files: C-STORE, or STOW-RS with --dicomweb."""
    paths = [p for item in files for p in ([item] if item.is_file() else sorted(
        q for q in item.rglob("*") if q.is_file() and not q.name.startswith(".")))]
    if not paths:
        raise ConfigError("send: no files found")
    if dicomweb:
        from meddx.pacs.dicomweb import DicomWebClient

        stored = DicomWebClient(dicomweb).store(paths)
        out.print(f"STOW-RS {dicomweb}: stored {len(stored)} instance(s)")
        return
    result = _dimse(host, port, aet, calling_aet).store(paths)
    out.print(f"C-STORE {aet}@{host}:{port}: stored {len(result.stored)}, "
              f"failed {len(result.failed)}")
    for uid, reason in result.failed:
        out.print(f"  [red]{uid}: {reason}")


@dicom_app.command("retrieve")
def retrieve(
    study_uid: Annotated[str, typer.Argument(help="StudyInstanceUID.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Where to write the files.")],
    series_uid: Annotated[str | None, typer.Option("--series", help="One series only.")] = None,
    host: Annotated[str, typer.Option(help="PACS host.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="PACS DICOM port.")] = 4242,
    aet: CalledAet = "ORTHANC", calling_aet: CallingAet = "MEDDX", dicomweb: DicomWeb = None,
):
    """Retrieve a study or series: C-GET, or WADO-RS with --dicomweb (needs --series)."""
    if dicomweb:
        if not series_uid:
            raise ConfigError("--dicomweb retrieve: give --series")
        from meddx.pacs.dicomweb import DicomWebClient

        written = DicomWebClient(dicomweb).download_series(study_uid, series_uid, out_dir)
    else:
        written = _dimse(host, port, aet, calling_aet).get(out_dir, study_uid, series_uid)
    out.print(f"retrieved {len(written)} instance(s) into {out_dir}")


def _processor(rules: Path, spool: Path, send_host: str | None, send_port: int,
               send_aet: str, send_dicomweb: str | None, calling_aet: str, workstation: bool):
    """The series processor of ``listen`` / ``retry`` and the spool it works on.

    With ``workstation`` the spool is the workstation's ``<storage>/dicom`` (its study files
    must lie under its storage folder).
    """
    from meddx.pacs.dimse import DicomNode
    from meddx.pacs.listener import ResultSender, SeriesProcessor
    from meddx.pacs.routing import load_rules

    sender = None
    if send_host and send_dicomweb:
        raise ConfigError("--send-host and --send-dicomweb: give one of them")
    if send_host:
        sender = ResultSender(node=DicomNode(send_host, send_port, send_aet),
                              calling_aet=calling_aet)
    elif send_dicomweb:
        sender = ResultSender(dicomweb_url=send_dicomweb, calling_aet=calling_aet)
    worklist = None
    if workstation:
        from meddx.pacs.worklist import WorkstationWorklist
        from meddx.workstation.core.config import settings_from_env

        worklist = WorkstationWorklist(settings_from_env())
        spool = worklist.storage_dir / "dicom"
    return SeriesProcessor(load_rules(rules), sender=sender, worklist=worklist), spool


SendHost = Annotated[str | None, typer.Option(help="Send results to this PACS (C-STORE).")]
SendPort = Annotated[int, typer.Option(help="Its DICOM port.")]
SendAet = Annotated[str, typer.Option(help="Its AE title.")]
SendWeb = Annotated[str | None, typer.Option(help="Send results by STOW-RS to this URL.")]
Workstation = Annotated[bool, typer.Option(
    help="Add received studies to the workstation worklist (MEDDX_* settings of meddx serve; "
         "the spool is then <storage>/dicom).")]


@dicom_app.command("listen")
def listen(
    rules: Annotated[Path, typer.Option(help="Routing rules (JSON or YAML).")],
    spool: Annotated[Path, typer.Option(help="Where received studies are stored.")] = Path(
        "runs/dicom-spool"),
    aet: Annotated[str, typer.Option(help="Our AE title.")] = "MEDDX",
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="DICOM port to listen on.")] = 11112,
    idle: Annotated[float, typer.Option(
        help="Seconds without a new instance after which a series is complete.")] = 5.0,
    send_host: SendHost = None, send_port: SendPort = 4242, send_aet: SendAet = "ORTHANC",
    send_dicomweb: SendWeb = None, workstation: Workstation = False,
):
    """Receive studies (C-STORE), analyse complete series with the routed model, send results."""
    from meddx.pacs.listener import DicomListener

    processor, spool = _processor(rules, spool, send_host, send_port, send_aet, send_dicomweb,
                                  aet, workstation)
    listener = DicomListener(spool, processor, aet=aet, host=host, port=port,
                             idle_seconds=idle).start()
    out.print(f"listening as {aet} on {host}:{port}; spool {spool}; Ctrl-C to stop")
    listener.serve_forever()


@dicom_app.command("retry")
def retry(
    rules: Annotated[Path, typer.Option(help="Routing rules (JSON or YAML).")],
    spool: Annotated[Path, typer.Option(help="The listener's spool.")] = Path(
        "runs/dicom-spool"),
    aet: Annotated[str, typer.Option(help="Our AE title.")] = "MEDDX",
    send_host: SendHost = None, send_port: SendPort = 4242, send_aet: SendAet = "ORTHANC",
    send_dicomweb: SendWeb = None, workstation: Workstation = False,
):
    """Process again every received series that failed or was interrupted."""
    from meddx.pacs.listener import process_pending

    processor, spool = _processor(rules, spool, send_host, send_port, send_aet, send_dicomweb,
                                  aet, workstation)
    done = process_pending(spool, processor)
    states: dict[str, int] = {}
    for status in done:
        states[status.get("state", "?")] = states.get(status.get("state", "?"), 0) + 1
    out.print(f"processed {len(done)} series: {states or 'nothing pending'}")
