"""Reviewed cases written as the dataset each kind of study trains from.

Every writer fills a staging folder that ``meddx train FOLDER`` (or the manifest it names) reads
directly, and returns what :func:`meddx.workstation.services.feedback.export_dataset` puts in
``cases.json``: the cases, the cases left out and why, and a plain statement of what the labels
mean.

* Images (and other single-file cases): ``manifest.csv`` (path,label) beside copies of the files,
  renamed ``image-<n><suffix>``; the label is the clinician's. DICOM files are de-identified
  (Annex E Basic Profile); PNG, JPEG and NIfTI files lose their text metadata, pixels unchanged.

No uploaded file name is exported, in a file name or in ``cases.json``: they often hold the
patient's name.
* Texts: ``texts.csv`` (text,label), the table the symptom-text reader reads.
* Clinical records: ``records.csv`` (the model's feature columns, then its target column holding
  the clinician's finding coded as the model's schema reads it) with the model's schema beside
  it (``records.csv.schema.json``). A review is of the finding shown, the first record of the
  uploaded table: only that record is exported, the others are counted as not exported.
* Fixed-length series: ``series_TRAIN.txt`` in the UCR layout the ECG200 reader reads (the
  clinician's label as the model's label value, then the series) and ``classes.json`` naming the
  label values, so the retrained model keeps the class names.
* ECG records: a WFDB folder, one record per study, renamed ``s<study>`` (the uploaded record
  name may be the patient's, and two uploads of record 100 must not collide). A beat model
  learns from beat annotations, and a review of a record's finding does not say which beats
  were wrong; so the beat labels are the reference annotations uploaded with the record
  (``.atr``), the model's beats are written beside them for comparison (``.pred``), the review
  stays in ``cases.json``, and a record without reference annotations is left out (listed,
  with the reason), never labelled with the model's own guesses. The headers are rewritten
  without their free-text comments (age, sex, medication) and recording date, and the
  annotations keep their rhythm labels but no free-text notes, as the export is pseudonymous.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from meddx.data.dicom.annex_e import EDITION
from meddx.data.dicom.deidentify import DeidentificationOptions, Deidentifier
from meddx.data.ecg import SERIES_CLASSES_FILE, read_series
from meddx.data.metadata_scrub import FORMATS, NIFTI_TEXT_FIELDS, SCRUBBERS
from meddx.data.tabular import SCHEMA_SUFFIX, TabularSchema, target_cell
from meddx.decision.bundle import load_bundle
from meddx.decision.tabular_predict import read_records
from meddx.errors import BundleError, ConfigError, InputFileError, MeddxError
from meddx.fileio import write_json
from meddx.workstation.db.models import Feedback, ModelVersion, Study
from meddx.workstation.services.registry import suffix_of
from meddx.workstation.services.studies import primary_file

MANIFEST = "manifest.csv"
SERIES_FILE = "series_TRAIN.txt"
TEXTS = "texts.csv"
RECORDS = "records.csv"
DEID_LOG = "deidentification-log.json"
DICOM_SUFFIXES = (".dcm", ".dicom")
PREDICTED_BEATS = "pred"
"""WFDB annotation extension of the model's beats in an exported record (the labels are .atr)."""


