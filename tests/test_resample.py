import numpy as np
import pytest

from nuclei3d.resample import resample_isotropic, resolve_voxel_size


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
