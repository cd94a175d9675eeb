import numpy as np
import pytest

from nuclei3d.background import subtract_background

from .conftest import ball


def test_flat_background_becomes_zero(opencl_device):
    out = subtract_background(np.full((20, 20, 20), 30, np.float32), 1.0, radius_um=3)
    np.testing.assert_allclose(out, 0)


def test_small_object_survives_background_goes(opencl_device):
    image = (
        np.full((30, 30, 30), 40, np.float32) + np.linspace(0, 20, 30)[:, None, None]
    )
    nucleus = ball(image.shape, (15, 15, 15), 3)
    image[nucleus] += 100
    out = subtract_background(image, 1.0, radius_um=5)
    assert out[nucleus].mean() > 90
    assert np.abs(out[~ball(image.shape, (15, 15, 15), 6)]).mean() < 5


def test_radius_is_in_micrometres(opencl_device):
    # 10 µm at 2 µm voxels is the same filter as 5 voxels at 1 µm.
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 100, (16, 16, 16)).astype(np.float32)
    np.testing.assert_array_equal(
        subtract_background(image, 2.0, radius_um=10),
        subtract_background(image, 1.0, radius_um=5),
    )


@pytest.mark.parametrize(("voxel", "radius"), [(1.0, 0), (0, 5), (1.0, -2)])
def test_non_positive_is_rejected(voxel, radius):
    with pytest.raises(ValueError, match="must be positive"):
        subtract_background(np.zeros((4, 4, 4)), voxel, radius_um=radius)


def test_radius_below_half_voxel_is_rejected():
    with pytest.raises(ValueError, match="below half a voxel"):
        subtract_background(np.zeros((4, 4, 4)), 2.0, radius_um=0.5)