@dataclass
class Export:
    """What a writer produced: the path to train on, its format and the cases."""

    dataset: Path
    format: str
    label_note: str
    cases: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What a person must know about what was (not) exported, printed by the CLI."""


def clinician_label(review: Feedback) -> str:
    """The clinician's label: the corrected one, or the model's decision agreed with."""
    return review.prediction.decision if review.agrees else review.corrected_label


def case_record(review: Feedback, study: Study) -> dict[str, Any]:
    """The provenance of one case (pseudonymous: no name, no record number)."""
    model = review.prediction.model
    return {"study_id": study.id, "patient": study.patient.pseudonym if study.patient else None,
            "model": f"{model.name}@{model.version}",
            "model_decision": review.prediction.decision, "agrees": review.agrees,
            "reviewer": review.user.username, "reviewed_at": review.created_at.isoformat()}


def _export_file(item, storage_dir: Path, folder: Path, name: str,
                 deidentifier: Deidentifier | None) -> dict[str, Any] | None:
    """Write one case file as ``folder/name`` with its identifying metadata removed; what was
    removed is returned for the log (None for formats without a scrubber, copied as they are).
    """
    suffix = suffix_of(item.original_name)
    source = storage_dir / item.stored_path
    if suffix in DICOM_SUFFIXES:
        result = deidentifier.deidentify_file(source, folder, name)
        return {"format": "DICOM", "input_sha256": result.input_sha256,
                "changes": [c.as_dict() for c in result.changes], "warnings": result.warnings}
    scrub = SCRUBBERS.get(suffix)
    if scrub is None:
        shutil.copy2(source, folder / name)
        return None
    return {"format": FORMATS[suffix], "changes": scrub(source, folder / name)}


def export_files(session: Session, storage_dir: Path, staging: Path,
                 reviews: list[Feedback]) -> Export:
    """``manifest.csv`` (path,label) and each study's files under ``cases/``.

    Every file is renamed ``image-<n><suffix>`` (DICOM ``image-<n>.dcm``), as uploaded file
    names often hold the patient's name; ``cases.json`` does not record the original names.
    DICOM files are de-identified on the way (PS3.15 Annex E Basic Profile, the one
    ``meddx dicom deidentify`` applies; one run for the whole export, so UIDs and patients stay
    linked inside it). PNG and JPEG files lose their text metadata (PNG text chunks, JPEG
    ``APPn``/``COM`` segments; the EXIF orientation is kept), NIfTI files their header text
    fields and extensions (:mod:`meddx.data.metadata_scrub`). The pixels are kept bit for bit
    in every format. What changed is in ``deidentification-log.json`` (attributes, fields,
    chunks and actions, never the values).
    """
    (staging / "cases").mkdir()
    rows, cases, scrubbed = [], [], []
    deidentifier = None  # one per export: consistent new UIDs and pseudonyms across studies
    for review in reviews:
        study = session.get(Study, review.study_id)
        folder = staging / "cases" / f"study-{study.id}"
        folder.mkdir()
        names = {}
        for item in study.files:
            suffix = suffix_of(item.original_name)
            if suffix in DICOM_SUFFIXES:
                suffix = ".dcm"
                deidentifier = deidentifier or Deidentifier(DeidentificationOptions())
            names[item.id] = f"image-{len(names) + 1}{suffix}"
            try:
                entry = _export_file(item, storage_dir, folder, names[item.id], deidentifier)
            except InputFileError as error:
                raise ConfigError(f"feedback export: study {study.id} ({item.original_name}): "
                                  f"{error.problem}") from error
            if entry is not None:
                scrubbed.append({"output": f"cases/study-{study.id}/{names[item.id]}", **entry})
        label = clinician_label(review)
        # The file the model read, as the upload chose it.
        primary = primary_file(list(study.files), review.prediction.model)
        relative = f"cases/study-{study.id}/{names[primary.id]}"
        rows.append({"path": relative, "label": label})
        cases.append({"path": relative, "label": label, **case_record(review, study)})
    with (staging / MANIFEST).open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["path", "label"])
        writer.writeheader()
        writer.writerows(rows)
    export = Export(staging / MANIFEST, "manifest", "label: the clinician's finding (the "
                    "corrected one on disagreement, the model's when the clinician agreed)", cases)
    if scrubbed:
        _write_deidentification_log(staging, scrubbed, deidentifier, export.notes)
    return export


def _write_deidentification_log(staging: Path, scrubbed: list[dict[str, Any]],
                                deidentifier: Deidentifier | None, notes: list[str]) -> None:
    log: dict[str, Any] = {}
    dicom = [f for f in scrubbed if f["format"] == "DICOM"]
    if dicom:
        log.update({"profile": f"DICOM PS3.15 Annex E Table E.1-1 ({EDITION}), Basic "
                               "Application Level Confidentiality Profile",
                    "options": [meaning for _, meaning in deidentifier.options.method_codes()],
                    "key": "random (not stored): new UIDs and pseudonyms cannot be traced back"})
        burned = sum(bool(f["warnings"]) for f in dicom)
        notes.append(
            f"{len(dicom)} DICOM file(s) de-identified (Basic Profile: names, IDs, dates "
            f"and UIDs removed or replaced, pixels unchanged): see {DEID_LOG}"
            + (f"; {burned} of them are marked as having identifying text burned into the "
               "pixels, which is not removed: check them before sharing" if burned else ""))
    others = [f for f in scrubbed if f["format"] != "DICOM"]
    if others:
        log["other_formats"] = (
            "PNG: chunks other than image data, palette, transparency, gamma, colour and "
            "density removed; JPEG: APPn and COM segments removed (JFIF and Adobe headers "
            "kept, without thumbnails), image data not re-encoded; EXIF orientation kept; "
            "NIfTI: text fields " + ", ".join(NIFTI_TEXT_FIELDS) + " cleared and header "
            "extensions removed, data block and geometry unchanged")
        changed = sum(bool(f["changes"]) for f in others)
        notes.append(f"{len(others)} PNG/JPEG/NIfTI file(s) checked for identifying metadata "
                     f"and {changed} of them cleaned (text chunks, EXIF/comments, header text "
                     f"fields; pixels unchanged): see {DEID_LOG}")
    log["files"] = scrubbed
    write_json(log, staging / DEID_LOG)


def export_texts(session: Session, storage_dir: Path, staging: Path,
                 reviews: list[Feedback]) -> Export:
    """``texts.csv`` (text,label): each study's text as uploaded, the clinician's label."""
    rows, cases = [], []
    for review in reviews:
        study = session.get(Study, review.study_id)
        source = primary_file(list(study.files), review.prediction.model)
        try:
            text = (storage_dir / source.stored_path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"feedback export: study {study.id} ({source.original_name}): "
                              f"cannot read the text ({error})") from error
        label = clinician_label(review)
        rows.append({"text": text.strip(), "label": label})
        cases.append({"row": len(rows), "label": label, **case_record(review, study)})
    with (staging / TEXTS).open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["text", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return Export(staging / TEXTS, "text-table", "label: the clinician's finding for the text "
                  "in the same row (the corrected one on disagreement)", cases)


def _bundle_metadata(model: ModelVersion, needed: str) -> dict[str, Any]:
    """The metadata of a model's bundle; ``needed`` says what the export reads from it."""
    try:
        return load_bundle(model.bundle_path).metadata
    except BundleError as error:
        raise ConfigError(f"feedback export: model {model.name}@{model.version} cannot be read "
                          f"({error}); {needed} come from it") from error


