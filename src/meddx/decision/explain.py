"""Explanations of image findings: Grad-CAM heat maps drawn over the image.

Grad-CAM (Selvaraju et al., ICCV 2017) comes from MONAI's ``monai.visualize.GradCAM`` on the
network's last convolutional block; networks without one (ViT) fall back to Captum's integrated
gradients (Sundararajan et al., ICML 2017). A seed ensemble is explained by the mean of its
members' maps (each member's Grad-CAM of the class, normalised to [0, 1]).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from monai.visualize import GradCAM
from torch import nn

from meddx.figures import new_figure, save_figure
from meddx.learn.ensemble import ProbabilityEnsemble
from meddx.learn.networks import GRADCAM_LAYERS


def heat_map(model: nn.Module, arch: str, inputs: torch.Tensor, class_index: int) -> np.ndarray:
    """Relevance map in [0, 1] with the input's spatial shape, for one class.

    Args:
        model: the classifier, in eval mode.
        arch: its architecture name (selects the Grad-CAM layer).
        inputs: one preprocessed input, (1, C, *spatial).
        class_index: the class to explain.
    """
    if isinstance(model, ProbabilityEnsemble):
        # Grad-CAM hooks one layer of one network: explain each member, average the maps.
        relevance = np.mean([heat_map(member, arch, inputs, class_index)
                             for member in model.members], axis=0)
        peak = relevance.max()
        return relevance / peak if peak > 0 else relevance
    inputs = inputs.to(next(model.parameters()).device)
    layer = GRADCAM_LAYERS.get(arch)
    if layer is not None:
        cam = GradCAM(nn_module=model, target_layers=layer)
        with torch.enable_grad():
            result = cam(x=inputs.clone().requires_grad_(True), class_idx=class_index)
        relevance = result[0, 0].detach().float().cpu().numpy()
    else:
        from captum.attr import IntegratedGradients

        attributions = IntegratedGradients(model).attribute(inputs, target=class_index,
                                                            n_steps=32)
        relevance = attributions[0].abs().sum(0).detach().cpu().numpy()
    relevance = relevance - relevance.min()
    peak = relevance.max()
    return relevance / peak if peak > 0 else relevance


def _slices(volume: np.ndarray, relevance: np.ndarray):
    """Three orthogonal slices of a volume through the point of highest relevance."""
    centre = np.unravel_index(int(np.argmax(relevance)), relevance.shape)
    for axis, name in enumerate(("axis 0", "axis 1", "axis 2")):
        yield (f"{name} slice {centre[axis]}", np.take(volume, centre[axis], axis),
               np.take(relevance, centre[axis], axis))


def save_overlay(image: np.ndarray, relevance: np.ndarray, path: Path, title: str,
                 alpha: float = 0.45) -> Path:
    """Write the image with the heat map over it as PNG (three slices for a volume).

    Args:
        image: (C, *spatial) image in display units (channels averaged for display).
        relevance: map with the image's spatial shape, values in [0, 1].
        path: PNG to write.
        title: figure title.
        alpha: heat-map opacity.
    """
    gray = image.mean(axis=0)
    panels = ([("", gray, relevance)] if gray.ndim == 2 else list(_slices(gray, relevance)))
    fig = new_figure(3.6 * len(panels), 3.9)
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, (label, picture, heat) in zip(axes[0], panels, strict=True):
        ax.imshow(picture, cmap="gray", interpolation="bilinear")
        shown = ax.imshow(heat, cmap="jet", alpha=alpha, vmin=0, vmax=1, interpolation="bilinear")
        ax.set_title(label, fontsize=9)
        ax.axis("off")
    fig.colorbar(shown, ax=axes[0].tolist(), fraction=0.046, pad=0.04, label="relevance")
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)
