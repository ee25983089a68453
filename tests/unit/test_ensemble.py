"""Seed ensembles: trained by the one Trainer, stored in the one bundle format, used everywhere."""

import json
import signal
import subprocess
import time

import numpy as np
import pytest
import torch
from PIL import Image
from torch.nn import functional

import meddx
from meddx.data.images import read_image
from meddx.decision.bundle import (
    ENSEMBLE_FORMAT_VERSION,
    FORMAT_VERSION,
    METADATA_FILE,
    load_bundle,
)
from meddx.decision.explain import heat_map
from meddx.errors import ConfigError
from meddx.learn.ensemble import MEMBER_RESULT, ProbabilityEnsemble, ensemble_size, match_state
from meddx.learn.networks1d import Network1DSpec, build_network1d
from meddx.learn.tasks.image_classification import predict_proba
from meddx.learn.trainer import TrainConfig, Trainer
from tests.cli_helpers import MEDDX, assert_clear_error, meddx_cli
from tests.conftest import write_npz
from tests.ecg_helpers import write_ucr
from tests.unit.test_trainer import Interrupt, _task
from tests.unit.test_trainer import _config as trainer_config


def _config(**kwargs):
    return trainer_config(**{"epochs": 3, **kwargs})


def test_output_is_the_log_of_the_members_mean_probability():
    torch.manual_seed(0)
    spec = Network1DSpec(arch="resnet", in_channels=1, length=32, num_classes=3, n_extra=2,
                         options={"widths": [8, 8, 8]})
    members = [build_network1d(spec).eval() for _ in range(3)]
    ensemble = ProbabilityEnsemble(members).eval()
    x, extra = torch.randn(5, 1, 32), torch.randn(5, 2)
    with torch.no_grad():
        mean = torch.stack([functional.softmax(m(x, extra), dim=1) for m in members]).mean(0)
        np.testing.assert_allclose(functional.softmax(ensemble(x, extra), dim=1), mean,
                                   atol=1e-6)
    state = ensemble.state_dict()
    assert ensemble_size(state) == 3 and ensemble_size(members[0].state_dict()) == 0
    rebuilt = match_state(build_network1d(spec), state)
    assert isinstance(rebuilt, ProbabilityEnsemble) and len(rebuilt.members) == 3
    assert match_state(members[0], members[0].state_dict()) is members[0]


def test_first_member_is_the_single_model_of_the_same_seed(tmp_path):
    single = Trainer(_config(), tmp_path / "single", progress=False).fit(_task())
    ensemble = Trainer(_config(ensemble=2), tmp_path / "ens", progress=False).fit(_task())
    assert isinstance(ensemble.model, ProbabilityEnsemble)
    first, second = ensemble.model.members
    for key, value in single.model.state_dict().items():
        assert torch.equal(value, first.state_dict()[key])
    assert not all(torch.equal(v, second.state_dict()[k]) for k, v in first.state_dict().items())
    summary = ensemble.extra["ensemble"]
    assert summary["members"] == 2 and [r["seed"] for r in summary["member_results"]] == [0, 1]
    assert summary["member_results"][0]["val"]["auc"] == pytest.approx(single.best_score)
    assert ensemble.best_score == summary["val"]["auc"]
    assert [(h["member"], h["epoch"]) for h in ensemble.history] == \
        [(m, e) for m in (1, 2) for e in (1, 2, 3)]


