"""Tests for meddx.data.download and catalog.fetch against a local HTTP server (no internet)."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import os
import socket
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from meddx.data import catalog
from meddx.data.catalog import RemoteFile, fetch, locate
from meddx.data.datasets import load_classification_dataset
from meddx.data.download import download_file, extract_archive, file_digests, sha256_file
from meddx.errors import DownloadError, InputFileError


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; ``/truncated`` promises more bytes than it sends."""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        if self.path == "/truncated":
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"x" * 1000)
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served over HTTP on 127.0.0.1: yields (folder, base URL)."""
    root = tmp_path / "served"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(_QuietHandler, directory=str(root))
    )
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture()
def closed_port_url() -> str:
    """A URL on a local port nobody listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/file.bin"


def _payload(root: Path, name: str = "file.bin", size: int = 300_000) -> tuple[bytes, str, str]:
    data = np.random.default_rng(0).bytes(size)
    (root / name).write_bytes(data)
    return data, hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest()


def test_download_verifies_and_is_atomic(served, tmp_path):
    root, base = served
    data, sha, md5 = _payload(root)
    dest = tmp_path / "out" / "nested" / "file.bin"
    result = download_file(f"{base}/file.bin", dest, sha256=sha, md5=md5, progress=True)
    assert result == dest
    assert dest.read_bytes() == data
    assert not dest.with_name("file.bin.part").exists()


def test_download_without_checksum(served, tmp_path):
    root, base = served
    data, _, _ = _payload(root, size=10)
    dest = download_file(f"{base}/file.bin", tmp_path / "f", progress=False)
    assert dest.read_bytes() == data


def test_sha256_mismatch_removes_partial_file(served, tmp_path):
    root, base = served
    _, sha, _ = _payload(root)
    dest = tmp_path / "file.bin"
    wrong = "0" * 64
    with pytest.raises(DownloadError) as info:
        download_file(f"{base}/file.bin", dest, sha256=wrong, progress=False)
    message = str(info.value)
    assert "checksum mismatch" in message
    assert wrong in message and sha in message
    assert str(dest) in message
    assert not dest.exists()
    assert not dest.with_name("file.bin.part").exists()


def test_md5_mismatch(served, tmp_path):
    root, base = served
    _, _, md5 = _payload(root)
    with pytest.raises(DownloadError, match="expected md5 " + "f" * 32) as info:
        download_file(f"{base}/file.bin", tmp_path / "x", md5="F" * 32, progress=False)
    assert md5 in str(info.value)


def test_failed_download_keeps_existing_file(served, tmp_path):
    root, base = served
    _payload(root)
    dest = tmp_path / "file.bin"
    dest.write_bytes(b"old")
    with pytest.raises(DownloadError):
        download_file(f"{base}/file.bin", dest, sha256="0" * 64, progress=False)
    assert dest.read_bytes() == b"old"


def test_offline_error_is_clear(closed_port_url, tmp_path):
    dest = tmp_path / "data" / "file.bin"
    with pytest.raises(DownloadError) as info:
        download_file(closed_port_url, dest, progress=False, timeout=5)
    message = str(info.value)
    assert "could not reach 127.0.0.1" in message
    assert "offline" in message
    assert str(dest) in message
    assert not dest.exists()
    assert not dest.with_name("file.bin.part").exists()


def test_http_error(served, tmp_path):
    _, base = served
    dest = tmp_path / "missing.bin"
    with pytest.raises(DownloadError, match="HTTP 404") as info:
        download_file(f"{base}/missing.bin", dest, progress=False)
    assert str(dest) in str(info.value)
    assert not dest.with_name("missing.bin.part").exists()


def test_truncated_transfer(served, tmp_path):
    _, base = served
    dest = tmp_path / "t.bin"
    with pytest.raises(DownloadError):
        download_file(f"{base}/truncated", dest, progress=False)
    assert not dest.exists()
    assert not dest.with_name("t.bin.part").exists()


def test_unwritable_destination(served, tmp_path):
    root, base = served
    _payload(root, size=10)
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(DownloadError, match="cannot write"):
        download_file(f"{base}/file.bin", blocker / "sub" / "file.bin", progress=False)


def test_invalid_url(tmp_path):
    with pytest.raises(DownloadError):
        download_file("notaurl", tmp_path / "x", progress=False)


