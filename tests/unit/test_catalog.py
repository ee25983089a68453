"""Tests for meddx.data.catalog (no network; fetch is tested in test_download.py)."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from pathlib import Path

import pytest

from meddx.data import catalog
from meddx.data.catalog import (
    CATALOG,
    KINDS,
    DatasetSpec,
    RemoteArchive,
    RemoteFile,
    file_checksums,
    get_spec,
    is_present,
    list_datasets,
    locate,
    missing_files,
    resolve_data_dir,
    verify_file,
)
from meddx.errors import DatasetNotFoundError, InputFileError

REQUIRED = {
    "pneumoniamnist": "medmnist",
    "breastmnist": "medmnist",
    "adrenalmnist3d": "medmnist",
    "adrenalmnist3d_64": "medmnist",
    "msd-task04-hippocampus": "msd",
    "ecg200": "ucr",
    "ecg5000": "ucr",
    "mitdb-ds1": "wfdb",
    "pima-diabetes": "csv",
    "heart-disease-va-switzerland": "csv",
    "symptom2disease": "text",
    "dicom-samples": "dicom",
    "tox21": "csv",
    "esol": "csv",
}
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX32 = re.compile(r"^[0-9a-f]{32}$")


def test_catalog_has_every_dataset_with_its_kind():
    assert {name: spec.kind for name, spec in CATALOG.items()} == REQUIRED
    for name, spec in CATALOG.items():
        assert spec.name == name
        assert spec.kind in KINDS
        assert spec.description and spec.license and spec.citation and spec.homepage


def test_every_file_has_https_url_and_wellformed_checksums():
    for spec in CATALOG.values():
        remotes = list(spec.files) + ([spec.archive] if spec.archive else [])
        assert remotes, spec.name
        for remote in remotes:
            assert remote.url.startswith("https://"), remote.url
            assert remote.sha256 is None or _HEX64.match(remote.sha256), remote
            assert remote.md5 is None or _HEX32.match(remote.md5), remote
            assert remote.sha256 or remote.md5, f"{spec.name}/{remote.name} has no checksum"
        names = [f.name for f in spec.files]
        assert len(names) == len(set(names)), spec.name


def test_folders_are_shared_only_by_the_adrenal_pair():
    by_folder: dict[str, list[str]] = {}
    for spec in CATALOG.values():
        by_folder.setdefault(spec.folder, []).append(spec.name)
    shared = {folder: sorted(names) for folder, names in by_folder.items() if len(names) > 1}
    assert shared == {"medmnist-adrenalmnist3d": ["adrenalmnist3d", "adrenalmnist3d_64"]}


def test_medmnist_entries():
    expected = {
        "pneumoniamnist": (("normal", "pneumonia"), "28209eda62fecd6e6a2d98b1501bb15f"),
        "breastmnist": (("malignant", "normal_or_benign"), "750601b1f35ba3300ea97c75c52ff8f6"),
        "adrenalmnist3d": (("normal", "hyperplasia"), "bbd3c5a5576322bc4cdfea780653b1ce"),
        "adrenalmnist3d_64": (("normal", "hyperplasia"), "17721accfe9fb005146a47d33bc54b2f"),
    }
    for name, (classes, md5) in expected.items():
        spec = get_spec(name)
        assert spec.class_names == classes
        (remote,) = spec.files
        assert remote.md5 == md5
        assert remote.url == f"https://zenodo.org/records/10519652/files/{remote.name}?download=1"
        assert remote.name == f"{name}.npz"
    assert get_spec("adrenalmnist3d").extra["spatial_dims"] == 3
    assert get_spec("breastmnist").extra["spatial_dims"] == 2


def test_mitdb_lists_every_record_file():
    spec = get_spec("mitdb-ds1")
    assert len(spec.files) == 66
    assert len(spec.extra["records"]) == 22
    assert "102" not in spec.extra["records"]  # paced records are excluded from DS1
    for remote in spec.files:
        assert remote.url == f"https://physionet.org/files/mitdb/1.0.0/{remote.name}"


def test_msd_uses_archive_and_globs():
    spec = get_spec("msd-task04-hippocampus")
    assert isinstance(spec.archive, RemoteArchive)
    assert spec.archive.url == (
        "https://msd-for-monai.s3-us-west-2.amazonaws.com/Task04_Hippocampus.tar"
    )
    assert spec.archive.root == "Task04_Hippocampus"
    assert spec.files == ()
    assert spec.expected_glob and spec.min_files == 202


def test_spec_validation_and_immutability():
    with pytest.raises(ValueError, match="unknown kind"):
        DatasetSpec(
            "x", "x", "video", "classification", "d", "l", "c", files=(RemoteFile("a", "u", None),)
        )
    with pytest.raises(ValueError, match="files or expected_glob"):
        DatasetSpec("x", "x", "csv", "classification", "d", "l", "c")
    spec = get_spec("pima-diabetes")
    with pytest.raises(TypeError):
        spec.extra["target"] = "x"  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "y"  # type: ignore[misc]
    # dataclasses.replace is how tests and users derive variants.
    assert dataclasses.replace(spec, homepage="h").extra["target"] == "Outcome"


def test_get_spec_unknown_suggests_closest():
    with pytest.raises(DatasetNotFoundError) as info:
        get_spec("breastmnst")
    message = str(info.value)
    assert "Did you mean 'breastmnist'" in message
    for name in CATALOG:
        assert name in message


def test_get_spec_unknown_without_suggestion():
    with pytest.raises(DatasetNotFoundError, match="unknown dataset 'zzzzzz'"):
        get_spec("zzzzzz")


def test_resolve_data_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("MEDDX_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir() == tmp_path / "env"
    monkeypatch.delenv("MEDDX_DATA_DIR")
    default = resolve_data_dir()
    assert default.name == "data" and "meddx" in str(default)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_data_dir("~/d") == tmp_path / "d"


def _fake_file(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        fh.truncate(size)  # sparse: cheap even for MB-sized placeholders


def test_list_datasets_and_locate(tmp_path, monkeypatch):
    monkeypatch.delenv("MEDDX_DATA_DIR", raising=False)
    remote = get_spec("breastmnist").files[0]
    _fake_file(tmp_path / "medmnist-breastmnist" / remote.name, remote.size)
    rows = {row["name"]: row for row in list_datasets(tmp_path)}
    assert set(rows) == set(CATALOG)
    assert rows["breastmnist"]["present"] is True
    assert rows["breastmnist"]["path"] == str(tmp_path / "medmnist-breastmnist")
    assert rows["pneumoniamnist"]["present"] is False
    assert set(rows["esol"]) == {"name", "kind", "task", "description", "present", "path"}
    assert locate("breastmnist", tmp_path) == tmp_path / "medmnist-breastmnist"


def test_locate_missing_tells_how_to_fix(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        locate("pneumoniamnist", tmp_path)
    message = str(info.value)
    assert "meddx datasets fetch pneumoniamnist" in message
    assert "--data-dir" in message and "MEDDX_DATA_DIR" in message
    assert "pneumoniamnist.npz" in message


def test_locate_uses_env_var(tmp_path, monkeypatch):
    remote = get_spec("esol").files[0]
    _fake_file(tmp_path / "moleculenet-esol" / remote.name, remote.size)
    monkeypatch.setenv("MEDDX_DATA_DIR", str(tmp_path))
    assert locate("esol") == tmp_path / "moleculenet-esol"


def test_wrong_size_is_not_present(tmp_path):
    remote = get_spec("breastmnist").files[0]
    _fake_file(tmp_path / "medmnist-breastmnist" / remote.name, 10)
    assert not is_present("breastmnist", tmp_path)
    assert "size 10" in missing_files("breastmnist", tmp_path)[0]


def test_glob_presence(tmp_path):
    spec = get_spec("msd-task04-hippocampus")
    folder = tmp_path / spec.folder
    for sub in ("imagesTr", "labelsTr"):
        (folder / sub).mkdir(parents=True)
        for i in range(spec.min_files - 1):
            (folder / sub / f"hippocampus_{i:03d}.nii.gz").touch()
    missing = missing_files(spec, tmp_path)
    assert len(missing) == 2 and "expected at least 202" in missing[0]
    for sub in ("imagesTr", "labelsTr"):
        (folder / sub / "hippocampus_999.nii.gz").touch()
    assert is_present(spec.name, tmp_path)


def test_file_checksums(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "b.txt").write_bytes(b"b")
    (tmp_path / "sub" / "a.txt").write_bytes(b"a")
    sums = file_checksums(tmp_path, ["b.txt", Path("sub") / "a.txt"])
    assert list(sums) == ["b.txt", "sub/a.txt"]
    assert sums["sub/a.txt"] == hashlib.sha256(b"a").hexdigest()
    with pytest.raises(InputFileError, match="file not found"):
        file_checksums(tmp_path, ["nope.txt"])


def test_verify_file(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"hello")
    good = RemoteFile("f", "https://x", hashlib.sha256(b"hello").hexdigest(), size=5)
    assert verify_file(path, good) is None
    assert "size" in verify_file(path, dataclasses.replace(good, size=6))
    assert "sha256" in verify_file(path, dataclasses.replace(good, sha256="0" * 64))
    assert "md5" in verify_file(path, dataclasses.replace(good, md5="0" * 32))
    assert verify_file(tmp_path / "missing", good) == "file not found"
    assert verify_file(path, RemoteFile("f", "https://x", None)) is None


def test_catalog_module_exports():
    for name in catalog.__all__:
        assert hasattr(catalog, name)