def _series_plan(model: ModelVersion) -> dict[str, Any]:
    plan = _bundle_metadata(model, "its series length and label values").get("plan", {})
    if not plan.get("series_length") or not plan.get("label_values"):
        raise ConfigError(f"feedback export: {model.bundle_path} is not a series model "
                          "(no series_length / label_values in its plan)")
    return plan


def export_series(session: Session, storage_dir: Path, staging: Path,
                  reviews: list[Feedback]) -> Export:
    """One UCR line per case: the clinician's label value, then the series as uploaded."""
    plans: dict[int, dict[str, Any]] = {}
    lines, cases, shapes = [], [], set()
    for review in reviews:
        model = review.prediction.model
        if model.id not in plans:
            plans[model.id] = _series_plan(model)
        plan = plans[model.id]
        length, values = int(plan["series_length"]), [float(v) for v in plan["label_values"]]
        names = list(model.class_names)
        shapes.add((length, tuple(zip(names, values, strict=True))))
        if len(shapes) > 1:
            raise ConfigError("feedback export: the reviewed series models differ in series "
                              f"length or label values ({sorted(shapes)}); choose one with "
                              "--model")
        study = session.get(Study, review.study_id)
        source = primary_file(list(study.files), model)
        try:
            series = read_series(storage_dir / source.stored_path, length, max_series=1)
        except MeddxError as error:
            raise ConfigError(f"feedback export: study {study.id} ({source.original_name}): "
                              f"{error}") from error
        label = clinician_label(review)
        value = values[names.index(label)]
        lines.append(" ".join([repr(value), *(f"{v:.9g}" for v in series.values[0])]))
        cases.append({"line": len(lines), "label": label, "label_value": value,
                      **case_record(review, study)})
    length, pairs = shapes.pop()
    (staging / SERIES_FILE).write_text("\n".join(lines) + "\n")
    (staging / SERIES_CLASSES_FILE).write_text(json.dumps(
        {"class_names": [n for n, _ in pairs], "label_values": [v for _, v in pairs]}, indent=2))
    return Export(staging, "ucr", f"UCR series of {length} values, one per line: the label "
                  "value of the clinician's finding (see classes.json), then the series as "
                  "uploaded", cases)


