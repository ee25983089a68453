"""Task recipe: semantic segmentation of 3D volumes and 2D images (nnU-Net-style self-config).

Stages, each with a readable artifact (after nnU-Net, Isensee et al., Nat. Methods 2021):

1. :func:`fingerprint` of the training split: spacings, shapes, foreground intensity statistics,
   class frequencies;
2. :func:`make_plan` turns it into ``plan.json``: target spacing, normalisation, patch size,
   DynUNet depth/kernels/strides/widths, batch size, chosen so one training step fits the
   machine's memory; printed, saved, and overridable (``plan`` overrides win);
3. :class:`SegmentationTask` is trained by the one :class:`~meddx.learn.trainer.Trainer`: patches
   sampled with foreground oversampling, batch-level augmentation (rotation, scaling, elastic
   deformation, flips, contrast/brightness/noise), Dice + cross-entropy loss with optional deep
   supervision, the best epoch selected on validation Dice;
4. on the validation split, largest-connected-component post-processing is switched on for each
   label only where it raises that label's Dice; the result is the bundle's metadata.

Inference (:func:`sliding_window_probabilities`) is MONAI's sliding window with Gaussian blending
plus optional mirroring test-time augmentation; masks go back to the input's voxel grid.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.inferers import sliding_window_inference
from monai.losses import DiceCELoss
from monai.networks.nets import DynUNet
from torch import nn
from torch.nn import functional

from meddx.data.segmentation import SegmentationDataset, SegmentationSplit
from meddx.errors import ConfigError, DataError
from meddx.fileio import write_json
from meddx.learn.augment import _rotation, _uniform
from meddx.learn.tasks import PLAN_FILE, FitOutput
from meddx.learn.trainer import TrainConfig, Trainer, default_device

log = logging.getLogger(__name__)

TASK_NAME = "segmentation"

FINGERPRINT_FILE = "fingerprint.json"

# Smallest feature map edge the encoder pools down to (nnU-Net uses 4).
_MIN_FEATURE_SIZE = 4
_MAX_POOLS = 5
# Bytes of activation memory per voxel per feature channel during a training step (forward
# activations of conv + norm + nonlinearity, their gradients, and autograd buffers), measured on
# DynUNet in float32; used only to keep a plan inside the machine's memory.
_BYTES_PER_VOXEL_CHANNEL = 4 * 12


# --------------------------------------------------------------------------------------------
# Fingerprint and plan
# --------------------------------------------------------------------------------------------


def fingerprint(split: SegmentationSplit, class_names: Sequence[str], modality: str = "unknown",
                seed: int = 0) -> dict[str, Any]:
    """Dataset facts the plan is derived from (training cases only)."""
    rng = np.random.default_rng(seed)
    spacings = np.array([case.spacing for case in split.cases], dtype=float)
    shapes = np.array([case.image.shape[1:] for case in split.cases], dtype=float)
    counts = np.zeros(len(class_names))
    present = np.zeros(len(class_names))
    samples = []
    for case in split.cases:
        bincount = np.bincount(case.label.ravel(), minlength=len(class_names))[:len(class_names)]
        counts += bincount
        present += bincount > 0
        voxels = case.image[:, case.label > 0].T  # (n_fg, C)
        if len(voxels):
            take = rng.choice(len(voxels), min(len(voxels), 10_000), replace=False)
            samples.append(voxels[take])
    fg = np.concatenate(samples) if samples else np.zeros((1, split.cases[0].image.shape[0]))
    return {
        "n_cases": len(split),
        "modality": modality,
        "spacing": {"median": np.median(spacings, 0).tolist(), "min": spacings.min(0).tolist(),
                    "max": spacings.max(0).tolist()},
        "shape": {"median": np.median(shapes, 0).tolist(), "min": shapes.min(0).tolist(),
                  "max": shapes.max(0).tolist()},
        "foreground_intensity": {
            "mean": fg.mean(0).tolist(), "std": fg.std(0).tolist(),
            "p00_5": np.percentile(fg, 0.5, axis=0).tolist(),
            "p99_5": np.percentile(fg, 99.5, axis=0).tolist()},
        "class_voxel_fraction": dict(zip(class_names, (counts / counts.sum()).tolist(),
                                         strict=True)),
        "class_case_fraction": dict(zip(class_names, (present / len(split)).tolist(),
                                        strict=True)),
    }


@dataclass
class SegAugmentConfig:
    """Augmentation strengths for image/label batches; 0 turns one off.

    Attributes:
        rotate_deg: max rotation about every axis (degrees).
        scale: max relative zoom.
        affine_prob: probability that a sample is rotated and scaled.
        elastic_prob: probability of a smooth random elastic deformation.
        elastic_mm: maximum elastic displacement, as a fraction of the patch half-size.
        flip_axes: spatial axes flipped with probability 1/2 each.
        intensity_scale: max relative contrast change.
        intensity_shift: max brightness shift (normalised units).
        noise_std: max standard deviation of Gaussian noise (normalised units).
    """

    rotate_deg: float = 15.0
    scale: float = 0.15
    affine_prob: float = 0.3
    elastic_prob: float = 0.1
    elastic_mm: float = 0.04
    flip_axes: list[int] = field(default_factory=list)
    intensity_scale: float = 0.15
    intensity_shift: float = 0.1
    noise_std: float = 0.05


@dataclass
class SegmentationPlan:
    """Everything the task needs besides the data; saved as ``plan.json`` and in the bundle."""

    class_names: list[str]
    spatial_dims: int
    in_channels: int
    target_spacing: list[float]
    normalization: dict[str, Any]
    patch_size: list[int]
    network: dict[str, Any]
    batch_size: int
    batches_per_epoch: int
    augment: dict[str, Any]
    foreground_fraction: float = 0.33
    sw_overlap: float = 0.5
    sw_batch_size: int = 4
    tta_flips: list[list[int]] = field(default_factory=list)
    largest_component_labels: list[int] = field(default_factory=list)
    memory: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SegmentationPlan:
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown segmentation plan option(s) {sorted(unknown)}")
        return cls(**data)


CGROUP_MEMORY_LIMIT = Path("/sys/fs/cgroup/memory.max")
"""A container's memory limit (cgroup v2; "max" when unlimited)."""