def test_killed_ensemble_resumes_at_the_member_and_epoch_it_stopped(tmp_path):
    straight = Trainer(_config(ensemble=3), tmp_path / "straight", progress=False).fit(_task())

    def stop_in_second_member(record):
        if record["member"] == 2 and record["epoch"] == 2:
            raise Interrupt

    killed = tmp_path / "killed"
    with pytest.raises(Interrupt):
        Trainer(_config(ensemble=3), killed, progress=False).fit(
            _task(), on_epoch_end=stop_in_second_member)
    assert (killed / "member-1" / MEMBER_RESULT).exists()
    assert (killed / "member-2" / "checkpoint.pt").exists()
    with pytest.raises(ConfigError, match="--resume"):
        Trainer(_config(ensemble=3), killed, progress=False).fit(_task())

    seen = []
    resumed = Trainer(_config(ensemble=3), killed, progress=False).fit(
        _task(), resume=True, on_epoch_end=lambda r: seen.append((r["member"], r["epoch"])))
    assert seen == [(2, 3), (3, 1), (3, 2), (3, 3)], "finished work is not redone"
    assert [round(h["train_loss"], 6) for h in resumed.history] == \
        [round(h["train_loss"], 6) for h in straight.history]
    for key, value in straight.model.state_dict().items():
        assert torch.allclose(value, resumed.model.state_dict()[key], atol=1e-6), key


def test_time_budget_covers_the_whole_ensemble(tmp_path):
    result = Trainer(_config(epochs=50, ensemble=4, time_budget_min=1e-4), tmp_path,
                     progress=False).fit(_task())
    summary = result.extra["ensemble"]
    assert summary["members_planned"] == 4 and summary["members"] < 4
    assert "time budget" in result.stop_reason
    assert result.elapsed_s == pytest.approx(sum(r["elapsed_s"] for r in
                                                 summary["member_results"]), abs=0.5)


def test_recipes_without_ensemble_support_are_refused(tmp_path):
    class OneNetworkTask:
        selection_metric = "auc"

    with pytest.raises(ConfigError, match="cannot train seed ensembles"):
        Trainer(_config(ensemble=2), tmp_path, progress=False).fit(OneNetworkTask())
    with pytest.raises(ConfigError, match="ensemble must be >= 1"):
        TrainConfig(ensemble=0)


def test_image_ensemble_bundle_round_trip(tmp_path, blobs_npz):
    out = tmp_path / "bundle"
    bundle = meddx.train(blobs_npz, out, epochs=3, lr=3e-3, amp="off", progress=False,
                         plan={"batch_size": 32}, ensemble=3)
    meta = load_bundle(out).metadata
    assert meta["format_version"] == ENSEMBLE_FORMAT_VERSION
    ensemble = meta["ensemble"]
    assert ensemble["members"] == 3 and len(ensemble["member_results"]) == 3
    assert {"auc", "accuracy", "loss"} <= set(ensemble["val"])
    assert meta["training"]["config"]["ensemble"] == 3
    assert 0 < meta["threshold"] < 1  # chosen on the ensemble's validation probabilities
    assert "## Ensemble" in bundle.model_card and "member 3" in bundle.model_card

    predictor = meddx.load_model(out)
    assert isinstance(predictor.model, ProbabilityEnsemble) and len(predictor.model.members) == 3
    test = meddx.load_dataset(blobs_npz).split("test")
    probs = predictor.predict_split(test)
    inputs = predictor.prepare(test.images, test.sources)
    members = [predict_proba(member, inputs, 64, predictor.plan.tta_flip_axes)
               for member in predictor.model.members]
    np.testing.assert_allclose(probs, np.mean(members, axis=0), atol=1e-5)

    metrics = meddx.evaluate(out, blobs_npz, split="test")
    assert metrics["auc"] == meta["metrics"]["test"]["auc"] > 0.9

    png = tmp_path / "case.png"
    Image.fromarray(np.load(blobs_npz)["test_images"][0]).save(png)
    result = meddx.predict(out, [png], explain_dir=tmp_path / "heat")[0]
    assert Image.open(result["explanation"]).size[0] > 100
    relevance = np.load(result["explanation_map"])
    case = predictor.prepare([read_image(png, spatial_dims=2).array], [str(png)])
    index = predictor.class_names.index(result["decision"])
    maps = [heat_map(m, predictor.spec.arch, case, index) for m in predictor.model.members]
    mean = np.mean(maps, axis=0)
    np.testing.assert_allclose(relevance, mean / mean.max(), atol=1e-5)
    assert relevance.shape == (16, 16) and relevance.max() == pytest.approx(1.0)


