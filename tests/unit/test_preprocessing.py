import numpy as np
import pytest

from meddx.data.preprocessing import ImagePreprocessing
from meddx.errors import InputFileError


def test_resize_and_normalise():
    prep = ImagePreprocessing(spatial_dims=2, in_channels=1, input_size=[28, 28], mean=0.5,
                              std=0.25)
    out = prep(np.full((1, 56, 40), 0.75, dtype=np.float32), "x.png")
    assert out.shape == (1, 28, 28)
    np.testing.assert_allclose(out, 1.0, atol=1e-5)


def test_rgb_to_gray_and_gray_to_rgb():
    gray_model = ImagePreprocessing(spatial_dims=2, in_channels=1, input_size=[8, 8])
    assert gray_model.conform(np.ones((3, 8, 8)), "rgb.png").shape == (1, 8, 8)
    assert gray_model.conform(np.ones((4, 8, 8)), "rgba.png").shape == (1, 8, 8)
    rgb_model = ImagePreprocessing(spatial_dims=2, in_channels=3, input_size=[8, 8])
    assert rgb_model.conform(np.ones((1, 8, 8)), "gray.png").shape == (3, 8, 8)


@pytest.mark.parametrize(("array", "message"), [
    (np.ones((1, 8, 8, 8)), "expected a 2D image with 2 spatial dimensions"),
    (np.ones((2, 8, 8)), "has 2 channels; the model expects 1"),
    (np.full((1, 8, 8), np.nan), "NaN or infinite"),
])
def test_bad_inputs_name_the_file(array, message):
    prep = ImagePreprocessing(spatial_dims=2, in_channels=1, input_size=[8, 8])
    with pytest.raises(InputFileError, match=message) as error:
        prep(array, "scan.dcm")
    assert "scan.dcm" in str(error.value)
