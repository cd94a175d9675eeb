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


@pytest.mark.parametrize(
    ("shape", "radius"), [((30, 40, 50), 5), ((7, 9, 4), 3), ((12, 31, 17), 1)]
)
def test_top_hat_box_equals_pyclesperanto(opencl_device, shape, radius):
    """To the bit, windows that reach over the edges included."""
    import pyclesperanto_prototype as cle

    from nuclei3d.background import top_hat_box

    image = np.random.default_rng(radius).gamma(2, 20, shape).astype(np.float32)
    expected = cle.top_hat_box(cle.push(image), None, radius, radius, radius)
    out = top_hat_box(cle.push(image), radius)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(cle.pull(out), cle.pull(expected))
    assert 0 < cle.pull(out).mean() < image.mean()


def test_other_dtypes_go_through_pyclesperanto(opencl_device):
    image = np.zeros((8, 8, 8), np.uint8)
    image[4, 4, 4] = 200
    out = subtract_background(image, 1.0, radius_um=2)
    assert out[4, 4, 4] == 200 and out.sum() == 200
