"""Task recipe: classification of 2D images and 3D volumes (binary and multi-class).

Stages, each with a readable artifact: ``make_plan`` (the dataset's fingerprint turned into
``plan.json``: input size, intensity statistics, network, augmentation, batch size), then
:class:`ImageClassificationTask` trained by the one :class:`~meddx.learn.trainer.Trainer`, then
the binary threshold chosen on validation, then the bundle.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from meddx.data.datasets import ClassificationDataset, SplitData
from meddx.data.preprocessing import ImagePreprocessing
from meddx.errors import ConfigError, DataError
from meddx.learn.augment import AugmentConfig, BatchAugment
from meddx.learn.evaluation.metrics import choose_threshold, classification_metrics, quick_auc
from meddx.learn.networks import NetworkSpec, build_network, default_architecture
from meddx.learn.tasks import FitOutput, check_splits, resolve_plan
from meddx.learn.trainer import TrainConfig, Trainer

log = logging.getLogger(__name__)

TASK_NAME = "image-classification"
IMBALANCE_MODES = ("weighted_loss", "sampler", "none")


@dataclass
class ImageClassificationPlan:
    """Everything the task needs besides the data; saved as ``plan.json`` and in the bundle."""

    class_names: list[str]
    network: dict[str, Any]
    preprocessing: dict[str, Any]
    augment: dict[str, Any]
    batch_size: int = 128
    eval_batch_size: int = 512
    imbalance: str = "weighted_loss"
    label_smoothing: float = 0.05
    threshold_method: str = "youden"
    tta_flip_axes: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageClassificationPlan:
        return cls(**data)


def _typical_size(images: list[np.ndarray]) -> list[int]:
    """Most common spatial shape of the training images."""
    shapes = Counter(tuple(image.shape[1:]) for image in images)
    return list(shapes.most_common(1)[0][0])


def make_plan(dataset: ClassificationDataset, train: SplitData,
              overrides: dict[str, Any] | None = None) -> ImageClassificationPlan:
    """Fingerprint the training split and choose sensible defaults; ``overrides`` win.

    Recognised overrides: ``arch``, ``input_size`` (int or list), ``network_options`` (dict),
    ``resize_to`` (int or list), ``batch_size``, ``imbalance``, ``label_smoothing``, ``augment``
    (dict of :class:`AugmentConfig` fields), ``tta_flip_axes``, ``threshold_method``.
    """
    overrides = dict(overrides or {})
    dims = dataset.spatial_dims
    size = overrides.pop("input_size", None)
    if size is None:
        # Cap the working size: a 2-core CPU cannot afford full-resolution radiographs.
        cap = 128 if dims == 2 else 64
        size = [min(s, cap) for s in _typical_size(train.images)]
    elif isinstance(size, int):
        size = [size] * dims
    arch = overrides.pop("arch", None) or default_architecture(dims, size)
    resize_to = overrides.pop("resize_to", None)
    if isinstance(resize_to, int):
        resize_to = [resize_to] * dims
    network = NetworkSpec(arch=arch, spatial_dims=dims, in_channels=dataset.in_channels,
                          num_classes=len(dataset.class_names), input_size=list(size),
                          resize_to=resize_to, options=overrides.pop("network_options", {}))
    if arch == "compact_cnn" and not network.options:
        # One convolution per stage in 3D: full-resolution 3D convolutions dominate CPU time.
        network.options = ({"widths": [32, 64, 128]} if dims == 2
                           else {"widths": [32, 64, 128], "convs_per_stage": 1})
    preprocessing = ImagePreprocessing(spatial_dims=dims, in_channels=dataset.in_channels,
                                       input_size=list(size))
    augment_options = {"flip_axes": list(range(dims)) if dims == 3 else [1],
                       **overrides.pop("augment", {})}
    try:
        augment = AugmentConfig(**augment_options)
    except TypeError as error:
        raise ConfigError(f"invalid augment option ({error})") from error
    plan = ImageClassificationPlan(
        class_names=list(dataset.class_names), network=network.to_dict(),
        preprocessing=preprocessing.to_dict(), augment=augment.to_dict(),
        batch_size=128 if dims == 2 else 32,
        # Test-time flips only along axes the model was trained to be invariant to.
        tta_flip_axes=list(augment.flip_axes))
    for key, value in overrides.items():
        if not hasattr(plan, key):
            raise ConfigError(f"unknown plan option {key!r}")
        setattr(plan, key, value)
    if plan.imbalance not in IMBALANCE_MODES:
        raise ConfigError(f"imbalance must be one of {IMBALANCE_MODES}, got {plan.imbalance!r}")
    return plan


def stack_split(split: SplitData, preprocessing: ImagePreprocessing) -> torch.Tensor:
    """Conform every image of a split to the network's input (not yet normalised)."""
    arrays = [preprocessing.conform(image, source)
              for image, source in zip(split.images, split.sources, strict=True)]
    return torch.from_numpy(np.stack(arrays))


