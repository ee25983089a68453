import copy
import math

import pytest
import torch
from torch import nn

from meddx.errors import ConfigError
from meddx.learn.tasks.image_classification import ImageClassificationTask, make_plan
from meddx.learn.trainer import (
    KEEP_LAST,
    GlobalAveragePool,
    TrainConfig,
    Trainer,
    default_device,
    deterministic_pooling,
    lr_at,
    uses_bf16,
)
from tests.conftest import synthetic_dataset


def _task(dataset=None):
    dataset = dataset or synthetic_dataset()
    plan = make_plan(dataset, dataset.split("train"), {"batch_size": 32})
    return ImageClassificationTask(plan, dataset.split("train"), dataset.split("val"))


def _config(**kwargs):
    return TrainConfig(**{"epochs": 4, "lr": 3e-3, "amp": "off", "patience": 0, **kwargs})


class Interrupt(Exception):
    pass


def test_learns_a_separable_problem(tmp_path):
    result = Trainer(_config(epochs=6), tmp_path, progress=False).fit(_task())
    assert result.best_score > 0.95
    assert len(result.history) == 6
    assert (tmp_path / "checkpoint.pt").exists()
    assert (tmp_path / "history.json").exists()


def test_same_seed_same_run(tmp_path):
    a = Trainer(_config(epochs=2), tmp_path / "a", progress=False).fit(_task())
    b = Trainer(_config(epochs=2), tmp_path / "b", progress=False).fit(_task())
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]


def test_auto_amp_follows_the_device_so_the_default_run_repeats(tmp_path):
    # A timing trial once chose bf16 or fp32 by how loaded the machine was: one seed, two runs.
    assert not uses_bf16("auto", torch.device("cpu")) and uses_bf16("bf16", torch.device("cpu"))
    assert not uses_bf16("off", torch.device("cuda"))
    a = Trainer(_config(epochs=2, amp="auto"), tmp_path / "a", progress=False).fit(_task())
    b = Trainer(_config(epochs=2, amp="auto"), tmp_path / "b", progress=False).fit(_task())
    assert a.amp == b.amp == uses_bf16("auto", default_device())
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]


def test_resume_after_interruption_matches_an_uninterrupted_run(tmp_path):
    straight = Trainer(_config(), tmp_path / "straight", progress=False).fit(_task())

    def stop_after_two(record):
        if record["epoch"] == 2:
            raise Interrupt

    trainer = Trainer(_config(), tmp_path / "killed", progress=False)
    with pytest.raises(Interrupt):
        trainer.fit(_task(), on_epoch_end=stop_after_two)
    resumed = Trainer(_config(), tmp_path / "killed", progress=False).fit(_task(), resume=True)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3, 4]
    assert [round(h["train_loss"], 6) for h in resumed.history] == \
        [round(h["train_loss"], 6) for h in straight.history]
    for key, value in straight.model.state_dict().items():
        assert torch.allclose(value.float(), resumed.model.state_dict()[key].float(), atol=1e-6)


def test_keep_last_task_keeps_the_last_epoch_after_a_resume(tmp_path):
    def task():
        keep_last = _task()
        keep_last.selection_metric = KEEP_LAST
        return keep_last

    def stop_after_two(record):
        if record["epoch"] == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        Trainer(_config(), tmp_path, progress=False).fit(task(), on_epoch_end=stop_after_two)
    resumed = Trainer(_config(), tmp_path, progress=False).fit(task(), resume=True)
    assert resumed.best_epoch == 4 and resumed.best_score == 4.0