def _machine_memory_bytes() -> int:
    """Memory a training step may plan on: 60% of the GPU's, or a quarter of the machine's
    (others share it), capped by a container's limit.

    The machine's total, not what is free when the plan is made: the plan, and so the run,
    must not depend on how loaded the machine happened to be (as ``TrainConfig.amp`` does not).
    """
    if torch.cuda.is_available():
        return int(torch.cuda.get_device_properties(0).total_memory * 0.6)
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        limit = CGROUP_MEMORY_LIMIT.read_text().strip()
    except OSError:
        limit = "max"
    if limit.isdigit():
        total = min(total, int(limit))
    return int(total * 0.25)


def _topology(patch: list[int], spacing: list[float]) -> tuple[list, list, list[int]]:
    """nnU-Net's rule: pool an axis while its feature map stays >= 4 voxels and it is not much
    coarser than the finest axis; 3x3(x3) kernels, 1 along axes still too coarse to convolve."""
    dims = len(patch)
    size, current = list(patch), list(spacing)
    strides: list[list[int]] = [[1] * dims]
    kernels: list[list[int]] = [[3 if s <= 2 * min(current) else 1 for s in current]]
    for _ in range(_MAX_POOLS):
        step = [2 if (size[a] // 2 >= _MIN_FEATURE_SIZE and current[a] <= 2 * min(current))
                else 1 for a in range(dims)]
        if sum(s == 2 for s in step) == 0:
            break
        size = [sz // st for sz, st in zip(size, step, strict=True)]
        current = [c * st for c, st in zip(current, step, strict=True)]
        strides.append(step)
        kernels.append([3 if c <= 2 * min(current) else 1 for c in current])
    while len(strides) < 3:
        # DynUNet needs at least two poolings: tiny patches pool isotropically down to 1 voxel.
        step = [2 if size[a] >= 2 else 1 for a in range(dims)]
        size = [max(1, sz // st) for sz, st in zip(size, step, strict=True)]
        strides.append(step)
        kernels.append([3] * dims)
    divisor = [int(np.prod([s[a] for s in strides])) for a in range(dims)]
    return kernels, strides, divisor


def _step_memory(patch: Sequence[int], strides: list[list[int]], filters: list[int],
                 batch: int) -> int:
    voxels = float(np.prod(patch))
    total = 0.0
    for level, width in enumerate(filters):
        factor = np.prod([np.prod([s[a] for s in strides[:level + 1]]) for a in range(len(patch))])
        total += voxels / factor * width * 2  # encoder and decoder at this level
    return int(total * batch * _BYTES_PER_VOXEL_CHANNEL)


def make_plan(dataset: SegmentationDataset, train: SegmentationSplit,
              overrides: dict[str, Any] | None = None, device: torch.device | None = None,
              print_fn=None) -> tuple[SegmentationPlan, dict[str, Any]]:
    """Fingerprint the training split and derive the plan; ``overrides`` win.

    Recognised overrides: any :class:`SegmentationPlan` field (``patch_size``, ``batch_size``,
    ``target_spacing``, ``tta_flips``...), plus ``base_filters``, ``deep_supervision`` and
    ``augment`` (a dict of :class:`SegAugmentConfig` fields, merged with the defaults).

    Returns:
        (plan, fingerprint).
    """
    overrides = dict(overrides or {})
    device = device or default_device()
    dims = dataset.spatial_dims
    prints = fingerprint(train, dataset.class_names, dataset.modality)
    median_spacing = prints["spacing"]["median"]
    target = overrides.pop("target_spacing", None)
    if target is None:
        target = list(median_spacing)
        ratio = max(median_spacing) / max(min(median_spacing), 1e-6)
        if ratio > 3:
            # Very anisotropic data: resample the coarse axis to its 10th percentile (nnU-Net).
            axis = int(np.argmax(median_spacing))
            spacings = np.array([case.spacing for case in train.cases])
            target[axis] = float(np.percentile(spacings[:, axis], 10))
    target = [float(t) for t in target]
    resampled = [m * s / t for m, s, t in zip(prints["shape"]["median"], median_spacing, target,
                                              strict=True)]
    memory_budget = _machine_memory_bytes()
    base = int(overrides.pop("base_filters", 32 if device.type == "cuda" else 16))
    cap = 320 if dims == 3 else 512
    requested_patch = overrides.pop("patch_size", None)
    # Patch: the median case, capped (the CPU cannot afford nnU-Net's GPU-sized patches).
    max_edge = (128 if dims == 3 else 512) if device.type == "cuda" else (96 if dims == 3 else 256)
    patch = [int(min(math.ceil(r), max_edge)) for r in resampled] if requested_patch is None \
        else [int(p) for p in requested_patch]
    while True:
        kernels, strides, divisor = _topology(patch, target)
        patch = [int(math.ceil(p / d) * d) for p, d in zip(patch, divisor, strict=True)]
        filters = [min(base * 2 ** i, cap) for i in range(len(strides))]
        batch = int(overrides.get("batch_size") or 2)
        need = _step_memory(patch, strides, filters, batch)
        if requested_patch is not None or need <= memory_budget or max(patch) <= 16:
            break
        # Shrink the largest axis until a batch of 2 fits.
        axis = int(np.argmax(patch))
        patch[axis] = max(16, int(patch[axis] * 0.85))
    if "batch_size" not in overrides:
        # About 2^18 voxels per step keeps a CPU epoch short while giving the norm layers a
        # batch; never fewer than 2 (nnU-Net's minimum), never more than memory allows.
        per_sample = _step_memory(patch, strides, filters, 1)
        batch = max(2, min(int(2 ** 18 // np.prod(patch)), int(memory_budget // per_sample), 12))
    deep_supervision = bool(overrides.pop("deep_supervision", len(strides) > 2))
    network = {"arch": "dynunet", "kernel_size": kernels, "strides": strides,
               "upsample_kernel_size": strides[1:], "filters": filters,
               "deep_supervision": deep_supervision,
               "deep_supr_num": min(2, max(len(strides) - 2, 1))}
    modality = str(dataset.modality).upper()
    if modality == "CT":
        fg = prints["foreground_intensity"]
        normalization = {"scheme": "ct", "clip": [fg["p00_5"], fg["p99_5"]], "mean": fg["mean"],
                         "std": fg["std"]}
    else:
        normalization = {"scheme": "zscore"}
    augment = SegAugmentConfig(flip_axes=list(range(dims)),
                               **overrides.pop("augment", {}))
    n_train = len(train)
    plan = SegmentationPlan(
        class_names=list(dataset.class_names), spatial_dims=dims,
        in_channels=dataset.in_channels, target_spacing=target, normalization=normalization,
        patch_size=patch, network=network, batch_size=batch,
        batches_per_epoch=int(min(250, max(10, math.ceil(n_train / batch)))),
        augment=asdict(augment), tta_flips=[[]] + [[axis] for axis in range(dims)],
        memory={"budget_bytes": memory_budget,
                "estimated_step_bytes": _step_memory(patch, strides, filters, batch),
                "device": device.type})
    for key, value in overrides.items():
        if not hasattr(plan, key):
            raise ConfigError(f"unknown segmentation plan option {key!r}")
        setattr(plan, key, value)
    if plan.memory["estimated_step_bytes"] > memory_budget:
        log.warning("plan needs about %.1f GB per step, more than the %.1f GB budget",
                    plan.memory["estimated_step_bytes"] / 1e9, memory_budget / 1e9)
    if print_fn is not None:
        print_fn(describe_plan(plan, prints))
    return plan, prints


def describe_plan(plan: SegmentationPlan, prints: dict[str, Any]) -> str:
    """A few lines for people: what the fingerprint was and what was chosen."""
    fg = ", ".join(f"{k} {v:.3f}" for k, v in prints["class_voxel_fraction"].items())
    return (
        f"fingerprint: {prints['n_cases']} training cases, median shape "
        f"{[round(s) for s in prints['shape']['median']]}, median spacing "
        f"{[round(s, 3) for s in prints['spacing']['median']]} mm, voxel fractions {fg}\n"
        f"plan: spacing {plan.target_spacing} mm, {plan.normalization['scheme']} normalisation, "
        f"patch {plan.patch_size}, batch {plan.batch_size}, DynUNet "
        f"{len(plan.network['strides'])} levels widths {plan.network['filters']}, deep "
        f"supervision {'on' if plan.network['deep_supervision'] else 'off'}, "
        f"~{plan.memory['estimated_step_bytes'] / 1e9:.2f} GB per step")


# --------------------------------------------------------------------------------------------
# Preprocessing and inference, shared by training and the predictor
# --------------------------------------------------------------------------------------------


def build_model(plan: SegmentationPlan) -> nn.Module:
    """The plan's MONAI DynUNet."""
    net = plan.network
    if net.get("arch") != "dynunet":
        raise ConfigError(f"unknown segmentation network {net.get('arch')!r} (expected dynunet)")
    return DynUNet(spatial_dims=plan.spatial_dims, in_channels=plan.in_channels,
                   out_channels=len(plan.class_names), kernel_size=net["kernel_size"],
                   strides=net["strides"], upsample_kernel_size=net["upsample_kernel_size"],
                   filters=net["filters"], norm_name=("INSTANCE", {"affine": True}),
                   deep_supervision=net["deep_supervision"],
                   deep_supr_num=net["deep_supr_num"], res_block=False)


def _resampled_shape(shape: Sequence[int], spacing: Sequence[float],
                     target: Sequence[float]) -> list[int]:
    return [max(1, int(round(n * s / t))) for n, s, t in zip(shape, spacing, target, strict=True)]


def preprocess_image(image: np.ndarray, spacing: Sequence[float],
                     plan: SegmentationPlan) -> torch.Tensor:
    """Normalised image on the plan's voxel grid: ``(C, *resampled)`` float32."""
    tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
    norm = plan.normalization
    if norm["scheme"] == "ct":
        low = torch.tensor(norm["clip"][0]).view(-1, *[1] * plan.spatial_dims)
        high = torch.tensor(norm["clip"][1]).view(-1, *[1] * plan.spatial_dims)
        mean = torch.tensor(norm["mean"]).view(-1, *[1] * plan.spatial_dims)
        std = torch.tensor(norm["std"]).view(-1, *[1] * plan.spatial_dims)
        tensor = (torch.maximum(torch.minimum(tensor, high), low) - mean) / std.clamp_min(1e-6)
    else:
        dims = tuple(range(1, tensor.ndim))
        mean = tensor.mean(dim=dims, keepdim=True)
        std = tensor.std(dim=dims, keepdim=True).clamp_min(1e-6)
        tensor = (tensor - mean) / std
    shape = _resampled_shape(tensor.shape[1:], spacing, plan.target_spacing)
    if list(shape) != list(tensor.shape[1:]):
        mode = "trilinear" if plan.spatial_dims == 3 else "bilinear"
        tensor = functional.interpolate(tensor[None], size=shape, mode=mode,
                                        align_corners=False)[0]
    return tensor.contiguous()


def preprocess_label(label: np.ndarray, spacing: Sequence[float],
                     plan: SegmentationPlan) -> torch.Tensor:
    """Label map on the plan's voxel grid (nearest neighbour), ``(*resampled)`` uint8."""
    tensor = torch.from_numpy(np.ascontiguousarray(label, dtype=np.uint8))
    shape = _resampled_shape(tensor.shape, spacing, plan.target_spacing)
    if list(shape) != list(tensor.shape):
        tensor = functional.interpolate(tensor[None, None].float(), size=shape,
                                        mode="nearest")[0, 0].to(torch.uint8)
    return tensor.contiguous()


def sliding_window_probabilities(model: nn.Module, image: torch.Tensor, plan: SegmentationPlan,
                                 tta: bool = True, out_shape: Sequence[int] | None = None
                                 ) -> torch.Tensor:
    """Softmax probabilities ``(K, *shape)`` of a preprocessed image ``(C, *spatial)``.

    Sliding windows of the plan's patch size overlap by ``sw_overlap`` and are blended with a
    Gaussian weight (centre voxels count more than edges); with ``tta`` the probabilities are
    averaged over the plan's mirrorings. With ``out_shape`` they are interpolated to that grid
    (the input's original one) before being returned.
    """
    device = next(model.parameters()).device
    batch = image[None].to(device)
    flips = plan.tta_flips if tta and plan.tta_flips else [[]]
    total = None
    for axes in flips:
        dims = [a + 2 for a in axes]
        inputs = batch.flip(dims) if dims else batch
        logits = sliding_window_inference(inputs, roi_size=plan.patch_size,
                                          sw_batch_size=plan.sw_batch_size, predictor=model,
                                          overlap=plan.sw_overlap, mode="gaussian")
        probs = torch.softmax(logits.float(), dim=1)
        probs = probs.flip(dims) if dims else probs
        total = probs if total is None else total + probs
    probs = total / len(flips)
    if out_shape is not None and list(out_shape) != list(probs.shape[2:]):
        mode = "trilinear" if plan.spatial_dims == 3 else "bilinear"
        probs = functional.interpolate(probs, size=list(out_shape), mode=mode,
                                       align_corners=False)
    return probs[0].cpu()


def keep_largest_component(mask: np.ndarray, labels: Sequence[int]) -> np.ndarray:
    """Keep only the largest connected component of each label in ``labels`` (others: 0).

    Connectivity is face-only (6-neighbourhood in 3D, 4 in 2D), as in nnU-Net.
    """
    if not labels:
        return mask
    from scipy import ndimage

    out = mask.copy()
    for value in labels:
        components, count = ndimage.label(mask == value)
        if count > 1:
            sizes = np.bincount(components.ravel())
            sizes[0] = 0
            out[(components > 0) & (components != int(np.argmax(sizes)))] = 0
    return out


# --------------------------------------------------------------------------------------------
# Batch augmentation of image/label pairs
# --------------------------------------------------------------------------------------------


class SegmentationAugment:
    """Random spatial (affine + elastic), flip and intensity transforms of a batch.

    One sampling grid per sample moves image (bilinear) and labels (nearest) together; the grid
    of the whole batch is a single ``grid_sample`` call, so augmentation stays cheap on a CPU.
    Rotations act in millimetres of the patch (not in its normalised [-1, 1] box), so a
    non-cubic patch is rotated without shearing.
    """

    def __init__(self, config: SegAugmentConfig, spatial_dims: int):
        self.config = config
        self.dims = spatial_dims

    def _grid(self, n: int, shape: Sequence[int], generator: torch.Generator):
        cfg, dims = self.config, self.dims
        planes = [(0, 1)] if dims == 2 else [(0, 1), (0, 2), (1, 2)]
        linear = torch.eye(dims).repeat(n, 1, 1)
        for plane in planes:
            linear = linear @ _rotation(_uniform(n, math.radians(cfg.rotate_deg), generator),
                                        plane, dims)
        linear = linear * (1 + _uniform(n, cfg.scale, generator))[:, None, None]
        use_affine = torch.rand(n, generator=generator) < cfg.affine_prob
        linear[~use_affine] = torch.eye(dims)
        # grid_sample's coordinates are (x, y, z) = reversed array axes, normalised per axis.
        half = torch.tensor([s / 2 for s in reversed(shape)], dtype=torch.float32)
        linear = torch.diag(1 / half) @ linear @ torch.diag(half)
        theta = torch.cat([linear, torch.zeros(n, dims, 1)], dim=2)
        grid = functional.affine_grid(theta, [n, 1, *shape], align_corners=False)
        use_elastic = torch.rand(n, generator=generator) < cfg.elastic_prob
        if cfg.elastic_prob and use_elastic.any():
            coarse = torch.randn(n, dims, *[4] * dims, generator=generator) * cfg.elastic_mm
            mode = "trilinear" if dims == 3 else "bilinear"
            field_ = functional.interpolate(coarse, size=list(shape), mode=mode,
                                            align_corners=True)
            field_ = field_.movedim(1, -1) * use_elastic.view(n, *[1] * (dims + 1))
            grid = grid + field_
        return grid, use_affine | use_elastic

    def __call__(self, images: torch.Tensor, labels: torch.Tensor,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment ``images`` (B, C, *S) float and ``labels`` (B, 1, *S) uint8 together."""
        cfg, n = self.config, images.shape[0]
        shape = list(images.shape[2:])
        if cfg.affine_prob or cfg.elastic_prob:
            grid, moved = self._grid(n, shape, generator)
            if moved.any():
                index = torch.nonzero(moved).flatten()
                images, labels = images.clone(), labels.clone()
                images[index] = functional.grid_sample(images[index], grid[index],
                                                       mode="bilinear", padding_mode="zeros",
                                                       align_corners=False)
                labels[index] = functional.grid_sample(
                    labels[index].float(), grid[index], mode="nearest", padding_mode="zeros",
                    align_corners=False).to(labels.dtype)
        for axis in cfg.flip_axes:
            flip = torch.rand(n, generator=generator) < 0.5
            if flip.any():
                images, labels = images.clone(), labels.clone()
                images[flip] = images[flip].flip(axis + 2)
                labels[flip] = labels[flip].flip(axis + 2)
        view = (n,) + (1,) * (images.ndim - 1)
        if cfg.intensity_scale:
            images = images * (1 + _uniform(n, cfg.intensity_scale, generator)).view(view)
        if cfg.intensity_shift:
            images = images + _uniform(n, cfg.intensity_shift, generator).view(view)
        if cfg.noise_std:
            sigma = torch.rand(n, generator=generator).view(view) * cfg.noise_std
            images = images + torch.randn(images.shape, generator=generator) * sigma
        return images, labels


# --------------------------------------------------------------------------------------------
# The trainer's view of the task
# --------------------------------------------------------------------------------------------


def _pad_to(tensor: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Pad the trailing spatial axes (centred) so each is at least ``size``."""
    pads = []
    for have, want in zip(reversed(tensor.shape[-len(size):]), reversed(size), strict=True):
        extra = max(0, want - have)
        pads += [extra // 2, extra - extra // 2]
    return functional.pad(tensor, pads) if any(pads) else tensor


class SegmentationTask:
    """Patches, loss and validation Dice for the one trainer (see ``TrainableTask``)."""

    selection_metric = "dice"

    def __init__(self, plan: SegmentationPlan, train: SegmentationSplit, val: SegmentationSplit):
        self.plan = plan
        self.num_classes = len(plan.class_names)
        self.patch = list(plan.patch_size)
        self.images, self.labels, self.foreground = [], [], []
        for case in train.cases:
            image = _pad_to(preprocess_image(case.image, case.spacing, plan), self.patch)
            label = _pad_to(preprocess_label(case.label, case.spacing, plan), self.patch)
            self.images.append(image)
            self.labels.append(label)
            # Up to 2000 voxel positions per class: enough to centre oversampled patches.
            per_class = {}
            for value in range(1, self.num_classes):
                where = torch.nonzero(label == value)
                if len(where):
                    step = max(1, len(where) // 2000)
                    per_class[value] = where[::step]
            self.foreground.append(per_class)
        self.val = [(preprocess_image(c.image, c.spacing, plan),
                     preprocess_label(c.label, c.spacing, plan)) for c in val.cases]
        self.augment = SegmentationAugment(SegAugmentConfig(**plan.augment), plan.spatial_dims)
        self.loss = DiceCELoss(to_onehot_y=True, softmax=True, batch=True, smooth_nr=1e-5,
                               smooth_dr=1e-5)

    # --- TrainableTask -----------------------------------------------------------------------

    def build_model(self) -> nn.Module:
        return build_model(self.plan)

    def num_train_batches(self) -> int:
        return self.plan.batches_per_epoch

    def _crop(self, index: int, foreground: bool, generator: torch.Generator):
        image, label = self.images[index], self.labels[index]
        shape = image.shape[1:]
        classes = list(self.foreground[index])
        if foreground and classes:
            # nnU-Net's oversampling: centre the patch on a voxel of a random present class.
            value = classes[int(torch.randint(len(classes), (1,), generator=generator))]
            points = self.foreground[index][value]
            centre = points[int(torch.randint(len(points), (1,), generator=generator))]
            start = [int(c) - p // 2 for c, p in zip(centre, self.patch, strict=True)]
        else:
            start = [int(torch.randint(s - p + 1, (1,), generator=generator))
                     for s, p in zip(shape, self.patch, strict=True)]
        start = [min(max(0, s), n - p) for s, n, p in zip(start, shape, self.patch, strict=True)]
        window = tuple(slice(s, s + p) for s, p in zip(start, self.patch, strict=True))
        return image[(slice(None), *window)], label[window][None]

    def train_batches(self, epoch: int, generator: torch.Generator) -> Iterator[tuple]:
        n, batch = len(self.images), self.plan.batch_size
        n_foreground = max(1, int(round(batch * self.plan.foreground_fraction)))
        for _ in range(self.plan.batches_per_epoch):
            cases = torch.randint(n, (batch,), generator=generator).tolist()
            crops = [self._crop(case, slot >= batch - n_foreground, generator)
                     for slot, case in enumerate(cases)]
            images = torch.stack([c[0] for c in crops])
            labels = torch.stack([c[1] for c in crops])
            yield self.augment(images, labels, generator)

    def training_loss(self, model: nn.Module, batch: tuple) -> torch.Tensor:
        images, labels = batch
        device = next(model.parameters()).device
        images, labels = images.to(device), labels.to(device).long()
        output = model(images)
        if output.ndim == images.ndim + 1:
            # Deep supervision: (B, heads, K, *S); weights halve per level, normalised (nnU-Net).
            weights = torch.tensor([0.5 ** i for i in range(output.shape[1])])
            weights = weights / weights.sum()
            return sum(w * self.loss(output[:, i].float(), labels)
                       for i, w in enumerate(weights.tolist()))
        return self.loss(output.float(), labels)

    def validate(self, model: nn.Module) -> dict[str, float]:
        """Mean foreground Dice on the validation cases (plan grid, no TTA, for speed)."""
        inter = np.zeros(self.num_classes)
        sums = np.zeros(self.num_classes)
        per_case = []
        for image, label in self.val:
            pred = sliding_window_probabilities(model, image, self.plan, tta=False).argmax(0)
            dices = []
            for value in range(1, self.num_classes):
                p, t = pred == value, label == value
                i, s = float((p & t).sum()), float(p.sum() + t.sum())
                inter[value] += i
                sums[value] += s
                dices.append(1.0 if s == 0 else 2 * i / s)
            per_case.append(dices)
        case_dice = np.mean(per_case, axis=0)
        metrics = {"dice": float(case_dice.mean())}
        for value in range(1, self.num_classes):
            metrics[f"dice_{self.plan.class_names[value]}"] = float(case_dice[value - 1])
        return metrics


# --------------------------------------------------------------------------------------------
# fit
# --------------------------------------------------------------------------------------------


def _check_split(split: SegmentationSplit, name: str, num_classes: int, source: str) -> None:
    if len(split) == 0:
        raise DataError(f"{source}: the {name} split is empty")
    for case in split.cases:
        if case.label is None:
            raise DataError(f"{case.source}: no label map (every {name} case needs one)")
        if int(case.label.max()) >= num_classes:
            raise DataError(f"{case.label_source}: label value {int(case.label.max())} is outside "
                            f"the {num_classes} classes")


def _choose_postprocessing(predictor, val: SegmentationSplit
                           ) -> tuple[list[int], dict, list[np.ndarray]]:
    """Labels whose validation Dice rises with largest-component filtering (nnU-Net's rule).

    Returns:
        (chosen label values, per-label evidence, the validation masks post-processed so).
    """
    from meddx.learn.evaluation.segmentation_metrics import case_metrics

    names = predictor.class_names
    raw_masks = [predictor.segment(case.image, case.spacing, postprocess=False)
                 for case in val.cases]
    chosen, evidence = [], {}
    for value in range(1, len(names)):
        before, after = [], []
        for mask, case in zip(raw_masks, val.cases, strict=True):
            single = (mask == value).astype(np.uint8)
            truth = (case.label == value).astype(np.uint8)
            cleaned = keep_largest_component(single, [1])
            before.append(case_metrics(single, truth, case.spacing, ["bg", "x"])["dice"]["x"])
            after.append(case_metrics(cleaned, truth, case.spacing, ["bg", "x"])["dice"]["x"])
        gain = float(np.mean(after) - np.mean(before))
        evidence[names[value]] = {"val_dice_raw": float(np.mean(before)),
                                  "val_dice_largest_component": float(np.mean(after)),
                                  "kept": gain > 0}
        if gain > 0:
            chosen.append(value)
    return chosen, evidence, [keep_largest_component(m, chosen) for m in raw_masks]


def fit(dataset: SegmentationDataset, work_dir: Path, config: TrainConfig,
        plan: dict[str, Any] | None = None, resume: bool = False, progress: bool = True,
        split_seed: int = 0) -> FitOutput:
    """Fingerprint, plan, train with the one trainer, choose post-processing on validation."""
    from meddx.decision.segment_predict import SegmentationPredictor
    from meddx.learn.evaluation.segmentation_metrics import case_metrics, summarize_cases

    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    source = str(dataset.provenance.get("source", dataset.name))
    train = dataset.split("train", seed=split_seed)
    val = dataset.split("val", seed=split_seed)
    _check_split(train, "train", dataset.num_classes, source)
    _check_split(val, "val", dataset.num_classes, source)
    plan_path = work_dir / PLAN_FILE
    if resume:
        if not plan_path.exists():
            raise ConfigError(f"--resume: no interrupted run at {work_dir} (no {PLAN_FILE})")
        plan_obj = SegmentationPlan.from_dict(json.loads(plan_path.read_text()))
        prints = json.loads((work_dir / FINGERPRINT_FILE).read_text()) \
            if (work_dir / FINGERPRINT_FILE).exists() else {}
    else:
        printer = None
        if progress:
            from rich.console import Console

            printer = Console(stderr=True).print
        plan_obj, prints = make_plan(dataset, train, plan, print_fn=printer)
    for path, data in ((plan_path, plan_obj.to_dict()), (work_dir / FINGERPRINT_FILE, prints)):
        write_json(data, path)
    log.info("plan: %s", json.dumps(plan_obj.to_dict()))
    task = SegmentationTask(plan_obj, train, val)
    result = Trainer(config, work_dir, progress=progress).fit(task, resume=resume)
    state = {k: v.detach().cpu() for k, v in result.model.state_dict().items()}

    metadata: dict[str, Any] = {
        "task": TASK_NAME,
        "class_names": plan_obj.class_names,
        "threshold": None,
        "plan": plan_obj.to_dict(),
        "fingerprint": prints,
        "network": plan_obj.network,
        "preprocessing": {"target_spacing": plan_obj.target_spacing,
                          "normalization": plan_obj.normalization,
                          "input_size": plan_obj.patch_size},
        "training": {"config": asdict(config), "best_epoch": result.best_epoch,
                     "best_val_dice": result.best_score, "epochs_run": len(result.history),
                     "stop_reason": result.stop_reason, "elapsed_s": round(result.elapsed_s, 1),
                     "bf16_autocast": result.amp, "device": str(next(
                         result.model.parameters()).device), "history": result.history},
        "metrics": {},
        "limitations": [
            f"Images are resampled to {plan_obj.target_spacing} mm and segmented in patches of "
            f"{plan_obj.patch_size} voxels; structures thinner than a voxel at that spacing are "
            "missed.",
            "Volumes in mL are only as good as the mask boundary; check the overlay before using "
            "a measurement.",
        ],
    }
    predictor = SegmentationPredictor(metadata, state, source=str(work_dir))
    chosen, evidence, val_masks = _choose_postprocessing(predictor, val)
    plan_obj.largest_component_labels = chosen
    metadata["plan"] = plan_obj.to_dict()
    metadata["postprocessing"] = {"largest_component": evidence,
                                  "rule": "kept for a label only where it raised that label's "
                                          "mean validation Dice"}
    predictor = SegmentationPredictor(metadata, state, source=str(work_dir))
    val_cases = []
    for mask, case in zip(val_masks, val.cases, strict=True):
        val_cases.append({"case": case.case_id, "source": case.source,
                          **case_metrics(mask, case.label, case.spacing, plan_obj.class_names)})
    metadata["metrics"]["val"] = summarize_cases(val_cases, plan_obj.class_names)
    return FitOutput(metadata, state, predictor)
