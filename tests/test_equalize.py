import numpy as np
import pytest

from nuclei3d.equalize import equalize_slice_means, slice_correction_factors

from .conftest import assert_same_arithmetic


def decaying_stack(depth=12):
    rng = np.random.default_rng(0)
    base = rng.uniform(10, 200, size=(depth, 20, 30)).astype(np.float32)
    decay = np.exp(-0.15 * np.arange(depth, dtype=np.float32))[:, None, None]
    return base * decay


def test_slice_means_equal_stack_mean_after(opencl_device):
    stack = decaying_stack()
    out = equalize_slice_means(stack)
    means = out.mean(axis=(1, 2))
    np.testing.assert_allclose(means, stack.mean(), rtol=1e-4)


def test_known_decay_is_undone(opencl_device):
    slice_ = np.random.default_rng(1).uniform(50, 100, (16, 16)).astype(np.float32)
    decay = np.array([1.0, 0.5, 0.25, 0.125], np.float32)
    out = equalize_slice_means(slice_[None] * decay[:, None, None])
    for z in range(1, 4):  # every slice becomes the same picture
        np.testing.assert_allclose(out[z], out[0], rtol=1e-5)


def test_factor_is_stack_over_slice_mean_not_inverted():
    # The seed multiplied by slice_mean / stack_mean; dark slices must get brighter.
    factors = slice_correction_factors([4.0, 1.0])
    assert factors.tolist() == pytest.approx([2.5 / 4.0, 2.5 / 1.0])


def test_empty_slice_untouched(opencl_device):
    stack = decaying_stack(4)
    stack[2] = 0
    out = equalize_slice_means(stack)
    np.testing.assert_array_equal(out[2], 0)
    assert out.shape == stack.shape and out.dtype == np.float32


def test_disabled_passes_through():
    stack = decaying_stack(3)
    np.testing.assert_array_equal(equalize_slice_means(stack, enabled=False), stack)


def test_rejects_2d():
    with pytest.raises(ValueError, match=r"shape \(3, 3\)"):
        equalize_slice_means(np.zeros((3, 3)))


@pytest.fixture
def stack_with_empty_slice():
    rng = np.random.default_rng(5)
    stack = (rng.random((6, 7, 8)) * 100).astype(np.float32)
    stack *= np.linspace(1.0, 0.3, 6, dtype=np.float32)[:, None, None]
    stack[2] = 0  # an empty slice keeps factor 1
    return stack


def test_gpu_slice_sums_are_pyclesperantos_projections(
    opencl_device, stack_with_empty_slice
):
    """The GPU path's own kernels sum as cle's two projections do."""
    import pyclesperanto_prototype as cle

    from nuclei3d.equalize import slice_sums_gpu

    image = cle.push(stack_with_empty_slice)
    expected = cle.pull(cle.sum_y_projection(cle.sum_x_projection(image)))
    assert_same_arithmetic(cle.pull(slice_sums_gpu(image)), expected, opencl_device)


def test_both_paths_apply_the_slice_correction_factors(
    opencl_device, stack_with_empty_slice
):
    """The GPU path (factor per voxel) and the CPU one (factor list) agree."""
    import pyclesperanto_prototype as cle

    from nuclei3d.equalize import equalize_gpu, multiply_by_slice_factors

    image = cle.push(stack_with_empty_slice)
    sums = cle.sum_y_projection(cle.sum_x_projection(image))
    factors = slice_correction_factors(stack_with_empty_slice.mean(axis=(1, 2)))
    expected = stack_with_empty_slice * factors[:, None, None]
    for out in (equalize_gpu(image), multiply_by_slice_factors(image, sums)):
        np.testing.assert_allclose(cle.pull(out), expected, rtol=1e-5)
