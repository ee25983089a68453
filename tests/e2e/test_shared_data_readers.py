"""Readers and catalog against the real shared datasets.

Needs ``MEDDX_DATA_DIR`` pointing at the shared data folder (e.g. ``/work/shared/data``);
every test is skipped otherwise. Nothing here writes to that folder.
"""

from __future__ import annotations

import dataclasses
import http.server
import os
import re
import shutil
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from meddx.data import catalog
from meddx.data.catalog import CATALOG, fetch, file_checksums, get_spec, locate, verify_file
from meddx.data.datasets import load_classification_dataset
from meddx.data.images import read_image
from meddx.errors import InputFileError

pytestmark = pytest.mark.e2e

_README_LINE = re.compile(r"^([0-9a-f]{64})  (\S+)  \((\d+) bytes\)$", re.MULTILINE)


@pytest.fixture(scope="module")
def data_dir() -> Path:
    value = os.environ.get("MEDDX_DATA_DIR", "").strip()
    if not value:
        pytest.skip("MEDDX_DATA_DIR is not set (point it at the shared data folder)")
    path = Path(value)
    if not path.is_dir():
        pytest.skip(f"MEDDX_DATA_DIR={value} is not a directory")
    return path


def _readme_files(folder: Path) -> dict[str, tuple[str, int]]:
    text = (folder / "README.md").read_text(encoding="utf-8")
    return {m.group(2): (m.group(1), int(m.group(3))) for m in _README_LINE.finditer(text)}


# --------------------------------------------------------------------------------------------
# Catalog vs the shared folder
# --------------------------------------------------------------------------------------------


def test_every_shared_folder_is_catalogued(data_dir):
    folders = {p.name for p in data_dir.iterdir() if p.is_dir() and not p.name.startswith(".")}
    assert folders == {spec.folder for spec in CATALOG.values()}


def test_every_catalog_dataset_is_present(data_dir):
    rows = catalog.list_datasets(data_dir)
    assert all(row["present"] for row in rows), [r["name"] for r in rows if not r["present"]]
    for name in CATALOG:
        assert locate(name, data_dir) == data_dir / get_spec(name).folder


def test_catalog_matches_readme_checksums(data_dir):
    by_folder: dict[str, dict[str, tuple[str | None, int | None]]] = {}
    for spec in CATALOG.values():
        entries = by_folder.setdefault(spec.folder, {})
        entries.update({f.name: (f.sha256, f.size) for f in spec.files})
    for folder, entries in by_folder.items():
        readme = _readme_files(data_dir / folder)
        spec = next(s for s in CATALOG.values() if s.folder == folder)
        if spec.expected_glob:
            # Big datasets are checked by pattern; the README lists every file.
            for pattern in spec.expected_glob:
                matching = [name for name in readme if Path(name).match(pattern)]
                assert len(matching) >= spec.min_files, (folder, pattern)
        else:
            assert entries == readme, folder


def test_checksums_of_shared_files(data_dir):
    for spec in CATALOG.values():
        folder = data_dir / spec.folder
        for remote in spec.files:
            assert verify_file(folder / remote.name, remote) is None, (spec.name, remote.name)
    msd = data_dir / "msd-task04-hippocampus"
    readme = _readme_files(msd)
    sample = sorted(readme)[::50]
    sums = file_checksums(msd, sample)
    assert sums == {name: readme[name][0] for name in sample}


def test_fetch_on_complete_read_only_folder_downloads_nothing(data_dir, monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("fetch tried to download a file that is present")

    monkeypatch.setattr(catalog, "download_file", no_download)
    for name in ("breastmnist", "ecg200", "dicom-samples", "msd-task04-hippocampus"):
        assert fetch(name, data_dir=data_dir, progress=False) == data_dir / get_spec(name).folder


@pytest.fixture()
def served_copy(data_dir, tmp_path) -> Iterator[str]:
    """Serve a copy of the real breastmnist.npz from 127.0.0.1; yields its URL."""
    root = tmp_path / "served"
    root.mkdir()
    shutil.copy(data_dir / "medmnist-breastmnist" / "breastmnist.npz", root / "breastmnist.npz")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(root)))
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/breastmnist.npz"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_fetch_real_breastmnist_verifies_official_checksums(served_copy, tmp_path, monkeypatch):
    spec = get_spec("breastmnist")
    # Only the URL changes: the real SHA-256, MD5 and size from the catalog are checked.
    remote = dataclasses.replace(spec.files[0], url=served_copy)
    monkeypatch.setitem(CATALOG, "breastmnist", dataclasses.replace(spec, files=(remote,)))
    target = tmp_path / "data"
    folder = fetch("breastmnist", data_dir=target, progress=False)
    dataset = load_classification_dataset("breastmnist", data_dir=target)
    assert folder == target / "medmnist-breastmnist"
    assert dataset.split_sizes() == {"train": 546, "val": 78, "test": 156}