def predict_proba(model: nn.Module, inputs: torch.Tensor, batch_size: int,
                  tta_flip_axes: list[int] | None = None) -> np.ndarray:
    """Class probabilities (N, K) of normalised inputs; averages over flips when asked.

    The flipped copies go through the network in the same forward pass as the originals (one
    batch of ``1 + len(tta_flip_axes)`` views; the network is in eval mode, so no sample affects
    another): one pass costs much less than one per view on small batches, such as the single
    image of a workstation upload. Chunks hold ``batch_size`` rows in all views together, so
    peak memory stays that of a ``batch_size`` forward pass.
    """
    device = next(model.parameters()).device
    views = 1 + len(tta_flip_axes or [])
    step = max(1, batch_size // views)
    outputs = []
    with torch.no_grad():
        for start in range(0, len(inputs), step):
            batch = inputs[start:start + step].to(device)
            stacked = torch.cat([batch, *(batch.flip(axis + 2) for axis in tta_flip_axes or [])])
            each = functional.softmax(model(stacked).float(), dim=1).split(len(batch))
            probs = each[0]
            for view in each[1:]:  # summed in the order of the separate passes before
                probs = probs + view
            outputs.append((probs / views).cpu())
    return torch.cat(outputs).numpy()


class ImageClassificationTask:
    """The trainer's view of an image classification problem (see ``TrainableTask``)."""

    selection_metric = "auc"
    supports_ensemble = True  # its predictor loads a ProbabilityEnsemble through load_weights

    def __init__(self, plan: ImageClassificationPlan, train: SplitData, val: SplitData,
                 source: str = "dataset"):
        self.plan = plan
        self.source = source
        self.num_classes = len(plan.class_names)
        self.preprocessing = ImagePreprocessing.from_dict(plan.preprocessing)
        check_splits(train, val, plan.class_names, source)
        self._check_labels(train)
        self._check_labels(val)
        train_x = stack_split(train, self.preprocessing)
        self.preprocessing.fit_intensity(train_x.numpy())
        plan.preprocessing = self.preprocessing.to_dict()
        self.train_x = (train_x - self.preprocessing.mean) / self.preprocessing.std
        self.train_y = torch.as_tensor(train.labels, dtype=torch.long)
        self.val_x = (stack_split(val, self.preprocessing) - self.preprocessing.mean) \
            / self.preprocessing.std
        self.val_y = np.asarray(val.labels)
        counts = torch.bincount(self.train_y, minlength=self.num_classes).float()
        balanced = counts.sum() / (self.num_classes * counts.clamp(min=1))
        self.class_weights = balanced if plan.imbalance == "weighted_loss" else None
        self.sample_weights = balanced[self.train_y] if plan.imbalance == "sampler" else None
        self.augment = BatchAugment(AugmentConfig(**plan.augment), self.preprocessing.spatial_dims)

    def _check_labels(self, split: SplitData) -> None:
        labels = np.asarray(split.labels)
        bad = (labels < 0) | (labels >= self.num_classes)
        if bad.any():
            index = int(np.flatnonzero(bad)[0])
            raise DataError(f"{split.sources[index]}: label {labels[index]} is outside the "
                            f"{self.num_classes} classes {self.plan.class_names}")

    # --- TrainableTask -----------------------------------------------------------------------

    def build_model(self) -> nn.Module:
        return build_network(NetworkSpec.from_dict(self.plan.network))

    def num_train_batches(self) -> int:
        return -(-len(self.train_x) // self.plan.batch_size)

    def train_batches(self, epoch: int, generator: torch.Generator) -> Iterator[tuple]:
        n = len(self.train_x)
        if self.sample_weights is not None:
            order = torch.multinomial(self.sample_weights, n, replacement=True, generator=generator)
        else:
            order = torch.randperm(n, generator=generator)
        for start in range(0, n, self.plan.batch_size):
            index = order[start:start + self.plan.batch_size]
            yield self.augment(self.train_x[index], generator), self.train_y[index]

    def training_loss(self, model: nn.Module, batch: tuple) -> torch.Tensor:
        inputs, targets = batch
        device = next(model.parameters()).device
        weight = self.class_weights.to(device) if self.class_weights is not None else None
        logits = model(inputs.to(device))
        return functional.cross_entropy(logits.float(), targets.to(device), weight=weight,
                                        label_smoothing=self.plan.label_smoothing)

    def validate(self, model: nn.Module) -> dict[str, float]:
        probs = self.val_probabilities(model)
        loss = functional.nll_loss(torch.log(torch.from_numpy(probs).clamp_min(1e-7)),
                                   torch.from_numpy(self.val_y).long()).item()
        return {"auc": quick_auc(self.val_y, probs),
                "accuracy": float((probs.argmax(1) == self.val_y).mean()), "loss": loss}

    # --- beyond training ---------------------------------------------------------------------

    def val_probabilities(self, model: nn.Module, tta: bool = False) -> np.ndarray:
        return predict_proba(model, self.val_x, self.plan.eval_batch_size,
                             self.plan.tta_flip_axes if tta else None)


def fit(dataset: ClassificationDataset, work_dir: Path, config: TrainConfig,
        plan: dict[str, Any] | None = None, resume: bool = False, progress: bool = True,
        split_seed: int = 0) -> FitOutput:
    """Plan, train with the one trainer, choose the binary threshold on validation."""
    from meddx.decision.predict import ImageClassifier

    train = dataset.split("train", seed=split_seed)
    val = dataset.split("val", seed=split_seed)
    plan_obj = resolve_plan(work_dir, resume, lambda: make_plan(dataset, train, plan),
                            ImageClassificationPlan.from_dict, require_on_resume=True)
    task = ImageClassificationTask(plan_obj, train, val,
                                   source=str(dataset.provenance.get("source", dataset.name)))
    log.info("plan: %s", json.dumps(plan_obj.to_dict()))
    result = Trainer(config, work_dir, progress=progress).fit(task, resume=resume)

    val_probs = task.val_probabilities(result.model, tta=True)
    threshold = None
    if len(plan_obj.class_names) == 2:
        threshold = choose_threshold(task.val_y, val_probs[:, 1], method=plan_obj.threshold_method)
    metadata: dict[str, Any] = {
        "task": TASK_NAME,
        "class_names": plan_obj.class_names,
        "threshold": threshold,
        "threshold_method": plan_obj.threshold_method if threshold is not None else None,
        "plan": plan_obj.to_dict(),
        "network": plan_obj.network,
        "preprocessing": plan_obj.preprocessing,
        "training": {"config": asdict(config), "best_epoch": result.best_epoch,
                     "best_val_auc": result.best_score, "epochs_run": len(result.history),
                     "stop_reason": result.stop_reason, "elapsed_s": round(result.elapsed_s, 1),
                     "bf16_autocast": result.amp,
                     "device": str(next(result.model.parameters()).device),
                     "history": result.history},
        **result.extra,  # an ensemble's members and their validation figures
        "metrics": {"val": classification_metrics(task.val_y, val_probs, plan_obj.class_names,
                                                  threshold=threshold)},
        "limitations": [
            f"Inputs are resized to {task.preprocessing.input_size}; detail below that "
            "resolution is invisible to the model.",
            "Grad-CAM heat maps show where the network looked, not why; do not read them as "
            "lesion outlines.",
        ],
    }
    state = {k: v.detach().cpu() for k, v in result.model.state_dict().items()}
    return FitOutput(metadata, state, ImageClassifier(metadata, state, source=str(work_dir)))
