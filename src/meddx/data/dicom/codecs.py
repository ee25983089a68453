"""Pixel-data codecs: which transfer syntaxes this installation can decode, and clear errors.

pydicom decodes compressed pixel data through plugins: Pillow and pylibjpeg (JPEG baseline,
extended, lossless), pylibjpeg-openjpeg (JPEG 2000, HTJ2K), pyjpegls (JPEG-LS) and its own RLE
decoder; python-gdcm is used when installed. Video syntaxes (MPEG-2/4, HEVC) have no PyPI
decoder and are refused with the file and syntax named.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meddx.errors import InputFileError

__all__ = ["check_decodable", "decode_pixels", "syntax_name", "transfer_syntax"]


def transfer_syntax(ds: Any):
    """The dataset's transfer syntax UID (file meta, else how it was read), or None."""
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is not None:
        return syntax
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    implicit, little = getattr(ds, "original_encoding", (None, None))
    if implicit is None or little is None:
        return None
    return ImplicitVRLittleEndian if implicit else (
        ExplicitVRLittleEndian if little else ExplicitVRBigEndian)


def syntax_name(syntax: Any) -> str:
    """``"JPEG 2000 Image Compression (1.2.840.10008.1.2.4.91)"`` for messages."""
    if syntax is None:
        return "unknown transfer syntax"
    name = getattr(syntax, "name", "") or "unknown"
    return f"{name} ({syntax})"


def check_decodable(ds: Any, path: str | Path) -> None:
    """Raise a clear error when this installation cannot decode the dataset's pixel data.

    Raises:
        InputFileError: the file names the syntax, and what to install when a PyPI plugin
            exists but is missing.
    """
    syntax = transfer_syntax(ds)
    if syntax is None or not getattr(syntax, "is_compressed", False):
        return
    from pydicom.pixels import get_decoder

    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        raise InputFileError(path, f"pixel data in {syntax_name(syntax)} cannot be decoded: no "
                                   "decoder exists for this transfer syntax in pydicom (video and "
                                   "rare syntaxes); convert the file to an image syntax first"
                             ) from None
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies) or "a decoder plugin"
        raise InputFileError(path, f"pixel data in {syntax_name(syntax)} cannot be decoded: "
                                   f"missing {missing}")


def decode_pixels(ds: Any, path: str | Path):
    """``ds.pixel_array`` with every failure turned into an :class:`InputFileError`.

    Raises:
        InputFileError: no pixel data, an unsupported syntax, or corrupt compressed data.
    """
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise InputFileError(path, "DICOM file has no pixel data")
    check_decodable(ds, path)
    try:
        return ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - decoders raise anything; report it for this file
        raise InputFileError(path, f"cannot decode pixel data ({syntax_name(transfer_syntax(ds))}"
                                   f"): {exc}") from exc
