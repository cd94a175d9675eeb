import numpy as np
import pytest

from nuclei3d.segment import segment_nuclei

from .conftest import ball


def two_nuclei(touching):
    shape = (40, 40, 60)
    gap = 12 if touching else 20
    image = np.zeros(shape, np.float32)
    for x in (20, 20 + gap):
        image[ball(shape, (20, 20, x), 7)] = 100
    return image


@pytest.mark.parametrize("touching", [False, True])
def test_two_nuclei_give_two_labels(opencl_device, touching):
    labels = segment_nuclei(
        two_nuclei(touching), 1.0, spot_sigma_um=3, outline_sigma_um=1
    )
    assert labels.max() == 2
    assert labels.dtype == np.uint16
    assert labels[20, 20, 20] != labels[20, 20, 32 if touching else 40]
    assert labels[0, 0, 0] == 0


def test_sigmas_are_in_micrometres(opencl_device):
    image = two_nuclei(False)[::2, ::2, ::2]  # same scene, 2 µm voxels
    labels = segment_nuclei(image, 2.0, spot_sigma_um=3, outline_sigma_um=1)
    assert labels.max() == 2


def test_empty_image_gives_no_nuclei(opencl_device):
    assert segment_nuclei(np.zeros((10, 10, 10), np.float32), 1.0).max() == 0


@pytest.mark.parametrize("bad", [{"spot_sigma_um": 0}, {"outline_sigma_um": -1}])
def test_non_positive_sigma_is_rejected(bad):
    with pytest.raises(ValueError, match="must be positive"):
        segment_nuclei(np.zeros((4, 4, 4)), 1.0, **bad)
