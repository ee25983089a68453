"""Synthetic segmentation data for the segmentation tests: spheres and cubes in noise."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np

AFFINE = np.array([[0.0, -1.2, 0.0, 10.0],   # axes swapped and flipped: a real round-trip check
                   [1.0, 0.0, 0.0, -4.0],
                   [0.0, 0.0, 1.5, 2.5],
                   [0.0, 0.0, 0.0, 1.0]])


def sphere_cube_case(shape=(20, 20, 16), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(image, label): label 1 a sphere (bright), label 2 a cube (dark), in Gaussian noise."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    label = np.zeros(shape, np.uint8)
    centre = [rng.uniform(6, s - 6) for s in shape]
    radius = rng.uniform(3.0, 4.5)
    label[sum((g - c) ** 2 for g, c in zip(grids, centre, strict=True)) <= radius ** 2] = 1
    corner = [int(rng.integers(1, s - 6)) for s in shape]
    cube = tuple(slice(c, c + 4) for c in corner)
    label[cube] = np.where(label[cube] == 0, 2, label[cube])
    image = rng.normal(100.0, 5.0, shape)
    image[label == 1] += 60.0
    image[label == 2] -= 60.0
    return image.astype(np.float32), label


def write_msd(root: Path, n: int = 12, shape=(20, 20, 16), with_json: bool = True,
              affine: np.ndarray = AFFINE) -> Path:
    """An MSD-layout folder of ``n`` sphere/cube cases (uint8 labels, float32 images)."""
    (root / "imagesTr").mkdir(parents=True, exist_ok=True)
    (root / "labelsTr").mkdir(exist_ok=True)
    training = []
    for i in range(n):
        image, label = sphere_cube_case(shape, seed=i)
        name = f"case_{i:03d}.nii.gz"
        nib.save(nib.Nifti1Image(image, affine), str(root / "imagesTr" / name))
        nib.save(nib.Nifti1Image(label, affine), str(root / "labelsTr" / name))
        training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
    if with_json:
        (root / "dataset.json").write_text(json.dumps({
            "name": "spheres", "modality": {"0": "MRI"},
            "labels": {"0": "background", "1": "sphere", "2": "cube"},
            "numTraining": n, "training": training}))
    return root
