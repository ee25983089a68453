"""The main job: PneumoniaMNIST from data to an evaluated, explained model.

Locates the dataset (downloading it when missing), trains a model unless a finished bundle is
already there, evaluates it on the official test split and explains one test image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from meddx.api import evaluate, predict, train
from meddx.data.catalog import fetch
from meddx.data.loading import load_dataset
from meddx.decision.bundle import load_bundle
from meddx.errors import BundleError

DEMO_DATASET = "pneumoniamnist"


def run_demo(out: Path = Path("runs/demo"), data_dir: Path | None = None,
             time_budget_min: float = 4.0) -> dict[str, Any]:
    """Run the demo; returns paths of the bundle, evaluation JSON, report and heat map."""
    fetch(DEMO_DATASET, data_dir)
    bundle_dir = out / DEMO_DATASET
    try:
        load_bundle(bundle_dir)
    except BundleError:
        train(DEMO_DATASET, bundle_dir, data_dir=data_dir, epochs=40,
              time_budget_min=time_budget_min)
    metrics = evaluate(bundle_dir, DEMO_DATASET, split="test", data_dir=data_dir,
                       json_path=out / "evaluation.json", report_dir=out / "evaluation-report")
    # One real test image as a PNG, the way a clinician's upload would arrive.
    test = load_dataset(DEMO_DATASET, data_dir).split("test")
    sample = out / "sample-test-image.png"
    Image.fromarray(np.clip(test.images[0][0], 0, 255).astype(np.uint8)).save(sample)
    prediction = predict(bundle_dir, [sample], explain_dir=out / "heatmaps")[0]
    return {"bundle": str(bundle_dir), "evaluation": str(out / "evaluation.json"),
            "report": metrics["report"], "auc": metrics["auc"], "accuracy": metrics["accuracy"],
            "example_prediction": prediction}
