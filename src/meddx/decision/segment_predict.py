"""Segmentation from a bundle: a mask in the input's own grid, label volumes, overlays.

``meddx predict BUNDLE scan.nii.gz`` (or a DICOM series folder, or a PNG for 2D models) runs
:meth:`SegmentationPredictor.predict_file`, which writes

- ``<stem>_seg.nii.gz``: the label map on the input's voxel grid with the input's affine (for a
  NIfTI input its header is kept, so viewers overlay the two exactly); ``<stem>_seg.png`` for 2D
  image inputs;
- ``<stem>_seg.json``: per-label voxel counts and volumes in mL;
- with ``overlay=True``, ``<stem>_overlay.png``: the mask drawn on the image (orthogonal slices
  through the segmented structures).

All files are written atomically (temporary file, then rename).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from meddx.data.segmentation import SegmentationSplit, read_volume
from meddx.decision.bundle import Bundle, check_task, load_weights
from meddx.errors import InputFileError
from meddx.fileio import write_atomically, write_json
from meddx.learn.tasks.segmentation import (
    TASK_NAME,
    SegmentationPlan,
    build_model,
    keep_largest_component,
    preprocess_image,
    sliding_window_probabilities,
)
from meddx.learn.trainer import default_device

__all__ = ["TASK_NAME", "SegmentationPredictor"]


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii", ".png", ".jpg", ".jpeg", ".dcm", ".npy"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


class SegmentationPredictor:
    """Predictor for segmentation bundles.

    Args:
        metadata: bundle metadata (``plan`` holds network, spacing, normalisation, TTA and the
            validation-chosen post-processing).
        state_dict: the network weights.
        device: torch device (default: CUDA when present, else CPU).
        source: where the weights came from, for error messages.
    """

    task = TASK_NAME

    def __init__(self, metadata: dict[str, Any], state_dict: dict[str, torch.Tensor],
                 device: torch.device | None = None, source: str = "bundle"):
        check_task(metadata, TASK_NAME, source)
        self.metadata = metadata
        self.name = metadata.get("name", source)
        self.device = device or default_device()
        self.plan = SegmentationPlan.from_dict(metadata["plan"])
        self.model = load_weights(build_model(self.plan), state_dict, self.device, source)
        self.class_names = list(self.plan.class_names)
        self.threshold = None

    @classmethod
    def from_bundle(cls, bundle: Bundle, device: torch.device | None = None
                    ) -> SegmentationPredictor:
        return cls(bundle.metadata, bundle.state_dict(), device, source=str(bundle.path))

    def segment(self, image: np.ndarray, spacing, postprocess: bool = True,
                tta: bool = True) -> np.ndarray:
        """Label map (``uint8``, the image's own spatial shape) of one image ``(C, *spatial)``."""
        if image.shape[0] != self.plan.in_channels or image.ndim - 1 != self.plan.spatial_dims:
            raise InputFileError("image", f"shape {image.shape} does not fit the model "
                                          f"({self.plan.in_channels} channel(s), "
                                          f"{self.plan.spatial_dims}D)")
        tensor = preprocess_image(image, spacing, self.plan)
        with torch.no_grad():
            probs = sliding_window_probabilities(self.model, tensor, self.plan, tta=tta,
                                                 out_shape=image.shape[1:])
        mask = probs.argmax(0).numpy().astype(np.uint8)
        if postprocess:
            mask = keep_largest_component(mask, self.plan.largest_component_labels)
        return mask

    def predict_split(self, split: SegmentationSplit) -> list[np.ndarray]:
        """Masks of every case of a split, each in the case's own grid (the evaluation entry)."""
        return [self.segment(case.image, case.spacing) for case in split.cases]

    def volumes(self, mask: np.ndarray, spacing) -> dict[str, dict[str, float]]:
        voxel_ml = float(np.prod(spacing)) / 1000.0
        counts = np.bincount(mask.ravel(), minlength=len(self.class_names))
        return {name: {"voxels": int(counts[value]),
                       "volume_ml": round(float(counts[value]) * voxel_ml, 4)}
                for value, name in enumerate(self.class_names) if value > 0}

    def _write_mask(self, mask: np.ndarray, image, path: Path, out_dir: Path) -> Path:
        if image.meta.get("format") == "pillow":
            from PIL import Image as PILImage

            target = out_dir / f"{_stem(path)}_seg.png"
            return write_atomically(
                target, lambda tmp: PILImage.fromarray(mask).save(tmp, format="PNG"))
        import nibabel as nib

        target = out_dir / f"{_stem(path)}_seg.nii.gz"
        header = None
        if image.meta.get("format") == "nifti":
            header = nib.load(str(path)).header.copy()  # keeps qform/sform codes and units
        out = nib.Nifti1Image(mask, image.affine, header=header)
        out.set_data_dtype(np.uint8)
        out.header.set_slope_inter(1, 0)
        return write_atomically(target, lambda tmp: nib.save(out, str(tmp)))

    def predict_file(self, path: str | Path, explain_to: Path | None = None,
                     out_dir: str | Path | None = None, overlay: bool = False) -> dict[str, Any]:
        """Segment one scan; writes the mask and a JSON of label volumes to ``out_dir``.

        Args:
            path: NIfTI file, DICOM series folder (3D models), or PNG/JPEG (2D models).
            explain_to: when given (``--explain``), the overlay PNG goes here.
            out_dir: output folder (default: ``predictions``).
            overlay: also write ``<stem>_overlay.png``.
        """
        start = time.perf_counter()
        path = Path(path)
        out_dir = Path(out_dir or "predictions")
        image = read_volume(path, self.plan.spatial_dims if path.is_file() else None)
        if image.array.ndim - 1 != self.plan.spatial_dims:
            raise InputFileError(path, f"is {image.array.ndim - 1}D but the model segments "
                                       f"{self.plan.spatial_dims}D images")
        if image.array.shape[0] != self.plan.in_channels:
            raise InputFileError(path, f"has {image.array.shape[0]} channel(s)/volumes; the model "
                                       f"expects {self.plan.in_channels}")
        mask = self.segment(image.array, image.spacing)
        result: dict[str, Any] = {
            "file": str(path),
            "model": self.name,
            "shape": list(mask.shape),
            "spacing_mm": [float(s) for s in image.spacing],
            "labels": self.volumes(mask, image.spacing),
        }
        result["mask"] = str(self._write_mask(mask, image, path, out_dir))
        if overlay or explain_to is not None:
            from meddx.learn.evaluation.segmentation_report import plot_mask_overlay

            target = Path(explain_to) if explain_to is not None else \
                out_dir / f"{_stem(path)}_overlay.png"
            result["overlay"] = str(plot_mask_overlay(
                image.array, [("prediction", mask)], self.class_names, target,
                f"{path.name}: {self.name}"))
        result["latency_ms"] = round((time.perf_counter() - start) * 1000, 2)
        json_path = out_dir / f"{_stem(path)}_seg.json"
        write_json(result, json_path)
        result["json"] = str(json_path)
        return result
