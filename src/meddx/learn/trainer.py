"""The one training loop every task uses.

The loop is configured, never subclassed: a task recipe supplies data, network, loss and the
validation metric (:class:`~meddx.learn.tasks.base.TrainableTask`); the trainer supplies AdamW
with warm-up and cosine decay, bf16 autocast where it measurably helps, an exponential moving
average of the weights, a checkpoint after every epoch, exact resume after a crash or ``kill -9``,
a wall-clock budget, early stopping on the validation split, and a live progress bar.

The learning-rate schedule follows *progress*, the larger of the fraction of epochs done and the
fraction of the time budget spent, so a run cut short by its budget still anneals properly.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import nn
from torch.optim.swa_utils import AveragedModel

from meddx.errors import ConfigError, MeddxError
from meddx.fileio import write_atomically, write_text
from meddx.learn.tasks.base import TrainableTask

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"
# A task whose selection_metric is this keeps the last epoch's model instead of the best one.
KEEP_LAST = "final"


@dataclass
class TrainConfig:
    """Options of the training loop (the task's own options live in its plan).

    Attributes:
        epochs: maximum number of epochs.
        time_budget_min: wall-clock budget in minutes for the whole run (resumes included).
        lr: peak learning rate of AdamW.
        weight_decay: AdamW weight decay (not applied to norms and biases).
        warmup_fraction: fraction of progress spent warming the learning rate up.
        patience: epochs without validation improvement before stopping early (0: never).
        ema_decay: decay of the weight EMA used for validation and the final model (0: off).
        grad_clip: max gradient norm (0: off).
        amp: "auto" (bf16 on a GPU that supports it, off on the CPU), "bf16" or "off".
        seed: seeds python, numpy and torch, and each epoch's shuffling.
        num_threads: torch intra-op threads (None: torch's default).
        ensemble: members of a seed ensemble (1: one network). K > 1 trains K networks with
            seeds ``seed .. seed + K - 1`` and averages their probabilities; the time budget
            covers all of them (see :mod:`meddx.learn.ensemble`).
        stop_epoch: end after this epoch while the learning-rate schedule still runs over
            ``epochs`` (None: run all of them). A refit that repeats a selected epoch on more
            data follows the selected model's own schedule up to that epoch.
        deterministic: the same seed gives the same run on a GPU too (deterministic kernels,
            see :func:`seed_everything`); False lets cuDNN pick its fastest kernels.
    """

    epochs: int = 30
    time_budget_min: float | None = None
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_fraction: float = 0.05
    patience: int = 10
    ema_decay: float = 0.99
    grad_clip: float = 1.0
    amp: str = "auto"
    seed: int = 0
    num_threads: int | None = None
    ensemble: int = 1
    stop_epoch: int | None = None
    deterministic: bool = True

    def __post_init__(self):
        if self.epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {self.epochs}")
        if self.time_budget_min is not None and self.time_budget_min <= 0:
            raise ConfigError(f"time budget must be positive, got {self.time_budget_min} min")
        if self.amp not in ("auto", "bf16", "off"):
            raise ConfigError(f"amp must be auto, bf16 or off, got {self.amp!r}")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.ensemble < 1:
            raise ConfigError(f"ensemble must be >= 1 member, got {self.ensemble}")
        if self.stop_epoch is not None and not 1 <= self.stop_epoch <= self.epochs:
            raise ConfigError(f"stop_epoch must be in 1..epochs ({self.epochs}), got "
                              f"{self.stop_epoch}")

    @property
    def last_epoch(self) -> int:
        return self.stop_epoch or self.epochs


@dataclass
class TrainResult:
    """What a finished run hands back."""

    model: nn.Module
    history: list[dict[str, Any]]
    best_epoch: int
    best_score: float
    stop_reason: str
    elapsed_s: float
    amp: bool
    extra: dict[str, Any] = field(default_factory=dict)


def ema_with_warmup(decay: float) -> Callable:
    """EMA update whose decay ramps up as min(decay, (1 + n) / (10 + n)) over the n updates.

    A fixed decay of 0.99 needs a few hundred steps to forget the random initialisation; small
    datasets train for fewer than that, so early on the average must follow the model closely.
    """

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], n_averaged) -> None:
        n = int(n_averaged)
        weight = 1 - min(decay, (1 + n) / (10 + n))
        if torch.is_floating_point(averaged[0]):
            torch._foreach_lerp_(averaged, current, weight)
        else:  # integer buffers such as batch-norm's num_batches_tracked
            for mine, theirs in zip(averaged, current, strict=True):
                mine.copy_(theirs)

    return update


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed python, numpy and torch (every device).

    With ``deterministic``, CUDA repeats a run exactly too: cuDNN's deterministic kernels (what
    MONAI's ``set_determinism`` sets, without importing MONAI's 8 s for non-image tasks), and
    torch's deterministic algorithms in place of the atomic-add ones (a warning names any op
    that has none). CPU kernels are deterministic already. Without it, cuDNN benchmarks and
    keeps the fastest kernels, which vary from run to run.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic
    torch.use_deterministic_algorithms(False)
    if deterministic and torch.cuda.is_available():
        # cuBLAS repeats its sums only with a fixed workspace; read when its handle is made.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)


class GlobalAveragePool(nn.Module):
    """Mean over the spatial axes, kept as axes of size 1: what ``AdaptiveAvgPoolNd(1)``
    computes, with a gradient CUDA sums deterministically (adaptive pooling's is atomic)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=tuple(range(2, x.ndim)), keepdim=True)


def deterministic_pooling(model: nn.Module) -> nn.Module:
    """Replace the model's global adaptive average pools (output size 1) by
    :class:`GlobalAveragePool`; the same outputs, no parameters, so weights load either way."""
    adaptive = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            size = getattr(child, "output_size", None)
            if isinstance(child, adaptive) and all(
                    s == 1 for s in (size if isinstance(size, tuple) else (size,))):
                setattr(parent, name, GlobalAveragePool())
    return model


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def atomic_torch_save(obj: Any, path: Path) -> None:
    """Write with torch.save atomically (:func:`~meddx.fileio.write_atomically`)."""
    write_atomically(path, lambda tmp: torch.save(obj, tmp))


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        # Norm scales and biases are 1-D; decaying them only hurts.
        (no_decay if param.ndim <= 1 or name.endswith(".bias") else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def lr_at(progress: float, peak: float, warmup: float) -> float:
    """Linear warm-up to ``peak`` then cosine decay to 1% of it, as a function of progress."""
    progress = min(max(progress, 0.0), 1.0)
    if warmup > 0 and progress < warmup:
        return peak * (0.1 + 0.9 * progress / warmup)
    span = max(1.0 - warmup, 1e-8)
    return peak * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * (progress - warmup) / span)))


def uses_bf16(amp: str, device: torch.device) -> bool:
    """Whether a run trains under bf16 autocast.

    "auto" depends on the device alone, never on a timing: a timing trial (bf16 if 15% faster)
    chose bf16 in one run of the DS1 beat training and fp32 in the next, on the same CPU, and
    the two runs of one seed differed. On CPUs bf16 is opt-in ("bf16"); on this project's
    (AVX-512 BF16, no AMX) it was measured slower for the 3D U-Net.
    """
    if amp == "auto":
        return device.type == "cuda" and torch.cuda.is_bf16_supported()
    return amp == "bf16"


class Trainer:
    """Trains a task's network; checkpoints to ``work_dir`` so a killed run can resume.

    Args:
        config: loop options.
        work_dir: where the checkpoint and ``history.json`` go.
        device: torch device (default: CUDA when present, else CPU).
        progress: show a live progress bar.
    """

    def __init__(self, config: TrainConfig, work_dir: Path, device: torch.device | None = None,
                 progress: bool = True):
        self.config = config
        self.work_dir = Path(work_dir)
        self.device = device or default_device()
        self.progress = progress

    @property
    def checkpoint_path(self) -> Path:
        return self.work_dir / CHECKPOINT_NAME

    def fit(self, task: TrainableTask, resume: bool = False,
            on_epoch_end: Callable[[dict[str, Any]], None] | None = None) -> TrainResult:
        """Train until epochs, budget or patience run out; return the best (EMA) model.

        With ``config.ensemble`` > 1, trains that many members (one after another, each with
        this loop) and returns their :class:`~meddx.learn.ensemble.ProbabilityEnsemble`.
        """
        cfg = self.config
        if cfg.ensemble > 1:
            from meddx.learn.ensemble import train_ensemble

            return train_ensemble(self, task, resume=resume, on_epoch_end=on_epoch_end)
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        seed_everything(cfg.seed, cfg.deterministic)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        model = task.build_model()
        if cfg.deterministic:
            deterministic_pooling(model)
        model = model.to(self.device)
        ema = (AveragedModel(model, multi_avg_fn=ema_with_warmup(cfg.ema_decay),
                             use_buffers=True) if cfg.ema_decay > 0 else None)
        optimizer = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr)

        state = self._initial_state()
        if resume:
            state = self._load_checkpoint(model, ema, optimizer)
        elif self.checkpoint_path.exists():
            raise ConfigError(
                f"{self.work_dir} already holds a checkpoint of an earlier run; pass --resume to "
                "continue it, or delete that folder to start again")
        if state["amp"] is None:
            state["amp"] = uses_bf16(cfg.amp, self.device)

        budget_s = cfg.time_budget_min * 60 if cfg.time_budget_min else None
        n_batches = task.num_train_batches()
        stop_reason = "epochs"
        with self._progress_bar() as bar:
            job = bar.add_task("train", total=cfg.last_epoch * n_batches,
                               completed=state["epoch"] * n_batches, info="")
            while state["epoch"] < cfg.last_epoch:
                epoch = state["epoch"]
                epoch_start = time.monotonic()
                generator = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
                model.train()
                losses = []
                for step, batch in enumerate(task.train_batches(epoch, generator)):
                    progress = self._progress(epoch + step / n_batches, state["elapsed_s"]
                                              + time.monotonic() - epoch_start, budget_s)
                    for group in optimizer.param_groups:
                        group["lr"] = lr_at(progress, cfg.lr, cfg.warmup_fraction)
                    with torch.autocast(self.device.type, dtype=torch.bfloat16,
                                        enabled=state["amp"]):
                        loss = task.training_loss(model, batch)
                    if not torch.isfinite(loss):
                        raise MeddxError(
                            f"training diverged at epoch {epoch + 1} (loss {loss.item()}); "
                            "lower the learning rate (--lr)")
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if cfg.grad_clip:
                        nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                    optimizer.step()
                    if ema is not None:
                        ema.update_parameters(model)
                    losses.append(loss.item())
                    bar.update(job, advance=1, info=self._info(epoch, losses, state))
                    if budget_s is not None and (state["elapsed_s"] + time.monotonic()
                                                 - epoch_start) > budget_s:
                        break  # a slowed machine must still stop on time: end the epoch here
                eval_model = ema.module if ema is not None else model
                eval_model.eval()
                with torch.no_grad():
                    metrics = task.validate(eval_model)
                if task.selection_metric == KEEP_LAST:
                    # The epoch number, from the saved state: a resumed run keeps counting.
                    score = float(epoch + 1)
                elif task.selection_metric not in metrics:
                    raise ConfigError(f"validation gave no {task.selection_metric!r} metric")
                else:
                    score = metrics[task.selection_metric]
                state["elapsed_s"] += time.monotonic() - epoch_start
                state["epoch"] = epoch + 1
                record = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)),
                          "lr": optimizer.param_groups[0]["lr"], "elapsed_s": state["elapsed_s"],
                          **{f"val_{k}": v for k, v in metrics.items()}}
                state["history"].append(record)
                improved = score is not None and not math.isnan(score) and (
                    state["best_score"] is None or score > state["best_score"])
                if improved:
                    state["best_score"], state["best_epoch"] = score, epoch + 1
                    state["best_weights"] = {k: v.detach().cpu().clone()
                                             for k, v in eval_model.state_dict().items()}
                self._save_checkpoint(model, ema, optimizer, state)
                bar.update(job, info=self._info(epoch, losses, state))
                if on_epoch_end:
                    on_epoch_end(record)
                if cfg.patience and state["epoch"] - state["best_epoch"] >= cfg.patience:
                    stop_reason = f"early stop: no improvement for {cfg.patience} epochs"
                    break
                if budget_s is not None:
                    per_epoch = state["elapsed_s"] / state["epoch"]
                    if state["elapsed_s"] + per_epoch > budget_s:
                        stop_reason = f"time budget of {cfg.time_budget_min:g} min reached"
                        break
        if state["best_weights"] is None:
            raise MeddxError("training finished without a valid validation score")
        final = task.build_model().to(self.device)
        final.load_state_dict(state["best_weights"])
        final.eval()
        return TrainResult(model=final, history=state["history"], best_epoch=state["best_epoch"],
                           best_score=state["best_score"], stop_reason=stop_reason,
                           elapsed_s=state["elapsed_s"], amp=state["amp"])

    # --- internals ---------------------------------------------------------------------------

    def _initial_state(self) -> dict[str, Any]:
        return {"epoch": 0, "elapsed_s": 0.0, "best_score": None, "best_epoch": 0,
                "best_weights": None, "history": [], "amp": None}

    def _progress(self, epochs_done: float, elapsed_s: float, budget_s: float | None) -> float:
        progress = epochs_done / self.config.epochs
        if budget_s:
            progress = max(progress, elapsed_s / budget_s)
        return progress

    def _info(self, epoch: int, losses: list[float], state: dict[str, Any]) -> str:
        text = f"epoch {epoch + 1}/{self.config.last_epoch} loss {np.mean(losses[-50:]):.4f}"
        if state["history"]:
            last = state["history"][-1]
            shown = [k for k in last if k.startswith("val_")][:3]
            text += " " + " ".join(f"{k[4:]} {last[k]:.4f}" for k in shown
                                   if isinstance(last[k], float))
        return text

    def _progress_bar(self) -> Progress:
        return Progress(TextColumn("[bold]train"), BarColumn(),
                        TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(),
                        TextColumn("eta"), TimeRemainingColumn(),
                        TextColumn("{task.fields[info]}"), disable=not self.progress,
                        transient=False)

    def _save_checkpoint(self, model, ema, optimizer, state) -> None:
        payload = {
            "model": model.state_dict(),
            "ema": ema.state_dict() if ema is not None else None,
            "optimizer": optimizer.state_dict(),
            "state": state,
            "config": asdict(self.config),
            "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                    "python": random.getstate(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
        }
        atomic_torch_save(payload, self.checkpoint_path)
        # json.dumps, not write_json: a diverged epoch's NaN loss stays readable as NaN.
        write_text(json.dumps(state["history"], indent=1), self.work_dir / "history.json")

    def _load_checkpoint(self, model, ema, optimizer) -> dict[str, Any]:
        if not self.checkpoint_path.exists():
            raise ConfigError(f"--resume: no checkpoint at {self.checkpoint_path}")
        try:
            # Our own file; it holds numpy RNG state, which weights_only loading rejects. Read
            # to the CPU, where RNG states must be; load_state_dict moves weights to the model.
            payload = torch.load(self.checkpoint_path, map_location="cpu", weights_only=False)
            model.load_state_dict(payload["model"])
            if ema is not None and payload["ema"] is not None:
                ema.load_state_dict(payload["ema"])
            optimizer.load_state_dict(payload["optimizer"])
        except (RuntimeError, KeyError, EOFError) as error:
            raise ConfigError(
                f"{self.checkpoint_path}: cannot resume from this checkpoint ({error})") from error
        torch.set_rng_state(payload["rng"]["torch"])
        cuda_states = payload["rng"].get("cuda", [])
        if torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
        np.random.set_state(payload["rng"]["numpy"])
        random.setstate(payload["rng"]["python"])
        log.info("resuming after epoch %d", payload["state"]["epoch"])
        return payload["state"]