def export_ecg_records(session: Session, storage_dir: Path, staging: Path,
                       reviews: list[Feedback]) -> Export:
    """A WFDB folder of the reviewed records with their reference beat annotations."""
    import wfdb

    export = Export(staging, "wfdb", "ECG records: the beat labels are each record's reference "
                    "annotations (.atr, uploaded with the record); the model's beats are beside "
                    f"them (.{PREDICTED_BEATS}). The clinician's review is of the record's "
                    "finding: it is kept in cases.json and not applied to single beats. Records "
                    "without reference annotations are left out.")
    for review in reviews:
        study = session.get(Study, review.study_id)
        files = {suffix_of(f.original_name): f for f in study.files}
        header = files.get(".hea")
        annotations = files.get(".atr")
        info = case_record(review, study)
        info["record_finding"] = clinician_label(review)
        if header is None or annotations is None:
            export.skipped.append({**info, "reason": (
                "no reference beat annotations (.atr): a review of the record's finding does not "
                "label its beats, and the model's own beats are not labels")
                if header is not None else "no WFDB header (.hea)"})
            continue
        stem = (storage_dir / header.stored_path).with_suffix("")
        name = f"s{study.id}"  # not the uploaded record name, which may be the patient's
        try:
            record = wfdb.rdheader(str(stem))
        except Exception as error:  # wfdb raises many types for bad headers
            raise ConfigError(f"feedback export: study {study.id}: unreadable WFDB header "
                              f"({error})") from error
        signal_files = list(dict.fromkeys(record.file_name or []))
        renamed = {old: f"{name}{f'_{k}' if len(signal_files) > 1 else ''}{Path(old).suffix}"
                   for k, old in enumerate(signal_files, 1)}
        for old, new in renamed.items():
            shutil.copy2(stem.parent / old, staging / new)
        record.record_name = name
        record.file_name = [renamed[old] for old in record.file_name]
        # Free-text header comments hold age, sex, medication and the like, and the recording
        # date is an identifier (HIPAA Safe Harbor): the export is pseudonymous, so they stay
        # behind (the signal and its calibration are kept exactly).
        record.comments = []
        record.base_date = record.base_time = None
        record.wrheader(write_dir=str(staging))
        dropped = _write_reference_beats(storage_dir / annotations.stored_path, staging, name)
        if dropped:
            info["annotation_notes_removed"] = dropped
        written = [f"{name}.hea", *renamed.values(), f"{name}.atr"]
        predicted = None
        beats = (review.prediction.outputs or {}).get("beat_table")
        if beats and beats.get("time_s"):
            fs = float(record.fs)
            samples = np.round(np.asarray(beats["time_s"]) * fs).astype(np.int64)
            wfdb.wrann(name, PREDICTED_BEATS, samples, [str(c) for c in beats["class"]], fs=fs,
                       write_dir=str(staging))
            predicted = f"{name}.{PREDICTED_BEATS}"
            written.append(predicted)
        export.cases.append({"record": name, "files": written,
                             "beat_labels": "reference annotations (.atr)",
                             "model_beats": predicted, **info})
    if not export.cases:
        raise ConfigError(
            f"feedback export: none of the {len(reviews)} reviewed ECG record(s) has reference "
            "beat annotations (.atr). A beat model learns from beat labels, and a review of a "
            "record's finding does not say which beats were wrong; upload records with their "
            ".atr to export them")
    return export


RHYTHM_NOTE = re.compile(r"\([A-Z]")
"""A WFDB rhythm label, e.g. ``(AFIB`` or ``(N``: the only annotation notes an export keeps."""


def _write_reference_beats(source: Path, staging: Path, name: str) -> int:
    """Write a record's reference annotations as ``name.atr``: every annotation's position,
    symbol and codes, and its note only when it is a rhythm label (free-text notes may name
    people or carry dates). Returns how many notes were dropped."""
    import wfdb

    try:
        annotation = wfdb.rdann(str(source.with_suffix("")), source.suffix.lstrip("."))
    except Exception as error:  # wfdb raises many types for bad annotation files
        raise ConfigError(f"feedback export: unreadable annotation file {source.name} "
                          f"({error})") from error
    notes = [note or "" for note in (annotation.aux_note or [""] * len(annotation.sample))]
    kept = [note if RHYTHM_NOTE.match(note) else "" for note in notes]
    wfdb.wrann(name, "atr", annotation.sample, annotation.symbol, subtype=annotation.subtype,
               chan=annotation.chan, num=annotation.num, aux_note=kept, fs=annotation.fs,
               write_dir=str(staging))
    return sum(bool(note) and not kept_note for note, kept_note in zip(notes, kept, strict=True))


def _record_schema(model: ModelVersion) -> TabularSchema:
    metadata = _bundle_metadata(model, "its columns and target")
    if not metadata.get("schema") or not metadata["schema"].get("target"):
        raise ConfigError(f"feedback export: {model.bundle_path} is not a clinical-record model "
                          "(no table schema with a target in its metadata)")
    return TabularSchema.from_dict(metadata["schema"], str(model.bundle_path))