def test_single_model_bundles_are_unchanged(tmp_path, blobs_npz):
    meddx.train(blobs_npz, tmp_path / "one", epochs=1, amp="off", progress=False,
                plan={"batch_size": 32})
    meta = load_bundle(tmp_path / "one").metadata
    assert meta["format_version"] == FORMAT_VERSION == 1
    assert "ensemble" not in meta
    assert not isinstance(meddx.load_model(tmp_path / "one").model, ProbabilityEnsemble)


def test_ecg_series_ensemble_predicts_and_explains(tmp_path):
    folder = tmp_path / "Toy"
    folder.mkdir()
    write_ucr(folder / "Toy_TRAIN.tsv", 40, seed=0)
    test_file = write_ucr(folder / "Toy_TEST.tsv", 12, seed=1)
    out = tmp_path / "ecg"
    meddx.train(str(folder), out, epochs=4, amp="off", progress=False, ensemble=2,
                plan={"arch": "resnet", "network_options": {"widths": [8, 8, 8]}})
    meta = load_bundle(out).metadata
    assert meta["task"] == "ecg-series-classification"
    assert meta["ensemble"]["members"] == 2
    # Keep-last members select nothing: they fit on train + val, and report no validation.
    assert meta["training"]["fit_on"] == "train+val" and "val" not in meta["metrics"]
    assert meta["ensemble"]["val"] == {} and meta["ensemble"]["member_results"][1]["val"] == {}
    assert "Fitted on the train and val splits together" in (out / "model_card.md").read_text()
    predictor = meddx.load_model(out)
    assert isinstance(predictor.model, ProbabilityEnsemble)
    result = predictor.predict_file(test_file, explain_to=tmp_path / "saliency.png")
    assert len(result["predictions"]) == 12
    assert all(len(p["saliency"]) == 64 for p in result["predictions"])
    assert Image.open(result["explanation"]).size[0] > 100
    # Integrated gradients through the mean: completeness holds for the ensemble's output.
    x = torch.randn(2, 1, 64)
    attributions = predictor.saliency(x, None, np.array([0, 1]))
    assert attributions.shape == (2, 64) and np.isfinite(attributions).all()


def test_cli_ensemble_option_and_killed_run_resume(tmp_path):
    data = write_npz(tmp_path / "blobs.npz", sizes=(400, 64, 64))
    assert_clear_error(meddx_cli("train", "--dataset", data, "--out", tmp_path / "bad",
                                 "--ensemble", 0), "ensemble must be >= 1")
    bundle = tmp_path / "bundle"
    args = ["train", "--dataset", data, "--out", bundle, "--epochs", 8, "--batch-size", 16,
            "--amp", "off", "--patience", 0, "--no-progress", "--ensemble", 2]
    process = subprocess.Popen([*MEDDX, *map(str, args)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    history = tmp_path / "bundle.ckpt" / "member-2" / "history.json"
    deadline = time.monotonic() + 900  # generous: a loaded CI machine is slow, not wrong
    while time.monotonic() < deadline and process.poll() is None:
        if history.exists() and len(json.loads(history.read_text())) >= 1:
            break
        time.sleep(0.1)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert history.exists(), "training never reached the second member"
    done = len(json.loads(history.read_text()))
    assert 1 <= done < 8, "the kill must land in the second member"
    assert not (bundle / METADATA_FILE).exists()
    meddx_cli(*args, "--resume", check=True)
    meta = json.loads((bundle / METADATA_FILE).read_text())
    assert meta["ensemble"]["members"] == 2
    assert [r["epochs_run"] for r in meta["ensemble"]["member_results"]] == [8, 8]
    assert [(h["member"], h["epoch"]) for h in meta["training"]["history"]] == \
        [(m, e) for m in (1, 2) for e in range(1, 9)]
