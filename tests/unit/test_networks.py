import pytest
import torch

from meddx.errors import ConfigError
from meddx.learn.networks import ARCHITECTURES, GRADCAM_LAYERS, NetworkSpec, build_network


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("dims", [2, 3])
def test_every_architecture_builds_and_runs_on_small_inputs(arch, dims):
    if dims == 3 and arch in ("resnet50", "densenet121", "efficientnet-b0", "vit"):
        pytest.skip("large 3D variants are covered by their 2D twins; too slow for unit tests")
    size = [28] * dims if dims == 2 else [16] * dims
    spec = NetworkSpec(arch=arch, spatial_dims=dims, in_channels=1, num_classes=3,
                       input_size=size)
    model = build_network(spec).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 1, *size))
    assert out.shape == (2, 3)


def test_small_inputs_are_resized_for_networks_that_need_more_pixels():
    spec = NetworkSpec(arch="densenet121", spatial_dims=2, in_channels=1, num_classes=2,
                       input_size=[28, 28])
    model = build_network(spec)
    assert model.resize_to == (32, 32)


def test_gradcam_layers_exist():
    for arch, layer in GRADCAM_LAYERS.items():
        spec = NetworkSpec(arch=arch, spatial_dims=2, in_channels=1, num_classes=2,
                           input_size=[32, 32])
        names = dict(build_network(spec).named_modules())
        assert layer in names, arch


def test_unknown_architecture_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown architecture 'resnet7'"):
        build_network(NetworkSpec("resnet7", 2, 1, 2, [28, 28]))


def test_bad_option_is_a_clear_error():
    with pytest.raises(ConfigError, match="compact_cnn: invalid network option"):
        build_network(NetworkSpec("compact_cnn", 2, 1, 2, [28, 28], options={"depthh": 3}))
