"""Short CLI runs on the real MedMNIST data: train a few epochs, evaluate, predict, explain."""

import json

import numpy as np
import pytest
from PIL import Image

from tests.cli_helpers import meddx_cli


def meddx(*args, data_dir):
    return meddx_cli(*args, env={"MEDDX_DATA_DIR": str(data_dir)}, check=True)


def test_datasets_list_and_fetch(shared_data):
    listing = json.loads(meddx("datasets", "list", "--json", data_dir=shared_data).stdout)
    present = {row["name"] for row in listing if row["present"]}
    assert {"pneumoniamnist", "breastmnist", "adrenalmnist3d"} <= present
    assert "breastmnist" in meddx("datasets", "fetch", "breastmnist", data_dir=shared_data).stdout


# Short runs: the point is the real files end to end, not accuracy. 3D runs at 16^3 to stay quick.
@pytest.mark.parametrize(("dataset", "options"), [
    ("breastmnist", ["--epochs", 2]),
    ("adrenalmnist3d", ["--epochs", 1, "--input-size", 16]),
])
def test_train_evaluate_predict_on_real_data(shared_data, tmp_path, dataset, options):
    bundle = tmp_path / dataset
    meddx("train", "--dataset", dataset, "--out", bundle, *options, "--no-progress",
          data_dir=shared_data)
    meta = json.loads((bundle / "meddx-bundle.json").read_text())
    sizes = {"breastmnist": {"train": 546, "val": 78, "test": 156},
             "adrenalmnist3d": {"train": 1188, "val": 98, "test": 298}}[dataset]
    assert meta["provenance"]["split_sizes"] == sizes
    assert meta["provenance"]["dataset"] == dataset
    assert meta["metrics"]["test"]["n"] == sizes["test"]

    report = tmp_path / "eval.json"
    meddx("evaluate", bundle, "--dataset", dataset, "--split", "test", "--json", report,
          data_dir=shared_data)
    metrics = json.loads(report.read_text())
    assert metrics["auc"] == meta["metrics"]["test"]["auc"]
    html = (tmp_path / "eval-report" / "report.html").read_text()
    assert "Published baselines" in html and "MedMNIST" in html

    data = np.load(shared_data / f"medmnist-{dataset}" / f"{dataset}.npz")
    image = data["test_images"][0]
    if image.ndim == 2:
        case = tmp_path / "case.png"
        Image.fromarray(image).save(case)
    else:
        import nibabel as nib

        case = tmp_path / "case.nii.gz"
        nib.save(nib.Nifti1Image(image.astype(np.float32), np.eye(4)), case)
    out = json.loads(meddx("predict", bundle, case, "--explain", "--out", tmp_path / "heat",
                           data_dir=shared_data).stdout)[0]
    assert out["decision"] in meta["class_names"]
    assert Image.open(out["explanation"]).size[0] > 100
