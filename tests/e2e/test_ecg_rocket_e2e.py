"""MiniRocket series models end to end: the real CLI (train -> evaluate -> predict --explain) on
synthetic UCR series, and the public API on the real ECG200 (``shared_data``).

A MiniRocket fit takes about a second; the first call in a process also compiles sktime's numba
kernels (cached on disk after that), which is most of these tests' time.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import meddx
from tests.cli_helpers import meddx_cli
from tests.ecg_helpers import write_ucr_folder


def test_cli_train_evaluate_predict_explain(tmp_path):
    folder, test_file = write_ucr_folder(tmp_path)
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"model": "minirocket"}))

    trained = meddx_cli("train", "--dataset", folder, "--out", tmp_path / "bundle", "--plan",
                        plan, "--no-progress", check=True)
    assert "test AUC" in trained.stdout
    metadata = json.loads((tmp_path / "bundle" / "meddx-bundle.json").read_text())
    assert metadata["plan"]["model"] == "minirocket"
    assert metadata["network"]["arch"] == "minirocket"

    meddx_cli("evaluate", tmp_path / "bundle", "--dataset", test_file, "--split", "all",
              "--json", tmp_path / "metrics.json", check=True)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["n"] == 30 and metrics["accuracy"] >= 0.9

    meddx_cli("predict", tmp_path / "bundle", test_file, "--explain", "--out",
              tmp_path / "explained", "--json", tmp_path / "predictions.json", check=True)
    result = json.loads((tmp_path / "predictions.json").read_text())["predictions"][0]
    assert result["series"] == 30
    assert result["explanation_method"].startswith("occlusion (Captum")
    saliency = np.array([p["saliency"] for p in result["predictions"]])
    assert saliency.shape == (30, 64) and saliency.max() == pytest.approx(1)
    decided = [p["decision"] for p in result["predictions"]]
    assert np.mean([d == p["reference"] for d, p in zip(decided, result["predictions"],
                                                        strict=True)]) >= 0.9
    assert Path(result["explanation"]).read_bytes()[:4] == b"\x89PNG"


def test_real_ecg200(shared_data, tmp_path):
    """MiniRocket on the official ECG200 TRAIN file, scored once on its TEST file."""
    bundle = meddx.train("ecg200", tmp_path / "bundle", data_dir=shared_data,
                         plan={"model": "minirocket"}, progress=False, epochs=1, num_threads=1,
                         amp="off")
    test = bundle.metadata["metrics"]["test"]
    assert test["n"] == 100
    # benchmarks/ecg.py measured 0.88 (ROCKET's published 0.906); far below means a broken model.
    assert test["accuracy"] >= 0.8
    assert bundle.metadata["network"]["features"] > 9000
    result = meddx.predict(tmp_path / "bundle",
                           [shared_data / "ecg200-ucr" / "ECG200_TEST.txt"])[0]
    assert result["series"] == 100 and result["length"] == 96