def test_file_digests(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    digests = file_digests(path, ("sha256", "md5"))
    assert digests["sha256"] == hashlib.sha256(b"abc").hexdigest()
    assert digests["md5"] == hashlib.md5(b"abc").hexdigest()
    assert sha256_file(path) == digests["sha256"]
    with pytest.raises(InputFileError, match="file not found"):
        sha256_file(tmp_path / "missing")


# --------------------------------------------------------------------------------------------
# extract_archive
# --------------------------------------------------------------------------------------------


def _tar(path: Path, members: dict[str, bytes], mode: str = "w") -> Path:
    with tarfile.open(path, mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


@pytest.mark.parametrize("mode,suffix", [("w", ".tar"), ("w:gz", ".tar.gz")])
def test_extract_tar_with_root_and_exclude(tmp_path, mode, suffix):
    archive = _tar(
        tmp_path / f"a{suffix}",
        {
            "Task/imagesTr/a.nii.gz": b"A",
            "Task/imagesTr/._a.nii.gz": b"fork",
            "Task/dataset.json": b"{}",
            "Other/b.txt": b"B",
        },
        mode,
    )
    out = tmp_path / "out"
    written = extract_archive(archive, out, root="Task", exclude=("._*",))
    assert sorted(p.relative_to(out).as_posix() for p in written) == [
        "dataset.json",
        "imagesTr/a.nii.gz",
    ]
    assert (out / "imagesTr" / "a.nii.gz").read_bytes() == b"A"
    assert not (out / "Other").exists()


def test_extract_zip(tmp_path):
    archive = _zip(tmp_path / "a.zip", {"x/1.png": b"1", "x/sub/2.png": b"2"})
    out = tmp_path / "out"
    written = extract_archive(archive, out)
    assert {p.relative_to(out).as_posix() for p in written} == {"x/1.png", "x/sub/2.png"}


@pytest.mark.parametrize("bad", ["../evil.txt", "/abs/evil.txt", "ok/../../evil.txt"])
def test_extract_refuses_path_traversal_tar(tmp_path, bad):
    archive = _tar(tmp_path / "bad.tar", {"fine.txt": b"ok", bad: b"evil"})
    out = tmp_path / "deep" / "out"
    with pytest.raises(InputFileError, match="unsafe archive member"):
        extract_archive(archive, out)
    assert not (tmp_path / "deep" / "evil.txt").exists()
    assert not (tmp_path / "evil.txt").exists()


def test_extract_refuses_path_traversal_zip(tmp_path):
    archive = _zip(tmp_path / "bad.zip", {"..\\evil.txt": b"evil"})
    with pytest.raises(InputFileError, match="unsafe archive member"):
        extract_archive(archive, tmp_path / "out")


def test_extract_skips_links(tmp_path):
    archive = tmp_path / "link.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("link")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tar.addfile(info)
        data = tarfile.TarInfo("real.txt")
        data.size = 1
        tar.addfile(data, io.BytesIO(b"r"))
    out = tmp_path / "out"
    written = extract_archive(archive, out)
    assert [p.name for p in written] == ["real.txt"]
    assert not os.path.lexists(out / "link")


def test_extract_rejects_non_archive(tmp_path):
    path = tmp_path / "x.tar"
    path.write_text("not an archive at all")
    with pytest.raises(InputFileError, match="not a tar or zip archive"):
        extract_archive(path, tmp_path / "out")
    with pytest.raises(InputFileError, match="file not found"):
        extract_archive(tmp_path / "missing.tar", tmp_path / "out")


# --------------------------------------------------------------------------------------------
# catalog.fetch end to end
# --------------------------------------------------------------------------------------------


def _synthetic_medmnist(path: Path) -> bytes:
    rng = np.random.default_rng(1)
    arrays = {}
    for split, n in (("train", 12), ("val", 4), ("test", 6)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 2).astype(np.uint8).reshape(n, 1)
    np.savez(path, **arrays)
    return path.read_bytes()


@pytest.fixture()
def served_breastmnist(served, monkeypatch):
    """Point the catalog's breastmnist entry at a synthetic file on the local server."""
    root, base = served
    data = _synthetic_medmnist(root / "breastmnist.npz")
    spec = catalog.get_spec("breastmnist")
    remote = dataclasses.replace(
        spec.files[0],
        url=f"{base}/breastmnist.npz",
        sha256=hashlib.sha256(data).hexdigest(),
        md5=hashlib.md5(data).hexdigest(),
        size=len(data),
    )
    monkeypatch.setitem(catalog.CATALOG, "breastmnist", dataclasses.replace(spec, files=(remote,)))
    return data


def test_fetch_breastmnist_end_to_end(served_breastmnist, tmp_path, monkeypatch):
    monkeypatch.delenv("MEDDX_DATA_DIR", raising=False)
    data_dir = tmp_path / "data"
    folder = fetch("breastmnist", data_dir=data_dir, progress=False)
    assert folder == data_dir / "medmnist-breastmnist"
    assert (folder / "breastmnist.npz").read_bytes() == served_breastmnist
    assert locate("breastmnist", data_dir) == folder

    dataset = load_classification_dataset("breastmnist", data_dir=data_dir)
    assert dataset.class_names == ["malignant", "normal_or_benign"]
    assert dataset.split_sizes() == {"train": 12, "val": 4, "test": 6}

    # A damaged file is detected and replaced.
    (folder / "breastmnist.npz").write_bytes(b"x" * len(served_breastmnist))
    fetch("breastmnist", data_dir=data_dir, progress=False)
    assert (folder / "breastmnist.npz").read_bytes() == served_breastmnist


def test_fetch_present_dataset_needs_no_network(served_breastmnist, tmp_path, monkeypatch):
    data_dir = tmp_path / "data"
    fetch("breastmnist", data_dir=data_dir, progress=False)
    spec = catalog.get_spec("breastmnist")
    offline = dataclasses.replace(spec.files[0], url="http://127.0.0.1:9/never")
    monkeypatch.setitem(catalog.CATALOG, "breastmnist", dataclasses.replace(spec, files=(offline,)))
    assert fetch("breastmnist", data_dir=data_dir, progress=False).is_dir()


def test_fetch_offline_reports_destination(closed_port_url, tmp_path, monkeypatch):
    spec = catalog.get_spec("pneumoniamnist")
    remote = dataclasses.replace(spec.files[0], url=closed_port_url)
    monkeypatch.setitem(
        catalog.CATALOG, "pneumoniamnist", dataclasses.replace(spec, files=(remote,))
    )
    with pytest.raises(DownloadError) as info:
        fetch("pneumoniamnist", data_dir=tmp_path, progress=False)
    assert "offline" in str(info.value)
    assert str(tmp_path / "medmnist-pneumoniamnist" / "pneumoniamnist.npz") in str(info.value)


def test_fetch_archive_dataset(served, tmp_path, monkeypatch):
    root, base = served
    members = {}
    for case in ("001", "003"):
        members[f"Task04_Hippocampus/imagesTr/hippocampus_{case}.nii.gz"] = b"img" + case.encode()
        members[f"Task04_Hippocampus/labelsTr/hippocampus_{case}.nii.gz"] = b"lbl" + case.encode()
        members[f"Task04_Hippocampus/imagesTr/._hippocampus_{case}.nii.gz"] = b"fork"
    archive = _tar(root / "Task04_Hippocampus.tar", members)
    spec = catalog.get_spec("msd-task04-hippocampus")
    patched = dataclasses.replace(
        spec,
        archive=dataclasses.replace(
            spec.archive,
            url=f"{base}/Task04_Hippocampus.tar",
            md5=None,
            sha256=sha256_file(archive),
        ),
        min_files=2,
    )
    monkeypatch.setitem(catalog.CATALOG, spec.name, patched)
    data_dir = tmp_path / "data"
    with pytest.raises(catalog.DatasetNotFoundError, match="meddx datasets fetch"):
        locate(spec.name, data_dir)
    folder = fetch(spec.name, data_dir=data_dir, progress=False)
    assert sorted(p.name for p in (folder / "imagesTr").iterdir()) == [
        "hippocampus_001.nii.gz",
        "hippocampus_003.nii.gz",
    ]
    assert (folder / "labelsTr" / "hippocampus_003.nii.gz").read_bytes() == b"lbl003"
    assert locate(spec.name, data_dir) == folder
    assert not (data_dir / ".downloads" / "Task04_Hippocampus.tar").exists()
    assert not (data_dir / "msd-task04-hippocampus.extracting").exists()


def test_fetch_remote_file_type(tmp_path):
    # RemoteFile is frozen: catalog entries cannot be changed by accident.
    remote = RemoteFile("a", "http://x", None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        remote.url = "http://y"  # type: ignore[misc]