# --------------------------------------------------------------------------------------------
# MedMNIST
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,shape,counts",
    [
        (
            "pneumoniamnist",
            (1, 28, 28),
            {"train": [1214, 3494], "val": [135, 389], "test": [234, 390]},
        ),
        ("breastmnist", (1, 28, 28), {"train": [147, 399], "val": [21, 57], "test": [42, 114]}),
        (
            "adrenalmnist3d",
            (1, 28, 28, 28),
            {"train": [929, 259], "val": [76, 22], "test": [229, 69]},
        ),
    ],
)
def test_medmnist_official_splits(data_dir, name, shape, counts):
    dataset = load_classification_dataset(name, data_dir=data_dir)
    assert dataset.class_names == list(get_spec(name).class_names)
    assert dataset.in_channels == 1 and dataset.spatial_dims == len(shape) - 1
    for split, expected in counts.items():
        data = dataset.split(split)
        assert data.class_counts(2) == expected
        assert data.images[0].shape == shape and data.images[0].dtype == np.float32
        assert float(data.images[0].min()) >= 0.0 and float(data.images[0].max()) <= 255.0
    prov = dataset.provenance
    assert prov["files"] == {f"{name}.npz": get_spec(name).files[0].sha256}
    assert prov["split_sizes"] == {k: sum(v) for k, v in counts.items()}


def test_medmnist_by_path(data_dir):
    dataset = load_classification_dataset(data_dir / "medmnist-breastmnist" / "breastmnist.npz")
    assert dataset.class_names == ["malignant", "normal_or_benign"]
    assert dataset.provenance["kind"] == "npz"


# --------------------------------------------------------------------------------------------
# DICOM samples
# --------------------------------------------------------------------------------------------

# file -> (array shape, modality)
_DICOM_EXPECTED = {
    "CT_small.dcm": ((1, 128, 128), "CT"),
    "JPEG2000.dcm": ((1, 1024, 256), "NM"),
    "MR_small.dcm": ((1, 64, 64), "MR"),
    "MR_small_bigendian.dcm": ((1, 64, 64), "MR"),
    "MR_small_implicit.dcm": ((1, 64, 64), "MR"),
    "examples_overlay.dcm": ((1, 300, 484), "MR"),
    "examples_ybr_color.dcm": ((3, 30, 240, 320), "US"),
    "liver_1frame.dcm": ((1, 512, 512), "SEG"),
    "rtdose.dcm": ((1, 15, 10, 10), "RTDOSE"),
    "series-77654033/CR1/6154": ((1, 16, 16), "CR"),
    "series-77654033/CT2/17106": ((1, 16, 16), "CT"),
}


def test_every_dicom_sample_reads(data_dir):
    folder = data_dir / "dicom-samples"
    for remote in get_spec("dicom-samples").files:
        image = read_image(folder / remote.name)
        assert image.array.dtype == np.float32
        assert np.isfinite(image.array).all()
        assert "Patient" not in repr(image.meta)
        if remote.name in _DICOM_EXPECTED:
            shape, modality = _DICOM_EXPECTED[remote.name]
            assert image.array.shape == shape, remote.name
            assert image.meta["modality"] == modality


def test_dicom_values(data_dir):
    folder = data_dir / "dicom-samples"
    ct = read_image(folder / "CT_small.dcm")
    assert ct.array.min() < -500  # Hounsfield units after rescale: air/lung present
    assert ct.spacing == pytest.approx((0.661468, 0.661468))
    # The three MR encodings decode to the same pixels.
    little = read_image(folder / "MR_small.dcm").array
    np.testing.assert_array_equal(little, read_image(folder / "MR_small_bigendian.dcm").array)
    np.testing.assert_array_equal(little, read_image(folder / "MR_small_implicit.dcm").array)
    dose = read_image(folder / "rtdose.dcm")
    assert dose.array.max() < 10  # DoseGridScaling applied (Gy), not raw uint32
    cr = read_image(folder / "series-77654033" / "CR1" / "6154")
    assert cr.meta["photometric"] == "MONOCHROME1"
    assert cr.spacing == pytest.approx((0.1, 0.1))  # ImagerPixelSpacing
    with pytest.raises(InputFileError, match="2D image was expected"):
        read_image(folder / "examples_ybr_color.dcm", spatial_dims=2)


def test_dicom_series_as_class_folders(data_dir):
    # Suffix-less DICOM files in per-series folders load as a (toy) class-folder dataset.
    root = data_dir / "dicom-samples" / "series-77654033"
    dataset = load_classification_dataset(root)
    assert dataset.class_names == ["CR1", "CR2", "CR3", "CT2"]
    assert len(dataset.split("all")) == 7
    assert (dataset.spatial_dims, dataset.in_channels) == (2, 1)
    readme = _readme_files(data_dir / "dicom-samples")
    for rel, digest in dataset.provenance["files"].items():
        assert readme[f"series-77654033/{rel}"][0] == digest


# --------------------------------------------------------------------------------------------
# NIfTI (MSD hippocampus)
# --------------------------------------------------------------------------------------------


def test_hippocampus_nifti(data_dir):
    folder = locate("msd-task04-hippocampus", data_dir)
    images = sorted((folder / "imagesTr").glob("hippocampus_*.nii.gz"))
    assert len(images) == 202
    for image_path in images[::40]:
        image = read_image(image_path)
        label = read_image(folder / "labelsTr" / image_path.name)
        assert image.array.shape == label.array.shape
        assert image.array.shape[0] == 1 and image.spatial_dims == 3
        # README: shapes vary, min per axis (31, 40, 24), max per axis (43, 59, 46).
        for size, low, high in zip(image.array.shape[1:], (31, 40, 24), (43, 59, 46), strict=True):
            assert low <= size <= high
        assert image.spacing == (1.0, 1.0, 1.0)
        assert image.affine is not None and image.affine.shape == (4, 4)
        assert set(np.unique(label.array)) <= {0.0, 1.0, 2.0}
