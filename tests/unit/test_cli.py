"""The CLI: thin over the API, one clear message and exit status 2 for expected errors."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from meddx.decision.bundle import METADATA_FILE
from tests.cli_helpers import MEDDX, assert_clear_error, meddx_cli, meddx_process


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from tests.conftest import write_npz

    folder = tmp_path_factory.mktemp("cli")
    data = write_npz(folder / "blobs.npz")
    bundle = folder / "bundle"
    meddx_cli("train", "--dataset", data, "--out", bundle, "--epochs", 3, "--batch-size", 32,
              "--amp", "off", "--no-progress", check=True)
    return data, bundle


def test_train_evaluate_predict(trained, tmp_path):
    data, bundle = trained
    result = meddx_cli("evaluate", bundle, "--dataset", data, "--split", "test", "--json",
                       tmp_path / "m.json", check=True)
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert 0 <= metrics["auc"] <= 1 and "ci" in metrics
    assert (tmp_path / "m-report" / "report.html").exists()
    assert "auc" in result.stdout
    npy = tmp_path / "x.npy"
    np.save(npy, np.load(data)["test_images"][0])
    result = meddx_cli("predict", bundle, npy, "--explain", "--out", tmp_path / "heat", check=True)
    prediction = json.loads(result.stdout)[0]
    assert set(prediction["probabilities"]) == {"0", "1"}
    assert Path(prediction["explanation"]).exists()
    assert "Model card" in meddx_cli("info", bundle, check=True).stdout


def test_bad_inputs(trained, tmp_path):
    data, bundle = trained
    # Once as its own process, as users meet it: exit status 2, one line, no traceback.
    assert_clear_error(meddx_process("train", "--dataset", "pneumoniamnistt", "--out",
                                     tmp_path / "b", env={"MEDDX_DATA_DIR": str(tmp_path)}),
                       "pneumoniamnistt", "pneumoniamnist")
    assert_clear_error(meddx_cli("predict", bundle, tmp_path / "missing.png"), "missing.png")
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    assert_clear_error(meddx_cli("predict", bundle, corrupt), "corrupt.png")
    volume = tmp_path / "volume.npy"
    np.save(volume, np.zeros((2, 9, 16, 16), dtype=np.float32))
    assert_clear_error(meddx_cli("predict", bundle, volume), "volume.npy", "2D image was expected")
    assert_clear_error(meddx_cli("evaluate", tmp_path / "nobundle", "--dataset", data),
                       "nobundle")
    meta = json.loads((bundle / METADATA_FILE).read_text())
    old = tmp_path / "old"
    old.mkdir()
    (old / METADATA_FILE).write_text(json.dumps({**meta, "format_version": 0}))
    assert_clear_error(meddx_cli("predict", old, corrupt), "not supported")
    bad_labels = tmp_path / "bad.npz"
    arrays = dict(np.load(data))
    arrays["train_labels"][3] = 7
    np.savez(bad_labels, **arrays)
    assert_clear_error(meddx_cli("train", "--dataset", bad_labels, "--out", tmp_path / "b2"),
                       "bad.npz", "7")


def test_a_bad_file_among_several_keeps_the_others(trained, tmp_path):
    import meddx
    from meddx.errors import InputFileError

    data, bundle = trained
    good = tmp_path / "good.npy"
    np.save(good, np.load(data)["test_images"][0])
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    result = meddx_cli("predict", bundle, corrupt, good, "--json", tmp_path / "p.json")
    assert_clear_error(result, "corrupt.png", "1 of 2 files could not be predicted")
    first, second = json.loads((tmp_path / "p.json").read_text())["predictions"]
    assert first["file"] == str(corrupt) and "corrupt.png" in first["error"]
    assert set(second["probabilities"]) == {"0", "1"}
    assert_clear_error(meddx_cli("predict", bundle, corrupt, good, "--stop-on-bad-case"),
                       "corrupt.png")
    with pytest.raises(InputFileError, match="corrupt.png"):
        meddx.predict(bundle, [good, corrupt])  # the API stops by default


def test_killed_training_resumes(tmp_path):
    """kill -9 in the middle of training, then --resume finishes the same run."""
    from tests.conftest import write_npz

    data = write_npz(tmp_path / "blobs.npz", sizes=(400, 64, 64))
    bundle = tmp_path / "bundle"
    args = ["train", "--dataset", data, "--out", bundle, "--epochs", 40, "--batch-size", 16,
            "--amp", "off", "--patience", 0, "--no-progress"]
    process = subprocess.Popen([*MEDDX, *map(str, args)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    history = tmp_path / "bundle.ckpt" / "history.json"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if history.exists() and len(json.loads(history.read_text())) >= 2:
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before_kill = len(json.loads(history.read_text()))
    assert 2 <= done_before_kill < 40, "the kill must land mid-run"
    assert not (bundle / METADATA_FILE).exists(), "no bundle from an unfinished run"
    assert_clear_error(meddx_cli("predict", bundle, data), "--resume")
    meddx_cli(*args, "--resume", check=True)
    meta = json.loads((bundle / METADATA_FILE).read_text())
    assert meta["training"]["epochs_run"] == 40
    assert [h["epoch"] for h in meta["training"]["history"]] == list(range(1, 41))


def test_a_wrong_bundle_is_refused_before_torch_loads(tmp_path):
    """The bundle is checked first, so a mistyped path costs no torch and MONAI start-up."""
    script = (
        "import sys\n"
        "from meddx.cli.main import run\n"
        f"sys.argv = ['meddx', 'predict', {str(tmp_path / 'nobundle')!r}, 'x.png']\n"
        "try:\n"
        "    run()\n"
        "except SystemExit as exit_:\n"
        "    assert exit_.code == 2, exit_.code\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n")
    assert "nobundle: no such bundle folder" in _fresh_python(script).stderr


def test_models_other_than_images_run_without_monai():
    """MONAI (8 s of start-up on 2 cores) loads only for image and segmentation models: not to
    train or run ECG, tabular or text models."""
    script = (
        "import sys\n"
        "import meddx.api\n"
        "from meddx.decision.predictors import predictor_class\n"
        "for task in ('ecg-beat-classification', 'ecg-series-classification',\n"
        "             'tabular-classification', 'text-classification'):\n"
        "    predictor_class(task)\n"
        "import meddx.learn.tasks.ecg, meddx.learn.tasks.tabular, meddx.learn.tasks.text\n"
        "from meddx.learn.trainer import seed_everything\n"
        "seed_everything(0)\n"
        "assert 'monai' not in sys.modules, 'monai was imported'\n"
        "predictor_class('image-classification')\n"
        "assert 'monai' in sys.modules\n")
    _fresh_python(script)


def _fresh_python(script: str) -> subprocess.CompletedProcess:
    """Run a script in a new interpreter, whose ``sys.modules`` shows what was imported."""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    return result
