"""1D networks: every architecture maps (B, C, L) [+ extra features] to (B, K) logits."""

from __future__ import annotations

import pytest
import torch

from meddx.errors import ConfigError
from meddx.learn.networks1d import ARCHITECTURES, Network1DSpec, build_network1d
from meddx.learn.tasks.ecg import DEFAULT_OPTIONS


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny networks: one thread is as fast, and does not fight other work for the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("family", ["beats", "series"])
def test_every_architecture_gives_logits_and_gradients(arch, family):
    n_extra = 5 if family == "beats" else 0
    spec = Network1DSpec(arch, in_channels=2 if n_extra else 1, length=64, num_classes=5,
                         n_extra=n_extra, options=DEFAULT_OPTIONS[family][arch])
    model = build_network1d(Network1DSpec.from_dict(spec.to_dict()))
    x = torch.randn(3, spec.in_channels, 64, requires_grad=True)
    extra = torch.randn(3, n_extra) if n_extra else None
    logits = model(x, extra)
    assert logits.shape == (3, 5)
    logits[:, 1].sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_extra_features_change_the_output_and_are_required():
    torch.manual_seed(0)
    model = build_network1d(Network1DSpec("resnet", 2, 84, 5, n_extra=5)).eval()
    x = torch.randn(2, 2, 84)
    a = model(x, torch.zeros(2, 5))
    b = model(x, torch.ones(2, 5))
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="needs 5 extra features"):
        model(x)


def test_bad_configuration_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown 1D network 'cnn'"):
        Network1DSpec("cnn", 1, 84, 2)
    with pytest.raises(ConfigError, match="bad option"):
        build_network1d(Network1DSpec("resnet", 1, 84, 2, options={"depth": 3}))
