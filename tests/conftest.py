"""Shared fixtures: small synthetic datasets and the real shared data folder."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from meddx.data.datasets import ClassificationDataset, SplitData

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def make_blobs(n: int, spatial: tuple[int, ...], num_classes: int = 2, seed: int = 0,
               channels: int = 1) -> tuple[list[np.ndarray], np.ndarray]:
    """Images whose class decides where a bright blob sits: learnable in a few epochs."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % num_classes
    rng.shuffle(labels)
    grids = np.meshgrid(*[np.linspace(-1, 1, s) for s in spatial], indexing="ij")
    images = []
    for label in labels:
        angle = 2 * np.pi * label / num_classes
        centre = [0.5 * np.cos(angle), 0.5 * np.sin(angle)] + [0.0] * (len(spatial) - 2)
        jitter = rng.normal(0, 0.08, len(spatial))
        dist2 = sum((g - c - j) ** 2 for g, c, j in zip(grids, centre, jitter, strict=True))
        blob = np.exp(-dist2 / 0.08) + rng.normal(0, 0.15, spatial)
        images.append(np.repeat(blob[None], channels, 0).astype(np.float32))
    return images, labels.astype(np.int64)


def synthetic_dataset(spatial: tuple[int, ...] = (16, 16), num_classes: int = 2,
                      sizes: tuple[int, int, int] = (96, 32, 32)) -> ClassificationDataset:
    splits = {}
    for seed, (name, n) in enumerate(zip(("train", "val", "test"), sizes, strict=True)):
        images, labels = make_blobs(n, spatial, num_classes, seed=seed)
        splits[name] = SplitData(images=images, labels=labels,
                                 sources=[f"synthetic/{name}/{i}" for i in range(n)])
    return ClassificationDataset(
        name="synthetic", class_names=[f"class{i}" for i in range(num_classes)],
        spatial_dims=len(spatial), in_channels=1, splits=splits,
        provenance={"dataset": "synthetic", "kind": "synthetic", "source": "generated",
                    "files": {}})


@pytest.fixture
def blobs2d() -> ClassificationDataset:
    return synthetic_dataset()


@pytest.fixture
def shared_data() -> Path:
    """The real shared datasets; tests that need them skip when MEDDX_DATA_DIR is unset."""
    value = os.environ.get("MEDDX_DATA_DIR")
    if not value:
        pytest.skip("MEDDX_DATA_DIR is not set: no real datasets to test on")
    path = Path(value)
    if not path.is_dir():
        pytest.skip(f"MEDDX_DATA_DIR={value} is not a folder")
    return path


@pytest.fixture
def artifacts() -> Path:
    """A folder kept after the run (screenshots, plots) for people to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def write_npz(path: Path, spatial: tuple[int, ...] = (16, 16), num_classes: int = 2,
              sizes: tuple[int, int, int] = (96, 32, 32)) -> Path:
    """A synthetic dataset in MedMNIST's .npz layout (uint8 images, (N, 1) labels)."""
    arrays = {}
    for seed, (name, n) in enumerate(zip(("train", "val", "test"), sizes, strict=True)):
        images, labels = make_blobs(n, spatial, num_classes, seed=seed)
        stack = np.stack([image[0] for image in images])
        scaled = (stack - stack.min()) / (stack.max() - stack.min()) * 255
        arrays[f"{name}_images"] = scaled.astype(np.uint8)
        arrays[f"{name}_labels"] = labels[:, None].astype(np.uint8)
    np.savez(path, **arrays)
    return path


@pytest.fixture
def blobs_npz(tmp_path) -> Path:
    return write_npz(tmp_path / "blobs.npz")
