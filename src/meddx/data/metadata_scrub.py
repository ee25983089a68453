"""Identifying metadata removed from PNG, JPEG and NIfTI files, the pixels kept bit for bit.

DICOM has its own profile (:mod:`meddx.data.dicom.deidentify`); the other image formats carry
free text too: PNG text chunks (``tEXt``/``iTXt``/``zTXt``, often a patient name or a scanner
comment), JPEG ``APPn`` segments (EXIF with dates and device owners, XMP, IPTC, thumbnails) and
comments (``COM``), NIfTI text fields (``descrip``, ``aux_file``, ``intent_name`` and the Analyze
``db_name``/``data_type``) and header extensions (dcm2niix may store the whole DICOM header
there). Each scrubber writes a copy without them and returns what it removed (kinds of
element, never their values), for a de-identification log.

None of them decodes and re-encodes the image: the PNG ``IDAT`` chunks, the JPEG entropy-coded
scans and the NIfTI data block are copied byte for byte, so the pixels (voxels) a reader gets are
identical. What affects how pixels are read is kept: PNG transparency, gamma and colour chunks,
the JPEG JFIF and Adobe headers (the Adobe one says whether the colour channels are transformed),
and the EXIF orientation, which meddx applies when it reads a photograph (it is written back as
a minimal EXIF block holding that tag alone).
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from meddx.errors import InputFileError
from meddx.fileio import write_atomically, write_bytes

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_KEPT = frozenset({b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB",
                      b"sBIT", b"pHYs", b"bKGD", b"hIST", b"cICP"})
"""PNG chunks that describe the pixels and hold no free text; every other chunk is dropped."""

NIFTI_TEXT_FIELDS = ("descrip", "aux_file", "intent_name", "db_name", "data_type")
"""Free-text fields of NIfTI-1/-2 headers (``db_name`` and ``data_type`` are Analyze 7.5's)."""

EXIF_ORIENTATION = 0x0112
ORIENTATION_ONLY = "written back holding the orientation tag alone"

# APPn identifiers named in the log; an unknown one is logged as its marker alone, as its
# identifier string is free text from the file.
_APP_NAMES = {b"Exif": "Exif", b"http://ns.adobe.com/xap/1.0/": "XMP",
              b"http://ns.adobe.com/xmp/extension/": "XMP extension",
              b"ICC_PROFILE": "ICC profile", b"Photoshop 3.0": "Photoshop/IPTC",
              b"JFXX": "JFIF extension (thumbnail)", b"MPF": "multi-picture (MPF)",
              b"Ducky": "Ducky", b"Adobe": "Adobe", b"JFIF": "JFIF"}


def _change(element: str, action: str, count: int = 1) -> dict[str, Any]:
    return {"element": element, "action": action, **({"count": count} if count > 1 else {})}


def _orientation(path: Path) -> int | None:
    """The EXIF orientation meddx applies when reading ``path`` (None when upright/absent)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.format == "PNG":
                image.load()  # a PNG's eXIf chunk may follow the image data
            value = image.getexif().get(EXIF_ORIENTATION)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as error:
        raise InputFileError(path, f"not a readable image ({error})") from error
    return int(value) if value not in (None, 1) else None


def _orientation_exif(orientation: int) -> bytes:
    """A minimal EXIF block (``Exif\\0\\0`` + TIFF) holding the orientation tag alone."""
    from PIL import Image

    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    return exif.tobytes()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (len(data).to_bytes(4, "big") + kind + data
            + zlib.crc32(kind + data).to_bytes(4, "big"))


def scrub_png(source: Path, target: Path) -> list[dict[str, Any]]:
    """Copy a PNG keeping only the chunks in :data:`PNG_KEPT` (image data untouched).

    Raises:
        InputFileError: not a PNG, truncated, a chunk's checksum wrong, or a critical chunk
            this scrubber does not know (it cannot tell whether dropping it changes the image).
    """
    source, target = Path(source), Path(target)
    data = source.read_bytes()
    if not data.startswith(PNG_SIGNATURE):
        raise InputFileError(source, "not a PNG file (no PNG signature)")
    orientation = _orientation(source)
    out, removed, pos = bytearray(PNG_SIGNATURE), Counter(), len(PNG_SIGNATURE)
    rewritten: list[dict[str, Any]] = []
    while True:
        if pos + 12 > len(data):
            raise InputFileError(source, f"PNG ends inside a chunk at byte {pos} (no IEND)")
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind = bytes(data[pos + 4:pos + 8])
        end = pos + 12 + length
        if end > len(data):
            raise InputFileError(source, f"PNG chunk at byte {pos} runs past the end of the file")
        crc = int.from_bytes(data[end - 4:end], "big")
        if zlib.crc32(data[pos + 4:end - 4]) != crc:
            raise InputFileError(source, f"PNG chunk at byte {pos}: wrong checksum (corrupt)")
        if kind == b"IDAT" and orientation is not None:
            out += _png_chunk(b"eXIf", _orientation_exif(orientation)[6:])  # TIFF, no prefix
            orientation = None
            rewritten.append(_change("eXIf", ORIENTATION_ONLY))
        if kind in PNG_KEPT:
            out += data[pos:end]
        elif kind[:1].isupper():
            raise InputFileError(source, f"PNG has an unknown critical chunk "
                                 f"{kind.decode('latin-1')!r}; it cannot be left out safely")
        else:
            removed[kind.decode("latin-1")] += 1
        pos = end
        if kind == b"IEND":
            break
    return _write(target, out, removed, rewritten, "data after IEND" if pos < len(data) else "")


def _app_name(marker: int, payload: bytes) -> str:
    if marker == 0xFE:
        return "COM"
    identifier = payload.split(b"\x00", 1)[0]
    name = _APP_NAMES.get(identifier)
    return f"APP{marker - 0xE0}" + (f" {name}" if name else "")


def _scan_end(data: bytes, pos: int, source: Path) -> int:
    """Where the entropy-coded data starting at ``pos`` ends: at the next marker that is not
    a stuffed byte (``FF00``) or a restart marker (``FFD0``-``FFD7``)."""
    while True:
        pos = data.find(b"\xff", pos)
        if pos < 0 or pos + 1 >= len(data):
            raise InputFileError(source, "JPEG ends inside the image data (no EOI marker)")
        following = data[pos + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7:
            pos += 2
        elif following == 0xFF:
            pos += 1  # fill bytes before a marker
        else:
            return pos


def scrub_jpeg(source: Path, target: Path) -> list[dict[str, Any]]:
    """Copy a JPEG without its ``APPn`` and ``COM`` segments, the image data byte for byte.

    Kept: the JFIF header (without its thumbnail), the Adobe header (it says how the colour
    channels are coded) and the EXIF orientation (as a minimal EXIF block). Data after the end
    of the image (other pictures, trailers) is dropped.

    Raises:
        InputFileError: not a JPEG, or its segments are truncated or malformed.
    """
    source, target = Path(source), Path(target)
    data = source.read_bytes()
    if not data.startswith(b"\xff\xd8"):
        raise InputFileError(source, "not a JPEG file (no SOI marker)")
    orientation = _orientation(source)
    out, pos = bytearray(b"\xff\xd8"), 2
    removed: Counter[str] = Counter()
    rewritten: list[dict[str, Any]] = []
    while True:
        if pos >= len(data) or data[pos] != 0xFF:
            raise InputFileError(source, f"JPEG: no marker at byte {pos} (truncated or corrupt)")
        while pos < len(data) and data[pos] == 0xFF:
            pos += 1
        if pos >= len(data):
            raise InputFileError(source, "JPEG ends without an EOI marker")
        marker = data[pos]
        pos += 1
        if marker == 0xD9:
            out += b"\xff\xd9"
            break
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            out += bytes((0xFF, marker))
            continue
        length = int.from_bytes(data[pos:pos + 2], "big")
        if length < 2 or pos + length > len(data):
            raise InputFileError(source, f"JPEG segment FF{marker:02X} at byte {pos - 2} runs "
                                 "past the end of the file")
        payload = data[pos + 2:pos + length]
        pos += length
        if 0xE0 <= marker <= 0xEF or marker == 0xFE:
            if marker == 0xE0 and payload.startswith(b"JFIF\x00") and len(payload) >= 14:
                if any(payload[12:14]):
                    rewritten.append(_change("APP0 JFIF thumbnail", "removed"))
                out += _segment(0xE0, payload[:12] + b"\x00\x00")
            elif marker == 0xEE and payload.startswith(b"Adobe") and len(payload) >= 12:
                out += _segment(0xEE, payload[:12])
            else:
                removed[_app_name(marker, payload)] += 1
            continue
        if orientation is not None:  # before the first coding segment, after JFIF
            out += _segment(0xE1, _orientation_exif(orientation))
            orientation = None
            rewritten.append(_change("APP1 Exif", ORIENTATION_ONLY))
        out += data[pos - length - 2:pos]
        if marker == 0xDA:  # start of scan: entropy-coded data up to the next marker
            end = _scan_end(data, pos, source)
            out += data[pos:end]
            pos = end
    return _write(target, out, removed, rewritten, "data after EOI" if pos < len(data) else "")


def _write(target: Path, out: bytearray, removed: Counter[str], rewritten: list[dict[str, Any]],
           trailer: str) -> list[dict[str, Any]]:
    """Write the scrubbed file; the changes: elements removed, rewritten, data after the end."""
    write_bytes(bytes(out), target)
    changes = [_change(name, "removed", n) for name, n in removed.items()] + rewritten
    return changes + ([_change(trailer, "removed")] if trailer else [])


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + (len(payload) + 2).to_bytes(2, "big") + payload


def scrub_nifti(source: Path, target: Path) -> list[dict[str, Any]]:
    """Copy a single-file NIfTI-1/-2 (``.nii``/``.nii.gz``) with its text fields blanked and
    its header extensions dropped; every other header field (dimensions, data type, scaling,
    qform/sform) and the data block are kept byte for byte.

    Raises:
        InputFileError: not a readable single-file NIfTI, or its data block is truncated.
    """
    import nibabel as nib
    from nibabel.openers import ImageOpener

    source, target = Path(source), Path(target)
    try:
        image = nib.load(str(source))
    except Exception as error:  # noqa: BLE001 - nibabel/gzip raise many types on bad files
        raise InputFileError(source, f"not a readable NIfTI file ({error})") from error
    if not isinstance(image, nib.Nifti1Image | nib.Nifti2Image):
        raise InputFileError(source, "not a NIfTI-1/-2 image")
    # The header as stored (a loaded image's header is adjusted by nibabel: vox_offset reset).
    with ImageOpener(source, "rb") as fh:
        header = type(image.header).from_fileobj(fh)
    if bytes(header["magic"]).rstrip(b"\x00") not in (b"n+1", b"n+2"):
        raise InputFileError(source, "not a single-file NIfTI-1/-2 image (magic n+1/n+2)")
    clean = header.copy()
    changes = []
    for name in NIFTI_TEXT_FIELDS:
        if name in clean and bytes(clean[name]).strip(b"\x00 "):
            clean[name] = b""
            changes.append(_change(name, "cleared"))
    if len(clean.extensions):
        codes = Counter(nib.nifti1.extension_codes.label[e.get_code()] for e in clean.extensions)
        changes += [_change(f"extension ({code})", "removed", n) for code, n in codes.items()]
        clean.extensions.clear()
    clean["vox_offset"] = 0  # written as the smallest offset without extensions
    n_bytes = int(np.prod(header.get_data_shape(), dtype=np.int64)) * \
        header.get_data_dtype().itemsize

    def copy(tmp: Path) -> None:  # the temporary ends in .gz where the target does
        with ImageOpener(source, "rb") as fh_in, ImageOpener(tmp, "wb") as fh_out:
            clean.write_to(fh_out)
            fh_in.seek(int(header["vox_offset"]))
            left = n_bytes
            while left:
                block = fh_in.read(min(left, 1 << 24))
                if not block:
                    raise InputFileError(source, f"NIfTI data block is truncated "
                                         f"({n_bytes - left} of {n_bytes} bytes)")
                fh_out.write(block)
                left -= len(block)

    write_atomically(target, copy)
    return changes


SCRUBBERS: dict[str, Callable[[Path, Path], list[dict[str, Any]]]] = {
    ".png": scrub_png, ".jpg": scrub_jpeg, ".jpeg": scrub_jpeg,
    ".nii": scrub_nifti, ".nii.gz": scrub_nifti,
}
"""The scrubber of each file suffix (lower case, ``.nii.gz`` whole)."""

FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".nii": "NIfTI", ".nii.gz": "NIfTI"}
