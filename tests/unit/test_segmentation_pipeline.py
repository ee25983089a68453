"""Segmentation end to end on synthetic spheres and cubes: train, bundle, evaluate, predict."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

import meddx
from meddx.decision.predictors import load_model
from meddx.errors import DataError
from tests.cli_helpers import meddx_cli
from tests.seg_synthetic import AFFINE, sphere_cube_case, write_msd

PLAN = {"patch_size": [16, 16, 16], "base_filters": 8, "batch_size": 4, "batches_per_epoch": 12,
        "augment": {"affine_prob": 0.0, "elastic_prob": 0.0}}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("segpipe")
    data = write_msd(folder / "spheres", n=14)
    bundle = meddx.train(str(data), folder / "bundle", plan=PLAN, epochs=8, lr=1e-2, patience=0,
                         progress=False, amp="off")
    return folder, data, bundle


def test_training_writes_an_evaluated_bundle(trained):
    folder, _, bundle = trained
    meta = bundle.metadata
    assert meta["task"] == "segmentation"
    assert meta["class_names"] == ["background", "sphere", "cube"]
    assert meta["provenance"]["split_sizes"] == {"test": 3, "val": 1, "train": 10}
    assert (folder / "bundle" / "report" / "report.html").exists()
    test = meta["metrics"]["test"]
    # High-contrast spheres and cubes: a few dozen steps reach a high Dice.
    assert test["dice"]["mean"] > 0.8, test["dice"]
    assert set(test["dice"]) == {"sphere", "cube", "mean"}
    assert meta["training"]["best_val_dice"] > 0.7
    assert set(meta["postprocessing"]["largest_component"]) == {"sphere", "cube"}
    card = (folder / "bundle" / "model_card.md").read_text()
    assert "dice_mean" in card
    assert not (folder / "bundle.ckpt").exists()


def test_evaluate_cli_writes_dice_and_hd95_by_label(trained, tmp_path):
    folder, data, _ = trained
    out = tmp_path / "eval.json"
    result = meddx_cli("evaluate", folder / "bundle", "--dataset", data, "--split", "all",
                       "--json", out, check=True)
    metrics = json.loads(out.read_text())
    assert metrics["n"] == 14 and len(metrics["cases"]) == 14
    for key in ("dice", "hd95", "nsd"):
        assert set(metrics[key]) == {"sphere", "cube", "mean"}
    assert metrics["dice"]["mean"] > 0.8
    assert metrics["cases"][0]["dice"]["sphere"] is not None
    report = tmp_path / "eval-report"
    for file in ("report.html", "report.md", "overlay_best.png", "overlay_median.png",
                 "overlay_worst.png", "dice_boxplot.png"):
        assert (report / file).exists(), file
    assert "Per case" in (report / "report.html").read_text()
    assert "Dice" in result.stdout


def test_evaluate_on_a_folder_without_label_names(trained, tmp_path):
    folder, _, _ = trained
    plain = write_msd(tmp_path / "plain", n=3, with_json=False)
    metrics = meddx.evaluate(folder / "bundle", str(plain), split="all", n_bootstrap=50)
    assert set(metrics["dice"]) == {"sphere", "cube", "mean"}
    # More label values than the model knows is an error, not a silent mismatch.
    image, label = sphere_cube_case(seed=1)
    label[0, 0, 0] = 3
    nib.save(nib.Nifti1Image(image, AFFINE), str(plain / "imagesTr/case_000.nii.gz"))
    nib.save(nib.Nifti1Image(label, AFFINE), str(plain / "labelsTr/case_000.nii.gz"))
    with pytest.raises(DataError, match="model knows only 3 classes"):
        meddx.evaluate(folder / "bundle", str(plain), split="all")


def test_predict_cli_keeps_the_input_grid_and_affine(trained, tmp_path):
    folder, _, _ = trained
    image, label = sphere_cube_case((22, 18, 15), seed=42)  # a shape never seen in training
    affine = AFFINE.copy()
    affine[:3, 3] = [-31.0, 7.5, 12.25]
    scan = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(image, affine), str(scan))
    out = tmp_path / "pred"
    meddx_cli("predict", folder / "bundle", scan, "--out", out, "--overlay", check=True)
    mask_file = out / "scan_seg.nii.gz"
    mask = nib.load(str(mask_file))
    assert mask.shape == image.shape
    np.testing.assert_allclose(mask.affine, affine)
    assert mask.get_data_dtype() == np.uint8
    values = np.asarray(mask.dataobj)
    assert set(np.unique(values)) <= {0, 1, 2}
    overlap = ((values == 1) & (label == 1)).sum() * 2 / ((values == 1).sum() + (label == 1).sum())
    assert overlap > 0.8
    info = json.loads((out / "scan_seg.json").read_text())
    voxel_ml = 1.0 * 1.2 * 1.5 / 1000
    assert info["labels"]["sphere"]["volume_ml"] == pytest.approx(
        (values == 1).sum() * voxel_ml, abs=1e-4)
    assert (out / "scan_overlay.png").exists()


def test_predictor_from_the_bundle_matches_training(trained):
    folder, data, bundle = trained
    predictor = load_model(folder / "bundle")
    dataset = meddx.load_dataset(str(data))
    test = dataset.split("test")
    masks = predictor.predict_split(test)
    assert [m.shape for m in masks] == [c.label.shape for c in test.cases]
    assert predictor.plan.largest_component_labels == bundle.metadata["plan"][
        "largest_component_labels"]


def test_two_dimensional_segmentation(tmp_path):
    from PIL import Image as PILImage

    root = tmp_path / "pairs"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        mask = np.zeros((24, 24), np.uint8)
        r, c = rng.integers(3, 13, 2)
        mask[r:r + 8, c:c + 8] = 255
        picture = (rng.normal(60, 8, (24, 24)) + (mask > 0) * 120).clip(0, 255).astype(np.uint8)
        PILImage.fromarray(picture).save(root / "images" / f"p{i:02d}.png")
        PILImage.fromarray(mask).save(root / "masks" / f"p{i:02d}.png")
    bundle = meddx.train(str(root), tmp_path / "b2d", epochs=6, lr=1e-2, patience=0,
                         progress=False, amp="off",
                         plan={"base_filters": 8, "batches_per_epoch": 10,
                               "augment": {"affine_prob": 0.0, "elastic_prob": 0.0}})
    assert bundle.metadata["plan"]["spatial_dims"] == 2
    assert bundle.metadata["metrics"]["test"]["dice"]["1"] > 0.7
    result = meddx.predict(tmp_path / "b2d", [root / "images" / "p00.png"], out_dir=tmp_path / "o",
                           overlay=True)[0]
    assert result["mask"].endswith("p00_seg.png") and result["labels"]["1"]["voxels"] > 0


def test_crossval_works_for_segmentation(tmp_path):
    """`meddx crossval` is generic: label maps get plain k-fold and per-label Dice summaries."""
    from meddx.data.loading import load_dataset
    from meddx.learn.crossval import cross_validate
    from meddx.learn.trainer import TrainConfig

    data = load_dataset(str(write_msd(tmp_path / "spheres", n=8)))
    config = TrainConfig(epochs=1, lr=1e-2, patience=0, amp="off")
    result = cross_validate(data, config=config, plan=PLAN, folds=2, progress=False)
    assert len(result["fits"]) == 2
    assert sum(fit["n_test"] for fit in result["fits"]) == 8
    assert {"dice_mean", "hd95_mean"} <= set(result["summary"])
    assert 0 <= result["summary"]["dice_mean"]["mean"] <= 1