def test_stop_epoch_ends_on_the_full_runs_schedule(tmp_path):
    def task():
        keep_last = _task()
        keep_last.selection_metric = KEEP_LAST
        return keep_last

    full = Trainer(_config(), tmp_path / "full", progress=False).fit(task())
    stopped = Trainer(_config(stop_epoch=2), tmp_path / "stopped", progress=False).fit(task())
    # The same learning rates and losses as the full run's first two epochs, then the end.
    assert [(h["lr"], h["train_loss"]) for h in stopped.history] == \
        [(h["lr"], h["train_loss"]) for h in full.history[:2]]
    assert stopped.best_epoch == 2 and stopped.history[-1]["lr"] > full.history[-1]["lr"]
    with pytest.raises(ConfigError, match="stop_epoch must be in 1..epochs"):
        _config(stop_epoch=5)


def test_time_budget_stops_early(tmp_path):
    result = Trainer(_config(epochs=50, time_budget_min=1e-4), tmp_path, progress=False).fit(
        _task())
    assert len(result.history) == 1
    assert "time budget" in result.stop_reason


def test_patience_stops_early(tmp_path):
    result = Trainer(_config(epochs=30, patience=2, lr=1e-9, ema_decay=0), tmp_path,
                     progress=False).fit(_task())
    assert result.stop_reason.startswith("early stop")
    assert len(result.history) < 30


def test_refuses_to_overwrite_an_interrupted_run(tmp_path):
    Trainer(_config(epochs=1), tmp_path, progress=False).fit(_task())
    with pytest.raises(ConfigError, match="--resume"):
        Trainer(_config(epochs=1), tmp_path, progress=False).fit(_task())


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no checkpoint"):
        Trainer(_config(), tmp_path, progress=False).fit(_task(), resume=True)


def test_schedule_warms_up_then_decays():
    assert lr_at(0, 1.0, 0.1) == pytest.approx(0.1)
    assert lr_at(0.1, 1.0, 0.1) == pytest.approx(1.0)
    assert lr_at(1.0, 1.0, 0.1) == pytest.approx(0.01)
    values = [lr_at(p / 100, 1.0, 0.1) for p in range(10, 101)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))
    assert not math.isnan(lr_at(2.0, 1.0, 0.1))


def test_bad_config_values_fail_at_construction():
    with pytest.raises(ConfigError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ConfigError, match="amp"):
        TrainConfig(amp="fp8")


def test_ema_warmup_follows_the_model_early_and_averages_later():
    from meddx.learn.trainer import ema_with_warmup

    update = ema_with_warmup(0.99)
    averaged, current = [torch.zeros(1)], [torch.ones(1)]
    update(averaged, current, torch.tensor(1))
    assert averaged[0].item() == pytest.approx(1 - 2 / 11)  # decay (1+1)/(10+1)
    late = [torch.zeros(1)]
    update(late, current, torch.tensor(10_000))
    assert late[0].item() == pytest.approx(0.01)


def test_plan_overrides_merge_with_defaults_and_reject_unknown_keys():
    dataset = synthetic_dataset()
    plan = make_plan(dataset, dataset.split("train"), {"augment": {"flip_axes": [], "rot90": True}})
    assert plan.augment["flip_axes"] == [] and plan.augment["rot90"]
    assert plan.tta_flip_axes == []
    with pytest.raises(ConfigError, match="invalid augment option"):
        make_plan(dataset, dataset.split("train"), {"augment": {"flip": True}})
    with pytest.raises(ConfigError, match="unknown plan option 'colour'"):
        make_plan(dataset, dataset.split("train"), {"colour": 1})


def test_deterministic_pooling_keeps_outputs_and_weights():
    from monai.networks.nets import DenseNet121

    torch.manual_seed(0)
    stock = DenseNet121(spatial_dims=2, in_channels=1, out_channels=3).eval()
    swapped = deterministic_pooling(copy.deepcopy(stock))
    kinds = {type(module) for module in swapped.modules()}
    assert GlobalAveragePool in kinds and nn.AdaptiveAvgPool2d not in kinds
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(swapped(x), stock(x))
    # No parameters moved: a bundle's weights load into the network as its recipe builds it.
    stock.load_state_dict(swapped.state_dict())
