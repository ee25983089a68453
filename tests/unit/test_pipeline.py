"""Dataset -> train -> bundle -> evaluate -> predict/explain, on small synthetic data."""

import json

import numpy as np
from PIL import Image

import meddx
from meddx.decision.bundle import load_bundle
from meddx.learn.pipeline import checkpoint_dir


def test_train_evaluate_predict_explain(tmp_path, blobs_npz):
    out = tmp_path / "bundle"
    bundle = meddx.train(blobs_npz, out, epochs=5, lr=3e-3, amp="off", progress=False,
                         plan={"batch_size": 32})
    assert not checkpoint_dir(out).exists(), "checkpoints are removed once the bundle is written"
    meta = load_bundle(out).metadata
    assert meta["task"] == "image-classification"
    assert meta["class_names"] == ["0", "1"]
    assert 0 < meta["threshold"] < 1
    assert meta["provenance"]["split_sizes"] == {"train": 96, "val": 32, "test": 32}
    assert len(meta["provenance"]["files"]) == 1
    assert meta["metrics"]["test"]["auc"] > 0.9
    assert {"auc", "ci", "confusion_matrix"} <= set(meta["metrics"]["val"])
    for name in ("report.html", "roc.png", "confusion_matrix.png", "reliability.png"):
        assert (bundle.path / "report" / name).exists()
    card = bundle.model_card
    assert "Intended use" in card and "95% CI" in card and "Limitations" in card

    metrics = meddx.evaluate(out, blobs_npz, split="test", json_path=tmp_path / "eval.json",
                             report_dir=tmp_path / "report")
    saved = json.loads((tmp_path / "eval.json").read_text())
    for key in ("auc", "accuracy", "balanced_accuracy", "sensitivity", "specificity", "f1",
                "ece"):
        assert isinstance(saved[key], float), key
        assert saved["ci"][key][0] <= saved[key] <= saved["ci"][key][1]
    # The one evaluation path: training-time test metrics equal a later evaluation's.
    assert metrics["auc"] == meta["metrics"]["test"]["auc"]

    data = np.load(blobs_npz)
    png = tmp_path / "case.png"
    Image.fromarray(data["test_images"][0]).save(png)
    npy = tmp_path / "case.npy"
    np.save(npy, data["test_images"][1])
    results = meddx.predict(out, [png, npy], explain_dir=tmp_path / "heat")
    # A PNG of a test image gets the same probabilities as the image inside the .npz.
    predictor = meddx.load_model(out)
    test = meddx.load_dataset(blobs_npz).split("test")
    from_npz = predictor.predict_proba(test.images[:1], test.sources[:1])[0]
    np.testing.assert_allclose(list(results[0]["probabilities"].values()), from_npz, atol=1e-5)
    for result, label in zip(results, data["test_labels"][:2, 0], strict=True):
        assert abs(sum(result["probabilities"].values()) - 1) < 1e-5
        assert result["decision"] == str(label)
        assert 0 <= result["uncertainty"] <= 1
        assert Image.open(result["explanation"]).size[0] > 100
