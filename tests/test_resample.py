import numpy as np
import pytest

from nuclei3d.resample import (
    gather_nearest,
    nearest_sources,
    resample_isotropic,
    resampled_shape,
    resolve_voxel_size,
)


def test_shape_follows_voxel_size(opencl_device):
    image = np.ones((10, 50, 40), np.uint8)
    out = resample_isotropic(image, (1.0, 0.2, 0.25), target_voxel_size_um=1.0)
    assert out.shape == (10, 10, 10)
    assert out.dtype == np.float32


def test_finer_target_upsamples_and_keeps_values(opencl_device):
    image = np.full((4, 4, 4), 7, np.uint8)
    out = resample_isotropic(image, (1.0, 1.0, 1.0), target_voxel_size_um=0.5)
    assert out.shape == (8, 8, 8)
    np.testing.assert_array_equal(out, 7)


@pytest.mark.parametrize(
    ("shape", "voxel", "target"),
    [
        ((86, 396, 393), (1.0, 0.202, 0.202), 1.0),  # the demo stack
        ((9, 61, 47), (1.7, 0.31, 0.27), 1.0),
        ((5, 23, 31), (2.0, 0.5, 0.5), 0.5),  # z upsampled
        ((12, 40, 40), (0.3, 0.3, 0.3), 1.1),
        ((7, 13, 17), (1.0, 1.0, 1.0), 0.37),
        ((4, 3, 5), (1.0, 0.5, 1.0), 1.0),  # 1.5 rounds to 2: the last y is 0
    ],
)
def test_host_picking_equals_cle_scale(opencl_device, shape, voxel, target):
    """The host path picks the voxels ``cle.scale`` reads, in every dtype."""
    import pyclesperanto_prototype as cle

    image = np.random.default_rng(3).integers(0, 65535, shape).astype(np.uint16)
    factors = [v / target for v in voxel]
    expected = cle.pull(
        cle.scale(
            cle.push(image),
            factor_x=factors[2],
            factor_y=factors[1],
            factor_z=factors[0],
            auto_size=True,
        )
    )
    on_host = resample_isotropic(image, voxel, target_voxel_size_um=target)
    pushed = resample_isotropic(
        image, voxel, target_voxel_size_um=target, on_device=True
    )
    assert on_host.dtype == np.float32 and pushed.dtype == np.float32
    np.testing.assert_array_equal(on_host, expected)
    np.testing.assert_array_equal(cle.pull(pushed), expected)
    assert resampled_shape(shape, voxel, target_voxel_size_um=target) == (
        expected.shape
    )


def test_device_input_is_scaled_on_the_device(opencl_device):
    import pyclesperanto_prototype as cle

    image = np.arange(4 * 10 * 10, dtype=np.float32).reshape(4, 10, 10)
    voxel = (1.0, 0.5, 0.5)
    out = resample_isotropic(cle.push(image), voxel, on_device=True)
    assert not isinstance(out, np.ndarray)
    np.testing.assert_array_equal(cle.pull(out), resample_isotropic(image, voxel))


def test_nearest_sources_picks_the_voxel_under_each_centre():
    z, y, x = nearest_sources((4, 10, 9), (1.0, 0.5, 2.0))
    np.testing.assert_array_equal(z, [0, 1, 2, 3])
    np.testing.assert_array_equal(y, [1, 3, 5, 7, 9])  # centres at 1, 3, ... 9
    np.testing.assert_array_equal(x, np.repeat(np.arange(9), 2))


def test_outside_the_stack_is_zero():
    z, y, x = nearest_sources((4, 3, 5), (1.0, 0.5, 1.0))
    np.testing.assert_array_equal(y, [1, -1])  # centre 1.5 * 2 = 3 is outside
    image = np.arange(1, 61, dtype=np.uint8).reshape(4, 3, 5)
    np.testing.assert_array_equal(
        gather_nearest(image, (z, y, x))[:, 1], np.zeros((4, 5))
    )


@pytest.mark.parametrize("threads", [2, 5])
def test_threads_copy_the_same_voxels(threads):
    image = np.random.default_rng(0).integers(0, 255, (23, 90, 70), np.uint8)
    sources = nearest_sources(image.shape, (1.3, 0.3, 0.44))
    one = gather_nearest(image, sources, threads=1)
    np.testing.assert_array_equal(gather_nearest(image, sources, threads=threads), one)
    np.testing.assert_array_equal(one, image[np.ix_(*sources)])
    assert not np.shares_memory(one, image)


def test_object_keeps_its_physical_size(opencl_device):
    image = np.zeros((20, 100, 100), np.uint8)
    image[5:15, 25:75, 25:75] = 200  # 10 × 10 × 10 µm at (1, 0.2, 0.2)
    out = resample_isotropic(image, (1.0, 0.2, 0.2))
    assert (out > 100).sum() == pytest.approx(1000, rel=0.05)


@pytest.mark.parametrize("voxel", [(0, 1, 1), (1, -1, 1), (1, 1, float("nan"))])
def test_bad_voxel_size_is_rejected(voxel):
    with pytest.raises(ValueError, match="three positive finite numbers"):
        resample_isotropic(np.zeros((2, 2, 2)), voxel)


def test_target_larger_than_stack_is_rejected():
    with pytest.raises(ValueError, match=r"larger than the stack's extent"):
        resample_isotropic(np.zeros((2, 10, 10)), (1, 1, 1), target_voxel_size_um=5)


def test_2d_is_rejected():
    with pytest.raises(ValueError, match=r"shape \(2, 2\)"):
        resample_isotropic(np.zeros((2, 2)), (1, 1, 1))


def test_voxel_size_precedence():
    sheet, meta, default = (1, 1, 1), (2, 2, 2), (3, 3, 3)
    assert resolve_voxel_size("a", sheet=sheet, metadata=meta, default=default) == sheet
    assert resolve_voxel_size("a", metadata=meta, default=default) == meta
    assert resolve_voxel_size("a", default=default) == default
    incomplete = (1, None, 1)
    assert resolve_voxel_size("a", sheet=incomplete, metadata=meta) == meta


def test_unknown_voxel_size_names_file_and_fixes():
    with pytest.raises(ValueError, match=r"x\.tif: voxel size unknown.*sample sheet"):
        resolve_voxel_size("x.tif")


def test_nonsense_sheet_voxel_size_names_file():
    with pytest.raises(ValueError, match=r"x\.tif: sample sheet"):
        resolve_voxel_size("x.tif", sheet=(1, 0, 1))
