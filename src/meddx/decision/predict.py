"""Image classification from a bundle: probabilities, decision, uncertainty and (optionally)
explanation.

:func:`meddx.decision.predictors.load_model` returns the predictor for a bundle's task; every
predictor has ``predict_file(path)`` returning a JSON-able dict, so the CLI and the web server
treat all tasks alike.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from meddx.data.images import read_image
from meddx.data.preprocessing import ImagePreprocessing
from meddx.decision.bundle import Bundle, check_task, load_weights
from meddx.decision.explain import heat_map, save_overlay
from meddx.fileio import write_atomically
from meddx.learn.networks import NetworkSpec, build_network
from meddx.learn.tasks.image_classification import (
    TASK_NAME,
    ImageClassificationPlan,
    predict_proba,
)
from meddx.learn.trainer import default_device


def decide(probs: np.ndarray, threshold: float | None) -> np.ndarray:
    """Class indices: binary uses the validation-chosen threshold on P(class 1), else argmax."""
    if probs.shape[1] == 2 and threshold is not None:
        return (probs[:, 1] >= threshold).astype(np.int64)
    return probs.argmax(axis=1)


def normalized_entropy(probs: np.ndarray) -> np.ndarray:
    """Predictive entropy divided by its maximum, log K: 0 = certain, 1 = uniform."""
    clipped = np.clip(probs, 1e-12, 1.0)
    return -(clipped * np.log(clipped)).sum(axis=1) / math.log(probs.shape[1])


class ImageClassifier:
    """Predictor for image-classification bundles.

    Args:
        metadata: the bundle metadata (``plan``, ``threshold``, ``name``).
        state_dict: the network weights.
        device: torch device (default: CUDA when present, else CPU).
        source: where the weights came from, for error messages.
    """

    def __init__(self, metadata: dict[str, Any], state_dict: dict[str, torch.Tensor],
                 device: torch.device | None = None, source: str = "bundle"):
        check_task(metadata, TASK_NAME, source)
        self.metadata = metadata
        self.name = metadata.get("name", source)
        self.device = device or default_device()
        self.plan = ImageClassificationPlan.from_dict(metadata["plan"])
        self.spec = NetworkSpec.from_dict(self.plan.network)
        self.preprocessing = ImagePreprocessing.from_dict(self.plan.preprocessing)
        self.model = load_weights(build_network(NetworkSpec.from_dict(self.plan.network)),
                                  state_dict, self.device, source)
        self.class_names = self.plan.class_names
        self.threshold = metadata.get("threshold")

    @classmethod
    def from_bundle(cls, bundle: Bundle, device: torch.device | None = None) -> ImageClassifier:
        return cls(bundle.metadata, bundle.state_dict(), device, source=str(bundle.path))

    def prepare(self, images: Sequence[np.ndarray], sources: Sequence[str]) -> torch.Tensor:
        return torch.from_numpy(np.stack([self.preprocessing(image, source)
                                          for image, source in zip(images, sources, strict=True)]))

    def predict_proba(self, images: Sequence[np.ndarray],
                      sources: Sequence[str] | None = None) -> np.ndarray:
        """Class probabilities (N, K), with the bundle's test-time flips."""
        sources = sources or [f"image {i}" for i in range(len(images))]
        return predict_proba(self.model, self.prepare(images, sources),
                             self.plan.eval_batch_size, self.plan.tta_flip_axes)

    def predict_split(self, split) -> np.ndarray:
        """Probabilities for every image of a dataset split (the evaluation path's entry)."""
        return self.predict_proba(split.images, split.sources)

    def predict_file(self, path: str | Path, explain_to: Path | None = None) -> dict[str, Any]:
        """Prediction for one file; with ``explain_to``, also writes a Grad-CAM overlay PNG."""
        start = time.perf_counter()
        image = read_image(path, spatial_dims=self.spec.spatial_dims)
        probs = self.predict_proba([image.array], [str(path)])[0]
        index = int(decide(probs[None], self.threshold)[0])
        result: dict[str, Any] = {
            "file": str(path),
            "probabilities": {name: float(p) for name, p in zip(self.class_names, probs,
                                                                strict=True)},
            "decision": self.class_names[index],
            "uncertainty": float(normalized_entropy(probs[None])[0]),
            "model": self.name,
        }
        if self.threshold is not None:
            result["threshold"] = self.threshold
        if explain_to is not None:
            inputs = self.prepare([image.array], [str(path)])
            relevance = heat_map(self.model, self.spec.arch, inputs, index)
            display = self.preprocessing.conform(image.array, str(path))
            title = f"{Path(path).name}: {self.class_names[index]} (p={probs[index]:.2f})"
            result["explanation"] = str(save_overlay(display, relevance, explain_to, title))
            # The raw map too, so viewers can draw it over the image at any opacity.
            raw_map = write_atomically(Path(explain_to).with_suffix(".npy"),
                                       lambda tmp: np.save(tmp, relevance.astype(np.float32)))
            result["explanation_map"] = str(raw_map)
        result["latency_ms"] = round((time.perf_counter() - start) * 1000, 2)
        return result
