"""Segmentation metrics against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from meddx.learn.evaluation.segmentation_metrics import case_metrics, summarize_cases

NAMES = ["background", "organ"]


def _cube(shape, start, size):
    mask = np.zeros(shape, np.uint8)
    mask[tuple(slice(s, s + size) for s in start)] = 1
    return mask


def test_identical_masks_are_perfect():
    truth = _cube((20, 20, 20), (5, 5, 5), 8)
    result = case_metrics(truth, truth, (1.0, 1.0, 1.0), NAMES)
    assert result["dice"]["organ"] == pytest.approx(1.0)
    assert result["hd95"]["organ"] == pytest.approx(0.0)
    assert result["nsd"]["organ"] == pytest.approx(1.0)
    assert result["volume_error_ml"]["organ"] == pytest.approx(0.0)


def test_shifted_cube_dice_by_hand():
    # 10^3 cubes shifted by 2 voxels along x: overlap 8*10*10 = 800; Dice = 2*800/2000 = 0.8.
    truth = _cube((30, 30, 30), (5, 5, 5), 10)
    pred = _cube((30, 30, 30), (7, 5, 5), 10)
    result = case_metrics(pred, truth, (1.0, 1.0, 1.0), NAMES)
    assert result["dice"]["organ"] == pytest.approx(0.8)
    assert result["volume_error_ml"]["organ"] == pytest.approx(0.0)


def test_hd95_and_nsd_of_parallel_slabs_use_the_spacing():
    # Two one-voxel-thick 20x20 slabs, 2 voxels apart along z with 1.5 mm slices: every surface
    # voxel of one is exactly 2 * 1.5 = 3.0 mm from the other, so HD95 = 3.0 mm, and the surface
    # Dice is 0 at a 1 mm tolerance and 1 at a 3.5 mm tolerance.
    shape = (24, 24, 10)
    truth = np.zeros(shape, np.uint8)
    pred = np.zeros(shape, np.uint8)
    truth[2:22, 2:22, 3] = 1
    pred[2:22, 2:22, 5] = 1
    spacing = (1.0, 1.0, 1.5)
    result = case_metrics(pred, truth, spacing, NAMES, nsd_tolerance_mm=1.0)
    assert result["dice"]["organ"] == 0.0
    assert result["hd95"]["organ"] == pytest.approx(3.0)
    assert result["nsd"]["organ"] == pytest.approx(0.0)
    loose = case_metrics(pred, truth, spacing, NAMES, nsd_tolerance_mm=3.5)
    assert loose["nsd"]["organ"] == pytest.approx(1.0)


def test_volume_in_millilitres():
    # 10^3 voxels of 1 x 1 x 2 mm = 2000 mm^3 = 2 mL; prediction 8*10*10 voxels = 1.6 mL.
    truth = _cube((20, 20, 20), (2, 2, 2), 10)
    pred = truth.copy()
    pred[2:4] = 0
    result = case_metrics(pred, truth, (1.0, 1.0, 2.0), NAMES)
    assert result["volume_true_ml"]["organ"] == pytest.approx(2.0)
    assert result["volume_pred_ml"]["organ"] == pytest.approx(1.6)
    assert result["volume_error_ml"]["organ"] == pytest.approx(-0.4)
    assert result["volume_error_pct"]["organ"] == pytest.approx(-20.0)
    assert result["dice"]["organ"] == pytest.approx(2 * 800 / 1800)


def test_empty_structures_follow_the_stated_conventions():
    empty = np.zeros((10, 10, 10), np.uint8)
    both = case_metrics(empty, empty, (1, 1, 1), NAMES)
    assert (both["dice"]["organ"], both["hd95"]["organ"], both["nsd"]["organ"]) == (1.0, 0.0, 1.0)
    truth = _cube((10, 10, 10), (2, 2, 2), 3)
    missed = case_metrics(empty, truth, (1, 1, 1), NAMES)
    assert missed["dice"]["organ"] == 0.0
    assert missed["hd95"]["organ"] is None
    assert missed["nsd"]["organ"] == 0.0


def test_two_dimensional_masks():
    truth = np.zeros((10, 10), np.uint8)
    pred = np.zeros((10, 10), np.uint8)
    truth[2:6, 2:6] = 1  # 16 pixels
    pred[2:6, 4:8] = 1   # overlap 8 -> Dice 2*8/32 = 0.5
    result = case_metrics(pred, truth, (0.5, 0.5), NAMES)
    assert result["dice"]["organ"] == pytest.approx(0.5)
    assert result["volume_true_ml"]["organ"] == pytest.approx(16 * 0.25 / 1000)


def test_summary_is_keyed_by_label_name_with_mean_and_ci():
    names = ["background", "anterior", "posterior"]
    cases = []
    for shift in (0, 1, 2):
        truth = np.zeros((20, 20, 20), np.uint8)
        truth[4:10, 4:10, 4:10] = 1
        truth[10:16, 4:10, 4:10] = 2
        pred = np.roll(truth, shift, axis=1)
        cases.append({"case": f"c{shift}", **case_metrics(pred, truth, (1, 1, 1), names)})
    summary = summarize_cases(cases, names, n_bootstrap=200)
    assert set(summary["dice"]) == {"anterior", "posterior", "mean"}
    assert set(summary["hd95"]) == {"anterior", "posterior", "mean"}
    # Shifts 0, 1, 2 of a 6-voxel cube along one axis: Dice 1, 5/6, 4/6 -> mean 5/6.
    assert summary["dice"]["anterior"] == pytest.approx(5 / 6)
    assert summary["dice"]["mean"] == pytest.approx(5 / 6)
    low, high = summary["ci"]["dice"]["anterior"]
    assert low <= summary["dice"]["anterior"] <= high
    assert summary["n"] == 3 and len(summary["cases"]) == 3
    assert summary["dice_mean"] == summary["dice"]["mean"]
    assert not math.isnan(summary["hd95"]["mean"])
