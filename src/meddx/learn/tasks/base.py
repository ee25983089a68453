"""What a task recipe provides to the one trainer.

A task recipe (image classification, segmentation, ECG beats...) knows its data, network, loss and
validation metric. The :class:`~meddx.learn.trainer.Trainer` knows everything else: optimiser,
schedule, mixed precision, EMA, checkpoints, resume, time budget, early stopping, progress.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import torch
from torch import nn


class TrainableTask(Protocol):
    """The hooks the trainer calls. Batches are whatever the task's own methods understand."""

    #: Key of :meth:`validate`'s result that selects the best epoch (higher is better), or
    #: :data:`meddx.learn.trainer.KEEP_LAST` to keep the last epoch's model.
    selection_metric: str
    #: Only for tasks that keep the last epoch: the key of :meth:`validate`'s result that
    #: compares finished models (seed-ensemble members, architectures), as none was selected
    #: by a validation metric.
    comparison_metric: str

    def build_model(self) -> nn.Module:
        """A freshly initialised network."""
        ...

    def train_batches(self, epoch: int, generator: torch.Generator) -> Iterable[Any]:
        """One epoch of training batches, shuffled with ``generator`` (so resume is exact)."""
        ...

    def num_train_batches(self) -> int:
        """How many batches :meth:`train_batches` yields (for the progress bar and schedule)."""
        ...

    def training_loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        """Scalar loss of one batch, in training mode."""
        ...

    def validate(self, model: nn.Module) -> dict[str, float]:
        """Metrics on the validation split (model in eval mode); must hold ``selection_metric``."""
        ...
