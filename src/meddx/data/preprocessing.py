"""Image preprocessing shared by training and prediction.

The same :class:`ImagePreprocessing` object, saved as JSON in the bundle, turns a training image
and a clinician's upload into the network's input, so the two can never drift apart.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from monai.transforms import Resize

from meddx.errors import InputFileError

# ITU-R BT.601 luma weights: the usual RGB -> gray conversion.
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass
class ImagePreprocessing:
    """Channel check, resize and intensity normalisation.

    Attributes:
        spatial_dims: 2 or 3.
        in_channels: channels the network expects (1 or 3).
        input_size: spatial size after resizing.
        mean: training-set mean intensity (after resizing), subtracted.
        std: training-set intensity standard deviation, divided by.
    """

    spatial_dims: int
    in_channels: int
    input_size: list[int]
    mean: float = 0.0
    std: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImagePreprocessing:
        return cls(**data)

    def conform(self, array: np.ndarray, source: str = "image") -> np.ndarray:
        """Channels and size as the network expects, before intensity normalisation.

        RGB input to a gray-scale model is converted with luma weights and gray input to an RGB
        model is repeated, since both are common and harmless; anything else is an error.
        """
        array = np.asarray(array, dtype=np.float32)
        if array.ndim != self.spatial_dims + 1:
            kind = "2D image" if self.spatial_dims == 2 else "3D volume"
            raise InputFileError(
                source, f"expected a {kind} with {self.spatial_dims} spatial dimensions, got an "
                f"array of shape {tuple(array.shape)} (channels first)")
        channels = array.shape[0]
        if channels == 4 and self.in_channels in (1, 3):
            array, channels = array[:3], 3  # drop alpha
        if channels != self.in_channels:
            if channels == 3 and self.in_channels == 1:
                array = np.tensordot(LUMA, array, axes=1)[None]
            elif channels == 1 and self.in_channels == 3:
                array = np.repeat(array, 3, axis=0)
            else:
                raise InputFileError(
                    source, f"has {channels} channels; the model expects {self.in_channels}")
        if not np.isfinite(array).all():
            raise InputFileError(source, "contains NaN or infinite values")
        if list(array.shape[1:]) != list(self.input_size):
            if min(array.shape[1:]) < 1:
                raise InputFileError(source, "image is empty (zero size)")
            resize = Resize(spatial_size=self.input_size, mode="area" if self._shrinks(array)
                            else ("bilinear" if self.spatial_dims == 2 else "trilinear"))
            array = np.asarray(resize(torch.from_numpy(np.ascontiguousarray(array))))
        return array.astype(np.float32, copy=False)

    def _shrinks(self, array: np.ndarray) -> bool:
        return any(s > t for s, t in zip(array.shape[1:], self.input_size, strict=True))

    def normalize(self, array: np.ndarray) -> np.ndarray:
        return (array - self.mean) / self.std

    def __call__(self, array: np.ndarray, source: str = "image") -> np.ndarray:
        return self.normalize(self.conform(array, source))

    def fit_intensity(self, conformed: np.ndarray) -> ImagePreprocessing:
        """Set mean and std from a stack of conformed training images (N, C, *spatial)."""
        self.mean = float(conformed.mean())
        self.std = float(conformed.std()) or 1.0
        return self
