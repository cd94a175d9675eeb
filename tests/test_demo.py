import numpy as np
from scipy import ndimage

from nuclei3d.demo import DEMO_SHAPE, make_demo_stack


def test_deterministic_per_seed():
    a = make_demo_stack(shape=(12, 60, 60), n_nuclei=3, seed=5)
    b = make_demo_stack(shape=(12, 60, 60), n_nuclei=3, seed=5)
    c = make_demo_stack(shape=(12, 60, 60), n_nuclei=3, seed=6)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])


def test_seed_like_stack():
    image, labels = make_demo_stack(seed=1)
    assert image.shape == labels.shape == DEMO_SHAPE == (86, 396, 393)
    assert image.dtype == np.uint8 and labels.dtype == np.uint16
    assert labels.max() >= 30
    # Nuclei touch: some labelled voxels have a neighbour of another label.
    grown = ndimage.grey_dilation(labels, size=(1, 3, 3))
    assert ((grown != labels) & (labels > 0) & (grown > 0)).any()
    # Nuclei are dimmer and the background brighter with depth.
    top, bottom = slice(0, 30), slice(56, 86)
    nuclei, background = labels > 0, ndimage.binary_dilation(labels > 0, iterations=3)
    assert image[top][nuclei[top]].mean() > image[bottom][nuclei[bottom]].mean()
    assert (
        image[top][~background[top]].mean() < image[bottom][~background[bottom]].mean()
    )


def test_labels_are_one_to_n():
    _, labels = make_demo_stack(shape=(20, 100, 100), n_nuclei=6, seed=2)
    assert np.unique(labels).tolist() == list(range(labels.max() + 1))
