"""Published results to show beside ours in evaluation reports.

Figures are test-set AUC and accuracy as fractions in [0, 1], copied from the sources named in
each row (see ``/work/shared/docs/published-anchors.md``). They are context, not targets: the
published models differ in input size, training budget and model selection, as each row's
``note`` says.

Each row is a dict with ``method``, ``auc``, ``accuracy``, ``source`` and ``note`` (may be
empty). Add a dataset by adding a key to :data:`PUBLISHED_BASELINES`.
"""

from __future__ import annotations

import copy
import re
from typing import Any

__all__ = ["PUBLISHED_BASELINES", "baselines_for"]

_MEDMNIST_V2 = "MedMNIST v2 (Yang et al., Sci. Data 2023)"
_MEDMNIST_PLUS = "MedMNIST+ (Doerrich et al., Sci. Rep. 2025)"


def _row(method: str, auc: float, accuracy: float, source: str, note: str = "") -> dict[str, Any]:
    return {"method": method, "auc": auc, "accuracy": accuracy, "source": source, "note": note}


def _medmnist_2d(rows: list[tuple[str, float, float]]) -> list[dict[str, Any]]:
    return [_row(method, auc, acc, _MEDMNIST_V2) for method, auc, acc in rows]


PUBLISHED_BASELINES: dict[str, list[dict[str, Any]]] = {
    "pneumoniamnist": [
        *_medmnist_2d(
            [
                ("ResNet-18 (28)", 0.944, 0.854),
                ("ResNet-18 (224)", 0.956, 0.864),
                ("ResNet-50 (28)", 0.948, 0.854),
                ("ResNet-50 (224)", 0.962, 0.884),
                ("auto-sklearn", 0.942, 0.855),
                ("AutoKeras", 0.947, 0.878),
                ("Google AutoML Vision", 0.991, 0.946),
            ]
        ),
        _row("Best end-to-end (28)", 0.9704, 0.8510, _MEDMNIST_PLUS, "best end-to-end at 28 px"),
        _row(
            "DINO ViT-B/16 linear probe (224)",
            0.9892,
            0.9156,
            _MEDMNIST_PLUS,
            "best at any resolution",
        ),
    ],
    "breastmnist": [
        *_medmnist_2d(
            [
                ("ResNet-18 (28)", 0.901, 0.863),
                ("ResNet-18 (224)", 0.891, 0.833),
                ("ResNet-50 (28)", 0.857, 0.812),
                ("ResNet-50 (224)", 0.866, 0.842),
                ("auto-sklearn", 0.836, 0.803),
                ("AutoKeras", 0.871, 0.831),
                ("Google AutoML Vision", 0.919, 0.861),
            ]
        ),
        _row("Best end-to-end (28)", 0.8908, 0.8654, _MEDMNIST_PLUS, "best end-to-end at 28 px"),
        _row("AlexNet (128)", 0.9397, 0.9060, _MEDMNIST_PLUS, "best at any resolution"),
    ],
    "adrenalmnist3d": [
        _row(method, auc, acc, _MEDMNIST_V2)
        for method, auc, acc in [
            ("ResNet-18+2.5D", 0.718, 0.772),
            ("ResNet-18+3D", 0.827, 0.721),
            ("ResNet-18+ACS", 0.839, 0.754),
            ("ResNet-50+2.5D", 0.732, 0.763),
            ("ResNet-50+3D", 0.828, 0.745),
            ("ResNet-50+ACS", 0.828, 0.758),
            ("auto-sklearn", 0.828, 0.802),
            ("AutoKeras", 0.804, 0.705),
        ]
    ],
}


def _normalise(name: str) -> str:
    """Lower-case and drop separators: "PneumoniaMNIST", "pneumonia-mnist" -> "pneumoniamnist"."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def baselines_for(dataset_name: str) -> list[dict[str, Any]]:
    """Published baselines for a dataset, or an empty list when none are recorded.

    Matching ignores case and separators, and a trailing image-size suffix
    (``pneumoniamnist_224`` finds ``pneumoniamnist``).

    Args:
        dataset_name: Catalog name of the dataset.

    Returns:
        A fresh copy of the rows (callers may modify it freely).
    """
    key = _normalise(dataset_name)
    if key not in PUBLISHED_BASELINES:
        # Size variants of MedMNIST files ("_64", "_128", "_224") share one benchmark table.
        key = re.sub(r"\d+$", "", key)
    return copy.deepcopy(PUBLISHED_BASELINES.get(key, []))