def _reviewed_line(review: Feedback) -> int | None:
    """File line of the record the review is of: the first one the model answered for."""
    records = (review.prediction.outputs or {}).get("predictions") or [{}]
    _, _, line = str(records[0].get("record", "")).rpartition(":")
    return int(line) if line.isdigit() else None


def export_records(session: Session, storage_dir: Path, staging: Path,
                   reviews: list[Feedback]) -> Export:
    """``records.csv``: per case the reviewed record's measurements and the clinician's label.

    The columns are the model's feature columns, then its target column, with the label
    written as the target value the model's schema reads back as that class (``Outcome`` 1, or
    a value on the right side of ``num > 0``). ``records.csv.schema.json`` beside it is the
    model's schema, so ``meddx train`` reads the columns exactly as the model did (categories,
    impossible zeros, missing markers) rather than guessing them from a few rows.

    A review is of the finding the workstation shows, the first record of the uploaded table;
    the other records of a multi-record study are not labelled by it and are left out (counted
    in the case and in a note), never given its label. Columns the model does not use (names,
    record numbers) are not exported.
    """
    schemas: dict[int, TabularSchema] = {}
    rows, cases, layouts, left_out = [], [], set(), 0
    for review in reviews:
        model = review.prediction.model
        if model.id not in schemas:
            schemas[model.id] = _record_schema(model)
        schema = schemas[model.id]
        # Versions of one model trained on other data differ in ranges, not in how they read.
        layouts.add(json.dumps([[(c.name, c.kind) for c in schema.columns], schema.target,
                                schema.binarise, schema.class_names, schema.class_values]))
        if len(layouts) > 1:
            raise ConfigError("feedback export: the reviewed clinical-record models read "
                              "different columns or targets; choose one with --model")
        study = session.get(Study, review.study_id)
        source = primary_file(list(study.files), model)
        try:
            header, table, first = read_records(storage_dir / source.stored_path, schema)
        except MeddxError as error:
            raise ConfigError(f"feedback export: study {study.id} ({source.original_name}): "
                              f"{error}") from error
        line = _reviewed_line(review)
        if line is None or not 0 <= line - first < len(table):
            raise ConfigError(f"feedback export: study {study.id} ({source.original_name}): "
                              "the prediction does not say which record it is of")
        missing = [c for c in schema.feature_names if c not in header]
        if missing:
            raise ConfigError(f"feedback export: study {study.id} ({source.original_name}): "
                              f"column(s) {missing} are missing")
        cells = dict(zip(header, table[line - first], strict=True))
        label = clinician_label(review)
        rows.append({**{c: cells[c] for c in schema.feature_names},
                     schema.target: target_cell(schema, list(model.class_names).index(label))})
        left_out += len(table) - 1
        cases.append({"row": len(rows), "label": label, "target": rows[-1][schema.target],
                      "line": line,
                      "records_in_study": len(table),
                      "records_not_exported": len(table) - 1, **case_record(review, study)})
    schema = next(iter(schemas.values()))
    table_path = staging / RECORDS
    with table_path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=[*schema.feature_names, schema.target])
        writer.writeheader()
        writer.writerows(rows)
    TabularSchema.from_dict({**schema.to_dict(), "header": True, "column_order": None}).save(
        table_path.with_name(table_path.name + SCHEMA_SUFFIX))
    coding = ", ".join(f"{schema.target}={target_cell(schema, k)} is {name!r}"
                       for k, name in enumerate(schema.class_names))
    if schema.binarise:
        coding += f", by the model's rule {schema.binarise!r}"
    export = Export(table_path, "record-table", "one row per reviewed study: the measurements "
                    "of the record the review is of (the first record of the uploaded table), "
                    f"then the clinician's finding as the target ({coding}; see "
                    f"{RECORDS}{SCHEMA_SUFFIX})", cases)
    if left_out:
        export.notes.append(
            f"{left_out} further record(s) of multi-record studies were not exported: a review "
            "labels its study's finding, which is the first record of the uploaded table, not "
            "the other records (see records_not_exported in cases.json)")
    return export


EXPORTERS: dict[str, Callable[[Session, Path, Path, list[Feedback]], Export]] = {
    "record": export_records,
    "text": export_texts,
    "series": export_series,
    "ecg": export_ecg_records,
}


def exporter(kind: str) -> Callable[[Session, Path, Path, list[Feedback]], Export]:
    """The writer of a study kind (manifest + files for kinds without their own)."""
    return EXPORTERS.get(kind, export_files)
