"""De-identification: DICOM PS3.15 Annex E, Basic Application Level Confidentiality Profile.

Every attribute of Table E.1-1 (:mod:`meddx.data.dicom.annex_e`, the whole table as data) gets
its action, at any depth of nesting:

- ``X`` removed, ``Z`` emptied, ``D`` replaced with a dummy value of its VR (Patient ID with a
  keyed pseudonym, so one patient's studies stay linked), ``U`` replaced by a new UID,
  ``K`` kept; compound actions resolve to the one that keeps the object valid for every IOD
  (``X/Z`` -> Z, anything with ``D`` -> D, ``X/Z/U*`` -> new UIDs inside the sequence);
- private attributes (odd groups) are removed, as are unlisted instance UIDs' originals (every
  UID that is not a registered DICOM UID is remapped);
- UIDs are remapped with a keyed hash (``2.25.<n>``): the same original UID gives the same new
  UID for the whole run, so studies, series, frames of reference and the references between
  objects (SEG -> image, SR -> image) stay consistent. Give the same ``key`` to get the same
  mapping in another run; without one a random key is used and the mapping cannot be reversed.

Options (each sets its code in DeidentificationMethodCodeSequence, CID 7050):

- ``dates="keep"``: Retain Longitudinal Temporal Information with Full Dates (113106);
- ``dates="shift"``: ... with Modified Dates (113107): every date moves by the same per-patient
  offset (days, from the key and the Patient ID), so intervals are preserved;
- ``retain_patient_characteristics``: sex, age, size, weight, ethnic group... kept (113108);
- ``retain_device_identity``, ``retain_institution_identity``, ``retain_uids``
  (113109, 113112, 113110).

``C`` (clean) actions of the options are applied for dates (shift); for free text, which cannot
be cleaned safely by machine, the Basic Profile action is applied instead. Pixel data is not
cleaned: files marked ``BurnedInAnnotation = YES`` are reported in the log.

The log (JSON) lists per output file each changed attribute as tag, keyword and action, never
the original values; input files are identified by their SHA-256 only (file names often hold
patient names).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import logging
import os
import secrets
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from meddx import __version__
from meddx.data.dicom.annex_e import EDITION, ProfileRule, load_table
from meddx.errors import ConfigError, InputFileError
from meddx.fileio import write_json

__all__ = [
    "DeidentificationOptions",
    "Deidentifier",
    "deidentify_path",
]

log = logging.getLogger(__name__)

DateMode = Literal["remove", "keep", "shift"]

# CID 7050 "De-identification Method": (code value, meaning).
_METHOD_CODES = {
    "basic": ("113100", "Basic Application Confidentiality Profile"),
    "dates_keep": ("113106", "Retain Longitudinal Temporal Information Full Dates Option"),
    "dates_shift": ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
    "chars": ("113108", "Retain Patient Characteristics Option"),
    "device": ("113109", "Retain Device Identity Option"),
    "uids": ("113110", "Retain UIDs Option"),
    "institution": ("113112", "Retain Institution Identity Option"),
}

_DUMMY_TEXT = "ANONYMIZED"
_DUMMIES: dict[str, Any] = {
    "PN": "ANONYMIZED", "LO": _DUMMY_TEXT, "SH": _DUMMY_TEXT, "LT": _DUMMY_TEXT,
    "ST": _DUMMY_TEXT, "UT": _DUMMY_TEXT, "UC": _DUMMY_TEXT, "CS": "ANONYMIZED",
    "AE": "ANONYMIZED", "DA": "19000101", "TM": "000000", "DT": "19000101000000",
    "AS": "000D", "IS": "0", "DS": "0", "UR": "http://anonymized.invalid",
    "US": 0, "SS": 0, "UL": 0, "SL": 0, "FL": 0.0, "FD": 0.0, "UV": 0, "SV": 0,
    "OB": b"\x00\x00", "OW": b"\x00\x00", "UN": b"\x00\x00", "OD": b"\x00" * 8,
    "OF": b"\x00" * 4, "OL": b"\x00" * 4, "OV": b"\x00" * 8, "AT": 0,
}


@dataclass
class DeidentificationOptions:
    """Which Annex E options apply, and the key that makes the run reproducible.

    Args:
        key: secret for UID remapping, pseudonyms and date offsets (same key -> same output);
            None draws a random one (the mapping is then lost after the run).
        dates: ``"remove"`` (Basic Profile), ``"keep"`` (full dates) or ``"shift"``.
        max_shift_days: the per-patient date offset lies in ``[-max, -1] U [1, max]`` days.
        retain_patient_characteristics / retain_device_identity /
        retain_institution_identity / retain_uids: the Annex E options of these names.
    """

    key: str | None = None
    dates: DateMode = "remove"
    max_shift_days: int = 365
    retain_patient_characteristics: bool = False
    retain_device_identity: bool = False
    retain_institution_identity: bool = False
    retain_uids: bool = False

    def __post_init__(self):
        if self.dates not in ("remove", "keep", "shift"):
            raise ConfigError(f"dates: {self.dates!r} is not one of remove, keep, shift")
        if self.max_shift_days < 1:
            raise ConfigError(f"max_shift_days must be >= 1, got {self.max_shift_days}")

    def method_codes(self) -> list[tuple[str, str]]:
        codes = [_METHOD_CODES["basic"]]
        if self.dates != "remove":
            codes.append(_METHOD_CODES[f"dates_{self.dates}"])
        for flag, name in ((self.retain_patient_characteristics, "chars"),
                           (self.retain_device_identity, "device"),
                           (self.retain_institution_identity, "institution"),
                           (self.retain_uids, "uids")):
            if flag:
                codes.append(_METHOD_CODES[name])
        return codes

    def option_columns(self) -> dict[str, str]:
        """Table E.1-1 option column -> the action it gives, for the enabled options."""
        columns: dict[str, str] = {}
        if self.retain_uids:
            columns["uids"] = "*"
        if self.retain_device_identity:
            columns["device"] = "*"
        if self.retain_institution_identity:
            columns["institution"] = "*"
        if self.retain_patient_characteristics:
            columns["chars"] = "*"
        if self.dates == "keep":
            columns["dates"] = "K"
        elif self.dates == "shift":
            columns["dates"] = "C"
        return columns


@dataclass
class Change:
    """One attribute changed: where, what, which action (never the value)."""

    tag: str
    keyword: str
    action: str
    path: str = ""

    def as_dict(self) -> dict[str, str]:
        out = {"tag": self.tag, "keyword": self.keyword, "action": self.action}
        if self.path:
            out["path"] = self.path
        return out


@dataclass
class FileResult:
    output: str
    input_sha256: str
    changes: list[Change] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _tag_text(tag) -> str:
    return f"({tag.group:04X},{tag.element:04X})"


def _is_registered_uid(value: str) -> bool:
    from pydicom.uid import UID

    uid = UID(value)
    return uid.name != str(uid)  # pydicom names every UID of PS3.6; others echo the value


class Deidentifier:
    """Applies the Basic Profile (and options) to datasets; one instance per run.

    The instance holds the UID map of the run, so every file of a study run through the same
    instance gets consistent new UIDs.
    """

    def __init__(self, options: DeidentificationOptions | None = None):
        self.options = options or DeidentificationOptions()
        key = self.options.key if self.options.key is not None else secrets.token_hex(32)
        self._key = key.encode()
        self._exact, self._repeating, self._private = load_table()
        self._columns = self.options.option_columns()
        self.uid_map: dict[str, str] = {}

    # ---- keyed values -----------------------------------------------------------------------

    def _digest(self, *parts: str) -> bytes:
        return hmac.new(self._key, "\x1f".join(parts).encode(), hashlib.sha256).digest()

    def new_uid(self, uid: str) -> str:
        """The replacement of ``uid``: the same for the whole run (keyed, not reversible)."""
        uid = str(uid).strip()
        if uid not in self.uid_map:
            self.uid_map[uid] = f"2.25.{int.from_bytes(self._digest('uid', uid)[:16], 'big')}"
        return self.uid_map[uid]

    def pseudonym(self, patient_id: str) -> str:
        """A keyed pseudonym for a Patient ID (the same patient -> the same pseudonym)."""
        return "ANON-" + self._digest("patient", patient_id).hex()[:12].upper()

    def date_offset(self, patient_id: str) -> int:
        """Days every date of this patient moves by (``dates="shift"``); never 0."""
        span = self.options.max_shift_days
        value = int.from_bytes(self._digest("dates", patient_id)[:4], "big") % (2 * span)
        return value - span if value < span else value - span + 1

    # ---- the table --------------------------------------------------------------------------

    def rule_for(self, tag) -> ProfileRule | None:
        rule = self._exact.get(int(tag))
        if rule is not None:
            return rule
        if tag.group % 2 == 1:
            return self._private
        for candidate in self._repeating:
            if candidate.matches(tag.group, tag.element):
                return candidate
        return None

    def action_for(self, rule: ProfileRule) -> str:
        """The action after options: an option's K wins, then its C, else the Basic action."""
        chosen = None
        for column, given in self._columns.items():
            value = rule.options.get(column)
            if value is None:
                continue
            value = given if given in ("K", "C") else value
            if value == "K":
                return "K"
            chosen = chosen or value
        if chosen == "C":
            return "C"
        return _resolve_compound(rule.basic)

    # ---- datasets ---------------------------------------------------------------------------

    def deidentify_dataset(self, ds) -> tuple[Any, list[Change]]:
        """De-identify ``ds`` in place; returns it and the changes made."""
        patient_id = str(ds.get("PatientID", "") or "")
        changes: list[Change] = []
        self._walk(ds, changes, patient_id, "")
        self._mark(ds)
        meta = getattr(ds, "file_meta", None)
        if meta is not None:
            if "SOPInstanceUID" in ds:
                meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            # Group 0002 AE titles name the sending and receiving stations (device identity).
            for keyword in ("SourceApplicationEntityTitle", "SendingApplicationEntityTitle",
                            "ReceivingApplicationEntityTitle"):
                if keyword in meta:
                    tag = meta[keyword].tag
                    del meta[keyword]
                    changes.append(Change(_tag_text(tag), keyword, "X"))
        return ds, changes

    def _walk(self, ds, changes: list[Change], patient_id: str, prefix: str) -> None:
        for element in list(ds):
            tag = element.tag
            keyword = element.keyword or ("private" if tag.group % 2 else "")
            path = f"{prefix}{keyword or _tag_text(tag)}"
            rule = self.rule_for(tag)
            if rule is None:
                if element.VR == "SQ":
                    for index, item in enumerate(element.value or []):
                        self._walk(item, changes, patient_id, f"{path}[{index}].")
                elif (element.VR == "UI" and element.value and not self._columns.get("uids")
                      and self._remap_unlisted(element)):
                    changes.append(Change(_tag_text(tag), keyword or "", "U", prefix))
                continue
            action = self.action_for(rule)
            applied = self._apply(ds, element, action, patient_id, changes, path)
            if applied:
                changes.append(Change(_tag_text(tag), keyword or "", applied,
                                      prefix.rstrip(".")))

    def _remap_unlisted(self, element) -> bool:
        values = element.value if element.VM > 1 else [element.value]
        new = [v if _is_registered_uid(str(v)) else self.new_uid(str(v)) for v in values]
        if [str(v) for v in new] == [str(v) for v in values]:
            return False
        element.value = new if element.VM > 1 else new[0]
        return True

    def _apply(self, ds, element, action: str, patient_id: str, changes: list[Change],
               path: str) -> str | None:
        """Apply one action; returns the action recorded in the log, or None if unchanged."""
        tag, vr = element.tag, element.VR
        if action == "K":
            if vr == "SQ":  # kept, but its items still go through the table
                for index, item in enumerate(element.value or []):
                    self._walk(item, changes, patient_id, f"{path}[{index}].")
            return None
        if action == "C":
            if vr in ("DA", "DT", "TM"):
                return self._shift(element, patient_id)
            action = _resolve_compound(self.rule_for(tag).basic)  # no safe free-text cleaner
        if action == "X":
            del ds[tag]
            return "X"
        if action == "Z":
            if vr == "SQ":
                element.value = []
            else:
                element.value = None
            return "Z"
        if action in ("U", "U*"):
            if vr == "SQ":
                for index, item in enumerate(element.value or []):
                    self._walk(item, changes, patient_id, f"{path}[{index}].")
                return None
            if vr == "UI" and element.value:
                values = element.value if element.VM > 1 else [element.value]
                new = [self.new_uid(str(v)) for v in values]
                element.value = new if element.VM > 1 else new[0]
                return "U"
            element.value = None
            return "Z"
        if action == "D":
            if vr == "SQ":
                for index, item in enumerate(element.value or []):
                    self._walk(item, changes, patient_id, f"{path}[{index}].")
                return "D"
            if tag == 0x00100020:  # Patient ID: a keyed pseudonym keeps a patient's studies linked
                element.value = self.pseudonym(patient_id) if patient_id else _DUMMY_TEXT
            elif vr == "UI":
                values = element.value if element.VM > 1 else [element.value]
                element.value = self.new_uid(str(values[0])) if values and values[0] else \
                    self.new_uid("dummy")
            else:
                element.value = _DUMMIES.get(vr, _DUMMY_TEXT)
            return "D"
        raise ValueError(f"Table E.1-1 action {action!r} for {_tag_text(tag)} is not handled")

    def _shift(self, element, patient_id: str) -> str | None:
        """Modified dates: move DA / DT by the patient's offset; TM (time of day) is kept."""
        if element.VR == "TM" or not element.value:
            return None
        offset = _dt.timedelta(days=self.date_offset(patient_id))
        values = element.value if element.VM > 1 else [element.value]
        shifted = []
        for value in values:
            text = str(value)
            try:
                day = _dt.datetime.strptime(text[:8], "%Y%m%d").date()
            except ValueError:
                element.value = None  # an unparseable date cannot be shifted: empty it
                return "Z"
            shifted.append((day + offset).strftime("%Y%m%d") + text[8:])
        element.value = shifted if element.VM > 1 else shifted[0]
        return "C"

    def _mark(self, ds) -> None:
        from pydicom.dataset import Dataset
        from pydicom.sequence import Sequence

        ds.PatientIdentityRemoved = "YES"
        names = "; ".join(meaning for _, meaning in self.options.method_codes())
        ds.DeidentificationMethod = f"meddx {__version__}: PS3.15 E.1-1 ({EDITION}): {names}"[:64]
        items = []
        for code, meaning in self.options.method_codes():
            item = Dataset()
            item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code, "DCM", meaning
            items.append(item)
        ds.DeidentificationMethodCodeSequence = Sequence(items)
        ds.LongitudinalTemporalInformationModified = {
            "remove": "REMOVED", "keep": "UNMODIFIED", "shift": "MODIFIED"}[self.options.dates]

    # ---- files ------------------------------------------------------------------------------

    def deidentify_file(self, source: Path, out_dir: Path,
                        name: str | None = None) -> FileResult:
        """De-identify one file into ``out_dir/<study>/<series>/<instance>.dcm`` (new UIDs), or
        into ``out_dir/name`` when a name is given.

        Raises:
            InputFileError: not a DICOM file.
        """
        from meddx.data.dicom.series import read_dataset, save_dataset

        data = Path(source).read_bytes()
        ds = read_dataset(source)
        warnings_: list[str] = []
        if str(ds.get("BurnedInAnnotation", "")).upper() == "YES":
            warnings_.append("BurnedInAnnotation is YES: identifying text may be burned into the "
                             "pixels, which the Basic Profile does not clean")
        _, changes = self.deidentify_dataset(ds)
        parts = [str(ds.get(k, "") or "unknown") for k in
                 ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")]
        target = save_dataset(ds, out_dir / name if name else
                              out_dir.joinpath(*parts[:2], f"{parts[2]}.dcm"),
                              enforce=getattr(ds, "file_meta", None) is not None
                              and "TransferSyntaxUID" in ds.file_meta)
        return FileResult(output=str(target.relative_to(out_dir)),
                          input_sha256=hashlib.sha256(data).hexdigest(), changes=changes,
                          warnings=warnings_)


def _resolve_compound(basic: str) -> str:
    """One action for a compound code, valid whatever the attribute's type in the IOD."""
    if basic == "X/Z/U*":
        return "U*"
    if "/" not in basic:
        return basic
    if "D" in basic.split("/"):
        return "D"  # Type 1 somewhere: a dummy value keeps the object valid
    return "Z"  # X/Z: an empty value is valid for Type 2 and Type 3 alike


def deidentify_path(source: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                    options: DeidentificationOptions | None = None, progress: bool = False,
                    log_path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """De-identify a DICOM file or a folder (recursively) into ``out_dir``; write the JSON log.

    Non-DICOM files are skipped and counted. The log goes to ``log_path`` (default
    ``out_dir/deidentification-log.json``), written atomically.

    Returns:
        The log as a dict (``files``, ``skipped``, ``summary``).

    Raises:
        InputFileError: ``source`` does not exist or holds no DICOM file.
        ConfigError: ``out_dir`` is inside ``source`` (the output would be read again).
    """
    source, out_dir = Path(source), Path(out_dir)
    if not source.exists():
        raise InputFileError(source, "file or folder not found")
    if source.is_dir() and out_dir.resolve().is_relative_to(source.resolve()):
        raise ConfigError(f"{out_dir}: the output folder must not be inside the input folder")
    files = [source] if source.is_file() else sorted(
        p for p in source.rglob("*") if p.is_file() and not p.name.startswith("."))
    deidentifier = Deidentifier(options)
    results: list[FileResult] = []
    skipped: list[dict[str, str]] = []
    out_dir.mkdir(parents=True, exist_ok=True)
    iterator = files
    if progress:
        from rich.progress import track

        iterator = track(files, description="de-identifying")
    for path in iterator:
        try:
            results.append(deidentifier.deidentify_file(path, out_dir))
        except InputFileError as error:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            skipped.append({"input_sha256": digest, "reason": error.problem})
    if not results:
        raise InputFileError(source, f"no DICOM file to de-identify ({len(skipped)} file(s) "
                                     "skipped: not DICOM)")
    actions = Counter(change.action for result in results for change in result.changes)
    attributes = Counter(change.keyword or change.tag for result in results
                         for change in result.changes)
    report = {
        "profile": f"DICOM PS3.15 Annex E Table E.1-1 ({EDITION}), Basic Application Level "
                   "Confidentiality Profile",
        "options": [meaning for _, meaning in deidentifier.options.method_codes()],
        "key": "given" if deidentifier.options.key is not None else "random (not stored)",
        "meddx": __version__,
        "summary": {"files": len(results), "skipped": len(skipped),
                    "uids_remapped": len(deidentifier.uid_map), "actions": dict(actions),
                    "attributes": dict(sorted(attributes.items()))},
        "files": [{"output": r.output, "input_sha256": r.input_sha256,
                   "changes": [c.as_dict() for c in r.changes], "warnings": r.warnings}
                  for r in results],
        "skipped": skipped,
    }
    target = Path(log_path) if log_path else out_dir / "deidentification-log.json"
    write_json(report, target)
    report["log"] = str(target)
    return report
