"""Fixtures of the DICOM / PACS tests: sample files, a real Orthanc, small trained bundles."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import meddx
from meddx.pacs.orthanc import OrthancServer, dicomweb_plugin, find_orthanc, free_port
from tests.conftest import write_npz
from tests.seg_synthetic import write_msd

SEG_PLAN = {"patch_size": [16, 16, 16], "base_filters": 8, "batch_size": 4,
            "batches_per_epoch": 4, "augment": {"affine_prob": 0.0, "elastic_prob": 0.0}}


@pytest.fixture
def samples(shared_data) -> Path:
    """The real DICOM sample files (pydicom's test set, see its README)."""
    folder = shared_data / "dicom-samples"
    if not folder.is_dir():
        pytest.skip(f"{folder} is missing")
    return folder


@pytest.fixture
def hippocampus(shared_data) -> Path:
    folder = shared_data / "msd-task04-hippocampus"
    if not folder.is_dir():
        pytest.skip(f"{folder} is missing")
    return folder


@pytest.fixture(scope="session")
def listener_port() -> int:
    """The port our listener uses in every test (Orthanc knows it as AE MEDDX)."""
    return free_port()


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory, listener_port):
    """A real Orthanc on 127.0.0.1 (free ports, temporary storage, DICOMweb plugin)."""
    if find_orthanc() is None or dicomweb_plugin() is None:
        pytest.skip("Orthanc or its DICOMweb plugin is not installed "
                    "(apt-get install orthanc orthanc-dicomweb; `make system-deps`)")
    server = OrthancServer(tmp_path_factory.mktemp("orthanc"),
                           modalities={"MEDDX": ("127.0.0.1", listener_port)})
    server.start()
    yield server
    server.stop()


@pytest.fixture
def clean_orthanc(orthanc):
    """Orthanc emptied before the test."""
    for study in orthanc.rest("GET", "/studies"):
        orthanc.rest("DELETE", f"/studies/{study}")
    return orthanc


@pytest.fixture(scope="session")
def seg_bundle(tmp_path_factory) -> Path:
    """A 3D segmentation bundle trained for seconds on synthetic spheres and cubes."""
    folder = tmp_path_factory.mktemp("segbundle")
    data = write_msd(folder / "spheres", n=6)
    bundle = meddx.train(str(data), folder / "bundle", plan=SEG_PLAN, epochs=2, lr=1e-2,
                         patience=0, progress=False, amp="off")
    return Path(bundle.path)


@pytest.fixture(scope="session")
def cls_bundle(tmp_path_factory) -> Path:
    """A 2D image classifier trained for seconds on synthetic 28x28 blobs."""
    folder = tmp_path_factory.mktemp("clsbundle")
    npz = write_npz(folder / "blobs28.npz", spatial=(28, 28), sizes=(64, 32, 32))
    bundle = meddx.train(npz, folder / "bundle", epochs=2, lr=3e-3, amp="off", progress=False,
                         plan={"batch_size": 32})
    return Path(bundle.path)


def copy_tree(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def sphere_volume(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    from tests.seg_synthetic import sphere_cube_case

    return sphere_cube_case((20, 20, 16), seed=seed)
