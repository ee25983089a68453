"""Tests for meddx.data.datasets with synthetic .npz files, manifests and class folders."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from meddx.data import catalog
from meddx.data.datasets import ClassificationDataset, SplitData, load_classification_dataset
from meddx.errors import ConfigError, DataError, DatasetNotFoundError, InputFileError


def _npz(path: Path, sizes=(("train", 20), ("val", 6), ("test", 8)), shape=(28, 28), labels=None):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in sizes:
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
        lab = (np.arange(n) % 2) if labels is None else labels(n)
        arrays[f"{split}_labels"] = np.asarray(lab, np.uint8).reshape(n, 1)
    np.savez(path, **arrays)
    return path


def _png(path: Path, value: int = 0, size=(8, 8), mode: str = "L") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = {"L": (), "RGB": (3,)}[mode]
    PILImage.fromarray(np.full((*size, *channels), value, np.uint8), mode=mode).save(path)
    return path


def _pool_dataset(n: int = 100, positives: int = 30) -> ClassificationDataset:
    labels = np.array([1] * positives + [0] * (n - positives), np.int64)
    images = [np.full((1, 2, 2), i, np.float32) for i in range(n)]
    data = SplitData(images, labels, [f"case{i}" for i in range(n)])
    return ClassificationDataset("pool", ["neg", "pos"], 2, 1, {"all": data}, {"dataset": "pool"})


# --------------------------------------------------------------------------------------------
# Containers and splitting
# --------------------------------------------------------------------------------------------


def test_splitdata_validates_lengths():
    with pytest.raises(ValueError):
        SplitData([np.zeros((1, 2, 2), np.float32)], np.array([0, 1]), ["a"])
    data = SplitData([np.zeros((1, 2, 2), np.float32)], [1], ["a"])
    assert len(data) == 1 and data.labels.dtype == np.int64


def test_seeded_stratified_split_of_a_pool():
    dataset = _pool_dataset()
    sizes = dataset.split_sizes(seed=0)
    assert sizes == {"train": 72, "val": 8, "test": 20}
    parts = {name: dataset.split(name, seed=0) for name in ("train", "val", "test")}
    sources = [set(p.sources) for p in parts.values()]
    assert (
        not (sources[0] & sources[1])
        and not (sources[0] & sources[2])
        and not (sources[1] & sources[2])
    )
    assert set().union(*sources) == set(dataset.split("all").sources)
    # Stratified: 30 % positives in every split.
    assert parts["test"].class_counts(2) == [14, 6]
    assert parts["train"].labels.mean() == pytest.approx(0.3, abs=0.02)
    # Deterministic for a seed, different for another.
    again = _pool_dataset().split("test", seed=0)
    assert again.sources == parts["test"].sources
    assert dataset.split("test", seed=1).sources != parts["test"].sources
    # The test set does not depend on the validation fraction.
    assert dataset.split("test", seed=0, val_fraction=0.3).sources == parts["test"].sources


def test_split_images_follow_labels():
    dataset = _pool_dataset()
    test = dataset.split("test")
    for image, label, source in zip(test.images, test.labels, test.sources, strict=True):
        index = int(source.removeprefix("case"))
        assert image[0, 0, 0] == index
        assert label == (1 if index < 30 else 0)


def test_own_splits_are_used_and_missing_ones_carved(tmp_path):
    path = _npz(tmp_path / "d.npz", sizes=(("train", 40), ("test", 10)))
    dataset = load_classification_dataset(path)
    assert set(dataset.splits) == {"train", "test"}
    sizes = dataset.split_sizes()
    assert sizes["test"] == 10  # never re-split
    assert sizes["val"] == 4 and sizes["train"] == 36


def test_split_errors():
    dataset = _pool_dataset()
    with pytest.raises(ConfigError, match="unknown split 'validation'"):
        dataset.split("validation")
    with pytest.raises(DataError, match="split 'val' of dataset 'pool' is empty"):
        dataset.split("val", val_fraction=0.0)
    with pytest.raises(ConfigError, match="test_fraction"):
        dataset.split("train", test_fraction=1.5)


def test_tiny_class_falls_back_to_random_split():
    labels = np.array([0] * 9 + [1], np.int64)
    data = SplitData([np.zeros((1, 1, 1), np.float32)] * 10, labels, [str(i) for i in range(10)])
    dataset = ClassificationDataset("tiny", ["a", "b"], 2, 1, {"all": data}, {})
    assert sum(dataset.split_sizes().values()) == 10


# --------------------------------------------------------------------------------------------
# MedMNIST .npz
# --------------------------------------------------------------------------------------------


def test_npz_gray(tmp_path):
    path = _npz(tmp_path / "mine.npz")
    dataset = load_classification_dataset(path)
    assert dataset.name == "mine"
    assert dataset.class_names == ["0", "1"]
    assert (dataset.spatial_dims, dataset.in_channels) == (2, 1)
    train = dataset.split("train")
    assert len(train) == 20
    assert train.images[0].shape == (1, 28, 28) and train.images[0].dtype == np.float32
    assert min(float(i.min()) for i in train.images) >= 0.0
    assert max(float(i.max()) for i in train.images) == 255.0  # native units, not rescaled
    assert train.labels.dtype == np.int64 and train.labels.shape == (20,)
    assert train.sources[3] == "mine.npz:train[3]"
    prov = dataset.provenance
    assert prov["kind"] == "npz" and prov["source"] == str(path)
    assert prov["files"] == {"mine.npz": hashlib.sha256(path.read_bytes()).hexdigest()}
    assert prov["split_sizes"] == {"train": 20, "val": 6, "test": 8}


def test_npz_rgb_and_3d(tmp_path):
    rgb = load_classification_dataset(_npz(tmp_path / "rgb.npz", shape=(28, 28, 3)))
    assert (rgb.spatial_dims, rgb.in_channels) == (2, 3)
    assert rgb.split("val").images[0].shape == (3, 28, 28)
    vol = load_classification_dataset(_npz(tmp_path / "vol.npz", shape=(8, 9, 10)))
    assert (vol.spatial_dims, vol.in_channels) == (3, 1)
    assert vol.split("test").images[0].shape == (1, 8, 9, 10)


def test_npz_named_like_medmnist_gets_catalog_classes(tmp_path):
    dataset = load_classification_dataset(_npz(tmp_path / "breastmnist.npz"))
    assert dataset.class_names == ["malignant", "normal_or_benign"]


def test_npz_label_outside_classes(tmp_path):
    path = _npz(tmp_path / "breastmnist.npz", labels=lambda n: np.arange(n) % 3)
    with pytest.raises(DataError) as info:
        load_classification_dataset(path)
    assert "breastmnist.npz" in str(info.value)
    assert "train_labels[2] = 2" in str(info.value)
    with pytest.raises(DataError, match="= 2 is outside"):
        load_classification_dataset(
            _npz(tmp_path / "x.npz", labels=lambda n: np.arange(n) % 3), class_names=["a", "b"]
        )


def test_npz_bad_content(tmp_path):
    multi = tmp_path / "multi.npz"
    np.savez(
        multi, train_images=np.zeros((4, 5, 5), np.uint8), train_labels=np.zeros((4, 3), np.uint8)
    )
    with pytest.raises(DataError, match="multi-label"):
        load_classification_dataset(multi)
    half = tmp_path / "half.npz"
    np.savez(half, train_images=np.zeros((4, 5, 5), np.uint8))
    with pytest.raises(DataError, match="no train_labels"):
        load_classification_dataset(half)
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    with pytest.raises(DataError, match="no train_images"):
        load_classification_dataset(other)
    count = tmp_path / "count.npz"
    np.savez(
        count, train_images=np.zeros((4, 5, 5), np.uint8), train_labels=np.zeros((3, 1), np.uint8)
    )
    with pytest.raises(DataError, match="4 train_images but 3 train_labels"):
        load_classification_dataset(count)
    nan = tmp_path / "nan.npz"
    np.savez(nan, train_images=np.full((2, 5, 5), np.nan, np.float32), train_labels=np.zeros(2))
    with pytest.raises(DataError, match="NaN"):
        load_classification_dataset(nan)
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(InputFileError, match="not a readable .npz"):
        load_classification_dataset(broken)


def test_catalog_name(tmp_path, monkeypatch):
    folder = tmp_path / "medmnist-breastmnist"
    folder.mkdir()
    path = _npz(folder / "breastmnist.npz")
    data = path.read_bytes()
    spec = catalog.get_spec("breastmnist")
    remote = dataclasses.replace(
        spec.files[0], sha256=hashlib.sha256(data).hexdigest(), md5=None, size=len(data)
    )
    monkeypatch.setitem(catalog.CATALOG, "breastmnist", dataclasses.replace(spec, files=(remote,)))

    dataset = load_classification_dataset("breastmnist", data_dir=tmp_path)
    assert dataset.name == "breastmnist"
    assert dataset.class_names == ["malignant", "normal_or_benign"]
    assert dataset.provenance["kind"] == "medmnist"
    assert dataset.provenance["files"] == {"breastmnist.npz": remote.sha256}

    # Same size, different bytes: refused with a hint to re-fetch.
    path.write_bytes(bytes(reversed(data)))
    with pytest.raises(DataError, match="meddx datasets fetch breastmnist"):
        load_classification_dataset("breastmnist", data_dir=tmp_path)


def test_names_that_are_not_image_classification_datasets(tmp_path):
    with pytest.raises(ConfigError, match="ucr dataset"):
        load_classification_dataset("ecg200", data_dir=tmp_path)
    with pytest.raises(DatasetNotFoundError, match="Did you mean 'breastmnist'"):
        load_classification_dataset("breastmnst", data_dir=tmp_path)
    with pytest.raises(DatasetNotFoundError, match="meddx datasets fetch pneumoniamnist"):
        load_classification_dataset("pneumoniamnist", data_dir=tmp_path)
    with pytest.raises(InputFileError, match="file not found"):
        load_classification_dataset(str(tmp_path / "nope" / "x.npz"))
    other = tmp_path / "table.txt"
    other.write_text("x")
    with pytest.raises(InputFileError, match="unsupported dataset file type .txt"):
        load_classification_dataset(other)


# --------------------------------------------------------------------------------------------
# CSV manifest
# --------------------------------------------------------------------------------------------


def _manifest(root: Path, rows: list[str], header: str = "path,label,split") -> Path:
    path = root / "manifest.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_manifest_with_string_labels_and_splits(tmp_path, monkeypatch):
    for i in range(6):
        _png(tmp_path / "img" / f"{i}.png", value=i)
    rows = [
        "img/0.png,pneumonia,train",
        "img/1.png,normal,train",
        "img/2.png,pneumonia,training",
        "img/3.png,normal,val",
        "img/4.png,pneumonia,test",
        f"{tmp_path / 'img' / '5.png'},normal,TEST",
    ]
    path = _manifest(tmp_path, rows)
    monkeypatch.chdir(tmp_path.parent)  # relative paths resolve against the CSV, not the cwd
    dataset = load_classification_dataset(path)
    assert dataset.class_names == ["normal", "pneumonia"]
    assert dataset.split_sizes() == {"train": 3, "val": 1, "test": 2}
    train = dataset.split("train")
    assert list(train.labels) == [1, 0, 1]
    assert train.images[2][0, 0, 0] == 2
    prov = dataset.provenance
    assert prov["kind"] == "manifest"
    assert "manifest.csv" in prov["files"] and "img/0.png" in prov["files"]
    assert prov["content_hash_method"] == "relpath+size+sha256"
    assert len(prov["content_sha256"]) == 64


def test_manifest_int_labels_without_split(tmp_path):
    for i in range(10):
        _png(tmp_path / f"{i}.png", value=i)
    path = _manifest(tmp_path, [f"{i}.png,{i % 2}" for i in range(10)], header="path,label")
    dataset = load_classification_dataset(path)
    assert dataset.class_names == ["0", "1"]
    assert set(dataset.splits) == {"all"}
    assert len(dataset.split("all")) == 10
    assert list(dataset.split("all").labels) == [i % 2 for i in range(10)]


def test_manifest_errors(tmp_path):
    _png(tmp_path / "a.png")
    missing = _manifest(tmp_path, ["a.png,x,train", "gone.png,y,train"])
    with pytest.raises(InputFileError) as info:
        load_classification_dataset(missing)
    assert info.value.path == str(tmp_path / "gone.png")
    assert "file not found" in info.value.problem and "line 3" in info.value.problem

    with pytest.raises(DataError, match="missing label"):
        load_classification_dataset(_manifest(tmp_path, ["a.png"], header="path"))
    with pytest.raises(DataError, match="'holdout' is not train, val or test"):
        load_classification_dataset(_manifest(tmp_path, ["a.png,x,holdout"]))
    with pytest.raises(DataError, match="empty label"):
        load_classification_dataset(_manifest(tmp_path, ["a.png,,train"]))
    with pytest.raises(DataError, match="has no rows"):
        load_classification_dataset(_manifest(tmp_path, []))
    with pytest.raises(
        DataError, match=r"label 'cat' is not one of the classes \['normal', 'pneumonia'\]"
    ):
        load_classification_dataset(
            _manifest(tmp_path, ["a.png,cat,train"]), class_names=["normal", "pneumonia"]
        )
    # Integer labels index the given class names.
    dataset = load_classification_dataset(
        _manifest(tmp_path, ["a.png,1,train"]), class_names=["normal", "pneumonia"]
    )
    assert list(dataset.split("train").labels) == [1]


def test_manifest_mixed_channels(tmp_path):
    _png(tmp_path / "gray.png")
    _png(tmp_path / "color.png", mode="RGB")
    path = _manifest(tmp_path, ["gray.png,a", "color.png,b"], header="path,label")
    with pytest.raises(DataError) as info:
        load_classification_dataset(path)
    assert str(tmp_path / "color.png") in str(info.value)
    assert "3 channel(s)" in str(info.value)


# --------------------------------------------------------------------------------------------
# Class folders
# --------------------------------------------------------------------------------------------


def test_class_folders(tmp_path):
    root = tmp_path / "xray"
    for i in range(4):
        _png(root / "normal" / f"n{i}.png", value=i, size=(8, 8 + i))  # sizes may differ
        _png(root / "pneumonia" / "sub" / f"p{i}.png", value=100 + i)
    (root / "normal" / "notes.txt").write_text("ignored")
    (root / "normal" / ".hidden.png").write_bytes(b"ignored")
    (root / ".cache").mkdir()
    dataset = load_classification_dataset(root)
    assert dataset.name == "xray"
    assert dataset.class_names == ["normal", "pneumonia"]
    assert set(dataset.splits) == {"all"}
    everything = dataset.split("all")
    assert len(everything) == 8
    assert list(everything.labels) == [0] * 4 + [1] * 4
    assert everything.images[3].shape == (1, 8, 11)
    prov = dataset.provenance
    assert prov["kind"] == "folder" and prov["n_files"] == 8
    assert "pneumonia/sub/p0.png" in prov["files"]


def test_class_folders_with_split_folders(tmp_path):
    root = tmp_path / "ds"
    for split, n in (("train", 3), ("val", 1), ("test", 2)):
        for cls in ("a", "b"):
            for i in range(n):
                _png(root / split / cls / f"{i}.png")
    _png(root / "train" / "c" / "0.png")  # a class only in train
    dataset = load_classification_dataset(root)
    assert dataset.class_names == ["a", "b", "c"]
    assert dataset.split_sizes() == {"train": 7, "val": 2, "test": 4}


def test_class_folder_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no class subfolders"):
        load_classification_dataset(empty)

    mixed = tmp_path / "mixed"
    _png(mixed / "train" / "a" / "0.png")
    _png(mixed / "b" / "0.png")
    with pytest.raises(DataError, match="mixes split folders"):
        load_classification_dataset(mixed)

    hollow = tmp_path / "hollow"
    _png(hollow / "a" / "0.png")
    (hollow / "b").mkdir()
    (hollow / "b" / "readme.txt").write_text("no images here")
    with pytest.raises(DataError, match="contains no images"):
        load_classification_dataset(hollow)

    channels = tmp_path / "channels"
    _png(channels / "a" / "0.png")
    _png(channels / "b" / "0.png", mode="RGB")
    with pytest.raises(DataError) as info:
        load_classification_dataset(channels)
    assert str(channels / "b" / "0.png") in str(info.value)

    with pytest.raises(DataError, match=r"class folder\(s\) \['b'\]"):
        load_classification_dataset(hollow, class_names=["a"])


def test_class_folder_with_broken_image(tmp_path):
    root = tmp_path / "broken"
    _png(root / "a" / "0.png")
    (root / "b").mkdir()
    (root / "b" / "bad.png").write_text("not a png")
    with pytest.raises(InputFileError) as info:
        load_classification_dataset(root)
    assert info.value.path == str(root / "b" / "bad.png")


def test_class_folders_of_3d_volumes(tmp_path):
    root = tmp_path / "vols"
    for cls in ("a", "b"):
        for i in range(2):
            path = root / cls / f"{i}.npy"
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, np.zeros((1, 5, 6, 7), np.float32))
    dataset = load_classification_dataset(root)
    assert (dataset.spatial_dims, dataset.in_channels) == (3, 1)
    assert dataset.split("all").images[0].shape == (1, 5, 6, 7)


def test_big_folders_get_size_only_fingerprint(tmp_path, monkeypatch):
    from meddx.data import datasets

    monkeypatch.setattr(datasets, "MAX_HASHED_FILES", 2)
    for cls in ("a", "b"):
        for i in range(2):
            _png(tmp_path / "big" / cls / f"{i}.png")
    prov = load_classification_dataset(tmp_path / "big").provenance
    assert prov["files"] == {}
    assert prov["content_hash_method"] == "relpath+size"
    assert prov["n_files"] == 4 and len(prov["content_sha256"]) == 64


def test_npy_renamed_npz(tmp_path):
    path = tmp_path / "single.npz"
    with path.open("wb") as fh:
        np.save(fh, np.zeros((2, 3)))
    with pytest.raises(InputFileError, match="single array"):
        load_classification_dataset(path)


def test_npz_label_beyond_a_gap(tmp_path):
    path = _npz(tmp_path / "gap.npz")
    arrays = dict(np.load(path))
    arrays["train_labels"][3] = 7
    np.savez(path, **arrays)
    with pytest.raises(DataError) as info:
        load_classification_dataset(path)
    assert "gap.npz: train_labels[3] = 7" in str(info.value)
    assert "[2, 3, 4, 5, 6] never occur" in str(info.value)
    # Declared classes make the same label legal.
    names = [f"c{i}" for i in range(8)]
    assert load_classification_dataset(path, class_names=names).num_classes == 8
