"""The one model bundle format: a folder of JSON metadata, a state dict and a model card.

Layout (format version 1; version 2 is the same layout holding a seed ensemble)::

    BUNDLE/
      meddx-bundle.json   task, network, preprocessing, classes, threshold, metrics, provenance,
                          training configuration, software versions
      weights.pt          the network's state_dict (read with weights_only=True: no code runs)
      model_card.md       for people: intended use, data, metrics with CIs, limitations
      report/             evaluation report of the test split, when there was one

A bundle is assembled in a hidden sibling folder and renamed into place, so an interrupted write
never leaves a half bundle where a good one (or nothing) was.
"""

from __future__ import annotations

import json
import platform
import shutil
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meddx import __version__
from meddx.errors import BundleError
from meddx.fileio import staged_folder

if TYPE_CHECKING:
    # torch loads only to read or write weights: checking a bundle's metadata stays quick.
    import torch

FORMAT_VERSION = 1
# Ensemble bundles (weights of K members under ``members.<i>.``, an ``ensemble`` block in the
# metadata) are written as version 2, so a meddx that predates them refuses them with a clear
# message instead of failing on the weights; single-network bundles stay version 1.
ENSEMBLE_FORMAT_VERSION = 2
READABLE_VERSIONS = (FORMAT_VERSION, ENSEMBLE_FORMAT_VERSION)
METADATA_FILE = "meddx-bundle.json"
WEIGHTS_FILE = "weights.pt"
CARD_FILE = "model_card.md"
REPORT_DIR = "report"

_PACKAGES = ("torch", "monai", "numpy", "scikit-learn", "pydicom", "nibabel")


def software_versions() -> dict[str, str]:
    """Versions of meddx, Python and the libraries a bundle's behaviour depends on."""
    versions = {"meddx": __version__, "python": platform.python_version()}
    for package in _PACKAGES:
        try:
            versions[package] = importlib_metadata.version(package)
        except importlib_metadata.PackageNotFoundError:
            continue
    return versions


@dataclass
class Bundle:
    """A bundle read from disk. ``metadata`` is the parsed ``meddx-bundle.json``."""

    path: Path
    metadata: dict[str, Any]

    @property
    def task(self) -> str:
        return self.metadata["task"]

    @property
    def class_names(self) -> list[str]:
        return list(self.metadata.get("class_names", []))

    @property
    def threshold(self) -> float | None:
        return self.metadata.get("threshold")

    @property
    def name(self) -> str:
        return self.metadata.get("name", self.path.name)

    def state_dict(self, map_location: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
        import torch

        path = self.path / WEIGHTS_FILE
        try:
            return torch.load(path, map_location=map_location, weights_only=True)
        except FileNotFoundError as error:
            raise BundleError(f"{self.path}: the bundle has no {WEIGHTS_FILE}") from error
        except Exception as error:  # torch raises several types for corrupt files
            raise BundleError(f"{path}: cannot read the weights ({error})") from error

    @property
    def model_card(self) -> str:
        card = self.path / CARD_FILE
        return card.read_text() if card.exists() else ""


def save_bundle(out: Path, metadata: dict[str, Any], state_dict: dict[str, torch.Tensor] | None,
                model_card: str, extra_dirs: dict[str, Path] | None = None,
                extra_files: dict[str, str | bytes] | None = None) -> Bundle:
    """Write a bundle atomically to ``out`` (replacing any bundle already there).

    Args:
        out: the bundle folder.
        metadata: JSON-able metadata; ``format_version``, ``software`` are added.
        state_dict: network weights, or None for models without them.
        model_card: Markdown text.
        extra_dirs: folders copied into the bundle, by name (e.g. ``{"report": path}``).
        extra_files: files written into the bundle, by relative name (text or bytes), for
            models stored in their own safe format (a LightGBM text model, a tokenizer JSON).
    """
    out = Path(out)
    version = ENSEMBLE_FORMAT_VERSION if metadata.get("ensemble") else FORMAT_VERSION
    metadata = {"format_version": version, **metadata, "software": software_versions()}
    with staged_folder(out) as staging:
        (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2, allow_nan=False))
        if state_dict is not None:
            import torch

            torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, staging / WEIGHTS_FILE)
        (staging / CARD_FILE).write_text(model_card)
        for name, source in (extra_dirs or {}).items():
            shutil.copytree(source, staging / name)
        for name, content in (extra_files or {}).items():
            target = staging / name
            if target.resolve().parent != staging.resolve() and staging.resolve() not in \
                    target.resolve().parents:
                raise BundleError(f"bundle file name {name!r} points outside the bundle")
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content, encoding="utf-8")
    return Bundle(out, metadata)


def load_bundle(path: str | Path) -> Bundle:
    """Read a bundle's metadata and check it is one this version of meddx understands."""
    path = Path(path)
    meta_path = path / METADATA_FILE
    unfinished = (path.parent / f"{path.name}.ckpt").exists()
    hint = " (its training did not finish; continue it with --resume)" if unfinished else ""
    if not path.exists():
        raise BundleError(f"{path}: no such bundle folder{hint}")
    if not meta_path.exists():
        raise BundleError(f"{path}: not a meddx bundle, {METADATA_FILE} is missing{hint}")
    try:
        metadata = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BundleError(f"{meta_path}: not valid JSON ({error})") from error
    version = metadata.get("format_version")
    if version not in READABLE_VERSIONS:
        made_by = metadata.get("software", {}).get("meddx", "an unknown version")
        raise BundleError(
            f"{path}: bundle format {version!r} (written by meddx {made_by}) is not supported by "
            f"meddx {__version__}, which reads formats "
            f"{', '.join(map(str, READABLE_VERSIONS))}; retrain the model or use a matching meddx "
            "version")
    if "task" not in metadata:
        raise BundleError(f"{meta_path}: the metadata names no task")
    return Bundle(path, metadata)


def check_task(metadata: dict[str, Any], task: str, source: str) -> None:
    """Refuse metadata of another task before building anything from it."""
    if metadata.get("task") != task:
        raise BundleError(f"{source}: task {metadata.get('task')!r} is not {task!r}")


def load_weights(model: torch.nn.Module, state_dict: dict[str, torch.Tensor],
                 device: torch.device, source: str) -> torch.nn.Module:
    """Load a bundle's weights into its rebuilt network, on ``device``, in eval mode.

    Weights of a seed ensemble turn ``model`` into a
    :class:`~meddx.learn.ensemble.ProbabilityEnsemble` of copies of it, which is returned.
    """
    from meddx.learn.ensemble import match_state

    model = match_state(model, state_dict)
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as error:
        raise BundleError(f"{source}: weights do not fit the network ({error})") from error
    return model.to(device).eval()
