"""Segmentation recipe pieces: plan, preprocessing, augmentation, post-processing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from meddx.data.segmentation import load_segmentation_dataset
from meddx.errors import ConfigError
from meddx.learn.tasks.segmentation import (
    SegAugmentConfig,
    SegmentationAugment,
    SegmentationPlan,
    SegmentationTask,
    build_model,
    keep_largest_component,
    make_plan,
    preprocess_image,
    preprocess_label,
    sliding_window_probabilities,
)
from tests.seg_synthetic import write_msd


@pytest.fixture(scope="module")
def spheres(tmp_path_factory):
    return load_segmentation_dataset(write_msd(tmp_path_factory.mktemp("seg") / "msd", n=8))


def test_plan_from_fingerprint(spheres):
    train = spheres.split("train")
    lines = []
    plan, prints = make_plan(spheres, train, device=torch.device("cpu"), print_fn=lines.append)
    assert prints["n_cases"] == len(train)
    assert prints["class_voxel_fraction"]["background"] > 0.8
    assert plan.target_spacing == pytest.approx(prints["spacing"]["median"])
    assert plan.normalization["scheme"] == "zscore"  # MRI
    strides = np.array(plan.network["strides"])
    divisor = strides.prod(axis=0)
    assert all(p % d == 0 for p, d in zip(plan.patch_size, divisor, strict=True))
    assert all(p >= s for p, s in zip(plan.patch_size, prints["shape"]["median"], strict=True))
    assert plan.batch_size >= 2
    assert plan.memory["estimated_step_bytes"] <= plan.memory["budget_bytes"]
    assert "plan: spacing" in lines[0]
    # The plan round-trips through JSON and overrides win.
    assert SegmentationPlan.from_dict(plan.to_dict()) == plan
    small, _ = make_plan(spheres, train, {"patch_size": [16, 16, 16], "batch_size": 3,
                                          "base_filters": 8, "deep_supervision": False},
                         device=torch.device("cpu"))
    assert small.patch_size == [16, 16, 16] and small.batch_size == 3
    assert small.network["filters"][0] == 8 and not small.network["deep_supervision"]
    with pytest.raises(ConfigError, match="unknown segmentation plan option"):
        make_plan(spheres, train, {"nonsense": 1}, device=torch.device("cpu"))


def test_memory_budget_is_the_machines_not_what_is_free(monkeypatch, tmp_path):
    import meddx.learn.tasks.segmentation as segmentation

    pages = {"SC_PAGE_SIZE": 4096, "SC_PHYS_PAGES": 2 ** 20}  # 4 GiB
    monkeypatch.setattr(segmentation.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(segmentation.os, "sysconf", pages.__getitem__)
    limit = tmp_path / "memory.max"
    monkeypatch.setattr(segmentation, "CGROUP_MEMORY_LIMIT", limit)
    assert segmentation._machine_memory_bytes() == 2 ** 30  # no cgroup file: a quarter
    limit.write_text("max\n")
    assert segmentation._machine_memory_bytes() == 2 ** 30
    limit.write_text(f"{2 ** 31}\n")  # a 2 GiB container
    assert segmentation._machine_memory_bytes() == 2 ** 29


def test_ct_normalisation_clips_and_standardises(spheres):
    train = spheres.split("train")
    spheres.modality = "CT"
    try:
        plan, prints = make_plan(spheres, train, device=torch.device("cpu"))
    finally:
        spheres.modality = "MRI"
    assert plan.normalization["scheme"] == "ct"
    image = np.full((1, 8, 8, 8), 1e4, np.float32)
    out = preprocess_image(image, (1.0, 1.2, 1.5), plan)
    expected = (prints["foreground_intensity"]["p99_5"][0] - prints["foreground_intensity"][
        "mean"][0]) / prints["foreground_intensity"]["std"][0]
    assert float(out.max()) == pytest.approx(expected, rel=1e-4)


def test_resampling_to_the_target_spacing_and_back(spheres):
    train = spheres.split("train")
    plan, _ = make_plan(spheres, train, {"target_spacing": [2.0, 2.4, 3.0]},
                        device=torch.device("cpu"))
    case = train.cases[0]
    image = preprocess_image(case.image, case.spacing, plan)
    label = preprocess_label(case.label, case.spacing, plan)
    assert tuple(image.shape[1:]) == (10, 10, 8) and tuple(label.shape) == (10, 10, 8)
    assert set(np.unique(label.numpy())) <= {0, 1, 2}
    model = build_model(plan).eval()
    probs = sliding_window_probabilities(model, image, plan, tta=True,
                                         out_shape=case.image.shape[1:])
    assert tuple(probs.shape) == (3, *case.image.shape[1:])
    torch.testing.assert_close(probs.sum(0), torch.ones(case.image.shape[1:]))


def test_augmentation_moves_image_and_labels_together():
    # The image is the label map itself: after any spatial transform they must still agree.
    config = SegAugmentConfig(affine_prob=1.0, elastic_prob=1.0, flip_axes=[0, 1, 2],
                              intensity_scale=0, intensity_shift=0, noise_std=0)
    augment = SegmentationAugment(config, 3)
    labels = torch.zeros(4, 1, 16, 20, 12, dtype=torch.uint8)
    labels[:, :, 4:10, 5:15, 3:9] = 1
    images = labels.float()
    out_images, out_labels = augment(images, labels, torch.Generator().manual_seed(0))
    assert out_labels.dtype == torch.uint8 and out_images.shape == images.shape
    agree = ((out_images > 0.5) == (out_labels > 0)).float().mean()
    assert agree > 0.97  # only boundary voxels may differ (bilinear vs nearest)
    assert not torch.equal(out_labels, labels)  # something happened


def test_patches_oversample_the_foreground(spheres):
    train, val = spheres.split("train"), spheres.split("val")
    plan, _ = make_plan(spheres, train, {"patch_size": [8, 8, 8], "batch_size": 6,
                                         "foreground_fraction": 0.5,
                                         "augment": {"affine_prob": 0, "elastic_prob": 0}},
                        device=torch.device("cpu"))
    task = SegmentationTask(plan, train, val)
    images, labels = next(iter(task.train_batches(0, torch.Generator().manual_seed(1))))
    assert tuple(images.shape) == (6, 1, 8, 8, 8) and tuple(labels.shape) == (6, 1, 8, 8, 8)
    # The last half of the batch is centred on foreground voxels.
    assert all(labels[i].max() > 0 for i in range(3, 6))
    model = task.build_model()
    loss = task.training_loss(model, (images, labels))
    assert loss.ndim == 0 and torch.isfinite(loss)
    metrics = task.validate(model.eval())
    assert set(metrics) == {"dice", "dice_sphere", "dice_cube"}


def test_keep_largest_component_per_label():
    mask = np.zeros((12, 12, 12), np.uint8)
    mask[1:5, 1:5, 1:5] = 1   # 64 voxels
    mask[8:10, 8:10, 8:10] = 1  # 8 voxels: removed
    mask[1:3, 8:11, 1:3] = 2    # label 2 untouched when not listed
    mask[9:11, 1:3, 9:11] = 2
    out = keep_largest_component(mask, [1])
    assert (out == 1).sum() == 64 and (out == 2).sum() == (mask == 2).sum()
    both = keep_largest_component(mask, [1, 2])
    assert (both == 2).sum() == 12
