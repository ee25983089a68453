"""`meddx feedback export` leaves no identifier behind in PNG, JPEG and NIfTI cases: files are
renamed ``image-<n><suffix>`` (uploaded names often are the patient's), PNG text chunks, JPEG
comments and EXIF, and NIfTI header text fields are removed, and the pixels (voxels) and the
NIfTI geometry are kept bit for bit, so `meddx train` reads the export as it read the uploads."""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image, PngImagePlugin

import meddx
from meddx.data.images import read_image
from tests.workstation.conftest import build_workstation, close_workstation

NAME = "Smithfield^Johnathan"
IDENTIFIERS = (b"smithfield", b"johnathan", b"1961-07-04")


def png_with_text(pixels: np.ndarray) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Patient", NAME)
    info.add_itxt("Comment", f"{NAME}, born 1961-07-04")
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def jpeg_with_comment(pixels: np.ndarray) -> bytes:
    exif = Image.Exif()
    exif[0x013B] = NAME  # Artist
    exif[0x0112] = 6  # orientation: meddx rotates the photograph when it reads it
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=95, exif=exif.tobytes(),
                                 comment=f"{NAME} 1961-07-04".encode())
    return buffer.getvalue()


def nifti_with_descrip(pixels: np.ndarray) -> bytes:
    image = nib.Nifti1Image(pixels.astype(np.int16), np.diag([0.7, 0.8, 1.0, 1.0]))
    image.header["descrip"] = f"{NAME} 1961-07-04".encode()
    image.header["db_name"] = b"Smithfield"
    image.set_qform(np.diag([0.7, 0.8, 1.0, 1.0]), code=1)
    return gzip.compress(image.to_bytes())


def assert_anonymous(out: Path) -> list[Path]:
    """No identifier in any exported path or byte (gzip content read decompressed)."""
    files = sorted(p for p in out.rglob("*") if p.is_file())
    for path in files:
        content = path.read_bytes()
        contents = [content] + ([gzip.decompress(content)] if path.suffix == ".gz" else [])
        for data in contents:
            for identifier in IDENTIFIERS:
                assert identifier not in data.lower(), f"{identifier} in {path.name}"
        for identifier in IDENTIFIERS:
            assert identifier.decode() not in str(path.relative_to(out)).lower()
    return files


def upload_reviewed(station, folder: Path, name: str, content: bytes, label: str,
                    truth: dict) -> None:
    """Upload ``content`` as ``name`` (a copy kept in ``folder``) and review it as ``label``."""
    (folder / name).write_bytes(content)
    study = station.upload(content, name=name, explain="false")
    assert study.status_code == 201, study.text
    station.review(study.json(), label)
    truth[study.json()["id"]] = (label, folder / name)


def exported_cases(out: Path):
    """(manifest row, cases.json case) pairs of an export."""
    with (out / "manifest.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    cases = json.loads((out / "cases.json").read_text())["cases"]
    return list(zip(rows, cases, strict=True))


def test_png_jpeg_export_keeps_pixels_and_no_identifier(workstation, blobs28, tmp_path,
                                                        export_feedback):
    images = np.load(blobs28)
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    truth = {}
    for i in range(16):
        pixels = images["train_images"][i]
        suffix, content = (".png", png_with_text(pixels)) if i % 2 else \
            (".jpg", jpeg_with_comment(pixels))
        upload_reviewed(workstation, uploads, f"smithfield_johnathan_{i}{suffix}", content,
                        str(int(images["train_labels"][i, 0])), truth)

    out = tmp_path / "export"
    result = export_feedback(workstation, out, check=True)
    assert "16 PNG/JPEG/NIfTI file(s) checked" in " ".join(result.stdout.split())
    assert_anonymous(out)

    pairs = exported_cases(out)
    for row, case in pairs:
        label, upload = truth[case["study_id"]]
        exported = out / row["path"]
        assert row["label"] == label and exported.name == f"image-1{upload.suffix}"
        # As meddx reads them (EXIF orientation applied): the same pixels, not re-encoded.
        original = read_image(upload).array
        np.testing.assert_array_equal(read_image(exported).array, original)
        with Image.open(exported) as image:
            assert not {"Patient", "Comment", "comment"} & set(image.info)
    jpeg = next(out / r["path"] for r, _ in pairs if r["path"].endswith(".jpg"))
    assert read_image(jpeg).array.shape == (1, 28, 28)

    log = json.loads((out / "deidentification-log.json").read_text())
    assert "profile" not in log, "no DICOM in this export"
    by_format = {f["format"]: {c["element"] for c in f["changes"]} for f in log["files"]}
    assert {"tEXt", "iTXt"} <= by_format["PNG"]
    assert {"APP1 Exif", "COM"} <= by_format["JPEG"]

    dataset = meddx.load_dataset(out / "manifest.csv")
    assert dataset.class_names == ["0", "1"]
    bundle = meddx.train(out / "manifest.csv", tmp_path / "retrained", epochs=1, amp="off",
                         progress=False, plan={"batch_size": 8})
    assert bundle.metadata["provenance"]["split_sizes"]["train"] > 0


def test_nifti_export_blanks_header_text_and_keeps_voxels(ws_bundle, blobs28, tmp_path,
                                                          export_feedback):
    images = np.load(blobs28)
    station = build_workstation(tmp_path / "ws", ws_bundle)
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    truth = {}
    try:
        for i in range(4):
            upload_reviewed(station, uploads, f"Smithfield_Johnathan_t1_{i}.nii.gz",
                            nifti_with_descrip(images["train_images"][i]),
                            str(int(images["train_labels"][i, 0])), truth)
        out = tmp_path / "export"
        result = export_feedback(station, out)
    finally:
        close_workstation(station)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_anonymous(out)

    pairs = exported_cases(out)
    for row, case in pairs:
        label, upload = truth[case["study_id"]]
        assert row["label"] == label and row["path"].endswith("/image-1.nii.gz")
        before, after = nib.load(upload), nib.load(out / row["path"])
        assert not after.header["descrip"] and not after.header["db_name"]
        np.testing.assert_array_equal(after.dataobj.get_unscaled(),
                                      before.dataobj.get_unscaled())
        assert after.get_data_dtype() == before.get_data_dtype()
        np.testing.assert_array_equal(after.affine, before.affine)
        np.testing.assert_array_equal(after.get_qform(), before.get_qform())
        np.testing.assert_array_equal(after.get_sform(), before.get_sform())
        assert after.header["qform_code"] == before.header["qform_code"] == 1
    log = json.loads((out / "deidentification-log.json").read_text())
    cleared = [{c["element"] for c in f["changes"]} for f in log["files"]]
    assert cleared == [{"descrip", "db_name"}] * 4
    # The images read as the uploads did.
    exported = meddx.load_dataset(out / "manifest.csv").split("all")
    assert len(exported.labels) == 4
